//! The demand-history cache against the simulator: a warm lookup costs a
//! handful of calls, a new done move is picked up, a corrupt file is rebuilt.
//! The stock snapshot: a warm projectedStockout scan costs a handful of calls
//! and, after each kind of change in Odoo, finds exactly what a scan without
//! any cache finds.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use jiff::civil::{Date, date};
use planops::actions::{self, ActionContext, NoSecrets};
use planops::api::rule::ExceptionRuleSpec;
use planops::engine::inputs::DemandHistory;
use planops::engine::{PlanningException, RuleRef};
use planops::odoo::{OdooClient, OdooConfig, RetryConfig, SearchOptions, Secret};
use planops::scan::{self, HistoryCache, HistoryKey, ScanMemory, ScanOptions};
use planops::sim::{DatasetParams, Edition, OdooVersion, SimConfig, SimServer};
use serde_json::{Map, json};

const TODAY: Date = date(2025, 3, 1);
const DAYS: u32 = 30;

async fn start() -> (SimServer, OdooClient) {
    start_with(20).await
}

async fn start_with(products: usize) -> (SimServer, OdooClient) {
    let cfg = SimConfig {
        database: "acme".into(),
        version: OdooVersion::V17,
        edition: Edition::Community,
        admin_password: "admin-pw".into(),
        dataset: DatasetParams {
            seed: 3,
            products,
            warehouses: 2,
            history_days: 60,
            ..DatasetParams::default()
        },
        today: TODAY,
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = SimServer::start(cfg, addr).await.expect("simulator");
    let mut cfg = OdooConfig::new(
        &server.url,
        "acme",
        "admin",
        Secret::new(server.db.admin_api_key()),
    );
    cfg.timeout = Duration::from_secs(10);
    cfg.retry = RetryConfig::default();
    let client = OdooClient::connect(cfg).await.expect("client");
    (server, client)
}

fn key(server: &SimServer) -> HistoryKey {
    HistoryKey {
        connection: "default/odoo".into(),
        url: server.url.clone(),
        database: "acme".into(),
    }
}

/// The first stock location of `usage` (`customer`, `supplier`, ...).
async fn location_of_usage(client: &OdooClient, usage: &str) -> i64 {
    client
        .search(
            "stock.location",
            &json!([["usage", "=", usage]]),
            &SearchOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{usage} location: {e}"))
        .first()
        .copied()
        .unwrap_or_else(|| panic!("the data set has a {usage} location"))
}

/// Internal location → warehouse, and every product.
async fn scope(client: &OdooClient) -> (HashSet<i64>, HashMap<i64, i64>) {
    let locations = client
        .search_read(
            "stock.location",
            &json!([["usage", "=", "internal"]]),
            &["id", "warehouse_id"],
            &SearchOptions::default(),
        )
        .await
        .expect("locations");
    let mut map = HashMap::new();
    for row in &locations {
        let id = row["id"].as_i64().expect("id");
        if let Some(wh) = row["warehouse_id"].get(0).and_then(|v| v.as_i64()) {
            map.insert(id, wh);
        }
    }
    let products: HashSet<i64> = client
        .search("product.product", &json!([]), &SearchOptions::default())
        .await
        .expect("products")
        .into_iter()
        .collect();
    (products, map)
}

fn total(history: &HashMap<(i64, i64), DemandHistory>) -> f64 {
    history
        .values()
        .flat_map(|h| h.daily.iter())
        .map(|q| f64::from(*q))
        .sum()
}

#[tokio::test]
async fn warm_lookup_costs_a_handful_of_calls_and_sees_new_moves() {
    let (server, client) = start().await;
    let (products, locations) = scope(&client).await;
    let cache = HistoryCache::new();
    let key = key(&server);

    let before = client.calls_made();
    let (cold, stats) = cache
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("cold");
    let cold_calls = client.calls_made().since(&before).requests;
    assert!(stats.rebuilt);
    assert!(
        stats.cached_moves > 0,
        "the data set has no done customer moves"
    );
    assert!(total(&cold) > 0.0);

    let before = client.calls_made();
    let (warm, stats) = cache
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("warm");
    let warm_calls = client.calls_made().since(&before).requests;
    assert_eq!(warm, cold);
    assert!(!stats.rebuilt);
    assert!(
        warm_calls <= 3,
        "warm lookup made {warm_calls} calls (cold {cold_calls})"
    );

    // A move done yesterday (what a delivery validated since the last scan leaves).
    let (&location, &warehouse) = locations.iter().min().expect("a location");
    let customer = location_of_usage(&client, "customer").await;
    let product = *products.iter().min().expect("a product");
    let mut vals = Map::new();
    vals.insert("product_id".into(), json!(product));
    vals.insert("product_uom_qty".into(), json!(7.0));
    vals.insert("location_id".into(), json!(location));
    vals.insert("location_dest_id".into(), json!(customer));
    vals.insert("state".into(), json!("done"));
    vals.insert("date".into(), json!("2025-02-28 10:00:00"));
    client
        .create("stock.move", vec![vals])
        .await
        .expect("creating a done move");

    let before = client.calls_made();
    let (after, stats) = cache
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("after a new move");
    let delta_calls = client.calls_made().since(&before).requests;
    assert!(!stats.rebuilt, "a new move is a delta, not a rebuild");
    assert!(stats.delta_moves >= 1);
    assert!(delta_calls <= 3, "delta made {delta_calls} calls");
    let yesterday = |h: &HashMap<(i64, i64), DemandHistory>| {
        h.get(&(product, warehouse))
            .map(|s| f64::from(s.daily[DAYS as usize - 1]))
            .unwrap_or(0.0)
    };
    assert_eq!(yesterday(&after), yesterday(&warm) + 7.0);
    assert_eq!(total(&after), total(&warm) + 7.0);

    // Looked at again without change: the move is not counted twice.
    let (again, _) = cache
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("again");
    assert_eq!(again, after);
    server.shutdown().await;
}

#[tokio::test]
async fn persisted_cache_survives_a_restart_and_a_corrupt_file_is_rebuilt() {
    let (server, client) = start().await;
    let (products, locations) = scope(&client).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(&server);

    let (first, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("first");
    assert!(stats.rebuilt);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    // A new process (new cache value) reads the file back: no rebuild.
    let (second, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("second");
    assert!(!stats.rebuilt);
    assert_eq!(second, first);

    // A corrupt file is rebuilt, with the same result.
    std::fs::write(&files[0], b"{\"version\": 1, \"identity\": tru").expect("corrupting");
    let (third, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("third");
    assert!(stats.rebuilt);
    assert_eq!(third, first);

    // Another database behind the same connection name: rebuilt, not trusted.
    let other = HistoryKey {
        database: "restored-copy".into(),
        ..key.clone()
    };
    let (_, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &other, TODAY, DAYS, &products, &locations)
        .await
        .expect("other database");
    assert!(stats.rebuilt);
    server.shutdown().await;
}

/// The same URL and database name, but another database behind them (a
/// restore, a recreated database): Odoo's `database.uuid` tells, and the
/// history read from the file is not trusted.
#[tokio::test]
async fn another_database_uuid_behind_the_same_name_rebuilds_the_history() {
    let (server, client) = start().await;
    let (products, locations) = scope(&client).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(&server);
    let (first, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("first");
    assert!(stats.rebuilt);
    let (_, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("unchanged");
    assert!(!stats.rebuilt, "the same database is served from the file");

    let parameter = client
        .search(
            "ir.config_parameter",
            &json!([["key", "=", "database.uuid"]]),
            &SearchOptions::default(),
        )
        .await
        .expect("finding database.uuid");
    assert_eq!(parameter.len(), 1, "the simulator has a database.uuid");
    client
        .write(
            "ir.config_parameter",
            &parameter,
            vals(&[("value", json!("6f1d7e0a-restored-copy"))]),
        )
        .await
        .expect("replacing database.uuid");
    // A new process reads the file back, and finds it is another database's.
    let (again, stats) = HistoryCache::persistent(dir.path())
        .demand_history(&client, &key, TODAY, DAYS, &products, &locations)
        .await
        .expect("after the uuid changed");
    assert!(stats.rebuilt, "a history from another database was trusted");
    assert_eq!(again, first);
    server.shutdown().await;
}

fn rule_with(detector: &str) -> ExceptionRuleSpec {
    serde_yaml_ng::from_str(&format!(
        r#"
connectionRef: {{name: odoo}}
detector: {detector}
triggers: {{schedule: {{cron: "0 6 * * *"}}}}
mode: DryRun
"#
    ))
    .expect("rule")
}

const STOCKOUT: &str = "{projectedStockout: {horizonDays: 30, historyDays: 30}}";

/// One stockout scan, through `cache` or reading everything; its exceptions and calls.
async fn stockout_scan(
    client: &OdooClient,
    cache: Option<(&HistoryCache, &HistoryKey)>,
) -> (Vec<PlanningException>, u64) {
    detector_scan(client, STOCKOUT, cache).await
}

/// One scan of a rule with `detector`, through `cache` or reading everything.
async fn detector_scan(
    client: &OdooClient,
    detector: &str,
    cache: Option<(&HistoryCache, &HistoryKey)>,
) -> (Vec<PlanningException>, u64) {
    let outcome = scan_outcome(client, detector, cache).await;
    (outcome.exceptions, outcome.calls.requests)
}

/// Whether a scan through the cache read the stock snapshot in full.
fn snapshot_rebuilt(outcome: &scan::ScanOutcome) -> bool {
    outcome
        .stock_snapshot
        .expect("a stock detector reads the snapshot")
        .rebuilt
}

async fn scan_outcome(
    client: &OdooClient,
    detector: &str,
    cache: Option<(&HistoryCache, &HistoryKey)>,
) -> scan::ScanOutcome {
    let rule = RuleRef {
        namespace: "default",
        rule: "stockout",
    };
    let options = ScanOptions {
        history: cache,
        ..ScanOptions::default()
    };
    scan::run_scan_with(
        client,
        &rule,
        &rule_with(detector),
        TODAY,
        &ScanMemory::default(),
        options,
    )
    .await
    .expect("stockout scan")
}

/// `warm == full`, reporting only the first exception that differs.
fn assert_same(warm: &[PlanningException], full: &[PlanningException], what: &str) {
    assert_eq!(
        warm.len(),
        full.len(),
        "{what}: the warm scan found another number of exceptions than a full read"
    );
    if let Some((w, f)) = warm.iter().zip(full).find(|(w, f)| w != f) {
        panic!("{what}: the warm scan differs from a full read\nwarm: {w:?}\nfull: {f:?}");
    }
}

async fn template_of(client: &OdooClient, product: i64) -> i64 {
    client
        .read("product.product", &[product], &["product_tmpl_id"])
        .await
        .expect("template")[0]["product_tmpl_id"][0]
        .as_i64()
        .expect("template id")
}

fn vals(pairs: &[(&str, serde_json::Value)]) -> Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[tokio::test]
async fn a_warm_stockout_scan_reads_only_what_changed_and_finds_what_a_full_read_finds() {
    // Enough products for several pages of each read, so that a rebuild
    // costs visibly more calls than a delta.
    let (server, client) = start_with(1500).await;
    let cache = HistoryCache::new();
    let key = key(&server);
    let cached = Some((&cache, &key));

    let (full, full_calls) = stockout_scan(&client, None).await;
    assert!(!full.is_empty(), "the data set plants stock-outs");
    let cold = scan_outcome(&client, STOCKOUT, cached).await;
    assert!(snapshot_rebuilt(&cold), "the first scan reads in full");
    let (cold, cold_calls) = (cold.exceptions, cold.calls.requests);
    assert_same(&cold, &full, "cold");
    let warm = scan_outcome(&client, STOCKOUT, cached).await;
    assert!(!snapshot_rebuilt(&warm), "an unchanged database is a delta");
    let (warm, warm_calls) = (warm.exceptions, warm.calls.requests);
    assert_same(&warm, &full, "unchanged");
    // Warehouses 2, product ids, templates, products, vendor line ids and
    // lines, moves, orderpoint ids and rules, history 2: nothing per product.
    assert!(
        warm_calls <= 12,
        "warm scan made {warm_calls} calls (cold {cold_calls}, uncached {full_calls})"
    );
    eprintln!("stockout scan calls: uncached {full_calls}, cold {cold_calls}, warm {warm_calls}");

    // After each change: the change shows in a full read, and the warm scan
    // finds exactly the same, without reading everything again.
    let mut previous = full;
    let check = async |previous: &mut Vec<PlanningException>, what: &str| {
        let (full, _) = stockout_scan(&client, None).await;
        assert_ne!(
            &full, previous,
            "{what}: the change should show in the scan"
        );
        let warm = scan_outcome(&client, STOCKOUT, cached).await;
        assert!(!snapshot_rebuilt(&warm), "{what}: read in full again");
        let calls = warm.calls.requests;
        assert_same(&warm.exceptions, &full, what);
        assert!(
            calls < cold_calls,
            "{what}: {calls} calls, a rebuild costs {cold_calls}"
        );
        *previous = full;
    };

    let short = &previous[0].subject.ids;
    let (product, warehouse) = (short[0], short[1]);
    let stock = client
        .search(
            "stock.location",
            &json!([["usage", "=", "internal"], ["warehouse_id", "=", warehouse]]),
            &SearchOptions::default(),
        )
        .await
        .expect("stock location")[0];
    let vendors = location_of_usage(&client, "supplier").await;

    // A receipt planned for tomorrow.
    client
        .create(
            "stock.move",
            vec![vals(&[
                ("name", json!("PlanOps test receipt")),
                ("product_id", json!(product)),
                ("product_uom_qty", json!(5000.0)),
                ("location_id", json!(vendors)),
                ("location_dest_id", json!(stock)),
                ("state", json!("confirmed")),
                ("date", json!("2025-03-02 10:00:00")),
            ])],
        )
        .await
        .expect("receipt");
    check(&mut previous, "a new receipt").await;

    // The product renamed on its template.
    let template = template_of(&client, product).await;
    client
        .write(
            "product.template",
            &[template],
            vals(&[("name", json!("Renamed by the test"))]),
        )
        .await
        .expect("rename");
    check(&mut previous, "a renamed template").await;

    // A reordering rule's minimum raised far above the stock.
    let (target_product, target_warehouse) =
        (previous[0].subject.ids[0], previous[0].subject.ids[1]);
    let rules = client
        .search(
            "stock.warehouse.orderpoint",
            &json!([["warehouse_id", "=", target_warehouse]]),
            &SearchOptions::default(),
        )
        .await
        .expect("orderpoints");
    assert!(!rules.is_empty(), "the data set has reordering rules");
    client
        .write(
            "stock.warehouse.orderpoint",
            &rules,
            vals(&[
                ("product_min_qty", json!(100000.0)),
                ("product_max_qty", json!(200000.0)),
            ]),
        )
        .await
        .expect("raise minimum");
    check(&mut previous, "raised reordering minimums").await;

    // The vendor lines of a flagged product deleted.
    let template = template_of(&client, target_product).await;
    let lines = client
        .search(
            "product.supplierinfo",
            &json!([["product_tmpl_id", "=", template]]),
            &SearchOptions::default(),
        )
        .await
        .expect("vendor lines");
    assert!(!lines.is_empty(), "flagged products have vendors");
    client
        .unlink("product.supplierinfo", &lines)
        .await
        .expect("delete vendor lines");
    check(&mut previous, "deleted vendor lines").await;

    // A flagged product archived: out of scope.
    client
        .write(
            "product.product",
            &[target_product],
            vals(&[("active", json!(false))]),
        )
        .await
        .expect("archive");
    check(&mut previous, "an archived product").await;
    server.shutdown().await;
}

#[tokio::test]
async fn spike_and_order_at_risk_scans_find_through_the_snapshot_what_a_full_read_finds() {
    // They read products, stock figures and (orders at risk) open moves
    // through the same snapshot, with other needs: each gets its own.
    let (server, client) = start_with(300).await;
    let cache = HistoryCache::new();
    let key = key(&server);
    let cached = Some((&cache, &key));
    for detector in [
        "{demandSpike: {recentDays: 7, baselineDays: 21}}",
        "{orderAtRisk: {windowDays: 14}}",
    ] {
        let (full, full_calls) = detector_scan(&client, detector, None).await;
        assert!(!full.is_empty(), "{detector}: the data set plants some");
        let cold = scan_outcome(&client, detector, cached).await;
        assert_same(&cold.exceptions, &full, detector);
        let warm = scan_outcome(&client, detector, cached).await;
        assert_same(&warm.exceptions, &full, detector);
        assert!(!snapshot_rebuilt(&warm), "{detector}: read in full again");
        // Below a rebuild's cost. (On this small catalogue a read without
        // the snapshot costs fewer calls still; the snapshot pays off with
        // pages of products, as the stockout test shows.)
        assert!(
            warm.calls.requests < cold.calls.requests,
            "{detector}: warm {} calls, cold {}, uncached {full_calls}",
            warm.calls.requests,
            cold.calls.requests
        );
    }

    // Goods for the first order at risk arrive tomorrow in every warehouse:
    // the order is covered in a full read, and in the warm scan.
    let at_risk = "{orderAtRisk: {windowDays: 14}}";
    let (before, _) = detector_scan(&client, at_risk, None).await;
    let line = before[0].subject.ids[0];
    let product = client
        .read("sale.order.line", &[line], &["product_id"])
        .await
        .expect("sale line")[0]["product_id"][0]
        .as_i64()
        .expect("product id");
    let vendors = location_of_usage(&client, "supplier").await;
    let stocks = client
        .search(
            "stock.location",
            &json!([["usage", "=", "internal"], ["warehouse_id", "!=", false]]),
            &SearchOptions::default(),
        )
        .await
        .expect("stock locations");
    let receipts = stocks
        .iter()
        .map(|&stock| {
            vals(&[
                ("name", json!("PlanOps test receipt")),
                ("product_id", json!(product)),
                ("product_uom_qty", json!(100000.0)),
                ("location_id", json!(vendors)),
                ("location_dest_id", json!(stock)),
                ("state", json!("confirmed")),
                ("date", json!("2025-03-02 10:00:00")),
            ])
        })
        .collect();
    client
        .create("stock.move", receipts)
        .await
        .expect("receipts");
    let (full, _) = detector_scan(&client, at_risk, None).await;
    assert_ne!(full, before, "the receipts should cover the order");
    let (warm, _) = detector_scan(&client, at_risk, cached).await;
    assert_same(&warm, &full, "orders at risk after new receipts");

    // A customer takes a hundred times the usual yesterday: the product
    // spikes in a full read, and the warm scan finds the same.
    let spike = "{demandSpike: {recentDays: 7, baselineDays: 21}}";
    let (before, _) = detector_scan(&client, spike, None).await;
    let customers = location_of_usage(&client, "customer").await;
    client
        .create(
            "stock.move",
            vec![vals(&[
                ("name", json!("PlanOps test delivery")),
                ("product_id", json!(product)),
                ("product_uom_qty", json!(5000.0)),
                ("location_id", json!(stocks[0])),
                ("location_dest_id", json!(customers)),
                ("state", json!("done")),
                ("date", json!("2025-02-28 10:00:00")),
            ])],
        )
        .await
        .expect("a large delivery");
    let (full, _) = detector_scan(&client, spike, None).await;
    assert_ne!(full, before, "the delivery should change the spikes");
    assert!(
        full.iter().any(|e| e.subject.ids[0] == product),
        "the product should spike"
    );
    let warm = scan_outcome(&client, spike, cached).await;
    assert!(!snapshot_rebuilt(&warm), "a new done move is a delta");
    assert_same(&warm.exceptions, &full, "spikes after a large delivery");
    server.shutdown().await;
}

fn snapshot_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".json"))
        })
        .collect()
}

#[tokio::test]
async fn a_persisted_snapshot_makes_the_first_scan_after_a_restart_a_delta() {
    let (server, client) = start_with(1500).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = key(&server);
    let (full, _) = stockout_scan(&client, None).await;

    let before_restart = HistoryCache::persistent(dir.path());
    let (cold, cold_calls) = stockout_scan(&client, Some((&before_restart, &key))).await;
    assert_same(&cold, &full, "cold");
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");

    // A new process: a new cache on the same directory. Its first scan reads
    // the database's identity once more, then only deltas.
    let after_restart = HistoryCache::persistent(dir.path());
    let (after, calls) = stockout_scan(&client, Some((&after_restart, &key))).await;
    assert_same(&after, &full, "after a restart");
    assert!(
        calls <= 13,
        "first scan after a restart made {calls} calls (cold {cold_calls})"
    );

    // A corrupt file is read in full again, with the same result.
    std::fs::write(&files[0], b"{\"version\": 1, \"key\": tru").expect("corrupting");
    let (again, calls) =
        stockout_scan(&client, Some((&HistoryCache::persistent(dir.path()), &key))).await;
    assert_same(&again, &full, "after a corrupt file");
    assert!(
        calls > 13,
        "a corrupt snapshot must be rebuilt ({calls} calls)"
    );

    // Another database behind the same connection name is not served it.
    let other = HistoryKey {
        database: "restored-copy".into(),
        ..key.clone()
    };
    let (other_scan, _) = stockout_scan(
        &client,
        Some((&HistoryCache::persistent(dir.path()), &other)),
    )
    .await;
    assert_same(&other_scan, &full, "another database");
    assert_eq!(
        snapshot_files(dir.path()).len(),
        2,
        "another database gets a snapshot of its own"
    );
    server.shutdown().await;
}

/// A stockout rule over the whole catalogue that writes activities.
fn acting_stockout_rule(scope: &str) -> ExceptionRuleSpec {
    serde_yaml_ng::from_str(&format!(
        r#"
connectionRef: {{name: odoo}}
scope: {scope}
detector: {STOCKOUT}
triggers: {{schedule: {{cron: "0 6 * * *"}}}}
actions: [{{activity: {{assignee: {{user: admin}}}}}}]
"#
    ))
    .expect("rule")
}

const STOCKOUT_RULE: RuleRef<'static> = RuleRef {
    namespace: "default",
    rule: "stockout",
};

/// A stockout scan of `spec` focused on what `ids` of `model` touch, through
/// `cache`; its outcome and the ORM calls the simulator counted for it.
async fn focused_scan(
    server: &SimServer,
    client: &OdooClient,
    spec: &ExceptionRuleSpec,
    cache: Option<(&HistoryCache, &HistoryKey)>,
    model: &str,
    ids: &[i64],
) -> (scan::ScanOutcome, u64) {
    let detector = spec.detector.kind().expect("a detector");
    let focus = scan::focus::focus_for(client, detector, None, model, ids)
        .await
        .expect("focus");
    server.reset_stats();
    let outcome = scan::run_scan_with(
        client,
        &STOCKOUT_RULE,
        spec,
        TODAY,
        &ScanMemory::default(),
        ScanOptions {
            history: cache,
            focus: Some(&focus),
            ..ScanOptions::default()
        },
    )
    .await
    .expect("focused scan");
    let counted = server.stats().total_model_calls();
    assert_eq!(
        outcome.calls.requests, counted,
        "the client and the simulator count the same calls"
    );
    (outcome, counted)
}

/// The exceptions of `full` on `product`.
fn on_product(full: &[PlanningException], product: i64) -> Vec<PlanningException> {
    full.iter()
        .filter(|e| e.subject.ids[0] == product)
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_event_over_the_snapshot_costs_four_calls_and_finds_what_a_full_scan_finds() {
    let (server, client) = start_with(300).await;
    let cache = HistoryCache::new();
    let key = key(&server);
    let cached = Some((&cache, &key));
    let spec = acting_stockout_rule("{}");

    // The rule's scheduled scan leaves the snapshot and the history behind.
    let scanned = scan_outcome(&client, STOCKOUT, cached).await;
    let flagged: HashSet<i64> = scanned
        .exceptions
        .iter()
        .map(|e| e.subject.ids[0])
        .collect();
    let (products, _) = scope(&client).await;
    let mut calm: Vec<i64> = products.difference(&flagged).copied().collect();
    calm.sort_unstable();
    let product = calm[0];

    // A customer delivery of far more than the stock, due tomorrow from the
    // first warehouse: the product runs out there.
    let stock = client
        .search(
            "stock.location",
            &json!([["usage", "=", "internal"], ["warehouse_id", "!=", false]]),
            &SearchOptions::default(),
        )
        .await
        .expect("stock locations")[0];
    let customers = location_of_usage(&client, "customer").await;
    let delivery = client
        .create(
            "stock.move",
            vec![vals(&[
                ("name", json!("PlanOps test delivery")),
                ("product_id", json!(product)),
                ("product_uom_qty", json!(100000.0)),
                ("location_id", json!(stock)),
                ("location_dest_id", json!(customers)),
                ("state", json!("confirmed")),
                ("date", json!("2025-03-02 10:00:00")),
            ])],
        )
        .await
        .expect("delivery")[0];

    let (focused, calls) =
        focused_scan(&server, &client, &spec, cached, "stock.move", &[delivery]).await;
    assert!(
        !snapshot_rebuilt(&focused),
        "the event was read over the snapshot"
    );
    // Moves since the snapshot, products with the figures of the one
    // warehouse the delivery touches, vendor lines, reordering rules.
    assert!(calls <= 4, "the event cost {calls} Odoo calls");
    let (full, full_calls) = stockout_scan(&client, None).await;
    let expected = on_product(&full, product);
    assert!(!expected.is_empty(), "the delivery should make a stock-out");
    assert_same(&focused.exceptions, &expected, "after a large delivery");
    eprintln!("an event over the snapshot: {calls} Odoo calls (a full read: {full_calls})");

    // The product renamed: no move, so no figures are read again, and the
    // name is Odoo's current one.
    let template = template_of(&client, product).await;
    client
        .write(
            "product.template",
            &[template],
            vals(&[("name", json!("Renamed by the event test"))]),
        )
        .await
        .expect("rename");
    let (focused, calls) = focused_scan(
        &server,
        &client,
        &spec,
        cached,
        "product.template",
        &[template],
    )
    .await;
    assert!(
        !snapshot_rebuilt(&focused),
        "a rename is read over the snapshot"
    );
    assert!(calls <= 4, "the rename cost {calls} Odoo calls");
    let (full, _) = stockout_scan(&client, None).await;
    assert_same(
        &focused.exceptions,
        &on_product(&full, product),
        "after a rename",
    );
    assert!(
        focused.exceptions[0].subject.label.contains("Renamed"),
        "{:?}",
        focused.exceptions[0].subject
    );

    // A scope no scan has read yet: read as before, with the same result.
    let other = acting_stockout_rule("{productDomain: \"[('active', '=', True)]\"}");
    let (fallback, fallback_calls) =
        focused_scan(&server, &client, &other, cached, "stock.move", &[delivery]).await;
    assert!(snapshot_rebuilt(&fallback), "no snapshot of that scope");
    assert_same(
        &fallback.exceptions,
        &on_product(&full, product),
        "without a snapshot",
    );
    eprintln!("the same event without a snapshot of its scope: {fallback_calls} Odoo calls");

    // The same event acted on twice: every activity carries its fingerprint,
    // so the second run finds them and creates nothing.
    let focus = scan::focus::focus_for(
        &client,
        spec.detector.kind().expect("a detector"),
        None,
        "stock.move",
        &[delivery],
    )
    .await
    .expect("focus");
    let ctx = ActionContext {
        rule: STOCKOUT_RULE,
        spec: &spec,
        today: TODAY,
        secrets: &NoSecrets,
    };
    let options = ScanOptions {
        history: cached,
        focus: Some(&focus),
        ..ScanOptions::default()
    };
    let marker = json!([["note", "ilike", "planops-rule default/stockout"]]);
    let mut counts = Vec::new();
    for _ in 0..2 {
        let run = actions::scan_and_act(&client, &ctx, &ScanMemory::default(), options)
            .await
            .expect("acting on the event");
        counts.push((
            run.report.opened().len(),
            client
                .search_count("mail.activity", &marker)
                .await
                .expect("counting activities"),
        ));
    }
    let expected = on_product(&full, product).len();
    assert_eq!(
        counts,
        vec![(expected, expected as u64), (0, expected as u64)],
        "(opened, activities in Odoo) after each run"
    );
    server.shutdown().await;
}
