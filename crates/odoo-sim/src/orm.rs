//! ORM methods over the store: search, read, create, write, unlink, fields_get,
//! name_search. Values follow Odoo's read/write encoding.

use std::collections::HashMap;

use jiff::civil::DateTime;
use serde_json::{Map, Value, json};

use super::model::{DefaultValue, FieldDef, FieldType, ModelDef, Storage};
use super::store::Store;
use super::value::{self, Val};
use crate::db::OrmError;
use odoo_client::domain::{Condition, Domain, Expr, Operator};

/// Per-call context (from `kwargs["context"]`): the keys the simulator honours.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub uid: i64,
    pub active_test: bool,
    /// Context keys that may scope product quantities (`warehouse`,
    /// `warehouse_id`, `location`...: an id, a name or a list), as sent; which
    /// of them a version honours is the stock computation's business.
    pub stock_scope: Vec<(&'static str, Value)>,
    /// Quantities as of this moment (moves dated after it are left out).
    pub to_date: Option<DateTime>,
    /// Incoming/outgoing moves dated before this are left out.
    pub from_date: Option<DateTime>,
    /// The user's time zone (`tz`): `read_group` buckets datetimes in it.
    pub tz: Option<jiff::tz::TimeZone>,
}

impl Ctx {
    /// A plain call by `uid` without context keys.
    pub fn user(uid: i64) -> Ctx {
        Ctx {
            uid,
            active_test: true,
            ..Ctx::default()
        }
    }

    pub fn from_kwargs(uid: i64, context: Option<&Value>) -> Ctx {
        let key = |name: &str| context.and_then(|c| c.get(name));
        // `false`/`null` mean "not set" in Odoo contexts.
        let present = |name: &str| {
            key(name)
                .filter(|v| !matches!(v, Value::Null | Value::Bool(false)))
                .cloned()
        };
        let moment = |name: &str| {
            key(name)
                .and_then(Value::as_str)
                .and_then(value::parse_datetime)
        };
        Ctx {
            uid,
            active_test: key("active_test").and_then(Value::as_bool).unwrap_or(true),
            stock_scope: super::stock::SCOPE_KEYS
                .iter()
                .filter_map(|&k| present(k).map(|v| (k, v)))
                .collect(),
            to_date: moment("to_date"),
            from_date: moment("from_date"),
            // An unknown zone is ignored, as Odoo falls back to UTC.
            tz: key("tz")
                .and_then(Value::as_str)
                .and_then(|name| jiff::tz::TimeZone::get(name).ok()),
        }
    }
}

fn missing(model: &str, ids: &[i64], uid: i64) -> OrmError {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    OrmError::Missing(format!(
        "Record does not exist or has been deleted.\n(Record: {model}({},), User: {uid})",
        list.join(", ")
    ))
}

