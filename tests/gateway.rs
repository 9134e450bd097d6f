//! The webhook gateway over real HTTP on loopback: every refusal leaves no
//! effect, every accepted event has exactly one.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use planops::actions::webhook::sign;
use planops::gateway::{
    EventHandler, Gateway, GatewayOptions, HandlerError, HandlerOutcome, InboundEvent, RouteAuth,
    RouteConfig, RouteKind, RoutePath,
};
use planops::odoo::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// Counts effects; answers scripted errors first; rejects payloads without
/// `po` (an unmappable event); optionally waits for a signal before acting.
#[derive(Default)]
struct Recorder {
    effects: AtomicUsize,
    calls: AtomicUsize,
    script: Mutex<VecDeque<HandlerError>>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
    seen: Mutex<Vec<InboundEvent>>,
}

impl EventHandler for Recorder {
    fn handle(&self, event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                let _ = gate.acquire().await.map(|p| p.forget());
            }
            if let Some(err) = self.script.lock().unwrap().pop_front() {
                return Err(err);
            }
            if event.payload.get("po").is_none() && event.payload.get("_model").is_none() {
                return Err(HandlerError::rejected("payload has no `po`"));
            }
            self.effects.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(event);
            Ok(HandlerOutcome {
                detail: json!({"updated": 1}),
            })
        })
    }
}

impl Recorder {
    fn effects(&self) -> usize {
        self.effects.load(Ordering::SeqCst)
    }
}

