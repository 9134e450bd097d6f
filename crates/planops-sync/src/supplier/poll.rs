//! Polling a supplier's API: one GET per page with the cursor, every item
//! mapped and applied with [`super::handle_event`], and the next cursor
//! handed back only once every item of the page is settled.
//!
//! An item is settled when it was applied, found to be a duplicate, or
//! rejected (it does not map, or names a PO or product the supplier does not
//! have): a rejected item is counted and skipped, never retried, so one bad
//! item cannot stall the feed. An item that fails on our side (Odoo
//! unavailable) stops the page without a new cursor: the next poll fetches the
//! same page again, and the items already applied come back as duplicates.
//!
//! The API answers JSON; `itemsPath` (default `$.events[*]`) selects the
//! events and `nextCursorPath` (default `$.nextCursor`) the cursor to send
//! next time as the `cursorParam` query parameter (default `cursor`). A
//! response without a cursor (absent or `null`) keeps the current one, so the
//! API should return a cursor after its last item even on the last page.

use std::time::Duration;

use rand::RngExt;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::{Delivery, EventError, SupplierRuntime, handle_event};
use crate::outbound::{self, OutboundPolicy, Redirects};
use odoo_client::{OdooClient, Secret};
use planops_api::supplier::PollInbound;

/// Default seconds between polls.
pub const DEFAULT_INTERVAL_SECONDS: u32 = 300;
/// Largest response accepted from a supplier API.
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Pages fetched back to back while a backlog drains, before waiting an interval.
pub const MAX_PAGES_PER_ROUND: usize = 20;
/// Timeout of one poll request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials for the supplier API, read from a Secret.
#[derive(Clone)]
pub struct PollAuth {
    pub header: HeaderName,
    pub value: Secret,
}

impl std::fmt::Debug for PollAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollAuth")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl PollAuth {
    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: Secret) -> PollAuth {
        PollAuth {
            header: reqwest::header::AUTHORIZATION,
            value: Secret::new(format!("Bearer {}", token.expose())),
        }
    }
}

/// A `PollInbound` ready to use.
#[derive(Debug, Clone)]
pub struct PollConfig {
    pub url: reqwest::Url,
    pub interval: Duration,
    pub cursor_param: String,
    pub items_path: JsonPath,
    pub next_cursor_path: JsonPath,
    pub auth: Option<PollAuth>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollConfigError {
    #[error("spec.inbound.poll.url: {0}")]
    Url(String),
    #[error("spec.inbound.poll.{field}: {text:?} is not a JSONPath expression: {message}")]
    Path {
        field: &'static str,
        text: String,
        message: String,
    },
    #[error("spec.inbound.poll.headerAuth.header: {0:?} is not a header name")]
    Header(String),
}

impl PollConfig {
    pub fn new(spec: &PollInbound, auth: Option<PollAuth>) -> Result<PollConfig, PollConfigError> {
        let path = |field: &'static str, text: Option<&str>, default: &str| {
            let text = text.unwrap_or(default);
            super::mapping::parse_json_path(text).map_err(|e| PollConfigError::Path {
                field,
                text: text.to_string(),
                message: e.to_string(),
            })
        };
        Ok(PollConfig {
            url: reqwest::Url::parse(&spec.url).map_err(|e| PollConfigError::Url(e.to_string()))?,
            interval: Duration::from_secs(u64::from(
                spec.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS),
            )),
            cursor_param: spec.cursor_param.clone().unwrap_or_else(|| "cursor".into()),
            items_path: path("itemsPath", spec.items_path.as_deref(), "$.events[*]")?,
            next_cursor_path: path(
                "nextCursorPath",
                spec.next_cursor_path.as_deref(),
                "$.nextCursor",
            )?,
            auth,
        })
    }
}

/// The HTTP client of a connector's poll loop, with the outbound policy it
/// connects under. It follows redirects only within the polled URL's origin,
/// so the credential header never reaches another host.
#[derive(Debug, Clone)]
pub struct PollClient {
    http: reqwest::Client,
    policy: OutboundPolicy,
}

