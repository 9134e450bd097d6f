//! Throughput of the simulator for small `search_read` calls, the Odoo
//! client's per-call overhead over a raw reqwest POST of the same request, the
//! time and heap of generating the simulator's data set at 1k/10k/100k
//! products, and small-call throughput against the 100k-product database.
//! Run with `cargo bench --bench odoo_client`; prints figures, asserts nothing.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use planops::odoo::{OdooClient, OdooConfig, Protocol, RateLimitConfig, SearchOptions, Secret};
use planops::sim::{
    Database, DatasetParams, Edition, OdooVersion, SimConfig, SimOptions, SimServer,
};
use serde_json::json;

/// Counts live and peak heap bytes so data-set memory can be reported.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(pointer, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const MIB: f64 = 1024.0 * 1024.0;
const TODAY: &str = "2025-03-01";
const LARGE_ROUNDS: usize = 7;
const LARGE_CALLS_PER_ROUND: usize = 100;

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
    client_overhead().await;
    let large = dataset_generation();
    if let Some(db) = large {
        large_database_throughput(db).await;
    }
}

fn dataset_config(products: usize) -> SimConfig {
    SimConfig {
        database: "bench".into(),
        version: OdooVersion::V17,
        edition: Edition::Community,
        admin_password: "bench-admin".into(),
        dataset: DatasetParams {
            products,
            warehouses: 3,
            history_days: 365,
            ..DatasetParams::default()
        },
        today: TODAY.parse().expect("date"),
    }
}

/// Builds the data set at three sizes; returns the largest database.
fn dataset_generation() -> Option<Database> {
    println!();
    println!(
        "Data-set generation (3 warehouses, 365 days, Odoo 17; heap = live bytes after, peak during)"
    );
    let mut largest = None;
    let sizes: &[usize] = if support::full_run() {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000]
    };
    for &products in sizes {
        // Free the previous size first so heap figures do not overlap.
        drop(largest.take());
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        PEAK_BYTES.store(before, Ordering::Relaxed);
        let started = Instant::now();
        let db = Database::new(dataset_config(products));
        let elapsed = started.elapsed();
        let live = LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(before);
        let peak = PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(before);
        let shape = db.dataset_shape();
        println!(
            "{products:>7} products: {:>7.2} s  heap {:>8.1} MiB  peak {:>8.1} MiB  {:>9} moves  {:>7} quants  {:>6} PO lines  ({:.0} B/move)",
            elapsed.as_secs_f64(),
            live as f64 / MIB,
            peak as f64 / MIB,
            shape.stock_moves,
            shape.quants,
            shape.purchase_order_lines,
            live as f64 / shape.stock_moves.max(1) as f64,
        );
        largest = Some(db);
    }
    largest
}

/// label, model, domain, fields, limit, calls per round.
type Case = (
    &'static str,
    &'static str,
    serde_json::Value,
    Vec<&'static str>,
    u64,
    usize,
);

/// Median calls/s of small search_read calls against the 100k-product database.
async fn large_database_throughput(db: Database) {
    let shape = db.dataset_shape();
    let key = db.admin_api_key();
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = SimServer::serve(db, addr, SimOptions::default())
        .await
        .expect("simulator");
    let mut config = OdooConfig::new(&server.url, "bench", "admin", Secret::new(key));
    config.protocol = Protocol::JsonRpc;
    config.rate_limit = RateLimitConfig {
        rps: 1_000_000.0,
        burst: 1_000_000,
        max_concurrent: 64,
        calls_per_minute: None,
    };
    let client = OdooClient::connect(config).await.expect("connect");
    println!();
    println!(
        "Small search_read calls against the {}-product database ({} moves), JSON-RPC, sequential; median of {LARGE_ROUNDS} rounds",
        shape.products, shape.stock_moves
    );
    let cases: Vec<Case> = vec![
        (
            "res.partner limit 5",
            "res.partner",
            json!([["active", "=", true]]),
            vec!["name", "ref"],
            5,
            LARGE_CALLS_PER_ROUND,
        ),
        (
            "product.product by default_code",
            "product.product",
            json!([["default_code", "=", "DP054321"]]),
            vec!["name", "default_code", "list_price"],
            1,
            LARGE_CALLS_PER_ROUND / 5,
        ),
        (
            "orderpoint by warehouse, limit 5",
            "stock.warehouse.orderpoint",
            json!([["warehouse_id", "=", 2]]),
            vec!["product_id", "product_min_qty", "product_max_qty"],
            5,
            LARGE_CALLS_PER_ROUND / 5,
        ),
        (
            "stock.move of one product",
            "stock.move",
            json!([["product_id", "=", 54321], ["state", "=", "done"]]),
            vec!["date", "product_uom_qty"],
            50,
            2,
        ),
    ];
    for (label, model, domain, fields, limit, calls) in cases {
        let options = SearchOptions::limit(limit);
        let mut rates = Vec::with_capacity(LARGE_ROUNDS);
        let mut samples = Vec::new();
        let mut errors = 0;
        for _ in 0..LARGE_ROUNDS {
            let started = Instant::now();
            for _ in 0..calls {
                let t = Instant::now();
                if client
                    .search_read(model, &domain, &fields, &options)
                    .await
                    .is_err()
                {
                    errors += 1;
                }
                samples.push(t.elapsed());
            }
            rates.push(calls as f64 / started.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        samples.sort();
        println!(
            "{label:<34} median {:>9.1} calls/s  p50 {:>9.1} µs  p99 {:>9.1} µs  ({} calls, {errors} Odoo errors)",
            rates[rates.len() / 2],
            percentile(&samples, 0.50).as_secs_f64() * 1e6,
            percentile(&samples, 0.99).as_secs_f64() * 1e6,
            samples.len(),
        );
    }
    server.shutdown().await;
}

async fn client_overhead() {
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
        today: TODAY.parse().expect("date"),
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
