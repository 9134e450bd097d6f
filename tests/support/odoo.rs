//! Building test records in the Odoo simulator through the real client.

use std::time::Duration;

use jiff::civil::Date;
use planops::odoo::{OdooClient, OdooConfig, RateLimitConfig, RetryConfig, SearchOptions, Secret};
use planops::sim::{SimConfig, SimServer};
use serde_json::{Map, Value, json};

/// A client for `login` on `database` of `server` with generous limits, so that tests
/// are never slowed by the rate limiter and ride out injected faults.
pub async fn connect_to(
    server: &SimServer,
    database: &str,
    login: &str,
    secret: Secret,
) -> OdooClient {
    let mut cfg = OdooConfig::new(&server.url, database, login, secret);
    cfg.timeout = Duration::from_secs(10);
    cfg.retry = RetryConfig {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        budget: Duration::from_secs(30),
    };
    cfg.rate_limit = RateLimitConfig {
        rps: 10_000.0,
        burst: 10_000,
        max_concurrent: 8,
        calls_per_minute: None,
    };
    OdooClient::connect(cfg)
        .await
        .expect("connecting to the simulator")
}

/// [`connect_to`] the server's database as admin with its API key.
/// A simulator with `config` on a free loopback port.
pub async fn start_sim(config: SimConfig) -> SimServer {
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("loopback");
    SimServer::start(config, addr)
        .await
        .expect("starting the simulator")
}

pub async fn connect(server: &SimServer) -> OdooClient {
    connect_to(
        server,
        server.db.name(),
        "admin",
        Secret::new(server.db.admin_api_key()),
    )
    .await
}

pub fn obj(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("a JSON object")
}

pub async fn create(client: &OdooClient, model: &str, vals: Value) -> i64 {
    client
        .create(model, vec![obj(vals)])
        .await
        .unwrap_or_else(|e| panic!("creating {model}: {e}"))[0]
}

pub async fn count(client: &OdooClient, model: &str, domain: Value) -> u64 {
    client
        .search_count(model, &domain)
        .await
        .unwrap_or_else(|e| panic!("counting {model}: {e}"))
}

/// A storable product with `default_code` `code` and a cost, and a vendor
/// price list line `(partner, delay days)` when given.
pub async fn product(
    client: &OdooClient,
    code: &str,
    cost: f64,
    vendor: Option<(i64, u32)>,
) -> i64 {
    let first = |model: &'static str| {
        let client = client.clone();
        async move {
            client
                .search(model, &json!([]), &SearchOptions::limit(1))
                .await
                .expect("searching the simulator")[0]
        }
    };
    let (category, uom) = (first("product.category").await, first("uom.uom").await);
    let mut vals = json!({"name": format!("Test {code}"), "standard_price": cost,
                          "categ_id": category, "uom_id": uom});
    // Each version spells "storable" its own way, and 19 has one unit per product.
    let major = client.info().version.major;
    if major >= 18 {
        vals["type"] = json!("consu");
        vals["is_storable"] = json!(true);
    } else {
        vals["type"] = json!("product");
    }
    if major < 19 {
        vals["uom_po_id"] = json!(uom);
    }
    let template = create(client, "product.template", vals).await;
    let id = create(
        client,
        "product.product",
        json!({"product_tmpl_id": template, "default_code": code}),
    )
    .await;
    if let Some((partner, delay)) = vendor {
        create(
            client,
            "product.supplierinfo",
            json!({"partner_id": partner, "product_tmpl_id": template, "delay": delay, "min_qty": 0.0, "price": cost, "sequence": 1}),
        )
        .await;
    }
    id
}

pub async fn vendor(client: &OdooClient, name: &str) -> i64 {
    create(
        client,
        "res.partner",
        json!({"name": name, "is_company": true, "supplier_rank": 1}),
    )
    .await
}

/// Warehouse `TW1` with its stock location, plus vendor and customer locations.
pub struct TestWarehouse {
    pub id: i64,
    pub stock: i64,
    pub vendors: i64,
    pub customers: i64,
}

pub async fn warehouse(client: &OdooClient) -> TestWarehouse {
    let view = create(
        client,
        "stock.location",
        json!({"name": "TW1", "usage": "view"}),
    )
    .await;
    let stock = create(
        client,
        "stock.location",
        json!({"name": "Stock", "usage": "internal", "location_id": view}),
    )
    .await;
    let id = create(
        client,
        "stock.warehouse",
        json!({"name": "Test Warehouse", "code": "TW1", "view_location_id": view, "lot_stock_id": stock}),
    )
    .await;
    client
        .write(
            "stock.location",
            &[view, stock],
            obj(json!({"warehouse_id": id})),
        )
        .await
        .expect("linking the locations to the warehouse");
    let vendors = create(
        client,
        "stock.location",
        json!({"name": "Test Vendors", "usage": "supplier"}),
    )
    .await;
    let customers = create(
        client,
        "stock.location",
        json!({"name": "Test Customers", "usage": "customer"}),
    )
    .await;
    TestWarehouse {
        id,
        stock,
        vendors,
        customers,
    }
}

/// Done deliveries of `product` out of `wh`, one a day for the `days` before
/// `today`: `qty` each, `spike` in the last 7 days.
pub async fn deliveries(
    client: &OdooClient,
    wh: &TestWarehouse,
    product: i64,
    today: Date,
    days: i64,
    qty: f64,
    spike: f64,
) {
    deliveries_by_day(client, wh, product, today, days, |back| {
        if back <= 7 { spike } else { qty }
    })
    .await;
}

/// One done delivery a day for the `days` days before `today`, of
/// `qty(days back)` (1 is yesterday).
pub async fn deliveries_by_day(
    client: &OdooClient,
    wh: &TestWarehouse,
    product: i64,
    today: Date,
    days: i64,
    qty: impl Fn(i64) -> f64,
) {
    let mut vals = Vec::new();
    for back in 1..=days {
        let day = planops::engine::inputs::add_days(today, -back);
        vals.push(obj(json!({
            "name": "OUT", "product_id": product, "product_uom_qty": qty(back), "state": "done",
            "date": format!("{day} 10:00:00"), "location_id": wh.stock, "location_dest_id": wh.customers
        })));
    }
    client
        .create("stock.move", vals)
        .await
        .expect("creating the delivery history");
}