impl PollClient {
    pub fn new(policy: &OutboundPolicy) -> Result<PollClient, reqwest::Error> {
        Ok(PollClient {
            http: outbound::client(policy, REQUEST_TIMEOUT, Redirects::SameOrigin)?,
            policy: policy.clone(),
        })
    }
}

/// The header name of `headerAuth`, checked.
pub fn header_name(name: &str) -> Result<HeaderName, PollConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| PollConfigError::Header(name.into()))
}

/// Counts of one page's items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageCounts {
    pub items: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    /// Products of the accepted events, for re-evaluating rules.
    pub product_ids: Vec<i64>,
    /// Why the last rejected item was rejected.
    pub last_rejection: Option<String>,
}

/// Why a poll did not complete. Never carries a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    #[error("GET {url}: {message}")]
    Request { url: String, message: String },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("response of {url}: {message}")]
    Body { url: String, message: String },
    #[error("item {index} of the page: {source}")]
    Item {
        index: usize,
        #[source]
        source: EventError,
    },
}

/// One poll's result: what the page's items did, and the cursor to continue
/// from (`Ok(None)`: keep the current one) or why the page is to be fetched again.
#[derive(Debug)]
pub struct PollPage {
    pub counts: PageCounts,
    pub next: Result<Option<String>, PollError>,
}

/// GETs one page from `cursor` and applies its items.
pub async fn poll_once(
    http: &PollClient,
    config: &PollConfig,
    cursor: Option<&str>,
    client: &OdooClient,
    runtime: &SupplierRuntime,
) -> PollPage {
    let mut counts = PageCounts::default();
    let body = match fetch(http, config, cursor).await {
        Ok(body) => body,
        Err(err) => {
            return PollPage {
                counts,
                next: Err(err),
            };
        }
    };
    let url = config.url.to_string();
    let items: Vec<&Value> = match config.items_path.query(&body).all().as_slice() {
        [Value::Array(items)] => items.iter().collect(),
        nodes => nodes.to_vec(),
    };
    let next = match config.next_cursor_path.query(&body).all().as_slice() {
        [] | [Value::Null] => Ok(None),
        [Value::String(s)] => Ok(Some(s.clone())),
        [Value::Number(n)] => Ok(Some(n.to_string())),
        [_] => Err(PollError::Body {
            url: url.clone(),
            message: "the next cursor is neither a string nor a number".into(),
        }),
        many => Err(PollError::Body {
            url: url.clone(),
            message: format!("the next cursor path matched {} values", many.len()),
        }),
    };
    // A cursor we cannot read would lose our place: settle nothing.
    let next = match next {
        Ok(next) => next,
        Err(err) => {
            return PollPage {
                counts,
                next: Err(err),
            };
        }
    };
    for (index, item) in items.into_iter().enumerate() {
        counts.items += 1;
        let raw = serde_json::to_vec(item).unwrap_or_default();
        let delivery = Delivery {
            payload: item,
            raw: &raw,
            delivery_id: None,
        };
        match handle_event(client, runtime, delivery).await {
            Ok(handled) if handled.applied.duplicate => counts.duplicate += 1,
            Ok(handled) => {
                counts.accepted += 1;
                counts.product_ids.extend(handled.applied.product_ids);
            }
            Err(err) if err.is_rejected() => {
                tracing::info!(connector = %runtime.target.name, namespace = %runtime.target.namespace, index, error = %err, "polled supplier event rejected");
                counts.rejected += 1;
                counts.last_rejection = Some(err.to_string());
            }
            Err(source) => {
                return PollPage {
                    counts,
                    next: Err(PollError::Item { index, source }),
                };
            }
        }
    }
    counts.product_ids.sort_unstable();
    counts.product_ids.dedup();
    PollPage {
        counts,
        next: Ok(next),
    }
}

