//! The event path at Odoo's speed: the operator as a real process on the real
//! control plane, the Odoo 17 simulator answering every call 100 ms late (what
//! a real Odoo takes for a read), and changes made in Odoo at 1 and at 100 a
//! second. Each change is a confirmed customer delivery that runs one product
//! out of stock; Odoo's webhook (the automation the rule owns) calls the
//! gateway, and the figure is the time from the change committed (Odoo
//! answered the create) to the rule's activity in Odoo, with the Odoo calls
//! the operator made per change.
//!
//! ```sh
//! cargo bench --bench event_path
//! ```
//!
//! The rule's one scheduled scan runs before the changes (it leaves the stock
//! snapshot and demand history the event path reads over) and finds nothing;
//! every activity afterwards comes from the event path. It needs the control
//! plane of the integration tests (`source DIR/env` after
//! `scripts/envtest.sh start DIR`, or it starts one of its own). Run without
//! `--bench` (as `cargo test --all-targets` does) it is a short smoke run that
//! still checks every change got exactly one activity.

#[path = "../tests/support/mod.rs"]
mod harness;
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::odoo::{self, TestWarehouse, obj, product};
use harness::{OperatorOptions, OperatorProcess, apply, condition, connection, get, wait_ready};
use planops::odoo::{OdooClient, OdooConfig, RateLimitConfig, RetryConfig, Secret};
use planops::sim::{DatasetParams, Edition, FaultConfig, OdooVersion, SimConfig, SimServer};
use serde_json::{Value, json};

/// What every Odoo call costs in the run.
const LATENCY_MS: u64 = 100;

/// One load step: changes a second, and how many.
struct Step {
    per_second: f64,
    changes: usize,
}

fn main() {
    let steps = if support::full_run() {
        vec![
            Step {
                per_second: 1.0,
                changes: 20,
            },
            Step {
                per_second: 100.0,
                changes: 500,
            },
        ]
    } else {
        vec![
            Step {
                per_second: 1.0,
                changes: 3,
            },
            Step {
                per_second: 100.0,
                changes: 40,
            },
        ]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(steps));
}

