//! Scan cost as the catalogue grows, on the in-process simulator over HTTP.
//!
//! For 1,000 / 10,000 / 50,000 products × 3 warehouses: a field-threshold scan
//! over every product (paged reads); the demand history of done moves through
//! [`HistoryCache`], cold (built from scratch) and warm after a few new done
//! moves (the delta); and a whole projectedStockout scan (history, stock,
//! receipts, deliveries, orderpoints, supplier lead times) with that cache and
//! its stock snapshot on disk, as the operator keeps them, cold and again after
//! a few new moves of one product (the cache files' sizes go to stderr). Wall time, Odoo calls and operator heap (peak live bytes
//! above the start of the step, counted by a global allocator; the simulator
//! runs in the same process, so its allocations for serving the step count
//! too), as medians over a few runs.
//!
//! `cargo bench --bench scan` (`PLANOPS_BENCH_SIZES=1000,10000` to pick sizes).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use planops::api::rule::ExceptionRuleSpec;
use planops::engine::RuleRef;
use planops::odoo::{OdooClient, OdooConfig, RateLimitConfig, RetryConfig, SearchOptions, Secret};
use planops::scan::{self, HistoryCache, HistoryKey, ScanMemory, ScanOptions};
use planops::sim::{
    Database, DatasetParams, Edition, OdooVersion, SimConfig, SimOptions, SimServer,
};
use serde_json::{Map, json};

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
const HISTORY_DAYS: u32 = 90;

/// One measured step.
#[derive(Clone, Copy, Default)]
struct Sample {
    millis: f64,
    calls: u64,
    heap_mib: f64,
}

async fn measure<F, Fut>(client: &OdooClient, step: F) -> Sample
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let base = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(base, Ordering::Relaxed);
    let before = client.calls_made();
    let started = Instant::now();
    step().await;
    Sample {
        millis: started.elapsed().as_secs_f64() * 1000.0,
        calls: client.calls_made().since(&before).requests,
        heap_mib: PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(base) as f64 / MIB,
    }
}

fn median(mut samples: Vec<Sample>) -> Sample {
    let pick = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let mut ms: Vec<f64> = samples.iter().map(|s| s.millis).collect();
    let mut heap: Vec<f64> = samples.iter().map(|s| s.heap_mib).collect();
    samples.sort_by_key(|s| s.calls);
    Sample {
        millis: pick(&mut ms),
        calls: samples[samples.len() / 2].calls,
        heap_mib: pick(&mut heap),
    }
}

/// Every product, every warehouse, 30 days ahead on 90 days of history.
fn stockout_rule() -> ExceptionRuleSpec {
    serde_yaml_ng::from_str(
        r#"
connectionRef: {name: odoo}
detector:
  projectedStockout: {horizonDays: 30, historyDays: 90}
triggers: {schedule: {cron: "0 6 * * *"}}
mode: DryRun
"#,
    )
    .expect("bench rule")
}

fn rule() -> ExceptionRuleSpec {
    serde_yaml_ng::from_str(
        r#"
connectionRef: {name: odoo}
detector:
  fieldThreshold:
    model: product.product
    domain: "[]"
    field: standard_price
    comparison: Gt
    value: 1000000
triggers: {schedule: {cron: "0 6 * * *"}}
mode: DryRun
"#,
    )
    .expect("bench rule")
}

async fn add_done_moves(client: &OdooClient, today: Date, n: usize) {
    let internal = client
        .search(
            "stock.location",
            &json!([["usage", "=", "internal"]]),
            &SearchOptions::default(),
        )
        .await
        .expect("internal location")[0];
    let customer = client
        .search(
            "stock.location",
            &json!([["usage", "=", "customer"]]),
            &SearchOptions::default(),
        )
        .await
        .expect("customer location")[0];
    // A storable product, so that the stock scan's scope sees the change.
    let product = client
        .search(
            "product.product",
            &json!([["type", "=", "product"]]),
            &SearchOptions {
                limit: Some(1),
                ..SearchOptions::default()
            },
        )
        .await
        .expect("a product")[0];
    let yesterday = today.yesterday().expect("a day before");
    let vals: Vec<Map<String, serde_json::Value>> = (0..n)
        .map(|i| {
            let mut v = Map::new();
            v.insert("product_id".into(), json!(product));
            v.insert("product_uom_qty".into(), json!(1.0 + i as f64));
            v.insert("location_id".into(), json!(internal));
            v.insert("location_dest_id".into(), json!(customer));
            v.insert("state".into(), json!("done"));
            v.insert("date".into(), json!(format!("{yesterday} 12:00:00")));
            v
        })
        .collect();
    client.create("stock.move", vals).await.expect("new moves");
}

