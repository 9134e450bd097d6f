//! The edge gateway's handler: passes an event it has checked on to the
//! operator's leader, which checks it again and acts on it.
//!
//! `planops gateway` runs the same routes as the leader (same auth, limits and
//! dedup), so floods, forgeries and oversized bodies stop at the edge and
//! several edge replicas share the load; only the leader writes to Odoo, so a
//! second replica never means a second effect. The hop sends the sender's own
//! request (body, query and authenticating headers) unchanged: the leader
//! needs no trust in the edge, and a secret rotated between the two checks is
//! caught by the second one.
//!
//! Delivery semantics stay those of the sender:
//! - a **supplier** event is answered with the leader's verdict, so its 2xx
//!   still means "durable in Odoo"; while no leader answers, the sender gets
//!   503 + `Retry-After` and retries;
//! - an **Odoo hint** was answered 202 at the edge; the hop is retried with
//!   backoff for [`ForwardOptions::hint_retry_budget`], which covers a leader
//!   failover, so hints that arrive meanwhile are not lost.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use futures::future::BoxFuture;
use serde_json::Value;

use super::{EventHandler, HandlerError, HandlerOutcome, InboundEvent, PathKind};

/// Where and how the edge passes events on.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Base URL of the leader's gateway, e.g. `http://planops-leader:8080`.
    pub upstream: reqwest::Url,
    /// Time limit of one hop.
    pub request_timeout: Duration,
    /// How long an Odoo hint keeps being retried while the leader is away.
    pub hint_retry_budget: Duration,
}

impl ForwardOptions {
    pub fn new(upstream: reqwest::Url) -> ForwardOptions {
        ForwardOptions {
            upstream,
            request_timeout: Duration::from_secs(30),
            hint_retry_budget: Duration::from_secs(120),
        }
    }
}

/// [`EventHandler`] that forwards to the leader; one per edge, shared by routes.
#[derive(Clone)]
pub struct Forwarder {
    http: reqwest::Client,
    options: ForwardOptions,
}

