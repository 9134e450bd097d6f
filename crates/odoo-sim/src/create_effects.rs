//! What Odoo does around a create that the bare ORM does not: fields it fills in
//! from the others, and records it creates along with the one asked for.
//!
//! - A purchase order line created without a unit, a price or an expected date
//!   gets the unit from the product, and the price and date from the vendor price
//!   list line that applies (its price in the line's unit, the order date plus its
//!   lead time), or the product's cost and the order date without one.
//! - A product variant created without a template creates its template (the
//!   variant inherits the template's fields).
//! - On 17, a product's `type` follows the `detailed_type` it is given.
//! - A user created without a partner gets one named after it.
//! - A warehouse created without locations gets its view and stock locations and
//!   its receipt and delivery operation types.
//!
//! Values the caller gives are kept, as Odoo keeps values written at create.

use std::collections::HashSet;

use jiff::ToSpan;
use serde_json::{Map, Value, json};

use super::OdooVersion;
use super::OrmError;
use super::model::Storage;
use super::orm::Ctx;
use super::store::Store;
use super::value::Val;

/// The vendor price list line chosen for a purchase: (price, its unit, lead days).
struct Seller {
    price: f64,
    unit: Option<i64>,
    delay: i64,
}

impl Store {
    /// Creates a `model` record from `vals` as Odoo's `create` does it.
    pub fn create_as_odoo(
        &mut self,
        model: &str,
        vals: &Map<String, Value>,
        ctx: &Ctx,
    ) -> Result<i64, OrmError> {
        if self.version == OdooVersion::V17
            && matches!(model, "product.product" | "product.template")
            && let Some(detailed) = vals.get("detailed_type")
            && !vals.contains_key("type")
        {
            // 17 computes `type` from `detailed_type` (a storable product is
            // `product` in both).
            let mut vals = vals.clone();
            vals.insert("type".into(), detailed.clone());
            return self.create_as_odoo(model, &vals, ctx);
        }
        match model {
            "purchase.order.line" => {
                let mut vals = vals.clone();
                self.purchase_line_defaults(&mut vals);
                self.create(model, &vals, ctx)
            }
            "product.product" if !vals.contains_key("product_tmpl_id") => {
                self.create_variant_with_template(vals, ctx)
            }
            "stock.warehouse" if !vals.contains_key("view_location_id") => {
                self.create_warehouse(vals, ctx)
            }
            "res.users" if !vals.contains_key("partner_id") => {
                // A user is a partner with a login: Odoo makes the partner from the
                // user's name.
                let mut partner = Map::new();
                for key in ["name", "email"] {
                    if let Some(v) = vals.get(key) {
                        partner.insert(key.into(), v.clone());
                    }
                }
                let partner = self.create("res.partner", &partner, ctx)?;
                let mut user: Map<String, Value> = vals
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "name" | "email"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                user.insert("partner_id".into(), json!(partner));
                self.create(model, &user, ctx)
            }
            _ => self.create(model, vals, ctx),
        }
    }

    /// A variant's own fields stay on it; the rest (name, type, cost, units, ...)
    /// make its template.
    fn create_variant_with_template(
        &mut self,
        vals: &Map<String, Value>,
        ctx: &Ctx,
    ) -> Result<i64, OrmError> {
        let variant = self.def("product.product")?;
        let template = self.def("product.template")?;
        let own: HashSet<&str> = variant
            .fields
            .iter()
            .filter(|f| matches!(f.storage, Storage::Stored(_)))
            .map(|f| f.name.as_str())
            .collect();
        let (mut variant_vals, mut template_vals) = (Map::new(), Map::new());
        for (key, value) in vals {
            if own.contains(key.as_str()) || template.field(key).is_none() {
                variant_vals.insert(key.clone(), value.clone());
            } else {
                template_vals.insert(key.clone(), value.clone());
            }
        }
        for field in ["uom_id", "uom_po_id"] {
            if template.field(field).is_some() && !template_vals.contains_key(field) {
                template_vals.insert(field.into(), json!(self.default_unit()?));
            }
        }
        if !template_vals.contains_key("categ_id")
            && let Some(category) = self.table("product.category")?.ids().next()
        {
            template_vals.insert("categ_id".into(), json!(category));
        }
        let template_id = self.create("product.template", &template_vals, ctx)?;
        variant_vals.insert("product_tmpl_id".into(), json!(template_id));
        self.create("product.product", &variant_vals, ctx)
    }