/// The `n`-th percentile (nearest rank) of sorted `values`.
fn percentile(sorted: &[Duration], n: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((n / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn bench(steps: Vec<Step>) {
    let (cluster, ns) = harness::setup("evpath").await;
    let server = odoo::start_sim(SimConfig {
        version: OdooVersion::V17,
        edition: Edition::Community,
        dataset: DatasetParams {
            seed: 5,
            products: 20,
            warehouses: 1,
            history_days: 30,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    })
    .await;
    let client = odoo::connect(&server).await;
    let wh = odoo::warehouse(&client).await;
    let total: usize = steps.iter().map(|s| s.changes).sum();
    let products = stocked_products(&client, &wh, total).await;

    let operator = OperatorProcess::start_with_env(
        cluster,
        OperatorOptions {
            namespace: &ns,
            identity: "event-path",
            leader_election: false,
            lease_duration_seconds: 15,
            kubeconfig: None,
            label_leader_pod: false,
        },
        &[("RUST_LOG", "warn,planops::controllers::events=info")],
    )
    .await;
    apply(
        cluster,
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "odoo-credentials"},
            "stringData": {"login": "admin", "apiKey": server.db.admin_api_key()},
        }),
    )
    .await;
    let mut conn = connection("odoo", "odoo-credentials", &server.url);
    conn["spec"]["callbackBaseUrl"] = json!(format!("http://127.0.0.1:{}", operator.port));
    // The bench measures the event path, not the connection's rate limit.
    conn["spec"]["rateLimit"] = json!({"requestsPerSecond": 200, "burst": 200});
    apply(cluster, &ns, &conn).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;

    // One scheduled scan a few seconds from now (and then a day later).
    let first_scan = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8);
    let at = first_scan.to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    apply(cluster, &ns, &rule(&cron)).await;
    harness::eventually("the rule's automation in Odoo", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "stockout").await?;
        (condition(&obj, "Synced")? == ("True".to_string(), "InSync".to_string())).then_some(())
    })
    .await;
    harness::wait_scan_after(cluster, &ns, "stockout", None).await;
    let seen = Activities::new(&server, &ns);
    assert!(
        seen.res_ids().is_empty(),
        "the scheduled scan should find nothing"
    );
    let watcher = tokio::spawn(seen.clone().watch(products.clone()));

    server
        .set_faults(FaultConfig {
            latency_ms: LATENCY_MS,
            ..FaultConfig::default()
        })
        .expect("setting the latency");
    let changer = change_client(&server).await;
    println!(
        "event path: Odoo 17 simulator, {LATENCY_MS} ms per Odoo call; \
         from a change committed in Odoo to the rule's activity in Odoo"
    );
    println!(
        "{:>10} {:>8} {:>16} {:>9} {:>9} {:>9}",
        "changes/s", "changes", "Odoo calls/chg", "p50 ms", "p99 ms", "max ms"
    );
    let mut next = products.iter();
    for step in &steps {
        let chosen: Vec<(i64, i64)> = next.by_ref().take(step.changes).copied().collect();
        let before = server.stats().total_model_calls();
        let committed = run_step(&changer, &wh, step, &chosen).await;
        let wanted: HashSet<i64> = chosen.iter().map(|(p, _)| *p).collect();
        let arrived = seen.wait_for(&wanted, Duration::from_secs(180)).await;
        // The step's own creates are not the operator's.
        let operator_calls = server.stats().total_model_calls() - before - chosen.len() as u64;
        let mut latencies: Vec<Duration> = chosen
            .iter()
            .filter_map(|(p, _)| Some(arrived.get(p)?.saturating_duration_since(committed[p])))
            .collect();
        latencies.sort();
        println!(
            "{:>10} {:>8} {:>16.1} {:>9} {:>9} {:>9}",
            step.per_second,
            step.changes,
            operator_calls as f64 / step.changes as f64,
            percentile(&latencies, 50.0).as_millis(),
            percentile(&latencies, 99.0).as_millis(),
            latencies.last().copied().unwrap_or_default().as_millis(),
        );
        assert_eq!(
            latencies.len(),
            step.changes,
            "every change at {}/s should raise its activity",
            step.per_second
        );
    }
    // Each product has exactly one activity: repeated and gathered events
    // wrote nothing twice.
    let counts = seen.counts();
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "activities written twice: {doubled:?}");
    assert_eq!(counts.len(), total);
    watcher.abort();
    server.shutdown().await;
}

/// `stockout` over the `EVT-` products: a scan at `cron`, and events on
/// every stock move created.
fn rule(cron: &str) -> Value {
    json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": "stockout"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "scope": {"productDomain": "[('default_code', '=like', 'EVT-%')]", "warehouses": ["TW1"]},
            "detector": {"projectedStockout": {"horizonDays": 30, "historyDays": 30}},
            "triggers": {
                "schedule": {"cron": cron},
                "events": {"model": "stock.move", "operations": ["Create"]},
            },
            "actions": [{"activity": {"assignee": {"user": "admin"}}}],
        },
    })
}

/// `n` products with a steady three a day of demand and a thousand on hand:
/// none at risk. Each with its template.
async fn stocked_products(client: &OdooClient, wh: &TestWarehouse, n: usize) -> Vec<(i64, i64)> {
    let mut products = Vec::with_capacity(n);
    for k in 0..n {
        let id = product(client, &format!("EVT-{k}"), 10.0, None).await;
        let template = client
            .read("product.product", &[id], &["product_tmpl_id"])
            .await
            .expect("reading the product")[0]["product_tmpl_id"][0]
            .as_i64()
            .expect("a template");
        products.push((id, template));
    }
    let quants = products
        .iter()
        .map(|(id, _)| obj(json!({"product_id": id, "location_id": wh.stock, "quantity": 1000.0})))
        .collect();
    client
        .create("stock.quant", quants)
        .await
        .expect("stock on hand");
    let today = jiff::Zoned::now().date();
    let mut moves = Vec::new();
    for (id, _) in &products {
        for back in 1..=30 {
            moves.push(obj(json!({
                "name": "OUT", "product_id": id, "product_uom_qty": 3.0, "state": "done",
                "date": format!("{} 10:00:00", planops::engine::inputs::add_days(today, -back)),
                "location_id": wh.stock, "location_dest_id": wh.customers,
            })));
        }
    }
    for chunk in moves.chunks(2000) {
        client
            .create("stock.move", chunk.to_vec())
            .await
            .expect("stock and demand history");
    }
    products
}