async fn fetch(
    client: &PollClient,
    config: &PollConfig,
    cursor: Option<&str>,
) -> Result<Value, PollError> {
    let mut url = config.url.clone();
    if let Some(cursor) = cursor {
        url.query_pairs_mut()
            .append_pair(&config.cursor_param, cursor);
    }
    // Errors name the configured URL, never the request's headers.
    let shown = config.url.to_string();
    client
        .policy
        .check_url(&url)
        .map_err(|denied| PollError::Request {
            url: shown.clone(),
            message: denied.to_string(),
        })?;
    let mut request = client
        .http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(auth) = &config.auth {
        let mut value =
            HeaderValue::from_str(auth.value.expose()).map_err(|_| PollError::Request {
                url: shown.clone(),
                message: format!("the {} credential is not a valid header value", auth.header),
            })?;
        value.set_sensitive(true);
        request = request.header(auth.header.clone(), value);
    }
    let mut response = request.send().await.map_err(|e| PollError::Request {
        url: shown.clone(),
        message: match outbound::denial(&e) {
            Some(denied) => denied.to_string(),
            None => e.without_url().to_string(),
        },
    })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(PollError::Request {
            url: shown,
            message: format!(
                "HTTP {}: redirected to another origin, which is not followed (the credentials would go with it); poll the final URL",
                status.as_u16()
            ),
        });
    }
    if !status.is_success() {
        return Err(PollError::Status {
            url: shown,
            status: status.as_u16(),
        });
    }
    let too_large = || PollError::Body {
        url: shown.clone(),
        message: format!("larger than {MAX_RESPONSE_BYTES} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    // Read chunk by chunk: a chunked answer has no length to check up front,
    // and buffering it whole before counting would let a supplier exhaust memory.
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| PollError::Request {
        url: shown.clone(),
        message: e.without_url().to_string(),
    })? {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|e| PollError::Body {
        url: shown,
        message: format!("not JSON: {e}"),
    })
}

