//! Workflow methods PlanOps' approval gate drives: `purchase.order`
//! `button_confirm` / `button_cancel` and the Enterprise `approval.request`
//! `action_confirm` / `action_approve` / `action_refuse`, mirroring Odoo's
//! behaviour closely enough that idempotency and status reads can be tested.

use serde_json::{Map, Value, json};

use super::OrmError;
use super::orm::Ctx;
use super::store::Store;

fn ids_domain(field: &str, ids: &[i64]) -> Result<odoo_client::domain::Domain, OrmError> {
    odoo_client::domain::Domain::from_json_value(&json!([[field, "in", ids]]))
        .map_err(|e| OrmError::Value(format!("Invalid domain: {e}")))
}

fn text_of(row: &Value, field: &str) -> String {
    row.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Store {
    fn read_rows(
        &self,
        model: &str,
        ids: &[i64],
        fields: &[&str],
        ctx: &Ctx,
    ) -> Result<Vec<Value>, OrmError> {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        self.read(model, ids, &fields, true, ctx)
    }

    /// Records of model `mi` whose many2one `field` points at `target`.
    fn pointing_at(&self, mi: usize, field: &str, target: i64) -> Vec<i64> {
        let table = &self.tables[mi];
        let Some(slot) = table.def.slot_of(field) else {
            return Vec::new();
        };
        match table.lookup(slot, target) {
            Some(ids) => ids.to_vec(),
            None => table
                .ids()
                .filter(|&id| {
                    table
                        .get(id)
                        .is_some_and(|row| row.vals[slot].as_id() == Some(target))
                })
                .collect(),
        }
    }

    /// The order's lines' quantity × unit price (the simulator has no taxes).
    pub(super) fn purchase_order_total(&self, order: i64) -> f64 {
        let Ok(li) = self.model_index("purchase.order.line") else {
            return 0.0;
        };
        self.pointing_at(li, "order_id", order)
            .into_iter()
            .map(|line| {
                let qty = self.slot_value(li, line, "product_qty").as_f64();
                let price = self.slot_value(li, line, "price_unit").as_f64();
                qty.unwrap_or(0.0) * price.unwrap_or(0.0)
            })
            .sum()
    }

    /// `user.has_group(xmlid)`. The administrator holds every application's
    /// manager group, as in a fresh Odoo database.
    pub(super) fn user_has_group(&self, uid: i64, xmlid: &str) -> bool {
        if uid == 1 || self.users.iter().any(|u| u.uid == uid && u.is_admin) {
            return true;
        }
        let (Some(group), Ok(ui)) = (self.xmlid_res_id(xmlid), self.model_index("res.users"))
        else {
            return false;
        };
        ["groups_id", "group_ids"]
            .iter()
            .any(|field| self.slot_value(ui, uid, field).ids().contains(&group))
    }

    /// Purchase's `_approval_allowed`: one-step companies, orders below the
    /// two-step amount, and purchase managers may approve. The simulator has
    /// one currency, so the amount is compared as it is.
    fn po_approval_allowed(&self, order: i64, ctx: &Ctx) -> Result<bool, OrmError> {
        let rows = self.read_rows("purchase.order", &[order], &["company_id"], ctx)?;
        let company = rows
            .first()
            .and_then(|r| r.get("company_id"))
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(Value::as_i64);
        let (policy, threshold) = match (company, self.model_index("res.company")) {
            (Some(company), Ok(ci)) => (
                self.slot_value(ci, company, "po_double_validation")
                    .as_str()
                    .unwrap_or("one_step")
                    .to_string(),
                self.slot_value(ci, company, "po_double_validation_amount")
                    .as_f64()
                    .unwrap_or(0.0),
            ),
            _ => ("one_step".to_string(), 0.0),
        };
        Ok(policy == "one_step"
            || (policy == "two_step" && self.purchase_order_total(order) < threshold)
            || self.user_has_group(ctx.uid, "purchase.group_purchase_manager"))
    }

    /// `purchase.order.button_confirm`: Odoo skips orders that are not
    /// `draft`/`sent` (so confirming twice is harmless, and an order waiting in
    /// `to approve` stays there); the rest are approved when the user may
    /// ([`Self::po_approval_allowed`]), else they go to `to approve`.
    pub fn po_button_confirm(&mut self, ids: &[i64], ctx: &Ctx) -> Result<Value, OrmError> {
        let rows = self.read_rows("purchase.order", ids, &["id", "state"], ctx)?;
        for row in rows {
            let state = text_of(&row, "state");
            let Some(id) = row.get("id").and_then(Value::as_i64) else {
                continue;
            };
            if state != "draft" && state != "sent" {
                continue;
            }
            if self.po_approval_allowed(id, ctx)? {
                self.po_button_approve(&[id], ctx)?;
            } else {
                let mut vals = Map::new();
                vals.insert("state".into(), json!("to approve"));
                self.write("purchase.order", &[id], &vals, ctx)?;
            }
        }
        Ok(Value::Bool(true))
    }

    /// `purchase.order.button_approve`: the orders the user may approve become
    /// `purchase` with their confirmation date, whatever their state (Odoo
    /// filters on the approval rule only); the others are left as they are.
    /// Returns an empty dict, as Odoo does.
    pub fn po_button_approve(&mut self, ids: &[i64], ctx: &Ctx) -> Result<Value, OrmError> {
        let mut allowed = Vec::new();
        for &id in ids {
            if self.po_approval_allowed(id, ctx)? {
                allowed.push(id);
            }
        }
        if !allowed.is_empty() {
            let mut vals = Map::new();
            vals.insert("state".into(), json!("purchase"));
            vals.insert(
                "date_approve".into(),
                json!(super::value::format_datetime(self.now())),
            );
            self.write("purchase.order", &allowed, &vals, ctx)?;
        }
        Ok(json!({}))
    }

    /// `purchase.order.button_cancel`: refused for locked orders, as Odoo
    /// refuses orders with receipts or posted bills; otherwise `cancel`. The
    /// method returns nothing: `null` over JSON, a marshalling fault over XML-RPC.
    pub fn po_button_cancel(&mut self, ids: &[i64], ctx: &Ctx) -> Result<Value, OrmError> {
        let rows = self.read_rows("purchase.order", ids, &["id", "state", "name"], ctx)?;
        if let Some(locked) = rows.iter().find(|r| text_of(r, "state") == "done") {
            return Err(OrmError::User(format!(
                "Unable to cancel purchase order {} as it is locked.",
                text_of(locked, "name")
            )));
        }
        let mut vals = Map::new();
        vals.insert("state".into(), json!("cancel"));
        self.write("purchase.order", ids, &vals, ctx)?;
        Ok(Value::Null)
    }

    /// `approval.request.action_confirm` (submit): needs at least the
    /// category's minimum of approvers, then every `new` approver gets a
    /// to-do and is `pending`. Called again on a submitted request, it does
    /// the same for approvers added since (as `new`) and leaves the others.
    pub fn approval_confirm(&mut self, ids: &[i64], ctx: &Ctx) -> Result<Value, OrmError> {
        let requests = self.read_rows("approval.request", ids, &["id", "category_id"], ctx)?;
        for request in requests {
            let Some(id) = request.get("id").and_then(Value::as_i64) else {
                continue;
            };
            let minimum = self.request_minimum(&request, ctx)?;
            let approvers = self.search(
                "approval.approver",
                &ids_domain("request_id", &[id])?,
                0,
                None,
                None,
                ctx,
            )?;
            if (approvers.len() as i64) < minimum {
                return Err(OrmError::User(format!(
                    "You have to add at least {minimum} approvers to confirm your request."
                )));
            }
            let rows = self.read_rows(
                "approval.approver",
                &approvers,
                &["id", "status", "user_id"],
                ctx,
            )?;
            let new: Vec<&Value> = rows
                .iter()
                .filter(|r| text_of(r, "status") == "new")
                .collect();
            // Submitting is what gives approvers their to-do: one activity per
            // approver this call moves to pending (lines written as pending
            // directly get none).
            let model_id = self.ir_model_id("approval.request");
            let activity_type = self.xmlid_res_id("approvals.mail_activity_data_approval");
            let todos: Vec<Map<String, Value>> = new
                .iter()
                .filter_map(|r| {
                    let user = r.get("user_id")?.as_array()?.first()?.as_i64()?;
                    let mut vals = Map::new();
                    vals.insert("res_model_id".into(), json!(model_id?));
                    vals.insert("res_id".into(), json!(id));
                    vals.insert("user_id".into(), json!(user));
                    if let Some(t) = activity_type {
                        vals.insert("activity_type_id".into(), json!(t));
                    }
                    Some(vals)
                })
                .collect();
            let todos: Vec<&Map<String, Value>> = todos.iter().collect();
            self.create_activities(&todos, ctx)?;
            let new: Vec<i64> = new
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_i64))
                .collect();
            let mut vals = Map::new();
            vals.insert("status".into(), json!("pending"));
            self.write("approval.approver", &new, &vals, ctx)?;
            self.recompute_request_status(id, ctx)?;
        }
        Ok(Value::Bool(true))
    }

    /// `action_approve` / `action_refuse`: sets the calling user's approver
    /// line on each request; a user who is not an approver changes nothing,
    /// as in Odoo (the filter on `env.user` is empty).
    pub fn approval_decide(
        &mut self,
        ids: &[i64],
        status: &str,
        ctx: &Ctx,
    ) -> Result<Value, OrmError> {
        for &id in ids {
            let domain = odoo_client::domain::Domain::from_json_value(&json!([
                ["request_id", "=", id],
                ["user_id", "=", ctx.uid]
            ]))
            .map_err(|e| OrmError::Value(format!("Invalid domain: {e}")))?;
            let mine = self.search("approval.approver", &domain, 0, None, None, ctx)?;
            let mut vals = Map::new();
            vals.insert("status".into(), json!(status));
            self.write("approval.approver", &mine, &vals, ctx)?;
            self.recompute_request_status(id, ctx)?;
        }
        Ok(Value::Bool(true))
    }

    /// Odoo stores `request_status` as a computed field depending on the
    /// approvers' statuses: creating or writing approver lines recomputes it.
    pub fn approvers_changed(
        &mut self,
        model: &str,
        ids: &[i64],
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        if model != "approval.approver" || ids.is_empty() {
            return Ok(());
        }
        let rows = self.read_rows("approval.approver", ids, &["request_id"], ctx)?;
        let mut requests: Vec<i64> = rows
            .iter()
            .filter_map(|r| {
                r.get("request_id")
                    .and_then(Value::as_array)?
                    .first()?
                    .as_i64()
            })
            .collect();
        requests.sort_unstable();
        requests.dedup();
        for request in requests {
            self.recompute_request_status(request, ctx)?;
        }
        Ok(())
    }

    fn request_minimum(&self, request: &Value, ctx: &Ctx) -> Result<i64, OrmError> {
        let category = request
            .get("category_id")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(Value::as_i64);
        let Some(category) = category else {
            return Ok(1);
        };
        let rows = self.read_rows("approval.category", &[category], &["approval_minimum"], ctx)?;
        Ok(rows
            .first()
            .and_then(|r| r.get("approval_minimum"))
            .and_then(Value::as_i64)
            .unwrap_or(1))
    }

    /// Odoo's `_compute_request_status`: no approvers → new, any cancel →
    /// cancel, any refusal → refused, any `new` → new, enough approvals (the minimum, capped by the
    /// number of approvers) with every required approver → approved, else pending.
    fn recompute_request_status(&mut self, id: i64, ctx: &Ctx) -> Result<(), OrmError> {
        let request = self.read_rows("approval.request", &[id], &["category_id"], ctx)?;
        let Some(request) = request.first() else {
            return Ok(());
        };
        let minimum = self.request_minimum(request, ctx)?;
        let approvers = self.search(
            "approval.approver",
            &ids_domain("request_id", &[id])?,
            0,
            None,
            None,
            ctx,
        )?;
        let rows = self.read_rows(
            "approval.approver",
            &approvers,
            &["status", "required"],
            ctx,
        )?;
        let statuses: Vec<String> = rows.iter().map(|r| text_of(r, "status")).collect();
        let count = |s: &str| statuses.iter().filter(|x| x.as_str() == s).count() as i64;
        let required_approved = rows
            .iter()
            .filter(|r| r.get("required").and_then(Value::as_bool) == Some(true))
            .all(|r| text_of(r, "status") == "approved");
        let minimal = minimum.min(statuses.len() as i64);
        let status = if statuses.is_empty() {
            "new"
        } else if count("cancel") > 0 {
            "cancel"
        } else if count("refused") > 0 {
            "refused"
        } else if count("new") > 0 {
            "new"
        } else if count("approved") >= minimal && required_approved {
            "approved"
        } else {
            "pending"
        };
        let mut vals = Map::new();
        vals.insert("request_status".into(), json!(status));
        self.write("approval.request", &[id], &vals, ctx)
    }
}
