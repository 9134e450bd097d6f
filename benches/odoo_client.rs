//! Throughput of the simulator for small `search_read` calls and the Odoo
//! client's per-call overhead over a raw reqwest POST of the same request.
//! Run with `cargo bench --bench odoo_client`; prints figures, asserts nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use planops::odoo::{OdooClient, OdooConfig, Protocol, RateLimitConfig, SearchOptions, Secret};
use planops::sim::{DatasetParams, Edition, OdooVersion, SimConfig, SimServer};
use serde_json::json;

const CALLS: usize = 2000;
const CONCURRENT_CALLS: usize = 4000;
const CONCURRENCY: usize = 8;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>, wall: Duration, errors: usize) {
    samples.sort();
    println!(
        "{label:<34} {:>8.0} calls/s  p50 {:>7.1} µs  p99 {:>7.1} µs  ({} calls, {errors} Odoo errors)",
        samples.len() as f64 / wall.as_secs_f64(),
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len(),
    );
}

#[tokio::main]
async fn main() {
    let password = "bench-admin";
    let cfg = SimConfig {
        database: "bench".into(),
        version: OdooVersion::V17,
        edition: Edition::Community,
        admin_password: password.into(),
        dataset: DatasetParams {
            products: 200,
            ..DatasetParams::default()
        },
        today: "2025-03-01".parse().expect("date"),
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = SimServer::start(cfg, addr).await.expect("simulator");
    let key = {
        let key = server.db.admin_api_key();
        if key.is_empty() {
            password.to_string()
        } else {
            key
        }
    };

    let mut config = OdooConfig::new(&server.url, "bench", "admin", Secret::new(key.clone()));
    config.protocol = Protocol::JsonRpc;
    config.rate_limit = RateLimitConfig {
        rps: 1_000_000.0,
        burst: 1_000_000,
        max_concurrent: 64,
        calls_per_minute: None,
    };
    let client = OdooClient::connect(config).await.expect("connect");
    let uid = client.uid();
    let domain = json!([["active", "=", true]]);
    let fields = ["name", "ref"];
    let options = SearchOptions::limit(5);

    // Raw reqwest: the same execute_kw envelope, no limiter, retries or decoding.
    let http = reqwest::Client::new();
    let url = format!("{}/jsonrpc", server.url);
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"service": "object", "method": "execute_kw",
                   "args": ["bench", uid, key, "res.partner", "search_read", [domain],
                            {"fields": fields, "limit": 5}]}}))
    .expect("encode");

    // Warm-up of both paths.
    for _ in 0..100 {
        let _ = client
            .search_read("res.partner", &domain, &fields, &options)
            .await;
        let _ = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
    }

    let mut raw = Vec::with_capacity(CALLS);
    let mut raw_errors = 0;
    let started = Instant::now();
    for _ in 0..CALLS {
        let t = Instant::now();
        let reply = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("raw POST");
        let value: serde_json::Value = reply.json().await.expect("raw JSON");
        if value.get("error").is_some() {
            raw_errors += 1;
        }
        raw.push(t.elapsed());
    }
    let raw_wall = started.elapsed();

    let mut ours = Vec::with_capacity(CALLS);
    let mut our_errors = 0;
    let started = Instant::now();
    for _ in 0..CALLS {
        let t = Instant::now();
        if client
            .search_read("res.partner", &domain, &fields, &options)
            .await
            .is_err()
        {
            our_errors += 1;
        }
        ours.push(t.elapsed());
    }
    let our_wall = started.elapsed();

    // Concurrent throughput through the client (shared limiter and pool).
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let domain = domain.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0;
            for _ in 0..CONCURRENT_CALLS / CONCURRENCY {
                let t = Instant::now();
                if client
                    .search_read(
                        "res.partner",
                        &domain,
                        &["name", "ref"],
                        &SearchOptions::limit(5),
                    )
                    .await
                    .is_err()
                {
                    errors += 1;
                }
                samples.push(t.elapsed());
            }
            (samples, errors)
        }));
    }
    let mut concurrent = Vec::new();
    let mut concurrent_errors = 0;
    for task in tasks {
        let (samples, errors) = task.await.expect("task");
        concurrent.extend(samples);
        concurrent_errors += errors;
    }
    let concurrent_wall = started.elapsed();

    println!("Odoo client vs simulator (Odoo 17, JSON-RPC, search_read limit 5)");
    report("raw reqwest, sequential", raw.clone(), raw_wall, raw_errors);
    report("OdooClient, sequential", ours.clone(), our_wall, our_errors);
    report(
        &format!("OdooClient, {CONCURRENCY} concurrent"),
        concurrent,
        concurrent_wall,
        concurrent_errors,
    );
    raw.sort();
    ours.sort();
    let overhead = percentile(&ours, 0.5).as_secs_f64() - percentile(&raw, 0.5).as_secs_f64();
    println!(
        "client overhead per call (p50 difference): {:.1} µs",
        overhead * 1e6
    );
    if our_errors > 0 {
        println!("note: the calls returned Odoo errors; figures then measure the error path");
    }
    server.shutdown().await;
}