impl Store {
    /// Value of any field of a record (stored, related, one2many or computed).
    pub fn get(&self, mi: usize, id: i64, field: &FieldDef, ctx: &Ctx) -> Val {
        let table = &self.tables[mi];
        let Some(row) = table.get(id) else {
            return Val::False;
        };
        match &field.storage {
            Storage::Id => Val::Int(id),
            Storage::Stored(slot) => row.vals[*slot].clone(),
            Storage::Meta => match field.name.as_str() {
                "create_date" => Val::Datetime(row.create_date),
                "write_date" => Val::Datetime(row.write_date),
                "create_uid" => Val::Id(row.create_uid),
                _ => Val::Id(row.write_uid),
            },
            Storage::Related(path) => {
                let (mut model, mut current) = (mi, id);
                for (i, segment) in path.iter().enumerate() {
                    let def = self.tables[model].def.clone();
                    let Some(step) = def.field(segment) else {
                        return Val::False;
                    };
                    let value = self.get(model, current, step, ctx);
                    if i + 1 == path.len() {
                        return value;
                    }
                    let (Some(target), Some(rel)) = (value.as_id(), step.relation.as_deref())
                    else {
                        return Val::False;
                    };
                    let Ok(next) = self.model_index(rel) else {
                        return Val::False;
                    };
                    model = next;
                    current = target;
                }
                Val::False
            }
            Storage::Inverse(inverse) => {
                let Some(rel) = field.relation.as_deref() else {
                    return Val::Ids(Vec::new().into());
                };
                let Ok(target) = self.model_index(rel) else {
                    return Val::Ids(Vec::new().into());
                };
                let tdef = &self.tables[target].def;
                let Some(slot) = tdef.slot_of(inverse) else {
                    return Val::Ids(Vec::new().into());
                };
                // mail.message / mail.activity point back by (model, res_id).
                let model_slot = if inverse == "res_id" {
                    tdef.slot_of("model")
                        .or_else(|| tdef.slot_of("res_model_id"))
                } else {
                    None
                };
                let candidates: Vec<i64> = match self.tables[target].lookup(slot, id) {
                    Some(list) => list.to_vec(),
                    None => self.tables[target]
                        .ids()
                        .filter(|&c| {
                            self.tables[target]
                                .get(c)
                                .is_some_and(|r| r.vals[slot].as_id() == Some(id))
                        })
                        .collect(),
                };
                let ids: Vec<i64> = candidates
                    .into_iter()
                    .filter(|&c| match model_slot {
                        None => true,
                        Some(ms) => {
                            let v = &self.tables[target].get(c).map(|r| r.vals[ms].clone());
                            match v {
                                Some(Val::Str(s)) => s.as_ref() == table.def.name,
                                Some(Val::Id(model_id)) => self
                                    .model_index("ir.model")
                                    .ok()
                                    .map(|im| self.slot_value(im, *model_id, "model"))
                                    .and_then(|m| m.as_str().map(|s| s == table.def.name))
                                    .unwrap_or(false),
                                _ => false,
                            }
                        }
                    })
                    .collect();
                Val::Ids(ids.into())
            }
            Storage::Computed => self.compute(mi, id, field, ctx),
        }
    }

    fn compute(&self, mi: usize, id: i64, field: &FieldDef, ctx: &Ctx) -> Val {
        let model = self.tables[mi].def.name.as_str();
        if let Some(value) = self
            .membership_field(model, id, &field.name)
            .or_else(|| self.unit_field(model, id, &field.name))
        {
            return value;
        }
        match field.name.as_str() {
            "display_name" => Val::str(&self.display_name(mi, id, ctx)),
            "complete_name" => Val::str(&self.display_name(mi, id, ctx)),
            "full_name" => Val::str(&self.display_name(mi, id, ctx)),
            name if super::stock::STOCK_FIELDS.contains(&name)
                && matches!(
                    self.tables[mi].def.name.as_str(),
                    "product.product" | "product.template"
                ) =>
            {
                let qty = self.stock_quantities(&self.tables[mi].def.name, id, ctx);
                Val::Float(qty.field(name).unwrap_or(0.0))
            }
            // No taxes in the simulator: totals are the lines' quantity × price,
            // which purchase's two-step validation compares with its threshold.
            "price_subtotal" if self.tables[mi].def.name == "purchase.order.line" => {
                let qty = self
                    .slot_value(mi, id, "product_qty")
                    .as_f64()
                    .unwrap_or(0.0);
                let price = self
                    .slot_value(mi, id, "price_unit")
                    .as_f64()
                    .unwrap_or(0.0);
                Val::Float(qty * price)
            }
            "amount_untaxed" | "amount_total" if self.tables[mi].def.name == "purchase.order" => {
                Val::Float(self.purchase_order_total(id))
            }
            "available_quantity" if self.tables[mi].def.name == "stock.quant" => {
                let quantity = self.slot_value(mi, id, "quantity").as_f64().unwrap_or(0.0);
                let reserved = self
                    .slot_value(mi, id, "reserved_quantity")
                    .as_f64()
                    .unwrap_or(0.0);
                Val::Float(quantity - reserved)
            }
            _ => match field.ftype {
                FieldType::Float | FieldType::Monetary => Val::Float(0.0),
                FieldType::Integer => Val::Int(0),
                FieldType::Many2many | FieldType::One2many => Val::Ids(Vec::new().into()),
                _ => Val::False,
            },
        }
    }

