//! Inventory adjustments: a quant counted with `inventory_quantity` is applied by
//! `action_apply_inventory`, which moves the difference between the inventory
//! adjustment location and the quant's location with a done move, as Odoo does,
//! so the stock shows in `qty_available` and the move in the history.

use serde_json::{Map, Value, json};

use super::OrmError;
use super::orm::Ctx;
use super::store::Store;
use super::value::{self, Val};

impl Store {
    /// `stock.quant.action_apply_inventory`: Odoo answers nothing (`None`).
    pub fn apply_inventory(&mut self, ids: &[i64], ctx: &Ctx) -> Result<Value, OrmError> {
        let qi = self.model_index("stock.quant")?;
        let adjustment = self.inventory_location(ctx)?;
        let now = json!(value::format_datetime(self.now()));
        for &quant in ids {
            let number = |store: &Store, field: &str| {
                store.slot_value(qi, quant, field).as_f64().unwrap_or(0.0)
            };
            let (counted, on_hand) = (number(self, "inventory_quantity"), number(self, "quantity"));
            let diff = counted - on_hand;
            let (Some(product), Some(location)) = (
                self.slot_value(qi, quant, "product_id").as_id(),
                self.slot_value(qi, quant, "location_id").as_id(),
            ) else {
                continue;
            };
            if diff != 0.0 {
                let (from, to) = if diff > 0.0 {
                    (adjustment, location)
                } else {
                    (location, adjustment)
                };
                let mut vals = Map::new();
                vals.insert("name".into(), json!("Product Quantity Updated"));
                vals.insert("product_id".into(), json!(product));
                vals.insert("product_uom_qty".into(), json!(diff.abs()));
                vals.insert("location_id".into(), json!(from));
                vals.insert("location_dest_id".into(), json!(to));
                vals.insert("state".into(), json!("done"));
                vals.insert("date".into(), now.clone());
                let moved = self.create("stock.move", &vals, ctx)?;
                self.moves_created("stock.move", &[moved]);
            }
            let slot = |store: &Store, field: &str| store.tables[qi].def.slot_of(field);
            if let Some(s) = slot(self, "quantity") {
                self.set_slot(qi, quant, s, Val::Float(counted));
            }
            if let Some(s) = slot(self, "inventory_quantity") {
                self.set_slot(qi, quant, s, Val::Float(0.0));
            }
            self.touch(qi, quant, ctx.uid);
        }
        Ok(Value::Null)
    }

    /// The virtual location inventory differences come from and go to.
    fn inventory_location(&mut self, ctx: &Ctx) -> Result<i64, OrmError> {
        let li = self.model_index("stock.location")?;
        let found = self.tables[li]
            .ids()
            .find(|&l| self.slot_value(li, l, "usage").as_str() == Some("inventory"));
        match found {
            Some(location) => Ok(location),
            None => {
                let mut vals = Map::new();
                vals.insert("name".into(), json!("Inventory adjustment"));
                vals.insert("usage".into(), json!("inventory"));
                self.create("stock.location", &vals, ctx)
            }
        }
    }
}
