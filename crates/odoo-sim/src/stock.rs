//! Product stock quantities computed from `stock.quant` and `stock.move`, the
//! way Odoo's `product.product._compute_quantities_dict` does: scoped by the
//! `warehouse` / `location` context, with `to_date` / `from_date` windows.

use std::collections::HashSet;

use jiff::civil::DateTime;
use serde_json::Value;

use super::orm::Ctx;
use super::store::Store;
use super::value::Val;
use crate::db::OdooVersion;

/// The five quantities of one product in one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StockQty {
    pub qty_available: f64,
    pub virtual_available: f64,
    pub incoming_qty: f64,
    pub outgoing_qty: f64,
    pub free_qty: f64,
}

impl StockQty {
    pub fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "qty_available" => self.qty_available,
            "virtual_available" => self.virtual_available,
            "incoming_qty" => self.incoming_qty,
            "outgoing_qty" => self.outgoing_qty,
            "free_qty" => self.free_qty,
            _ => return None,
        })
    }

    fn add(&mut self, other: &StockQty) {
        self.qty_available += other.qty_available;
        self.virtual_available += other.virtual_available;
        self.incoming_qty += other.incoming_qty;
        self.outgoing_qty += other.outgoing_qty;
        self.free_qty += other.free_qty;
    }
}

/// Names of the computed stock fields on products.
pub const STOCK_FIELDS: [&str; 5] = [
    "qty_available",
    "virtual_available",
    "incoming_qty",
    "outgoing_qty",
    "free_qty",
];

/// Every context key that scopes quantities in some version.
pub const SCOPE_KEYS: [&str; 5] = [
    "warehouse",
    "warehouse_id",
    "search_warehouse",
    "location",
    "search_location",
];

/// The warehouse keys and the location keys `version` reads, first wins: 18
/// renamed `warehouse` to `warehouse_id`; 19 also takes the search panel's
/// `search_warehouse` / `search_location`.
fn scope_keys(version: OdooVersion) -> (&'static [&'static str], &'static [&'static str]) {
    match version {
        OdooVersion::V16 | OdooVersion::V17 => (&["warehouse"], &["location"]),
        OdooVersion::V18 => (&["warehouse_id"], &["location"]),
        OdooVersion::V19 => (
            &["warehouse_id", "search_warehouse"],
            &["location", "search_location"],
        ),
    }
}

/// Move states that count as incoming/outgoing (Odoo leaves out draft, done and
/// cancelled moves).
const PENDING: [&str; 4] = ["waiting", "confirmed", "assigned", "partially_available"];

impl Store {
    /// Quantities of a `product.product` (or the sum over a template's variants).
    pub fn stock_quantities(&self, model: &str, id: i64, ctx: &Ctx) -> StockQty {
        let scope = self.stock_scope(ctx);
        match model {
            "product.product" => self.variant_quantities(id, &scope, ctx),
            "product.template" => {
                let Ok(pi) = self.model_index("product.product") else {
                    return StockQty::default();
                };
                let Some(slot) = self.tables[pi].def.slot_of("product_tmpl_id") else {
                    return StockQty::default();
                };
                let mut total = StockQty::default();
                let variants: Vec<i64> = self.tables[pi]
                    .ids()
                    .filter(|&v| {
                        self.tables[pi]
                            .get(v)
                            .is_some_and(|r| r.vals[slot].as_id() == Some(id))
                    })
                    .collect();
                for variant in variants {
                    total.add(&self.variant_quantities(variant, &scope, ctx));
                }
                total
            }
            _ => StockQty::default(),
        }
    }