    /// `display_name` as Odoo renders it for the models that matter here.
    pub fn display_name(&self, mi: usize, id: i64, ctx: &Ctx) -> String {
        let def = self.tables[mi].def.clone();
        let text = |name: &str| -> String {
            def.field(name)
                .map(|f| self.get(mi, id, f, ctx))
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let parent_name = |field: &str| -> Option<String> {
            let parent = self.slot_value(mi, id, field).as_id()?;
            self.tables[mi]
                .exists(parent)
                .then(|| self.display_name(mi, parent, ctx))
        };
        match def.name.as_str() {
            "product.product" | "product.template" => {
                let code = text("default_code");
                let name = text("name");
                if code.is_empty() {
                    name
                } else {
                    format!("[{code}] {name}")
                }
            }
            "product.category" => match parent_name("parent_id") {
                Some(parent) => format!("{parent} / {}", text("name")),
                None => text("name"),
            },
            "stock.location" => match parent_name("location_id") {
                Some(parent) => format!("{parent}/{}", text("name")),
                None => text("name"),
            },
            "ir.model.data" => format!("{}.{}", text("module"), text("name")),
            _ => {
                let Some(field) = def.field(&def.rec_name) else {
                    return format!("{},{id}", def.name);
                };
                match (field.ftype, self.get(mi, id, field, ctx)) {
                    (FieldType::Many2one, Val::Id(target)) => field
                        .relation
                        .as_deref()
                        .and_then(|r| self.model_index(r).ok())
                        .map(|t| self.display_name(t, target, ctx))
                        .unwrap_or_default(),
                    (_, Val::Str(s)) => s.to_string(),
                    _ => format!("{},{id}", def.name),
                }
            }
        }
    }

    /// Ids matching the domain, ordered, paged.
    pub fn search(
        &self,
        model: &str,
        domain: &Domain,
        offset: usize,
        limit: Option<usize>,
        order: Option<&str>,
        ctx: &Ctx,
    ) -> Result<Vec<i64>, OrmError> {
        let mi = self.model_index(model)?;
        self.check_domain(mi, domain)?;
        let def = self.tables[mi].def.clone();
        let mentions_active = domain
            .terms()
            .iter()
            .any(|t| matches!(t, odoo_client::domain::Term::Leaf(c) if c.path == "active"));
        let active = (def.has_active && ctx.active_test && !mentions_active)
            .then(|| def.slot_of("active"))
            .flatten();
        let expr = domain.expr();
        let order = order
            .filter(|o| !o.trim().is_empty())
            .unwrap_or(&def.order)
            .to_string();
        // An indexed equality narrows the rows to check; the whole domain is
        // still evaluated on them, so the index only has to over-approximate.
        // Either way the candidates come in ascending id order.
        // The leaf the index answered holds for every candidate, so it is not
        // evaluated again: a `product_id in [500 ids]` would otherwise cost
        // 500 comparisons per candidate.
        let (candidates, expr): (Box<dyn Iterator<Item = i64> + '_>, Expr<'_>) =
            match self.index_candidates(mi, &expr) {
                Some((mut ids, answered)) => {
                    ids.sort_unstable();
                    ids.dedup();
                    (Box::new(ids.into_iter()), without_leaf(&expr, answered))
                }
                None => (
                    Box::new(self.tables[mi].ids_from(id_lower_bound(&expr))),
                    expr,
                ),
            };
        let lists = super::eval::IdLists::of(&expr);
        let mut matching = candidates
            .filter(|&id| {
                active.is_none_or(|slot| {
                    self.tables[mi]
                        .get(id)
                        .is_some_and(|r| r.vals[slot] == Val::Bool(true))
                })
            })
            .filter(|&id| self.eval_expr_with(mi, id, &expr, ctx, &lists));
        // Keyset pages (`id > last`, order `id`, a limit) stop at the page's
        // end instead of matching the rest of the table: a cold read of a
        // million moves costs pages × page, not pages × table.
        if is_id_order(&order) {
            let page = matching.by_ref().skip(offset);
            return Ok(match limit {
                Some(limit) => page.take(limit).collect(),
                None => page.collect(),
            });
        }
        let mut ids: Vec<i64> = matching.collect();
        // Only the page has to be in order: a small page of a large match
        // (limit 5 of 50 000 orderpoints) needs a selection, not a full sort.
        let needed = limit.map(|limit| offset.saturating_add(limit));
        let sorted = self.sort_first(mi, &mut ids, &order, needed, ctx)?;
        ids.truncate(sorted);
        let paged = ids.into_iter().skip(offset);
        Ok(match limit {
            Some(limit) => paged.take(limit).collect(),
            None => paged.collect(),
        })
    }

    /// Rows that can match a conjunction holding an `=`/`in` on `id` or on an
    /// indexed column (smallest such set), with the leaf they exactly answer,
    /// or `None` when a scan is needed.
    fn index_candidates<'a>(
        &self,
        mi: usize,
        expr: &Expr<'a>,
    ) -> Option<(Vec<i64>, &'a Condition)> {
        let leaves: Vec<&Condition> = match expr {
            Expr::Leaf(c) => vec![*c],
            Expr::And(items) => items
                .iter()
                .filter_map(|e| match e {
                    Expr::Leaf(c) => Some(*c),
                    _ => None,
                })
                .collect(),
            _ => return None,
        };
        leaves
            .into_iter()
            .filter_map(|c| self.leaf_candidates(mi, c).map(|ids| (ids, c)))
            .min_by_key(|(ids, _)| ids.len())
    }