/// Headers that belong to one hop, not to the request: never passed on.
const HOP_HEADERS: &[HeaderName] = &[
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

impl Forwarder {
    pub fn new(options: ForwardOptions) -> Result<Forwarder, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            // The leader is inside the cluster: never through a proxy from the environment.
            .no_proxy()
            .build()?;
        Ok(Forwarder { http, options })
    }

    async fn hop(&self, event: &InboundEvent) -> Result<HandlerOutcome, HandlerError> {
        // The route's path under the upstream's own (a proxy may add a prefix).
        let mut url = self.options.upstream.clone();
        let path = format!(
            "{}{}",
            url.path().trim_end_matches('/'),
            event.route.url_path()
        );
        url.set_path(&path);
        url.set_query(event.origin.query.as_deref());
        let mut headers = HeaderMap::new();
        for (name, value) in &event.origin.headers {
            if !HOP_HEADERS.contains(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let response = self
            .http
            .post(url)
            .headers(headers)
            .body(event.raw_body.clone())
            .send()
            .await
            .map_err(|e| {
                // Without the URL: an Odoo callback's query holds the rule's token.
                HandlerError::transient(format!("the leader did not answer: {}", e.without_url()))
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = || {
            body.get("message")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_string()
        };
        match status {
            s if s.is_success() => Ok(HandlerOutcome {
                detail: body.get("detail").cloned().unwrap_or(body.clone()),
            }),
            StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE => Err(HandlerError::rejected(message())),
            // 401/404: the leader has not (yet) the route or secret this edge
            // has (it is starting, or a rotation is on its way): retryable.
            _ => Err(HandlerError::Transient {
                reason: format!("the leader answered {status}: {}", message()),
                retry_after,
            }),
        }
    }
}

impl EventHandler for Forwarder {
    fn handle(&self, event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>> {
        Box::pin(async move {
            if event.route.kind == PathKind::Suppliers {
                return self.hop(&event).await;
            }
            let started = tokio::time::Instant::now();
            let mut wait = Duration::from_millis(250);
            loop {
                match self.hop(&event).await {
                    Err(HandlerError::Transient {
                        reason,
                        retry_after,
                    }) if started.elapsed() < self.options.hint_retry_budget => {
                        let pause = retry_after.unwrap_or(wait).min(Duration::from_secs(5));
                        tracing::debug!(route = %event.route, %reason, "forwarding an Odoo hint: retrying");
                        tokio::time::sleep(pause).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    other => return other,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use serde_json::json;

    use super::*;
    use crate::gateway::{OriginalRequest, RoutePath};

    /// An upstream answering `answers` in turn (the last one forever), and how
    /// many requests it received.
    async fn upstream(answers: Vec<(u16, Value)>) -> (reqwest::Url, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let app = Router::new().route(
            "/base/hooks/{kind}/{ns}/{name}",
            post(move |headers: HeaderMap, body: Bytes| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let (status, answer) = answers[n.min(answers.len() - 1)].clone();
                async move {
                    // The hop carries the sender's request unchanged.
                    assert_eq!(headers["webhook-signature"], "v1,abc");
                    assert_eq!(headers["content-type"], "application/json");
                    assert_eq!(&body[..], br#"{"po":"P1"}"#);
                    let mut response =
                        (StatusCode::from_u16(status).unwrap(), axum::Json(answer)).into_response();
                    if status == 503 {
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, "0".parse().unwrap());
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        (format!("http://{addr}/base/").parse().unwrap(), calls)
    }

    fn event(route: RoutePath) -> InboundEvent {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-signature", "v1,abc".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("host", "edge.example".parse().unwrap());
        InboundEvent {
            route,
            event_id: "e1".into(),
            delivery_id: None,
            payload: json!({"po": "P1"}),
            raw_body: Bytes::from_static(br#"{"po":"P1"}"#),
            received_at: jiff::Timestamp::now(),
            origin: OriginalRequest {
                query: None,
                headers,
            },
        }
    }

    fn forwarder(upstream: reqwest::Url) -> Forwarder {
        let mut options = ForwardOptions::new(upstream);
        options.hint_retry_budget = Duration::from_secs(10);
        Forwarder::new(options).unwrap()
    }

    #[tokio::test]
    async fn a_supplier_event_gets_the_leaders_verdict_in_one_hop() {
        let supplier = || RoutePath::supplier("ns", "acme");
        let (url, calls) = upstream(vec![(
            200,
            json!({"accepted": true, "detail": {"linesUpdated": 1}}),
        )])
        .await;
        let outcome = forwarder(url).handle(event(supplier())).await.unwrap();
        assert_eq!(outcome.detail, json!({"linesUpdated": 1}));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let (url, _) = upstream(vec![(
            422,
            json!({"error": "unmappable", "message": "no PO P1"}),
        )])
        .await;
        let err = forwarder(url).handle(event(supplier())).await.unwrap_err();
        assert_eq!(err, HandlerError::rejected("no PO P1"));

        // A supplier retries by itself: one hop, then 503 with the leader's Retry-After.
        let (url, calls) = upstream(vec![(503, json!({"error": "standby"}))]).await;
        let err = forwarder(url).handle(event(supplier())).await.unwrap_err();
        assert!(
            matches!(err, HandlerError::Transient { retry_after: Some(d), .. } if d == Duration::ZERO),
            "{err:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_odoo_hint_is_retried_until_a_leader_takes_it() {
        let (url, calls) = upstream(vec![
            (503, json!({"error": "standby"})),
            (404, json!({"error": "not_found"})),
            (202, json!({"accepted": true, "queued": true})),
        ])
        .await;
        let outcome = forwarder(url)
            .handle(event(RoutePath::odoo("ns", "stockout")))
            .await
            .unwrap();
        assert_eq!(outcome.detail["queued"], true);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn no_leader_at_all_is_transient_and_the_error_has_no_query() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut event = event(RoutePath::supplier("ns", "acme"));
        event.origin.query = Some("token=sekrit".into());
        let err = forwarder(format!("http://127.0.0.1:{port}").parse().unwrap())
            .handle(event)
            .await
            .unwrap_err();
        assert!(matches!(err, HandlerError::Transient { .. }), "{err:?}");
        assert!(!err.to_string().contains("sekrit"), "{err}");
    }
}