/// `history 12.3 MiB, snapshot 4.5 MiB`: what the scan keeps on disk.
fn cache_file_sizes(dir: &std::path::Path) -> String {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let kind = name.split('-').next()?.to_string();
                    Some((kind, e.metadata().ok()?.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
        .iter()
        .map(|(kind, bytes)| format!("{kind} {:.1} MiB", *bytes as f64 / 1_048_576.0))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bench_size(products: usize, runs: usize) -> [Sample; 5] {
    let config = SimConfig {
        database: "bench".into(),
        version: OdooVersion::V17,
        edition: Edition::Community,
        admin_password: "admin".into(),
        dataset: DatasetParams {
            products,
            warehouses: 3,
            history_days: HISTORY_DAYS + 30,
            ..DatasetParams::default()
        },
        today: "2025-03-01".parse().expect("date"),
    };
    let today = config.today;
    let started = Instant::now();
    let db = tokio::task::spawn_blocking(move || Database::new(config))
        .await
        .expect("data set");
    eprintln!(
        "{products} products: data set built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = SimServer::serve(db, addr, SimOptions::default())
        .await
        .expect("simulator");
    let mut cfg = OdooConfig::new(
        &server.url,
        "bench",
        "admin",
        Secret::new(server.db.admin_api_key()),
    );
    cfg.timeout = Duration::from_secs(600);
    cfg.retry = RetryConfig::default();
    cfg.rate_limit = RateLimitConfig {
        rps: 100_000.0,
        burst: 100_000,
        max_concurrent: 8,
        calls_per_minute: None,
    };
    let client = OdooClient::connect(cfg).await.expect("client");
    let spec = rule();
    let rule_ref = RuleRef {
        namespace: "bench",
        rule: "threshold",
    };
    let key = HistoryKey {
        connection: "bench/odoo".into(),
        url: server.url.clone(),
        database: "bench".into(),
    };
    let products_set: HashSet<i64> = client
        .search("product.product", &json!([]), &SearchOptions::default())
        .await
        .expect("products")
        .into_iter()
        .collect();
    let mut locations = HashMap::new();
    for row in client
        .search_read(
            "stock.location",
            &json!([["usage", "=", "internal"]]),
            &["id", "warehouse_id"],
            &SearchOptions::default(),
        )
        .await
        .expect("locations")
    {
        if let (Some(id), Some(wh)) = (
            row["id"].as_i64(),
            row["warehouse_id"].get(0).and_then(|v| v.as_i64()),
        ) {
            locations.insert(id, wh);
        }
    }

    let stockout = stockout_rule();
    let stockout_ref = RuleRef {
        namespace: "bench",
        rule: "stockout",
    };
    let (mut scans, mut colds, mut warms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stockout_colds, mut stockout_warms) = (Vec::new(), Vec::new());
    let mut cache_files = String::new();
    for _ in 0..runs {
        scans.push(
            measure(&client, || async {
                scan::run_scan(&client, &rule_ref, &spec, today, &ScanMemory::default())
                    .await
                    .expect("scan");
            })
            .await,
        );
        let cache = HistoryCache::new();
        colds.push(
            measure(&client, || async {
                cache
                    .demand_history(
                        &client,
                        &key,
                        today,
                        HISTORY_DAYS,
                        &products_set,
                        &locations,
                    )
                    .await
                    .expect("cold history");
            })
            .await,
        );
        add_done_moves(&client, today, 3).await;
        warms.push(
            measure(&client, || async {
                let (_, stats) = cache
                    .demand_history(
                        &client,
                        &key,
                        today,
                        HISTORY_DAYS,
                        &products_set,
                        &locations,
                    )
                    .await
                    .expect("warm history");
                assert!(!stats.rebuilt && stats.delta_moves >= 3);
            })
            .await,
        );

        // The whole stockout scan, as the operator runs it: its own cache, on
        // disk (the snapshot and history files are written as part of the scan).
        let dir = tempfile::tempdir().expect("cache directory");
        let cache = HistoryCache::persistent(dir.path());
        let stockout_scan = || async {
            let options = ScanOptions {
                history: Some((&cache, &key)),
                ..ScanOptions::default()
            };
            scan::run_scan_with(
                &client,
                &stockout_ref,
                &stockout,
                today,
                &ScanMemory::default(),
                options,
            )
            .await
            .expect("stockout scan");
        };
        stockout_colds.push(measure(&client, stockout_scan).await);
        add_done_moves(&client, today, 3).await;
        stockout_warms.push(measure(&client, stockout_scan).await);
        cache_files = cache_file_sizes(dir.path());
    }
    server.shutdown().await;
    eprintln!("{products} products: cache files {cache_files}");
    [
        median(scans),
        median(colds),
        median(warms),
        median(stockout_colds),
        median(stockout_warms),
    ]
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("PLANOPS_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if support::full_run() {
                vec![1_000, 10_000, 50_000]
            } else {
                vec![1_000]
            }
        });
    println!(
        "\nScan cost, 3 warehouses, {HISTORY_DAYS} days of history, medians (runs in brackets)"
    );
    let steps = [
        "field-threshold scan",
        "history cold",
        "history warm (+3 moves)",
        "stockout scan cold",
        "stockout warm (+3 moves)",
    ];
    let mut header = format!("{:>8} {:>4}", "products", "runs");
    let mut units = format!("{:>8} {:>4}", "", "");
    for step in steps {
        header.push_str(&format!(" | {step:>24}"));
        units.push_str(&format!(" | {:>8} {:>6} {:>8}", "ms", "calls", "heap MiB"));
    }
    println!("{header}");
    println!("{units}");
    // Each row as soon as it is measured: the largest sizes take minutes.
    for products in sizes {
        let runs = if products >= 50_000 { 1 } else { 3 };
        let mut row = format!("{products:>8} {runs:>4}");
        for sample in bench_size(products, runs).await {
            row.push_str(&format!(
                " | {:>8.0} {:>6} {:>8.1}",
                sample.millis, sample.calls, sample.heap_mib
            ));
        }
        println!("{row}");
    }
}