    fn leaf_candidates(&self, mi: usize, c: &Condition) -> Option<Vec<i64>> {
        let values: Vec<&Value> = match (c.operator, &c.value) {
            (Operator::Eq, v) => vec![v],
            (Operator::In, Value::Array(items)) => items.iter().collect(),
            _ => return None,
        };
        let table = &self.tables[mi];
        let mut out: Vec<i64> = Vec::new();
        if c.path == "id" {
            for v in values {
                out.extend(v.as_i64().filter(|&id| table.exists(id)));
            }
        } else {
            let field = table.def.field(&c.path)?;
            let slot = field.slot()?;
            for v in values {
                // `= false` and type-mismatched values are left to the scan.
                let found = match v {
                    Value::String(text) if field.ftype == FieldType::Char => {
                        table.lookup_text(slot, text)?
                    }
                    Value::Number(n)
                        if matches!(field.ftype, FieldType::Many2one | FieldType::Integer) =>
                    {
                        table.lookup(slot, n.as_i64()?)?
                    }
                    _ => return None,
                };
                out.extend_from_slice(found);
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    pub(crate) fn sort(
        &self,
        mi: usize,
        ids: &mut [i64],
        order: &str,
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        self.sort_first(mi, ids, order, None, ctx).map(|_| ())
    }

    /// Puts the first `needed` ids (all when `None`) in `order` at the front
    /// of `ids`; returns how many are in order.
    fn sort_first(
        &self,
        mi: usize,
        ids: &mut [i64],
        order: &str,
        needed: Option<usize>,
        ctx: &Ctx,
    ) -> Result<usize, OrmError> {
        let def = self.tables[mi].def.clone();
        let mut keys: Vec<(FieldDef, bool)> = Vec::new();
        for part in order.split(',') {
            let mut words = part.split_whitespace();
            let Some(name) = words.next() else { continue };
            let descending = words.next().is_some_and(|w| w.eq_ignore_ascii_case("desc"));
            let field = def.field(name).ok_or_else(|| {
                OrmError::Value(format!("Invalid field {name:?} on model {:?}", def.name))
            })?;
            keys.push((field.clone(), descending));
        }
        if keys.is_empty() {
            return Ok(ids.len());
        }
        // Many records share few targets (orderpoints by location): each
        // target's display name is computed once per sort, not once per row.
        let names: std::cell::RefCell<HashMap<(usize, i64), Val>> = Default::default();
        let sort_value = |id: i64, field: &FieldDef| -> Val {
            match (field.ftype, self.get(mi, id, field, ctx)) {
                (FieldType::Many2one, Val::Id(target)) => field
                    .relation
                    .as_deref()
                    .and_then(|r| self.model_index(r).ok())
                    .map(|t| {
                        names
                            .borrow_mut()
                            .entry((t, target))
                            .or_insert_with(|| Val::str(&self.display_name(t, target, ctx)))
                            .clone()
                    })
                    .unwrap_or(Val::False),
                (_, v) => v,
            }
        };
        let mut decorated: Vec<(Vec<Val>, i64)> = ids
            .iter()
            .map(|&id| (keys.iter().map(|(f, _)| sort_value(id, f)).collect(), id))
            .collect();
        let compare = |(a, ida): &(Vec<Val>, i64), (b, idb): &(Vec<Val>, i64)| {
            for ((x, y), (_, descending)) in a.iter().zip(b).zip(&keys) {
                // PostgreSQL: NULLs last ascending, first descending.
                let ordering = match (matches!(x, Val::False), matches!(y, Val::False)) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ => x.compare(y),
                };
                let ordering = if *descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            ida.cmp(idb)
        };
        let count = needed.map_or(decorated.len(), |n| n.min(decorated.len()));
        if count < decorated.len() {
            if count > 0 {
                decorated.select_nth_unstable_by(count - 1, compare);
            }
            decorated.truncate(count);
        }
        decorated.sort_by(compare);
        for (slot, (_, id)) in ids.iter_mut().zip(decorated) {
            *slot = id;
        }
        Ok(count)
    }

    /// `read(ids, fields, load)`.
    pub fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: &[String],
        classic_load: bool,
        ctx: &Ctx,
    ) -> Result<Vec<Value>, OrmError> {
        let mi = self.model_index(model)?;
        let def = self.tables[mi].def.clone();
        let wanted: Vec<&FieldDef> = if fields.is_empty() {
            def.fields.iter().collect()
        } else {
            let mut out = Vec::with_capacity(fields.len());
            for name in fields {
                out.push(def.field(name).ok_or_else(|| {
                    OrmError::Value(format!("Invalid field {name:?} on model {model:?}"))
                })?);
            }
            out
        };
        let absent: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|&id| !self.tables[mi].exists(id))
            .collect();
        if !absent.is_empty() {
            return Err(missing(model, &absent, ctx.uid));
        }
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            let mut record = Map::new();
            record.insert("id".into(), json!(id));
            for field in &wanted {
                let value = self.get(mi, id, field, ctx);
                let json_value = match (field.ftype, &value) {
                    (FieldType::Many2one, Val::Id(target)) if classic_load => {
                        let name = field
                            .relation
                            .as_deref()
                            .and_then(|r| self.model_index(r).ok())
                            .map(|t| self.display_name(t, *target, ctx))
                            .unwrap_or_default();
                        json!([target, name])
                    }
                    _ => value::to_json(field.ftype, &value),
                };
                record.insert(field.name.clone(), json_value);
            }
            rows.push(Value::Object(record));
        }
        Ok(rows)
    }