/// How long to wait after the `failures`-th failure in a row: the interval,
/// doubled per further failure, capped at the larger of the interval and an
/// hour, with jitter (50–100 %) so many connectors do not retry in step.
pub fn backoff(failures: u32, interval: Duration, rng: &mut impl rand::Rng) -> Duration {
    let cap = interval.max(Duration::from_secs(3600));
    let exponent = failures.saturating_sub(1).min(20);
    let full = interval.saturating_mul(1u32 << exponent).min(cap);
    full.mul_f64(rng.random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let interval = Duration::from_secs(30);
        for failures in 1..=12u32 {
            let d = backoff(failures, interval, &mut rng);
            let full = (30u64 << (failures - 1)).min(3600);
            assert!(
                d >= Duration::from_secs(full) / 2 && d <= Duration::from_secs(full),
                "{failures}: {d:?}"
            );
        }
        // A long interval is its own cap.
        let day = Duration::from_secs(86_400);
        assert!(backoff(5, day, &mut rng) <= day);
    }

    #[test]
    fn config_defaults_and_errors() {
        let spec: PollInbound =
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9/events"}))
                .unwrap();
        let config = PollConfig::new(&spec, None).unwrap();
        assert_eq!(config.interval, Duration::from_secs(300));
        assert_eq!(config.cursor_param, "cursor");
        let bad: PollInbound = serde_json::from_value(
            serde_json::json!({"url": "http://127.0.0.1:9/", "itemsPath": "$.["}),
        )
        .unwrap();
        assert!(matches!(
            PollConfig::new(&bad, None),
            Err(PollConfigError::Path {
                field: "itemsPath",
                ..
            })
        ));
        assert!(header_name("X-Api-Key").is_ok());
        assert!(header_name("bad header").is_err());
    }

    /// A loopback HTTP server that records each request's head and answers
    /// with `answer(path)`.
    async fn server(
        answer: fn(&str) -> String,
    ) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(head);
                let _ = stream.write_all(answer(&path).as_bytes()).await;
            }
        });
        (port, seen)
    }

    fn loopback_allowed() -> OutboundPolicy {
        OutboundPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..OutboundPolicy::default()
        }
    }

    fn config_with_key(url: String) -> PollConfig {
        let spec: PollInbound = serde_json::from_value(serde_json::json!({"url": url})).unwrap();
        let auth = PollAuth {
            header: header_name("X-Api-Key").unwrap(),
            value: Secret::new("key-5f1e9a7c3b"),
        };
        PollConfig::new(&spec, Some(auth)).unwrap()
    }

    fn ok_json(_: &str) -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\nconnection: close\r\n\r\n{\"events\":[]}".into()
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_not_followed_and_the_key_stays_home() {
        let (other, other_seen) = server(ok_json).await;
        // The port of the second server, for the first one's fixed answer.
        static OTHER: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
        OTHER.set(other).unwrap();
        let (first, first_seen) = server(|_| {
            format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                OTHER.get().unwrap()
            )
        })
        .await;
        let client = PollClient::new(&loopback_allowed()).unwrap();
        let config = config_with_key(format!("http://127.0.0.1:{first}/events"));
        let result = fetch(&client, &config, None).await;
        assert!(
            other_seen.lock().unwrap().is_empty(),
            "the other origin was asked: {:?}",
            other_seen.lock().unwrap()
        );
        assert!(first_seen.lock().unwrap()[0].contains("x-api-key: key-5f1e9a7c3b"));
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("HTTP 302: redirected to another origin"),
            "{err}"
        );
        assert!(!err.contains("key-5f1e9a7c3b"));
    }

    #[tokio::test]
    async fn a_redirect_within_the_origin_is_followed() {
        let (port, seen) = server(|path| {
            if path == "/events" {
                "HTTP/1.1 301 Moved Permanently\r\nlocation: /v2/events\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            } else {
                ok_json(path)
            }
        })
        .await;
        let client = PollClient::new(&loopback_allowed()).unwrap();
        let config = config_with_key(format!("http://127.0.0.1:{port}/events"));
        let body = fetch(&client, &config, None).await.unwrap();
        assert_eq!(body, serde_json::json!({"events": []}));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[1].starts_with("get /v2/events "), "{seen:?}");
    }

    #[tokio::test]
    async fn refused_addresses_are_never_asked() {
        let (port, seen) = server(ok_json).await;
        let client = PollClient::new(&OutboundPolicy::default()).unwrap();
        for host in ["127.0.0.1", "localhost"] {
            let config = config_with_key(format!("http://{host}:{port}/events"));
            let err = fetch(&client, &config, None).await.unwrap_err().to_string();
            assert!(
                err.contains("is a loopback address") && err.contains("--allow-outbound"),
                "{err}"
            );
        }
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_endless_chunked_answer_is_cut_at_the_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Chunks without end and no content-length: only counting while
        // reading can refuse it; reading it whole first never returns.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = format!("{:x}\r\n{}\r\n", 1 << 16, " ".repeat(1 << 16));
            let mut out = stream.write_all(head.as_bytes()).await;
            while out.is_ok() {
                out = stream.write_all(chunk.as_bytes()).await;
                counter.fetch_add(1 << 16, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let client = PollClient::new(&loopback_allowed()).unwrap();
        let config = config_with_key(format!("http://127.0.0.1:{port}/events"));
        // Not a speed bound: without the limit the read never ends.
        let read = tokio::time::timeout(Duration::from_secs(300), fetch(&client, &config, None));
        let err = read
            .await
            .expect("the endless answer was read on and on")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("larger than {MAX_RESPONSE_BYTES} bytes")),
            "{err}"
        );
        // The connection was dropped soon after the limit, not read on.
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent < 4 * MAX_RESPONSE_BYTES, "{sent} bytes were sent");
    }

    #[test]
    fn auth_debug_hides_the_secret() {
        let auth = PollAuth::bearer(Secret::new("tok-123"));
        assert!(!format!("{auth:?}").contains("tok-123"));
    }
}