    /// The unit Odoo gives a product by default: the first unit (Units).
    fn default_unit(&self) -> Result<i64, OrmError> {
        self.table("uom.uom")?
            .ids()
            .next()
            .ok_or_else(|| OrmError::Value("no unit of measure in the database".into()))
    }

    /// A warehouse with its view location (named by its code), its stock location
    /// and its receipt and delivery types.
    fn create_warehouse(&mut self, vals: &Map<String, Value>, ctx: &Ctx) -> Result<i64, OrmError> {
        let code = vals
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let view = self.create(
            "stock.location",
            &object(json!({"name": code, "usage": "view"})),
            ctx,
        )?;
        let stock = self.create(
            "stock.location",
            &object(json!({"name": "Stock", "usage": "internal", "location_id": view})),
            ctx,
        )?;
        let mut vals = vals.clone();
        vals.insert("view_location_id".into(), json!(view));
        vals.insert("lot_stock_id".into(), json!(stock));
        let warehouse = self.create("stock.warehouse", &vals, ctx)?;
        let outside = |store: &Store, usage: &str| -> Option<i64> {
            let li = store.model_index("stock.location").ok()?;
            store.tables[li]
                .ids()
                .find(|&l| store.slot_value(li, l, "usage").as_str() == Some(usage))
        };
        let (vendors, customers) = (outside(self, "supplier"), outside(self, "customer"));
        let mut operation_type = |name: &str, code: &str, prefix: &str, from, to| {
            self.create(
                "stock.picking.type",
                &object(json!({
                    "name": name, "code": code, "sequence_code": prefix,
                    "warehouse_id": warehouse, "default_location_src_id": from,
                    "default_location_dest_id": to,
                })),
                ctx,
            )
        };
        let receipts = operation_type("Receipts", "incoming", "IN", vendors, Some(stock))?;
        let deliveries =
            operation_type("Delivery Orders", "outgoing", "OUT", Some(stock), customers)?;
        self.write(
            "stock.location",
            &[view, stock],
            &object(json!({"warehouse_id": warehouse})),
            ctx,
        )?;
        self.write(
            "stock.warehouse",
            &[warehouse],
            &object(json!({"in_type_id": receipts, "out_type_id": deliveries})),
            ctx,
        )?;
        Ok(warehouse)
    }

    /// Completes `vals` of a `purchase.order.line` create.
    pub fn purchase_line_defaults(&self, vals: &mut Map<String, Value>) {
        let Some(product) = vals.get("product_id").and_then(Value::as_i64) else {
            return;
        };
        let unit_field = if self.version >= OdooVersion::V19 {
            "product_uom_id"
        } else {
            "product_uom"
        };
        let (Ok(pi), Ok(oi)) = (
            self.model_index("product.product"),
            self.model_index("purchase.order"),
        ) else {
            return;
        };
        let template = self.slot_value(pi, product, "product_tmpl_id").as_id();
        let product_unit = self.product_unit(product, "uom_id");
        if !vals.contains_key(unit_field) {
            // 19 has one unit per product; before, purchases default to the
            // purchase unit.
            let unit = if self.version >= OdooVersion::V19 {
                product_unit
            } else {
                self.product_unit(product, "uom_po_id").or(product_unit)
            };
            if let Some(unit) = unit {
                vals.insert(unit_field.into(), json!(unit));
            }
        }
        let line_unit = vals.get(unit_field).and_then(Value::as_i64);
        let order = vals.get("order_id").and_then(Value::as_i64);
        let partner = order.and_then(|o| self.slot_value(oi, o, "partner_id").as_id());
        let qty = vals
            .get("product_qty")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let seller = template.and_then(|t| self.select_seller(t, product, partner, qty));
        if !vals.contains_key("price_unit") {
            let price = match &seller {
                Some(s) => self.convert_price(s.price, s.unit.or(line_unit), line_unit),
                None => {
                    let cost = self
                        .slot_value(pi, product, "standard_price")
                        .as_f64()
                        .unwrap_or(0.0);
                    self.convert_price(cost, product_unit, line_unit)
                }
            };
            vals.insert("price_unit".into(), json!(price));
        }
        if !vals.contains_key("date_planned")
            && let Some(Val::Datetime(ordered)) =
                order.map(|o| self.slot_value(oi, o, "date_order"))
        {
            let delay = seller.as_ref().map_or(0, |s| s.delay);
            let planned = ordered.checked_add(delay.days()).unwrap_or(ordered);
            vals.insert(
                "date_planned".into(),
                json!(planned.strftime("%Y-%m-%d %H:%M:%S").to_string()),
            );
        }
    }