    /// Creates one record from write-encoded values; returns its id.
    pub fn create(
        &mut self,
        model: &str,
        vals: &Map<String, Value>,
        ctx: &Ctx,
    ) -> Result<i64, OrmError> {
        let mi = self.model_index(model)?;
        let def = self.tables[mi].def.clone();
        for name in vals.keys() {
            if def.field(name).is_none() {
                return Err(OrmError::Value(format!(
                    "Invalid field '{name}' on model '{model}'"
                )));
            }
        }
        let mut slots = vec![Val::False; def.slots];
        for field in &def.fields {
            let Some(slot) = field.slot() else { continue };
            slots[slot] = match (vals.get(&field.name), &field.default) {
                (Some(v), _) if !field.ftype.is_x2many() => {
                    value::from_json(field, v).map_err(|e| OrmError::Value(e.0))?
                }
                (Some(v), _) => Val::Ids(self.apply_x2many(field, &[], v, ctx)?.into()),
                (None, Some(default)) => self.default_value(default, ctx),
                (None, None) => match field.ftype {
                    FieldType::Many2many => Val::Ids(Vec::new().into()),
                    _ => Val::False,
                },
            };
            check_constraint(&def, field, &slots[slot])?;
            if field.required
                && slots[slot].is_false()
                && field.ftype != FieldType::Boolean
                && !field.ftype.is_numeric()
            {
                return Err(OrmError::Validation(format!(
                    "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- Delete: another model requires the record being deleted. If possible, archive it instead.\n\nModel: {} ({})\nField: {} ({})",
                    def.description, def.name, field.string, field.name
                )));
            }
        }
        // res.partner's `name` is optional at field level but guarded by the
        // SQL constraint `res_partner_check_name` for contacts (the only partner
        // type the simulator serves).
        if def.name == "res.partner"
            && let Some(slot) = def.slot_of("name")
            && slots[slot].is_false()
        {
            return Err(OrmError::Validation(
                "The operation cannot be completed: Contacts require a name".into(),
            ));
        }
        let id = self.insert_raw(mi, slots, ctx.uid);
        // one2many commands need the parent id.
        for field in &def.fields {
            if let (Storage::Inverse(_), Some(v)) = (&field.storage, vals.get(&field.name)) {
                self.apply_one2many(mi, id, field, v, ctx)?;
            }
        }
        super::automation::after_create(self, model, id, ctx)?;
        Ok(id)
    }

