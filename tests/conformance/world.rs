//! Records the suite needs, made through the API the way an integrator would make
//! them on any Odoo (a real one with demo data or the simulator): every name
//! carries the run's tag, so runs never meet and the suite can be re-run against
//! the same database.

use planops::odoo::{OdooClient, RecordExt, SearchOptions};
use serde_json::{Map, Value, json};

use crate::target::must;

/// A tag unique to this run (5 characters: warehouse codes allow no more).
pub fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "Q{:04X}",
        (nanos ^ u128::from(std::process::id())) % 0x10000
    )
}

pub fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected an object, got {other}"),
    }
}

pub async fn create(client: &OdooClient, model: &str, vals: Value) -> i64 {
    let ids = must(
        client.create(model, vec![obj(vals)]).await,
        &format!("creating {model}"),
    );
    ids[0]
}

/// A warehouse as Odoo makes it from a name and a code: its stock location and
/// its receipt type come with it.
pub struct Warehouse {
    pub id: i64,
    pub code: String,
    pub stock: i64,
    pub receipts: i64,
}

pub async fn warehouse(client: &OdooClient, code: &str) -> Warehouse {
    let id = create(
        client,
        "stock.warehouse",
        json!({"name": format!("Conformance {code}"), "code": code}),
    )
    .await;
    let rows = must(
        client
            .read("stock.warehouse", &[id], &["lot_stock_id", "in_type_id"])
            .await,
        "reading the new warehouse",
    );
    let m2o = |field: &str| {
        rows[0]
            .many2one(field)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("warehouse {code} has no {field}"))
            .id
    };
    Warehouse {
        id,
        code: code.to_string(),
        stock: m2o("lot_stock_id"),
        receipts: m2o("in_type_id"),
    }
}

/// A product whose stock Odoo tracks, in the way each version spells it.
pub struct Product {
    pub id: i64,
    pub template: i64,
    pub uom: i64,
    pub code: String,
}

pub async fn storable_product(client: &OdooClient, code: &str, cost: f64) -> Product {
    let mut vals = json!({"name": format!("Conformance {code}"), "default_code": code,
                          "standard_price": cost});
    match client.info().version.major {
        ..=16 => vals["type"] = json!("product"),
        17 => vals["detailed_type"] = json!("product"),
        _ => {
            vals["type"] = json!("consu");
            vals["is_storable"] = json!(true);
        }
    }
    let id = create(client, "product.product", vals).await;
    let rows = must(
        client
            .read("product.product", &[id], &["product_tmpl_id", "uom_id"])
            .await,
        "reading the new product",
    );
    let m2o = |field: &str| rows[0].many2one(field).ok().flatten().map(|m| m.id);
    Product {
        id,
        template: m2o("product_tmpl_id").expect("a product has a template"),
        uom: m2o("uom_id").expect("a product has a unit"),
        code: code.to_string(),
    }
}

pub async fn vendor(client: &OdooClient, name: &str) -> i64 {
    create(
        client,
        "res.partner",
        json!({"name": name, "is_company": true}),
    )
    .await
}

/// A vendor price list line: `price` a unit, `delay` days of lead time.
pub async fn supplier_price(
    client: &OdooClient,
    product: &Product,
    vendor: i64,
    price: f64,
    delay: u32,
) {
    create(
        client,
        "product.supplierinfo",
        json!({"partner_id": vendor, "product_tmpl_id": product.template, "price": price,
               "delay": delay, "min_qty": 0.0}),
    )
    .await;
}

/// Puts `qty` of the product on hand in `location` through an inventory count.
pub async fn count_stock(client: &OdooClient, product: &Product, location: i64, qty: f64) {
    let mut context = Map::new();
    context.insert("inventory_mode".into(), json!(true));
    let counting = client.with_context(context);
    let quant = must(
        counting
            .create(
                "stock.quant",
                vec![obj(
                    json!({"product_id": product.id, "location_id": location,
                                "inventory_quantity": qty}),
                )],
            )
            .await,
        "counting stock",
    )[0];
    must(
        counting
            .call(
                planops::odoo::Call::new("stock.quant", "action_apply_inventory").ids(vec![quant]),
            )
            .await,
        "applying the inventory count",
    );
}

/// The first location of `usage` (`customer`, `supplier`).
pub async fn location_of_usage(client: &OdooClient, usage: &str) -> i64 {
    must(
        client
            .search(
                "stock.location",
                &json!([["usage", "=", usage]]),
                &SearchOptions::limit(1),
            )
            .await,
        "finding a location",
    )
    .first()
    .copied()
    .unwrap_or_else(|| panic!("no {usage} location"))
}

/// A confirmed move of `qty` out of `from` to `to` on `date`: demand Odoo's
/// forecast counts.
pub async fn open_move(
    client: &OdooClient,
    product: &Product,
    from: i64,
    to: i64,
    qty: f64,
    date: &str,
) {
    let mut vals = json!({"product_id": product.id, "product_uom_qty": qty,
                          "product_uom": product.uom, "location_id": from, "location_dest_id": to,
                          "date": format!("{date} 10:00:00"), "state": "confirmed"});
    if has_field(client, "stock.move", "name").await {
        vals["name"] = json!(format!("{} demand", product.code));
    }
    create(client, "stock.move", vals).await;
}

pub async fn has_field(client: &OdooClient, model: &str, field: &str) -> bool {
    must(client.fields_get(model, &["type"]).await, "reading fields").contains_key(field)
}

/// An internal user who follows nothing yet.
pub async fn user(client: &OdooClient, login: &str) -> i64 {
    create(
        client,
        "res.users",
        json!({"name": format!("Conformance {login}"), "login": login}),
    )
    .await
}
