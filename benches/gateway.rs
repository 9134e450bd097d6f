//! Gateway throughput and latency on loopback: Standard Webhooks-signed 1 KiB
//! events to a supplier route whose handler does nothing, so the figures are
//! the gateway's own cost (HTTP, body limit, HMAC, JSON parse, dedup).
//!
//! Two runs: saturation (32 concurrent keep-alive clients, as fast as they
//! can) and a fixed offered rate (2 000 events/s); then both again through an
//! edge gateway (`planops gateway`'s `Forwarder`) in front of the first, to
//! show what the extra hop of the gateway Deployment costs. Client and server share one
//! process and the same 2-thread runtime, so the client's HTTP and signing cost
//! comes out of the same CPU budget (wrk in its own process measured the
//! transport ceiling; see README).
//!
//! `cargo bench --bench gateway` (`PLANOPS_BENCH_SECONDS=5` to change the run length).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use planops::actions::webhook::sign;
use planops::gateway::forward::{ForwardOptions, Forwarder};
use planops::gateway::{
    EventHandler, Gateway, GatewayOptions, HandlerError, HandlerOutcome, InboundEvent, RouteAuth,
    RouteConfig, RouteKind, RoutePath,
};
use planops::odoo::Secret;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CLIENTS: usize = 32;
const FIXED_RATE: u64 = 2_000;

struct Noop;

impl EventHandler for Noop {
    fn handle(&self, _event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>> {
        Box::pin(async { Ok(HandlerOutcome::default()) })
    }
}

/// A JSON body of exactly 1 024 bytes.
fn body_1k() -> String {
    let head = r#"{"type":"po.promised","po":"PO00042","pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(1024 - head.len() - tail.len()))
}

/// Sends one signed delivery. Latency counts from `due`, when the request was
/// meant to leave: a fixed-rate sender that falls behind must not hide the
/// wait (coordinated omission).
async fn send(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    id: u64,
    due: Instant,
) -> (bool, Duration) {
    let started = due;
    let ts = jiff::Timestamp::now().as_second();
    let Ok(headers) = sign(
        &Secret::new(SECRET),
        &format!("msg_{id}"),
        ts,
        body.as_bytes(),
    ) else {
        return (false, started.elapsed());
    };
    let result = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", headers.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", headers.signature)
        .body(body.to_string())
        .send()
        .await;
    let ok = match result {
        Ok(response) => {
            let ok = response.status() == reqwest::StatusCode::OK;
            let _ = response.bytes().await;
            ok
        }
        Err(_) => false,
    };
    (ok, started.elapsed())
}

struct Run {
    name: String,
    accepted: u64,
    failed: u64,
    seconds: f64,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn saturation(url: &str, seconds: u64, next_id: Arc<AtomicU64>) -> Run {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let url = url.to_string();
        let next_id = next_id.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let body = body_1k();
            let mut latencies = Vec::new();
            let mut failed = 0;
            while Instant::now() < deadline {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let (ok, latency) = send(&client, &url, &body, id, Instant::now()).await;
                if ok {
                    latencies.push(latency);
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (l, f) = task.await.unwrap();
        latencies.extend(l);
        failed += f;
    }
    Run {
        name: format!("saturation, {CLIENTS} clients"),
        accepted: latencies.len() as u64,
        failed,
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

async fn fixed_rate(url: &str, seconds: u64, next_id: Arc<AtomicU64>) -> Run {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = Arc::new(body_1k());
    let period = Duration::from_nanos(1_000_000_000 / FIXED_RATE);
    let mut ticker = tokio::time::interval(period);
    // Late ticks fire at once to catch up; their latency still counts from
    // when they were due.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = FIXED_RATE * seconds;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let due = started + period * i as u32;
        let client = client.clone();
        let url = url.to_string();
        let body = body.clone();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            send(&client, &url, &body, id, due).await
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        match task.await.unwrap() {
            (true, latency) => latencies.push(latency),
            (false, _) => failed += 1,
        }
    }
    Run {
        name: format!("fixed {FIXED_RATE}/s"),
        accepted: latencies.len() as u64,
        failed,
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

fn main() {
    let seconds: u64 = std::env::var("PLANOPS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if support::full_run() { 5 } else { 1 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let path = RoutePath::supplier("bench", "acme");
        let (leader, leader_url) = serve(&path, Arc::new(Noop)).await;
        let upstream = leader_url
            .trim_end_matches(&path.url_path())
            .parse()
            .unwrap();
        let forwarder = Forwarder::new(ForwardOptions::new(upstream)).unwrap();
        let (_edge, edge_url) = serve(&path, Arc::new(forwarder)).await;

        println!("cargo bench --bench gateway   ({seconds} s per run, 1 KiB Standard Webhooks events, 2 runtime threads shared by client and server)");
        println!(
            "{:<34} {:>10} {:>8} {:>12} {:>10} {:>10}",
            "run", "accepted", "failed", "events/s", "p50", "p99"
        );
        let next_id = Arc::new(AtomicU64::new(0));
        // Warm-up: connections, allocator, caches.
        let _ = saturation(&leader_url, 1, next_id.clone()).await;
        for (via, url) in [("", &leader_url), ("via edge, ", &edge_url)] {
            for run in [
                saturation(url, seconds, next_id.clone()).await,
                fixed_rate(url, seconds, next_id.clone()).await,
            ] {
                let mut sorted = run.latencies.clone();
                sorted.sort();
                println!(
                    "{:<34} {:>10} {:>8} {:>12.0} {:>10} {:>10}",
                    format!("{via}{}", run.name),
                    run.accepted,
                    run.failed,
                    run.accepted as f64 / run.seconds,
                    format!("{:.0?}", percentile(&sorted, 0.50)),
                    format!("{:.0?}", percentile(&sorted, 0.99)),
                );
            }
        }
        let counts = leader.route_counts(&path).unwrap();
        println!(
            "leader's route counts: received {} accepted {} rejected {} duplicate {}",
            counts.received, counts.accepted, counts.rejected, counts.duplicate
        );
    });
}

/// A gateway serving `path` on loopback with `handler`; the route's URL.
async fn serve(path: &RoutePath, handler: Arc<dyn EventHandler>) -> (Gateway, String) {
    let gateway = Gateway::new(GatewayOptions::default());
    gateway
        .upsert_route(
            path.clone(),
            RouteConfig::new(
                RouteKind::Supplier,
                RouteAuth::StandardWebhooks {
                    secrets: vec![Secret::new(SECRET)],
                },
            ),
            handler,
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}{}",
        listener.local_addr().unwrap(),
        path.url_path()
    );
    let app = gateway.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (gateway, url)
}