    fn default_value(&mut self, default: &DefaultValue, ctx: &Ctx) -> Val {
        match default {
            DefaultValue::Const(v) => v.clone(),
            DefaultValue::Today => Val::Date(self.today),
            DefaultValue::Now => Val::Datetime(self.now()),
            DefaultValue::Uid => Val::Id(ctx.uid),
            DefaultValue::Company | DefaultValue::Currency => Val::Id(1),
            DefaultValue::Sequence(prefix, width) => Val::str(&self.next_sequence(prefix, *width)),
        }
    }

    /// Applies x2many commands to a many2many id list.
    fn apply_x2many(
        &mut self,
        field: &FieldDef,
        current: &[i64],
        commands: &Value,
        ctx: &Ctx,
    ) -> Result<Vec<i64>, OrmError> {
        let mut ids = current.to_vec();
        let rel = field.relation.clone().unwrap_or_default();
        let Value::Array(items) = commands else {
            return Err(OrmError::Value(format!(
                "Wrong value for {}: {commands}",
                field.name
            )));
        };
        for item in items {
            match item {
                Value::Number(n) => ids.extend(n.as_i64()),
                Value::Array(cmd) => {
                    let code = cmd.first().and_then(Value::as_i64).unwrap_or(-1);
                    let arg = cmd.get(1).and_then(Value::as_i64).unwrap_or(0);
                    match code {
                        0 => {
                            let vals = cmd
                                .get(2)
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default();
                            ids.push(self.create(&rel, &vals, ctx)?);
                        }
                        1 => {
                            let vals = cmd
                                .get(2)
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default();
                            self.write(&rel, &[arg], &vals, ctx)?;
                        }
                        2 => {
                            ids.retain(|&i| i != arg);
                            self.unlink(&rel, &[arg], ctx)?;
                        }
                        3 => ids.retain(|&i| i != arg),
                        4 => {
                            if !ids.contains(&arg) {
                                ids.push(arg);
                            }
                        }
                        5 => ids.clear(),
                        6 => {
                            ids = cmd
                                .get(2)
                                .and_then(Value::as_array)
                                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                                .unwrap_or_default();
                        }
                        _ => return Err(OrmError::Value(format!("Invalid x2many command {item}"))),
                    }
                }
                other => return Err(OrmError::Value(format!("Invalid x2many command {other}"))),
            }
        }
        Ok(ids)
    }

    /// Applies x2many commands to a one2many: links are the inverse many2one.
    fn apply_one2many(
        &mut self,
        mi: usize,
        id: i64,
        field: &FieldDef,
        commands: &Value,
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        let (Storage::Inverse(inverse), Some(rel)) = (&field.storage, field.relation.clone())
        else {
            return Ok(());
        };
        let Value::Array(items) = commands else {
            return Err(OrmError::Value(format!(
                "Wrong value for {}: {commands}",
                field.name
            )));
        };
        let current = self.get(mi, id, field, ctx).ids().to_vec();
        for item in items {
            let Value::Array(cmd) = item else { continue };
            let code = cmd.first().and_then(Value::as_i64).unwrap_or(-1);
            let arg = cmd.get(1).and_then(Value::as_i64).unwrap_or(0);
            let mut link = Map::new();
            link.insert(inverse.clone(), json!(id));
            let mut unlink_vals = Map::new();
            unlink_vals.insert(inverse.clone(), Value::Bool(false));
            match code {
                0 => {
                    let mut vals = cmd
                        .get(2)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    vals.insert(inverse.clone(), json!(id));
                    self.create(&rel, &vals, ctx)?;
                }
                1 => {
                    let vals = cmd
                        .get(2)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    self.write(&rel, &[arg], &vals, ctx)?;
                }
                2 => self.unlink(&rel, &[arg], ctx)?,
                3 => self.write(&rel, &[arg], &unlink_vals, ctx)?,
                4 => self.write(&rel, &[arg], &link, ctx)?,
                5 => self.write(&rel, &current, &unlink_vals, ctx)?,
                6 => {
                    let keep: Vec<i64> = cmd
                        .get(2)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default();
                    let dropped: Vec<i64> = current
                        .iter()
                        .copied()
                        .filter(|c| !keep.contains(c))
                        .collect();
                    self.write(&rel, &dropped, &unlink_vals, ctx)?;
                    self.write(&rel, &keep, &link, ctx)?;
                }
                _ => return Err(OrmError::Value(format!("Invalid x2many command {item}"))),
            }
        }
        Ok(())
    }