    /// The set of locations the context designates, children included, as
    /// `_get_domain_locations` reads it: a warehouse scopes to its view
    /// location, a location given with a warehouse counts only inside it, and
    /// without either every warehouse's view location counts (or, in a
    /// database without warehouses, everything internal). Only the keys the
    /// version reads count: a key it does not know leaves figures company-wide.
    fn stock_scope(&self, ctx: &Ctx) -> Option<HashSet<i64>> {
        let Ok(li) = self.model_index("stock.location") else {
            return None;
        };
        let Ok(wi) = self.model_index("stock.warehouse") else {
            return None;
        };
        let (warehouse_keys, location_keys) = scope_keys(self.version);
        let first = |keys: &[&str]| -> Option<&Value> {
            keys.iter().find_map(|key| {
                ctx.stock_scope
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
            })
        };
        let views = |warehouses: Vec<i64>| -> Vec<i64> {
            warehouses
                .iter()
                .filter_map(|&w| self.slot_value(wi, w, "view_location_id").as_id())
                .collect()
        };
        let roots: Vec<i64> = match (first(warehouse_keys), first(location_keys)) {
            (Some(w), location) => {
                let views = views(self.resolve_records("stock.warehouse", w, &["name", "code"]));
                match location {
                    Some(l) => {
                        let inside = self.location_tree(li, views);
                        self.resolve_records("stock.location", l, &["complete_name", "name"])
                            .into_iter()
                            .filter(|l| inside.contains(l))
                            .collect()
                    }
                    None => views,
                }
            }
            (None, Some(l)) => {
                self.resolve_records("stock.location", l, &["complete_name", "name"])
            }
            (None, None) => {
                let all: Vec<i64> = self.tables[wi].ids().collect();
                if all.is_empty() {
                    return None;
                }
                views(all)
            }
        };
        Some(self.location_tree(li, roots))
    }

    /// `roots` and every location below them (child_of through the parent index).
    fn location_tree(&self, li: usize, roots: Vec<i64>) -> HashSet<i64> {
        let slot = self.tables[li].def.slot_of("location_id");
        let mut seen: HashSet<i64> = HashSet::new();
        let mut todo = roots;
        while let Some(location) = todo.pop() {
            if !seen.insert(location) {
                continue;
            }
            if let Some(children) = slot.and_then(|s| self.tables[li].lookup(s, location)) {
                todo.extend_from_slice(children);
            }
        }
        seen
    }

