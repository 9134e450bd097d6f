//! The demand-history cache against the simulator: a warm lookup costs a
//! handful of calls, a new done move is picked up, a corrupt file is rebuilt.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use jiff::civil::{Date, date};
use planops::engine::inputs::DemandHistory;
use planops::odoo::{OdooClient, OdooConfig, RetryConfig, SearchOptions, Secret};
use planops::scan::{HistoryCache, HistoryKey};
use planops::sim::{DatasetParams, Edition, OdooVersion, SimConfig, SimServer};
use serde_json::{Map, json};

const TODAY: Date = date(2025, 3, 1);
const DAYS: u32 = 30;

async fn start() -> (SimServer, OdooClient) {
    let cfg = SimConfig {
        database: "acme".into(),
        version: OdooVersion::V17,
        edition: Edition::Community,
        admin_password: "admin-pw".into(),
        dataset: DatasetParams {
            seed: 3,
            products: 20,
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
    let customer = client
        .search(
            "stock.location",
            &json!([["usage", "=", "customer"]]),
            &SearchOptions::default(),
        )
        .await
        .expect("customer location")[0];
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