    /// `write(ids, vals)`; moves `write_date` on every record. Every write,
    /// a client's or a server method's, runs the automation rules it
    /// triggers and the recomputes of automation records.
    pub fn write(
        &mut self,
        model: &str,
        ids: &[i64],
        vals: &Map<String, Value>,
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        let watch = super::automation::before_write(self, model, ids, vals)?;
        self.write_without_triggers(model, ids, vals, ctx)?;
        if let Some(watch) = watch {
            super::automation::after_write(self, watch, vals, ctx)?;
        }
        Ok(())
    }

    /// The write itself, without automation rules: what Odoo stores when
    /// it recomputes a field.
    pub(super) fn write_without_triggers(
        &mut self,
        model: &str,
        ids: &[i64],
        vals: &Map<String, Value>,
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        let mi = self.model_index(model)?;
        let def = self.tables[mi].def.clone();
        let absent: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|&id| !self.tables[mi].exists(id))
            .collect();
        if !absent.is_empty() {
            return Err(missing(model, &absent, ctx.uid));
        }
        for (name, raw) in vals {
            let field = def
                .field(name)
                .ok_or_else(|| {
                    OrmError::Value(format!("Invalid field '{name}' on model '{model}'"))
                })?
                .clone();
            match &field.storage {
                Storage::Stored(slot) => {
                    for &id in ids {
                        let new_value = if field.ftype.is_x2many() {
                            let current = self.slot_value(mi, id, name).ids().to_vec();
                            Val::Ids(self.apply_x2many(&field, &current, raw, ctx)?.into())
                        } else {
                            value::from_json(&field, raw).map_err(|e| OrmError::Value(e.0))?
                        };
                        check_constraint(&def, &field, &new_value)?;
                        if field.required
                            && new_value.is_false()
                            && !field.ftype.is_numeric()
                            && field.ftype != FieldType::Boolean
                        {
                            return Err(OrmError::Validation(format!(
                                "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- Delete: another model requires the record being deleted. If possible, archive it instead.\n\nModel: {} ({})\nField: {} ({})",
                                def.description, def.name, field.string, field.name
                            )));
                        }
                        self.set_slot(mi, id, *slot, new_value);
                    }
                }
                Storage::Inverse(_) => {
                    for &id in ids {
                        self.apply_one2many(mi, id, &field, raw, ctx)?;
                    }
                }
                Storage::Related(path) if path.len() == 2 => {
                    // Write through the many2one (e.g. product.product → template).
                    let Some(link) = def.field(&path[0]).cloned() else {
                        continue;
                    };
                    let Some(rel) = link.relation.clone() else {
                        continue;
                    };
                    let mut through = Map::new();
                    through.insert(path[1].clone(), raw.clone());
                    for &id in ids {
                        if let Some(target) = self.get(mi, id, &link, ctx).as_id() {
                            self.write(&rel, &[target], &through, ctx)?;
                        }
                    }
                }
                // Computed and metadata fields without an inverse: ignored, as in Odoo.
                _ => {}
            }
        }
        for &id in ids {
            self.touch(mi, id, ctx.uid);
        }
        Ok(())
    }

    pub fn unlink(&mut self, model: &str, ids: &[i64], ctx: &Ctx) -> Result<(), OrmError> {
        let mi = self.model_index(model)?;
        let absent: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|&id| !self.tables[mi].exists(id))
            .collect();
        if !absent.is_empty() {
            return Err(missing(model, &absent, ctx.uid));
        }
        for &id in ids {
            self.remove(mi, id);
        }
        Ok(())
    }

    pub fn fields_get(
        &self,
        model: &str,
        allfields: &[String],
        attributes: &[String],
    ) -> Result<Value, OrmError> {
        let def = self.def(model)?;
        let mut out = Map::new();
        for field in &def.fields {
            if !allfields.is_empty() && !allfields.contains(&field.name) {
                continue;
            }
            let mut desc = Map::new();
            desc.insert(
                "type".into(),
                json!(field.reported_type.unwrap_or(field.ftype.as_str())),
            );
            desc.insert("string".into(), json!(field.string));
            desc.insert("required".into(), json!(field.required));
            desc.insert("readonly".into(), json!(field.readonly));
            desc.insert(
                "store".into(),
                json!(
                    field.stored_in_odoo
                        || !matches!(field.storage, Storage::Computed | Storage::Related(_))
                ),
            );
            desc.insert("searchable".into(), json!(true));
            desc.insert(
                "sortable".into(),
                json!(!matches!(field.storage, Storage::Computed)),
            );
            if let Some(rel) = &field.relation {
                desc.insert("relation".into(), json!(rel));
            }
            if field.ftype == FieldType::Selection {
                desc.insert(
                    "selection".into(),
                    json!(
                        field
                            .selection
                            .iter()
                            .map(|(k, v)| json!([k, v]))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            if let Some(help) = &field.help {
                desc.insert("help".into(), json!(help));
            }
            if !attributes.is_empty() {
                desc.retain(|k, _| attributes.contains(k));
            }
            out.insert(field.name.clone(), Value::Object(desc));
        }
        Ok(Value::Object(out))
    }

    pub fn name_search(
        &self,
        model: &str,
        name: &str,
        domain: &Domain,
        operator: &str,
        limit: usize,
        ctx: &Ctx,
    ) -> Result<Value, OrmError> {
        let mi = self.model_index(model)?;
        let ids = self.search(model, domain, 0, None, None, ctx)?;
        let op = odoo_client::domain::Operator::parse(operator)
            .ok_or_else(|| OrmError::Value(format!("Invalid operator {operator:?}")))?;
        let cond = odoo_client::domain::Condition::new("display_name", op, name);
        let filter = Domain::from_conditions([cond]);
        let mut out = Vec::new();
        for id in ids {
            if out.len() >= limit {
                break;
            }
            if name.is_empty() || self.matches(mi, id, &filter, ctx) {
                out.push(json!([id, self.display_name(mi, id, ctx)]));
            }
        }
        Ok(Value::Array(out))
    }
}

/// `expr` without the top-level leaf `answered` (by identity).
fn without_leaf<'a>(expr: &Expr<'a>, answered: &Condition) -> Expr<'a> {
    match expr {
        Expr::Leaf(c) if std::ptr::eq(*c, answered) => Expr::True,
        Expr::And(items) => Expr::And(
            items
                .iter()
                .filter(|e| !matches!(e, Expr::Leaf(c) if std::ptr::eq(*c, answered)))
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `order` is ascending id (the keyset pagination's order).
fn is_id_order(order: &str) -> bool {
    let words: Vec<&str> = order.split_whitespace().collect();
    matches!(words.as_slice(), ["id"] | ["id", "asc" | "ASC"])
}

/// The smallest id a conjunction with `id > n` or `id >= n` can match (1 when
/// it has none): rows below it need not be looked at.
fn id_lower_bound(expr: &Expr<'_>) -> i64 {
    let bound = |c: &Condition| -> Option<i64> {
        if c.path != "id" {
            return None;
        }
        let n = c.value.as_i64()?;
        match c.operator {
            Operator::Gt => n.checked_add(1),
            Operator::Ge => Some(n),
            _ => None,
        }
    };
    match expr {
        Expr::Leaf(c) => bound(c),
        Expr::And(items) => items
            .iter()
            .filter_map(|e| match e {
                Expr::Leaf(c) => bound(c),
                _ => None,
            })
            .max(),
        _ => None,
    }
    .unwrap_or(1)
    .max(1)
}

/// The SQL `CHECK` constraints of the models served that a client can hit,
/// reported as Odoo reports a violated constraint.
fn check_constraint(def: &ModelDef, field: &FieldDef, value: &Val) -> Result<(), OrmError> {
    // ir_cron's `check_strictly_positive_interval`.
    if def.name == "ir.cron"
        && field.name == "interval_number"
        && matches!(value, Val::Int(n) if *n <= 0)
    {
        return Err(OrmError::Validation(
            "The operation cannot be completed: The interval number must be a strictly positive number."
                .into(),
        ));
    }
    Ok(())
}