    /// A unit field of the product, read through its template.
    fn product_unit(&self, product: i64, field: &str) -> Option<i64> {
        let pi = self.model_index("product.product").ok()?;
        let ti = self.model_index("product.template").ok()?;
        let template = self.slot_value(pi, product, "product_tmpl_id").as_id()?;
        self.slot_value(ti, template, field).as_id()
    }

    /// The price list line Odoo picks: the order's vendor, for this variant or the
    /// whole template, whose minimum the quantity reaches, first in the price
    /// list's order (sequence, larger minimum first, cheaper first).
    fn select_seller(
        &self,
        template: i64,
        product: i64,
        partner: Option<i64>,
        qty: f64,
    ) -> Option<Seller> {
        let si = self.model_index("product.supplierinfo").ok()?;
        let partner = partner?;
        let mut candidates: Vec<(i64, f64, f64, i64)> = self.tables[si]
            .ids()
            .filter(|&s| self.slot_value(si, s, "product_tmpl_id").as_id() == Some(template))
            .filter(|&s| {
                self.slot_value(si, s, "product_id")
                    .as_id()
                    .is_none_or(|p| p == product)
            })
            .filter(|&s| self.slot_value(si, s, "partner_id").as_id() == Some(partner))
            .filter(|&s| self.slot_value(si, s, "min_qty").as_f64().unwrap_or(0.0) <= qty)
            .map(|s| {
                let number = |f: &str| self.slot_value(si, s, f).as_f64().unwrap_or(0.0);
                (
                    number("sequence") as i64,
                    -number("min_qty"),
                    number("price"),
                    s,
                )
            })
            .collect();
        candidates.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.total_cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let &(_, _, price, s) = candidates.first()?;
        let unit = if self.version >= OdooVersion::V19 {
            self.slot_value(si, s, "product_uom_id").as_id()
        } else {
            None
        }
        .or_else(|| self.product_unit(product, "uom_po_id"))
        .or_else(|| self.product_unit(product, "uom_id"));
        Some(Seller {
            price,
            unit,
            delay: self.slot_value(si, s, "delay").as_f64().unwrap_or(0.0) as i64,
        })
    }

    /// A price per `from` unit as a price per `to` unit (a dozen costs twelve units).
    fn convert_price(&self, price: f64, from: Option<i64>, to: Option<i64>) -> f64 {
        let Ok(ui) = self.model_index("uom.uom") else {
            return price;
        };
        let factor = |unit: Option<i64>| {
            unit.and_then(|u| self.slot_value(ui, u, "factor").as_f64())
                .filter(|f| *f > 0.0)
                .unwrap_or(1.0)
        };
        let converted = price * factor(from) / factor(to);
        // Odoo rounds prices to the "Product Price" precision (2 digits by default).
        (converted * 100.0).round() / 100.0
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => Map::new(),
    }
}