async fn serve(gateway: &Gateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = gateway.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends `count` chunks of `size` bytes with chunked transfer encoding (no
/// Content-Length, so only a streaming limit can stop it) and returns the status.
async fn chunked_post_status(url: &str, count: usize, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..count {
        let chunk = format!("{size:x}\r\n{}\r\n", "x".repeat(size));
        // The server may answer and close before the last chunk.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn supplier_config(secrets: &[&str]) -> RouteConfig {
    RouteConfig::new(
        RouteKind::Supplier,
        RouteAuth::StandardWebhooks {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        },
    )
}

async fn post_signed(
    url: &str,
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> (StatusCode, Option<String>, Value) {
    let headers = sign(&Secret::new(secret), id, timestamp, body.as_bytes()).unwrap();
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", headers.id)
        .header("webhook-timestamp", headers.timestamp.to_string())
        .header("webhook-signature", headers.signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

#[tokio::test]
async fn supplier_route_end_to_end() {
    let gateway = Gateway::new(GatewayOptions::default());
    let base = serve(&gateway).await;
    let path = RoutePath::supplier("ns", "acme");
    let recorder = Arc::new(Recorder::default());
    let mut config = supplier_config(&[SECRET]);
    config.max_body_bytes = 1024;
    gateway
        .upsert_route(path.clone(), config, recorder.clone())
        .unwrap();
    let url = format!("{base}{}", path.url_path());
    let body = r#"{"po":"PO0001","promised":"2025-03-10"}"#;

    // Accepted once; the same delivery again has no second effect.
    let (status, _, answer) = post_signed(&url, SECRET, "msg_1", now(), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], true);
    assert_eq!(answer["detail"]["updated"], 1);
    assert_eq!(recorder.effects(), 1);
    let (status, _, answer) = post_signed(&url, SECRET, "msg_1", now(), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["duplicate"], true);
    assert_eq!(recorder.effects(), 1);
    {
        let seen = recorder.seen.lock().unwrap();
        assert_eq!(seen[0].event_id, "msg_1");
        assert_eq!(seen[0].delivery_id.as_deref(), Some("msg_1"));
        assert_eq!(seen[0].payload["po"], "PO0001");
        assert_eq!(&seen[0].raw_body[..], body.as_bytes());
    }

    // Refusals, each with no effect.
    let (status, _, answer) = post_signed(&url, NEW_SECRET, "msg_2", now(), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "unauthorized");
    let (status, _, answer_stale) = post_signed(&url, SECRET, "msg_3", now() - 600, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The body does not tell which check failed.
    assert_eq!(answer, answer_stale);
    let (status, _, _) = post_signed(&url, SECRET, "msg_3", now() + 600, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let big = format!(r#"{{"po":"{}"}}"#, "x".repeat(2000));
    let (status, _, _) = post_signed(&url, SECRET, "msg_4", now(), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked (no Content-Length): the streaming limit still applies.
    assert_eq!(chunked_post_status(&url, 40, 100).await, 413);
    let headers = sign(&Secret::new(SECRET), "msg_5", now(), body.as_bytes()).unwrap();
    let response = client()
        .post(&url)
        .header("content-type", "text/plain")
        .header("webhook-id", headers.id)
        .header("webhook-timestamp", headers.timestamp.to_string())
        .header("webhook-signature", headers.signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, answer) = post_signed(&url, SECRET, "msg_6", now(), "{\"po\":\n  [1,}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "malformed_json");
    assert_eq!(answer["line"], 2);
    assert!(answer["column"].as_u64().unwrap() > 0, "{answer}");
    let (status, _, answer) = post_signed(
        &format!("{base}/hooks/suppliers/ns/nobody"),
        SECRET,
        "msg_7",
        now(),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"], "not_found");
    assert_eq!(recorder.effects(), 1);

    // Unmappable payload: 422, then the corrected retry (same id) works.
    let (status, _, answer) = post_signed(&url, SECRET, "msg_8", now(), r#"{"x":1}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["message"], "payload has no `po`");
    let (status, _, _) = post_signed(&url, SECRET, "msg_8", now(), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recorder.effects(), 2);

    // Transient: 503 + Retry-After, the retry with the same id is accepted once.
    recorder
        .script
        .lock()
        .unwrap()
        .push_back(HandlerError::transient(
            "odoo unreachable at http://odoo:8069",
        ));
    let (status, retry, answer) = post_signed(&url, SECRET, "msg_9", now(), body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("30"));
    assert!(!answer.to_string().contains("odoo:8069"), "{answer}");
    assert_eq!(recorder.effects(), 2);
    for _ in 0..2 {
        let (status, _, _) = post_signed(&url, SECRET, "msg_9", now(), body).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(recorder.effects(), 3);

    let counts = gateway.route_counts(&path).unwrap();
    assert_eq!(counts.accepted, 3);
    assert_eq!(counts.duplicate, 2);
    // wrong secret, stale, future, too large ×2, media type, malformed, 422, 503
    assert_eq!(counts.rejected, 9);
    assert_eq!(counts.received, 14);
    assert!(counts.last_accepted_at.is_some());

    let mut registry = prometheus_client::registry::Registry::with_prefix("planops");
    gateway.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"planops_gateway_events_rejected_total{kind="suppliers",namespace="ns",name="acme",reason="unauthorized"} 3"#), "{text}");
    assert!(text.contains(r#"reason="not_found"} 1"#));
    assert!(!text.contains("MfKQ9r8"));
    assert!(!format!("{gateway:?}").contains("MfKQ9r8"));

    // Removing the route: 404.
    assert!(gateway.remove_route(&path));
    let (status, _, _) = post_signed(&url, SECRET, "msg_10", now(), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gateway.route_counts(&path), None);
    assert_eq!(recorder.effects(), 3);
}

#[tokio::test]
async fn secrets_are_replaced_at_runtime() {
    let gateway = Gateway::new(GatewayOptions::default());
    let base = serve(&gateway).await;
    let path = RoutePath::supplier("ns", "rotating");
    let recorder = Arc::new(Recorder::default());
    let url = format!("{base}{}", path.url_path());
    let body = r#"{"po":"PO0002"}"#;
    let upsert = |secrets: &[&str]| {
        gateway
            .upsert_route(path.clone(), supplier_config(secrets), recorder.clone())
            .unwrap()
    };
    upsert(&[SECRET]);
    assert_eq!(
        post_signed(&url, SECRET, "a", now(), body).await.0,
        StatusCode::OK
    );
    // Rotation: both accepted.
    upsert(&[NEW_SECRET, SECRET]);
    assert_eq!(
        post_signed(&url, SECRET, "b", now(), body).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post_signed(&url, NEW_SECRET, "c", now(), body).await.0,
        StatusCode::OK
    );
    // Old secret retired: refused.
    upsert(&[NEW_SECRET]);
    assert_eq!(
        post_signed(&url, SECRET, "d", now(), body).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_signed(&url, NEW_SECRET, "d", now(), body).await.0,
        StatusCode::OK
    );
    // Reconfiguration kept the dedup memory and the counters.
    let (status, _, answer) = post_signed(&url, NEW_SECRET, "a", now(), body).await;
    assert_eq!(
        (status, answer["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(recorder.effects(), 4);
    assert_eq!(gateway.route_counts(&path).unwrap().accepted, 4);
    // A bad secret is refused at upsert and leaves the route as it was.
    let err = gateway
        .upsert_route(
            path.clone(),
            supplier_config(&["not-a-whsec"]),
            recorder.clone(),
        )
        .unwrap_err();
    assert!(!err.to_string().contains("not-a-whsec"));
    assert_eq!(
        post_signed(&url, NEW_SECRET, "e", now(), body).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limit_answers_429_without_effect() {
    let gateway = Gateway::new(GatewayOptions::default());
    let base = serve(&gateway).await;
    let path = RoutePath::supplier("ns", "limited");
    let recorder = Arc::new(Recorder::default());
    let mut config = supplier_config(&[SECRET]);
    config.rate_per_second = NonZeroU32::new(3);
    gateway
        .upsert_route(path.clone(), config, recorder.clone())
        .unwrap();
    let url = format!("{base}{}", path.url_path());
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, retry, _) =
            post_signed(&url, SECRET, &format!("r{i}"), now(), r#"{"po":"P"}"#).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(retry.as_deref(), Some("1"));
        }
        statuses.push(status);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 2, "{statuses:?}");
    assert_eq!(recorder.effects(), 6 - limited);
}

#[tokio::test]
async fn duplicate_while_in_flight_gets_409() {
    let gateway = Gateway::new(GatewayOptions::default());
    let base = serve(&gateway).await;
    let path = RoutePath::supplier("ns", "slow");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let recorder = Arc::new(Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    });
    gateway
        .upsert_route(path.clone(), supplier_config(&[SECRET]), recorder.clone())
        .unwrap();
    let url = format!("{base}{}", path.url_path());
    let first = tokio::spawn({
        let url = url.clone();
        async move { post_signed(&url, SECRET, "slow-1", now(), r#"{"po":"P"}"#).await }
    });
    while recorder.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, retry, answer) = post_signed(&url, SECRET, "slow-1", now(), r#"{"po":"P"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(retry.as_deref(), Some("5"));
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(recorder.effects(), 1);
}

#[tokio::test]
async fn odoo_hint_is_answered_before_the_handler_runs() {
    // One worker, so a second hint waits in the queue while the first blocks.
    let gateway = Gateway::new(GatewayOptions {
        hint_concurrency: 1,
        ..GatewayOptions::default()
    });
    let base = serve(&gateway).await;
    let path = RoutePath::odoo("ns", "stockout");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let recorder = Arc::new(Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    });
    let token = "q-7f3c9a1e5b2d4c6f8a0b";
    gateway
        .upsert_route(
            path.clone(),
            RouteConfig::new(
                RouteKind::OdooHint,
                RouteAuth::QueryToken {
                    tokens: vec![Secret::new(token)],
                },
            ),
            recorder.clone(),
        )
        .unwrap();
    // The payload Odoo's webhook action sends (see src/sim/db.rs, run_automations).
    let hint = |id: i64| json!({"_action": "PlanOps(#12)", "_id": id, "_model": "product.product", "id": id});
    let url = format!("{base}{}?token={token}", path.url_path());
    let post = |url: String, payload: Value| async move {
        // Odoo gives up after one second.
        client()
            .post(url)
            .header("content-type", "application/json")
            .body(payload.to_string())
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .unwrap()
    };
    let response = post(url.clone(), hint(41)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.json::<Value>().await.unwrap()["queued"], true);
    while recorder.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The handler of the first hint is blocked; the second waits for the worker.
    assert_eq!(
        post(url.clone(), hint(42)).await.status(),
        StatusCode::ACCEPTED
    );
    // Identical hint while the second still waits: coalesced.
    let response = post(url.clone(), hint(42)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.json::<Value>().await.unwrap()["duplicate"], true);
    let wrong = format!("{base}{}?token=guess", path.url_path());
    assert_eq!(
        post(wrong, hint(43)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(recorder.effects(), 0);

    gate.add_permits(2);
    wait_for_effects(&recorder, 2).await;
    let models: Vec<Value> = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.payload["_id"].clone())
        .collect();
    assert_eq!(models, [json!(41), json!(42)]);
    // After processing, the same payload (a later write of the record) is a new hint.
    gate.add_permits(1);
    assert_eq!(
        post(url.clone(), hint(42)).await.status(),
        StatusCode::ACCEPTED
    );
    wait_for_effects(&recorder, 3).await;
    let counts = gateway.route_counts(&path).unwrap();
    assert_eq!(
        (counts.accepted, counts.duplicate, counts.rejected),
        (3, 1, 1)
    );
}

async fn wait_for_effects(recorder: &Recorder, expected: usize) {
    for _ in 0..300 {
        if recorder.effects() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let a wrong extra effect show up before asserting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(recorder.effects(), expected);
}

#[tokio::test]
async fn full_hint_queue_drops_and_counts() {
    let gateway = Gateway::new(GatewayOptions {
        hint_queue_capacity: 1,
        hint_concurrency: 1,
        ..GatewayOptions::default()
    });
    let base = serve(&gateway).await;
    let path = RoutePath::odoo("ns", "busy");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let recorder = Arc::new(Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    });
    gateway
        .upsert_route(
            path.clone(),
            RouteConfig::new(
                RouteKind::OdooHint,
                RouteAuth::Bearer {
                    tokens: vec![Secret::new("b-token-4f9a2c7e1d")],
                },
            ),
            recorder.clone(),
        )
        .unwrap();
    let url = format!("{base}{}", path.url_path());
    let mut statuses = Vec::new();
    for id in 0..5 {
        let response = client()
            .post(&url)
            .header("content-type", "application/json")
            .header("authorization", "Bearer b-token-4f9a2c7e1d")
            .body(json!({"_model": "sale.order", "_id": id}).to_string())
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    // One held by the worker (blocked), one in the queue, the rest dropped.
    let dropped = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(dropped >= 2, "{statuses:?}");
    gate.add_permits(10);
    wait_for_effects(&recorder, 5 - dropped).await;
    assert_eq!(
        gateway.route_counts(&path).unwrap().rejected,
        dropped as u64
    );
}

/// The PyPI `standardwebhooks` package (an independent implementation) signs
/// deliveries against this gateway; see tests/python/test_gateway_standardwebhooks.py.
#[tokio::test]
async fn python_standardwebhooks_sender_is_accepted() {
    let gateway = Gateway::new(GatewayOptions::default());
    let base = serve(&gateway).await;
    let path = RoutePath::supplier("ns", "python");
    let recorder = Arc::new(Recorder::default());
    gateway
        .upsert_route(path.clone(), supplier_config(&[SECRET]), recorder.clone())
        .unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let output = tokio::process::Command::new("python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "tests/python/test_gateway_standardwebhooks.py",
        ])
        .current_dir(root)
        .env("PLANOPS_GATEWAY_URL", format!("{base}{}", path.url_path()))
        .env("PLANOPS_GATEWAY_SECRET", SECRET)
        .output()
        .await
        .expect("python3 must be installed (pip install -r tests/python/requirements.txt)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python test failed (pip install -r tests/python/requirements.txt):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("passed") && !stdout.contains("skipped"),
        "{stdout}"
    );
    // The Python tests send three distinct events, one of them twice, plus
    // refused ones; a test that never reached the gateway would leave these short.
    assert_eq!(recorder.effects(), 3);
    let counts = gateway.route_counts(&path).unwrap();
    assert_eq!((counts.accepted, counts.duplicate), (3, 1));
}

/// With shards, a route lives as long as its shard's term here, and a path
/// without a route may be another replica's: both answer 503 so the sender
/// retries (and reaches the holder), never 404 and never an effect.
#[tokio::test]
async fn a_route_past_its_shard_term_and_other_replicas_paths_answer_503() {
    let gateway = Gateway::new(GatewayOptions::default());
    let base = serve(&gateway).await;
    let path = RoutePath::supplier("ns", "held");
    let recorder = Arc::new(Recorder::default());
    let term = tokio_util::sync::CancellationToken::new();
    gateway
        .upsert_route_in_term(
            path.clone(),
            supplier_config(&[SECRET]),
            recorder.clone(),
            Some(term.child_token()),
        )
        .unwrap();
    let url = format!("{base}{}", path.url_path());
    let body = r#"{"po":"P"}"#;
    let (status, _, _) = post_signed(&url, SECRET, "s1", now(), body).await;
    assert_eq!(status, StatusCode::OK);

    term.cancel();
    let (status, retry, answer) = post_signed(&url, SECRET, "s2", now(), body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(retry.is_some());
    assert_eq!(recorder.effects(), 1, "no effect once the term ended");

    let other = format!(
        "{base}{}",
        RoutePath::supplier("ns", "elsewhere").url_path()
    );
    let (status, _, _) = post_signed(&other, SECRET, "s3", now(), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unsharded: nothing there");
    gateway.set_routes_elsewhere(true);
    let (status, retry, answer) = post_signed(&other, SECRET, "s4", now(), body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "elsewhere");
    assert!(retry.is_some());
}