/// A client for the changes that does not queue them: a hundred a second at
/// 100 ms each is some ten in flight.
async fn change_client(server: &SimServer) -> OdooClient {
    let mut cfg = OdooConfig::new(
        &server.url,
        server.db.name(),
        "admin",
        Secret::new(server.db.admin_api_key()),
    );
    cfg.timeout = Duration::from_secs(30);
    cfg.retry = RetryConfig::default();
    cfg.rate_limit = RateLimitConfig {
        rps: 10_000.0,
        burst: 10_000,
        max_concurrent: 64,
        calls_per_minute: None,
    };
    OdooClient::connect(cfg)
        .await
        .expect("connecting to the simulator")
}

/// Makes `step`'s changes at its pace: for each product a confirmed delivery
/// of far more than it holds, due tomorrow. When each was committed.
async fn run_step(
    client: &OdooClient,
    wh: &TestWarehouse,
    step: &Step,
    products: &[(i64, i64)],
) -> HashMap<i64, Instant> {
    let tomorrow = planops::engine::inputs::add_days(jiff::Zoned::now().date(), 1);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / step.per_second));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(products.len());
    for &(product, _) in products {
        ticker.tick().await;
        let client = client.clone();
        let vals = obj(json!({
            "name": "PlanOps bench delivery", "product_id": product,
            "product_uom_qty": 100000.0, "state": "confirmed",
            "date": format!("{tomorrow} 10:00:00"),
            "location_id": wh.stock, "location_dest_id": wh.customers,
        }));
        sent.push(tokio::spawn(async move {
            client
                .create("stock.move", vec![vals])
                .await
                .expect("the change");
            (product, Instant::now())
        }));
    }
    let mut committed = HashMap::new();
    for task in sent {
        let (product, at) = task.await.expect("a change task");
        committed.insert(product, at);
    }
    committed
}

/// The rule's activities as the simulator holds them, read in process (no
/// HTTP, no latency, not counted as Odoo calls), with when each was first seen.
#[derive(Clone)]
struct Activities {
    server_db: planops::sim::Database,
    uid: i64,
    marker: String,
    first_seen: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl Activities {
    fn new(server: &SimServer, ns: &str) -> Activities {
        let uid = server
            .db
            .authenticate("admin", &server.db.admin_api_key())
            .expect("the admin user");
        Activities {
            server_db: server.db.clone(),
            uid,
            marker: format!("planops-rule {ns}/stockout"),
            first_seen: Arc::default(),
        }
    }

    /// `res_id` of every activity of the rule.
    fn res_ids(&self) -> Vec<i64> {
        let rows = self
            .server_db
            .execute_kw(
                self.uid,
                "mail.activity",
                "search_read",
                vec![json!([["note", "ilike", self.marker]])],
                obj(json!({"fields": ["res_id"]})),
            )
            .expect("reading activities");
        rows.as_array()
            .map(|rows| rows.iter().filter_map(|r| r["res_id"].as_i64()).collect())
            .unwrap_or_default()
    }

    /// Activities per record.
    fn counts(&self) -> HashMap<i64, usize> {
        let mut counts = HashMap::new();
        for id in self.res_ids() {
            *counts.entry(id).or_default() += 1;
        }
        counts
    }

    /// Looks every 10 ms, noting when an activity on each of `products`
    /// (product or template id) first shows.
    async fn watch(self, products: Vec<(i64, i64)>) {
        let product_of: HashMap<i64, i64> = products
            .iter()
            .flat_map(|&(p, t)| [(p, p), (t, p)])
            .collect();
        loop {
            let ids = self.res_ids();
            let now = Instant::now();
            {
                let mut first_seen = self.first_seen.lock().expect("not poisoned");
                for id in ids {
                    if let Some(&product) = product_of.get(&id) {
                        first_seen.entry(product).or_insert(now);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// When each product was first seen with an activity, once every one of
    /// `wanted` has been or `limit` passed.
    async fn wait_for(&self, wanted: &HashSet<i64>, limit: Duration) -> HashMap<i64, Instant> {
        let started = Instant::now();
        loop {
            {
                let first_seen = self.first_seen.lock().expect("not poisoned");
                if wanted.iter().all(|p| first_seen.contains_key(p)) || started.elapsed() > limit {
                    return first_seen.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