    /// Ids named by a context value: an id, a name (ilike, as Odoo's
    /// `_search(name ilike)`), or a list of either.
    fn resolve_records(&self, model: &str, value: &Value, name_fields: &[&str]) -> Vec<i64> {
        let Ok(mi) = self.model_index(model) else {
            return Vec::new();
        };
        let by_name = |text: &str| -> Vec<i64> {
            let needle = text.to_lowercase();
            let ctx = Ctx::user(1);
            self.tables[mi]
                .ids()
                .filter(|&id| {
                    name_fields.iter().any(|f| {
                        let value = match self.tables[mi].def.field(f) {
                            Some(field) => self.get(mi, id, field, &ctx),
                            None => Val::False,
                        };
                        value
                            .as_str()
                            .is_some_and(|s| s.to_lowercase().contains(&needle))
                    })
                })
                .collect()
        };
        match value {
            Value::Number(n) => n.as_i64().into_iter().collect(),
            Value::String(text) => by_name(text),
            Value::Array(items) => items
                .iter()
                .flat_map(|item| self.resolve_records(model, item, name_fields))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn variant_quantities(
        &self,
        product: i64,
        scope: &Option<HashSet<i64>>,
        ctx: &Ctx,
    ) -> StockQty {
        let (Ok(qi), Ok(mi), Ok(li)) = (
            self.model_index("stock.quant"),
            self.model_index("stock.move"),
            self.model_index("stock.location"),
        ) else {
            return StockQty::default();
        };
        let inside = |location: Option<i64>| -> bool {
            match (scope, location) {
                (None, Some(l)) => self.slot_value(li, l, "usage").as_str() == Some("internal"),
                (Some(set), Some(l)) => set.contains(&l),
                (_, None) => false,
            }
        };
        // Quants on views or partner locations are not stock (Odoo keeps
        // negative quants there for bookkeeping).
        let stock_location = |location: Option<i64>| -> bool {
            inside(location)
                && location.is_some_and(|l| {
                    matches!(
                        self.slot_value(li, l, "usage").as_str(),
                        Some("internal") | Some("transit")
                    )
                })
        };
        let quants = &self.tables[qi];
        let (mut on_hand, mut reserved) = (0.0, 0.0);
        let q_product = quants.def.slot_of("product_id");
        let candidates: Vec<i64> = match q_product.and_then(|s| quants.lookup(s, product)) {
            Some(list) => list.to_vec(),
            None => quants.ids().collect(),
        };
        for quant in candidates {
            if self.slot_value(qi, quant, "product_id").as_id() != Some(product)
                || !stock_location(self.slot_value(qi, quant, "location_id").as_id())
            {
                continue;
            }
            on_hand += self
                .slot_value(qi, quant, "quantity")
                .as_f64()
                .unwrap_or(0.0);
            reserved += self
                .slot_value(qi, quant, "reserved_quantity")
                .as_f64()
                .unwrap_or(0.0);
        }

        let moves = &self.tables[mi];
        let m_product = moves.def.slot_of("product_id");
        let candidates: Vec<i64> = match m_product.and_then(|s| moves.lookup(s, product)) {
            Some(list) => list.to_vec(),
            None => moves.ids().collect(),
        };
        // A `to_date` in the past rewinds on-hand by the moves done since.
        let now = self.now();
        let rewind_to = ctx.to_date.filter(|&t| t < now);
        let (mut incoming, mut outgoing) = (0.0, 0.0);
        for mv in candidates {
            if self.slot_value(mi, mv, "product_id").as_id() != Some(product) {
                continue;
            }
            let src = inside(self.slot_value(mi, mv, "location_id").as_id());
            let dest = inside(self.slot_value(mi, mv, "location_dest_id").as_id());
            if src == dest {
                continue; // internal transfer or foreign move: no effect on the scope
            }
            let state = self.slot_value(mi, mv, "state");
            let state = state.as_str().unwrap_or("draft");
            let date = match self.slot_value(mi, mv, "date") {
                Val::Datetime(d) => Some(d),
                Val::Date(d) => Some(d.to_datetime(jiff::civil::Time::midnight())),
                _ => None,
            };
            // In the product's unit, whatever unit the move counts in.
            let qty = self.move_product_qty(mi, mv);
            if state == "done" {
                if let (Some(limit), Some(date)) = (rewind_to, date)
                    && date > limit
                {
                    // Undo what happened after the asked moment.
                    if dest {
                        on_hand -= qty;
                    } else {
                        on_hand += qty;
                    }
                }
                continue;
            }
            if !PENDING.contains(&state) || !in_window(date, ctx.from_date, ctx.to_date) {
                continue;
            }
            if dest {
                incoming += qty;
            } else {
                outgoing += qty;
            }
        }
        StockQty {
            qty_available: on_hand,
            virtual_available: on_hand + incoming - outgoing,
            incoming_qty: incoming,
            outgoing_qty: outgoing,
            free_qty: on_hand - reserved,
        }
    }
}

impl Store {
    /// Computed unit fields: a move's `product_qty`, and 19's `uom.uom.factor`.
    pub fn unit_field(&self, model: &str, id: i64, field: &str) -> Option<Val> {
        match (model, field) {
            ("stock.move", "product_qty") => {
                let mi = self.model_index(model).ok()?;
                Some(Val::Float(self.move_product_qty(mi, id)))
            }
            ("uom.uom", "factor") if self.version >= OdooVersion::V19 => {
                Some(Val::Float(self.uom_size(id)))
            }
            _ => None,
        }
    }

    /// A move's demand (`product_uom_qty`, in the move's unit) in the unit of
    /// its product, as Odoo computes `product_qty`. A move without a unit
    /// counts in the product's.
    fn move_product_qty(&self, mi: usize, id: i64) -> f64 {
        let qty = self
            .slot_value(mi, id, "product_uom_qty")
            .as_f64()
            .unwrap_or(0.0);
        let product_unit = self
            .slot_value(mi, id, "product_id")
            .as_id()
            .and_then(|p| self.product_uom(p));
        match (self.slot_value(mi, id, "product_uom").as_id(), product_unit) {
            (Some(from), Some(to)) => self.uom_convert(qty, from, to),
            _ => qty,
        }
    }

    /// A product's unit (`uom_id`, kept on its template).
    pub fn product_uom(&self, product: i64) -> Option<i64> {
        let pi = self.model_index("product.product").ok()?;
        let ti = self.model_index("product.template").ok()?;
        let template = self.slot_value(pi, product, "product_tmpl_id").as_id()?;
        self.slot_value(ti, template, "uom_id").as_id()
    }

    /// `qty` of unit `from` in unit `to`, rounded half-up to `to`'s rounding,
    /// as `uom.uom._compute_quantity` does for stock moves.
    pub fn uom_convert(&self, qty: f64, from: i64, to: i64) -> f64 {
        if from == to || qty == 0.0 {
            return qty;
        }
        let (from_size, to_size) = (self.uom_size(from), self.uom_size(to));
        if from_size <= 0.0 || to_size <= 0.0 {
            return qty;
        }
        let amount = qty * from_size / to_size;
        let rounding = self
            .model_index("uom.uom")
            .map(|ui| self.slot_value(ui, to, "rounding"))
            .ok()
            .and_then(|v| v.as_f64())
            .filter(|r| *r > 0.0);
        match rounding {
            // The epsilon keeps 0.5 steps that binary floats put a hair below
            // rounding up, as Odoo's float_round does.
            Some(r) => ((amount / r) + 0.5 + 1e-9).floor() * r,
            None => amount,
        }
    }

    /// How many reference units one `uom` holds: 1/`factor` up to 18, the
    /// computed absolute `factor` (`relative_factor` down the chain) on 19.
    fn uom_size(&self, uom: i64) -> f64 {
        let Ok(ui) = self.model_index("uom.uom") else {
            return 1.0;
        };
        if self.version < OdooVersion::V19 {
            let factor = self.slot_value(ui, uom, "factor").as_f64().unwrap_or(1.0);
            return if factor > 0.0 { 1.0 / factor } else { 1.0 };
        }
        let mut size = 1.0;
        let mut current = Some(uom);
        let mut seen = HashSet::new();
        while let Some(u) = current.filter(|&u| seen.insert(u)) {
            size *= self
                .slot_value(ui, u, "relative_factor")
                .as_f64()
                .unwrap_or(1.0);
            current = self.slot_value(ui, u, "relative_uom_id").as_id();
        }
        size
    }

    /// Gives created moves without a unit their product's unit, as Odoo's
    /// create does.
    pub fn moves_created(&mut self, model: &str, ids: &[i64]) {
        if model != "stock.move" {
            return;
        }
        let Ok(mi) = self.model_index(model) else {
            return;
        };
        let Some(slot) = self.tables[mi].def.slot_of("product_uom") else {
            return;
        };
        for &id in ids {
            if self.slot_value(mi, id, "product_uom").as_id().is_some() {
                continue;
            }
            let unit = self
                .slot_value(mi, id, "product_id")
                .as_id()
                .and_then(|p| self.product_uom(p));
            if let Some(unit) = unit {
                self.set_slot(mi, id, slot, Val::Id(unit));
            }
        }
    }
}

/// `from_date <= date <= to_date`, each bound optional.
fn in_window(date: Option<DateTime>, from: Option<DateTime>, to: Option<DateTime>) -> bool {
    match date {
        None => from.is_none() && to.is_none(),
        Some(d) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::db::{ADMIN_UID, Database, DatasetParams, OdooVersion, SimConfig};

    fn db() -> Database {
        Database::new(SimConfig {
            version: OdooVersion::V17,
            today: jiff::civil::date(2025, 3, 10),
            dataset: DatasetParams {
                products: 3,
                warehouses: 1,
                history_days: 10,
                ..DatasetParams::default()
            },
            ..SimConfig::default()
        })
    }

    fn call(db: &Database, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        let args = args.as_array().cloned().unwrap_or_default();
        let kwargs = kwargs.as_object().cloned().unwrap_or_default();
        db.execute_kw(ADMIN_UID, model, method, args, kwargs)
            .unwrap_or_else(|e| panic!("{model}.{method}: {e}"))
    }

    fn create(db: &Database, model: &str, vals: Value) -> i64 {
        call(db, model, "create", json!([vals]), json!({}))
            .as_i64()
            .unwrap_or_else(|| panic!("{model}.create"))
    }

    /// A warehouse `code` with view and stock locations; returns (warehouse, stock).
    fn warehouse(db: &Database, code: &str) -> (i64, i64) {
        let view = create(db, "stock.location", json!({"name": code, "usage": "view"}));
        let stock = create(
            db,
            "stock.location",
            json!({"name": "Stock", "usage": "internal", "location_id": view}),
        );
        let shelf = create(
            db,
            "stock.location",
            json!({"name": "Shelf", "usage": "internal", "location_id": stock}),
        );
        let wh = create(
            db,
            "stock.warehouse",
            json!({"name": format!("Warehouse {code}"), "code": code,
                   "view_location_id": view, "lot_stock_id": stock}),
        );
        (wh, shelf)
    }

    #[test]
    fn quantities_follow_quants_moves_scope_and_dates() {
        let db = db();
        let (wh, shelf) = warehouse(&db, "QA");
        let (other, other_stock) = warehouse(&db, "QB");
        let vendor = create(
            &db,
            "stock.location",
            json!({"name": "V", "usage": "supplier"}),
        );
        let customer = create(
            &db,
            "stock.location",
            json!({"name": "C", "usage": "customer"}),
        );
        let template = create(
            &db,
            "product.template",
            json!({"name": "Qty probe", "type": "product", "categ_id": 1, "uom_id": 1, "uom_po_id": 1}),
        );
        let product = create(
            &db,
            "product.product",
            json!({"product_tmpl_id": template, "default_code": "QTY-1"}),
        );
        create(
            &db,
            "stock.quant",
            json!({"product_id": product, "location_id": shelf, "quantity": 10.0, "reserved_quantity": 3.0}),
        );
        create(
            &db,
            "stock.quant",
            json!({"product_id": product, "location_id": other_stock, "quantity": 6.0}),
        );
        let mv = |qty: f64, from: i64, to: i64, state: &str, date: &str| {
            create(
                &db,
                "stock.move",
                json!({"product_id": product, "product_uom_qty": qty, "location_id": from,
                       "location_dest_id": to, "state": state, "date": date}),
            )
        };
        mv(5.0, vendor, shelf, "confirmed", "2025-03-12 10:00:00");
        mv(4.0, shelf, customer, "assigned", "2025-03-20 10:00:00");
        mv(100.0, vendor, shelf, "draft", "2025-03-12 10:00:00"); // drafts never count
        mv(9.0, vendor, shelf, "cancel", "2025-03-12 10:00:00");
        mv(2.0, vendor, shelf, "done", "2025-03-09 08:00:00"); // already in the quant
        // A transfer QB → QA is outgoing for QB and incoming for QA.
        mv(1.0, other_stock, shelf, "waiting", "2025-03-11 10:00:00");

        let fields = json!([
            "qty_available",
            "virtual_available",
            "incoming_qty",
            "outgoing_qty",
            "free_qty"
        ]);
        let read = |context: Value| {
            let rows = call(
                &db,
                "product.product",
                "read",
                json!([[product], fields]),
                json!({"context": context}),
            );
            let row = &rows[0];
            [
                "qty_available",
                "virtual_available",
                "incoming_qty",
                "outgoing_qty",
                "free_qty",
            ]
            .map(|f| row[f].as_f64().unwrap_or(f64::NAN))
        };
        // QA: on hand 10 (3 reserved); in 5 + 1; out 4; forecast 10 + 6 - 4.
        assert_eq!(read(json!({"warehouse": wh})), [10.0, 12.0, 6.0, 4.0, 7.0]);
        // By name, as Odoo's context accepts.
        assert_eq!(
            read(json!({"warehouse": "Warehouse QA"})),
            [10.0, 12.0, 6.0, 4.0, 7.0]
        );
        // QB: 6 on hand, the transfer leaves.
        assert_eq!(read(json!({"warehouse": other})), [6.0, 5.0, 0.0, 1.0, 6.0]);
        // Location scope: the shelf only.
        assert_eq!(
            read(json!({"location": shelf})),
            [10.0, 12.0, 6.0, 4.0, 7.0]
        );
        // Both warehouses: the transfer is internal; on hand 16, in 5, out 4.
        assert_eq!(
            read(json!({"warehouse": [wh, other]})),
            [16.0, 17.0, 5.0, 4.0, 13.0]
        );
        // to_date 15 March: the delivery on the 20th is not due yet.
        assert_eq!(
            read(json!({"warehouse": wh, "to_date": "2025-03-15 23:59:59"})),
            [10.0, 16.0, 6.0, 0.0, 7.0]
        );
        // from_date 12 March: the transfer of the 11th drops out.
        assert_eq!(
            read(json!({"warehouse": wh, "from_date": "2025-03-12 00:00:00"})),
            [10.0, 11.0, 5.0, 4.0, 7.0]
        );
        // to_date in the past rewinds on hand by the done receipt of the 9th.
        assert_eq!(
            read(json!({"warehouse": wh, "to_date": "2025-03-08 00:00:00"}))[0],
            8.0
        );
        // The template sums its variants.
        let rows = call(
            &db,
            "product.template",
            "read",
            json!([[template], ["qty_available", "virtual_available"]]),
            json!({"context": {"warehouse": wh}}),
        );
        assert_eq!(rows[0]["qty_available"], json!(10.0));
        assert_eq!(rows[0]["virtual_available"], json!(12.0));
        // Searchable through the computed value.
        let found = call(
            &db,
            "product.product",
            "search",
            json!([[["default_code", "=", "QTY-1"], ["qty_available", ">", 9]]]),
            json!({"context": {"warehouse": wh}}),
        );
        assert_eq!(found, json!([product]));
        let found = call(
            &db,
            "product.product",
            "search",
            json!([[["default_code", "=", "QTY-1"], ["qty_available", ">", 9]]]),
            json!({"context": {"warehouse": other}}),
        );
        assert_eq!(found, json!([]));
    }
}
