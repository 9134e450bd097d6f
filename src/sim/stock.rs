//! Product stock quantities computed from `stock.quant` and `stock.move`, the
//! way Odoo's `product.product._compute_quantities_dict` does: scoped by the
//! `warehouse` / `location` context, with `to_date` / `from_date` windows.

use std::collections::HashSet;

use jiff::civil::DateTime;
use serde_json::Value;

use super::orm::Ctx;
use super::store::Store;
use super::value::Val;

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

    /// The set of locations the context designates, children included: the
    /// `location` key wins over `warehouse`; without either, every warehouse's
    /// view location (or, in a database without warehouses, everything).
    fn stock_scope(&self, ctx: &Ctx) -> Option<HashSet<i64>> {
        let Ok(li) = self.model_index("stock.location") else {
            return None;
        };
        let roots: Vec<i64> = if let Some(location) = &ctx.location {
            self.resolve_records("stock.location", location, &["complete_name", "name"])
        } else {
            let Ok(wi) = self.model_index("stock.warehouse") else {
                return None;
            };
            let warehouses = match &ctx.warehouse {
                Some(w) => self.resolve_records("stock.warehouse", w, &["name", "code"]),
                None => self.tables[wi].ids().collect(),
            };
            if warehouses.is_empty() && ctx.warehouse.is_none() {
                return None;
            }
            warehouses
                .iter()
                .filter_map(|&w| self.slot_value(wi, w, "view_location_id").as_id())
                .collect()
        };
        // child_of: walk down the location tree through the parent index.
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
        Some(seen)
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
            let qty = self
                .slot_value(mi, mv, "product_uom_qty")
                .as_f64()
                .unwrap_or(0.0);
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

/// `from_date <= date <= to_date`, each bound optional.
fn in_window(date: Option<DateTime>, from: Option<DateTime>, to: Option<DateTime>) -> bool {
    match date {
        None => from.is_none() && to.is_none(),
        Some(d) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t),
    }
}
