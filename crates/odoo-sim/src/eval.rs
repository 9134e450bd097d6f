//! Domain evaluation over stored records, with Odoo's NULL semantics.

use std::collections::HashSet;

use serde_json::Value;

use super::model::{FieldDef, FieldType};
use super::orm::Ctx;
use super::store::Store;
use super::value::{Val, parse_date, parse_datetime_exact};
use crate::db::OdooVersion;
use crate::db::OrmError;
use odoo_client::domain::{Condition, Domain, Expr, Operator};

const DATE_PARTS: &[&str] = &[
    "year_number",
    "quarter_number",
    "month_number",
    "iso_week_number",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "hour_number",
    "minute_number",
    "second_number",
];

impl Store {
    /// Checks a domain's field paths against the model, as Odoo does before
    /// running the query ("Invalid field …").
    pub fn check_domain(&self, mi: usize, domain: &Domain) -> Result<(), OrmError> {
        for term in domain.terms() {
            if let odoo_client::domain::Term::Leaf(condition) = term {
                self.check_path(mi, condition)?;
            }
        }
        Ok(())
    }

    fn check_path(&self, mi: usize, condition: &Condition) -> Result<(), OrmError> {
        if condition.path == "1" || condition.path == "0" {
            return Ok(());
        }
        // `any` / `not any` came with 17; 16 knows no such operator.
        if self.version < OdooVersion::V17
            && matches!(condition.operator, Operator::Any | Operator::NotAny)
        {
            return Err(OrmError::Value(format!(
                "Invalid leaf ['{}', '{}', {}]",
                condition.path,
                condition.operator.as_str(),
                python_repr(&condition.value)
            )));
        }
        let mut model = mi;
        let segments: Vec<&str> = condition.path.split('.').collect();
        let mut index = 0;
        while index < segments.len() {
            let segment = segments[index];
            let def = &self.tables[model].def;
            let Some(field) = def.field(segment) else {
                return Err(OrmError::Value(format!(
                    "Invalid field {}.{} in condition {}",
                    def.name,
                    segment,
                    condition_text(condition)
                )));
            };
            if index + 1 < segments.len() {
                if matches!(field.ftype, FieldType::Date | FieldType::Datetime)
                    && DATE_PARTS.contains(&segments[index + 1])
                    && index + 2 == segments.len()
                {
                    // Date parts in paths (`date.month_number`) came with 18;
                    // before, the path is not a field.
                    if self.version < OdooVersion::V18 {
                        return Err(OrmError::Value(format!(
                            "Invalid field '{}' in domain term {}",
                            condition.path,
                            condition_text(condition)
                        )));
                    }
                    return Ok(());
                }
                let Some(relation) = &field.relation else {
                    return Err(OrmError::Value(format!(
                        "Invalid field {}.{} in condition {}",
                        def.name,
                        segments[index + 1],
                        condition_text(condition)
                    )));
                };
                model = self.model_index(relation)?;
            } else if matches!(condition.operator, Operator::Any | Operator::NotAny) {
                let Some(relation) = &field.relation else {
                    return Err(OrmError::Value(format!(
                        "Invalid operator 'any' on non-relational field {}.{}",
                        def.name, segment
                    )));
                };
                let target = self.model_index(relation)?;
                if let Some(sub) = condition.subdomain() {
                    self.check_domain(target, &sub)?;
                }
            }
            index += 1;
        }
        Ok(())
    }

    /// The time zone set on user `uid` (`tz`), if any and known.
    pub fn user_tz(&self, uid: i64) -> Option<jiff::tz::TimeZone> {
        let ui = self.model_index("res.users").ok()?;
        let name = self.slot_value(ui, uid, "tz");
        jiff::tz::TimeZone::get(name.as_str()?).ok()
    }

    /// Does record `id` of model `mi` satisfy the domain?
    pub fn matches(&self, mi: usize, id: i64, domain: &Domain, ctx: &Ctx) -> bool {
        self.eval_expr(mi, id, &domain.expr(), ctx)
    }

    pub fn eval_expr(&self, mi: usize, id: i64, expr: &Expr<'_>, ctx: &Ctx) -> bool {
        self.eval_expr_with(mi, id, expr, ctx, &IdLists::default())
    }

    /// [`Store::eval_expr`] with the id lists of `expr` already made sets.
    pub(crate) fn eval_expr_with(
        &self,
        mi: usize,
        id: i64,
        expr: &Expr<'_>,
        ctx: &Ctx,
        lists: &IdLists<'_>,
    ) -> bool {
        match expr {
            Expr::True => true,
            Expr::And(parts) => parts
                .iter()
                .all(|p| self.eval_expr_with(mi, id, p, ctx, lists)),
            Expr::Or(parts) => parts
                .iter()
                .any(|p| self.eval_expr_with(mi, id, p, ctx, lists)),
            Expr::Not(inner) => !self.eval_expr_with(mi, id, inner, ctx, lists),
            Expr::Leaf(condition) => self.eval_leaf(mi, id, condition, ctx, lists),
        }
    }

    fn eval_leaf(
        &self,
        mi: usize,
        id: i64,
        condition: &Condition,
        ctx: &Ctx,
        lists: &IdLists<'_>,
    ) -> bool {
        if condition.path == "1" {
            return true;
        }
        if condition.path == "0" {
            return false;
        }
        if condition.operator == Operator::EqOrUnset && is_unset(&condition.value) {
            return true;
        }
        let segments: Vec<&str> = condition.path.split('.').collect();
        self.eval_path(mi, id, &segments, condition, ctx, lists)
    }

    fn eval_path(
        &self,
        mi: usize,
        id: i64,
        segments: &[&str],
        condition: &Condition,
        ctx: &Ctx,
        lists: &IdLists<'_>,
    ) -> bool {
        let def = self.tables[mi].def.clone();
        let Some(field) = def.field(segments[0]) else {
            return false;
        };
        let value = self.get(mi, id, field, ctx);
        if segments.len() > 1 {
            if matches!(field.ftype, FieldType::Date | FieldType::Datetime)
                && DATE_PARTS.contains(&segments[1])
            {
                let part = date_part(&value, segments[1]);
                return compare_leaf(
                    &FieldDef::synthetic_integer(),
                    &part,
                    condition.operator,
                    &condition.value,
                    self,
                    ctx,
                    None,
                );
            }
            let Some(relation) = &field.relation else {
                return false;
            };
            let Ok(target) = self.model_index(relation) else {
                return false;
            };
            let targets: Vec<i64> = match &value {
                Val::Id(t) => vec![*t],
                Val::Ids(ids) => ids.to_vec(),
                _ => Vec::new(),
            };
            if targets.is_empty() {
                // Odoo: a path through an empty relation compares like NULL.
                return self.null_result(condition);
            }
            let negative = matches!(
                condition.operator,
                Operator::Ne
                    | Operator::NotIn
                    | Operator::NotLike
                    | Operator::NotILike
                    | Operator::NotAny
            );
            if negative && field.ftype.is_x2many() {
                // "not" conditions through x2many hold when no linked record
                // has the excluded value.
                return targets
                    .iter()
                    .all(|&t| self.eval_path(target, t, &segments[1..], condition, ctx, lists));
            }
            return targets
                .iter()
                .any(|&t| self.eval_path(target, t, &segments[1..], condition, ctx, lists));
        }
        let by_id =
            field.name == "id" || matches!(field.ftype, FieldType::Many2one | FieldType::Integer);
        if by_id && let Some(set) = lists.get(condition) {
            let member = match value {
                Val::Int(n) | Val::Id(n) => Some(set.contains(&n)),
                Val::False => Some(false),
                _ => None,
            };
            // The list holds no NULL (it is all ids), so a NULL is in no list
            // and outside every one, as the comparison below has it.
            if let Some(member) = member {
                return (condition.operator == Operator::In) == member;
            }
        }
        compare_leaf(
            field,
            &value,
            condition.operator,
            &condition.value,
            self,
            ctx,
            Some(mi),
        )
    }

    fn null_result(&self, condition: &Condition) -> bool {
        match condition.operator {
            Operator::Eq | Operator::EqOrUnset => is_unset(&condition.value),
            Operator::Ne => !is_unset(&condition.value),
            Operator::In => list_of(&condition.value).iter().any(|v| is_unset(v)),
            Operator::NotIn => !list_of(&condition.value).iter().any(|v| is_unset(v)),
            Operator::NotLike | Operator::NotILike | Operator::NotAny => true,
            _ => false,
        }
    }

    /// Ids reachable from `roots` through the model's parent field (inclusive).
    pub fn descendants(&self, mi: usize, roots: &[i64]) -> HashSet<i64> {
        let def = &self.tables[mi].def;
        let mut found: HashSet<i64> = roots.iter().copied().collect();
        let Some(parent) = def.parent_field.as_deref().and_then(|p| def.slot_of(p)) else {
            return found;
        };
        let mut frontier: Vec<i64> = roots.to_vec();
        while let Some(current) = frontier.pop() {
            let children: Vec<i64> = match self.tables[mi].lookup(parent, current) {
                Some(list) => list.to_vec(),
                None => self.tables[mi]
                    .ids()
                    .filter(|&c| {
                        self.tables[mi]
                            .get(c)
                            .is_some_and(|r| r.vals[parent].as_id() == Some(current))
                    })
                    .collect(),
            };
            for child in children {
                if found.insert(child) {
                    frontier.push(child);
                }
            }
        }
        found
    }

    fn ancestors(&self, mi: usize, roots: &[i64]) -> HashSet<i64> {
        let def = &self.tables[mi].def;
        let mut found: HashSet<i64> = HashSet::new();
        let parent = def.parent_field.as_deref().and_then(|p| def.slot_of(p));
        for &root in roots {
            let mut current = Some(root);
            while let Some(id) = current {
                if !found.insert(id) {
                    break;
                }
                current = parent
                    .and_then(|slot| self.tables[mi].get(id).and_then(|r| r.vals[slot].as_id()));
            }
        }
        found
    }

    /// Resolves a value of a relational condition given as names (strings) to ids.
    fn resolve_ids(&self, relation_mi: usize, value: &Value, ctx: &Ctx) -> Vec<i64> {
        let mut ids = Vec::new();
        for item in list_of(value) {
            match item {
                Value::Number(n) => ids.extend(n.as_i64()),
                Value::String(name) => {
                    let needle = name.to_lowercase();
                    for candidate in self.tables[relation_mi].ids() {
                        if self
                            .display_name(relation_mi, candidate, ctx)
                            .to_lowercase()
                            .contains(&needle)
                        {
                            ids.push(candidate);
                        }
                    }
                }
                _ => {}
            }
        }
        ids
    }
}

impl FieldDef {
    fn synthetic_integer() -> FieldDef {
        FieldDef {
            name: "date_part".into(),
            ftype: FieldType::Integer,
            string: String::new(),
            required: false,
            readonly: true,
            relation: None,
            selection: Vec::new(),
            storage: super::model::Storage::Computed,
            default: None,
            indexed: false,
            help: None,
            reported_type: None,
            stored_in_odoo: false,
        }
    }
}

fn date_part(value: &Val, part: &str) -> Val {
    let datetime = match value {
        Val::Date(d) => d.to_datetime(jiff::civil::Time::midnight()),
        Val::Datetime(dt) => *dt,
        _ => return Val::False,
    };
    let date = datetime.date();
    let number = match part {
        "year_number" => i64::from(date.year()),
        "quarter_number" => i64::from((date.month() - 1) / 3 + 1),
        "month_number" => i64::from(date.month()),
        "iso_week_number" => i64::from(date.iso_week_date().week()),
        "day_of_week" => i64::from(date.weekday().to_sunday_zero_offset()),
        "day_of_month" => i64::from(date.day()),
        "day_of_year" => i64::from(date.day_of_year()),
        "hour_number" => i64::from(datetime.hour()),
        "minute_number" => i64::from(datetime.minute()),
        "second_number" => i64::from(datetime.second()),
        _ => return Val::False,
    };
    Val::Int(number)
}

fn condition_text(condition: &Condition) -> String {
    format!(
        "('{}', '{}', {})",
        condition.path,
        condition.operator.as_str(),
        python_repr(&condition.value)
    )
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn is_unset(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Bool(false))
}

fn list_of(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The integer lists of a domain's long `in` / `not in` leaves as sets, made
/// once per search: a `not in [20 000 ids]` then costs one lookup per row, not
/// a pass over the list (PostgreSQL hashes such lists too).
#[derive(Default)]
pub(crate) struct IdLists<'a> {
    sets: Vec<(&'a Condition, HashSet<i64>)>,
}

impl<'a> IdLists<'a> {
    /// Lists shorter than this are compared in place.
    const LONG: usize = 32;

    pub(crate) fn of(expr: &Expr<'a>) -> IdLists<'a> {
        let mut lists = IdLists::default();
        lists.collect(expr);
        lists
    }

    fn collect(&mut self, expr: &Expr<'a>) {
        match expr {
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| self.collect(p)),
            Expr::Not(inner) => self.collect(inner),
            Expr::Leaf(c) => {
                let Value::Array(items) = &c.value else {
                    return;
                };
                if !matches!(c.operator, Operator::In | Operator::NotIn) || items.len() < Self::LONG
                {
                    return;
                }
                let ids: Option<HashSet<i64>> = items.iter().map(Value::as_i64).collect();
                if let Some(ids) = ids {
                    self.sets.push((*c, ids));
                }
            }
            Expr::True => {}
        }
    }

    fn get(&self, condition: &Condition) -> Option<&HashSet<i64>> {
        self.sets
            .iter()
            .find(|(c, _)| std::ptr::eq(*c, condition))
            .map(|(_, set)| set)
    }
}

/// SQL LIKE pattern matching with `%` and `_` (backslash escapes).
pub fn like_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (pattern, text) = if case_insensitive {
        (pattern.to_lowercase(), text.to_lowercase())
    } else {
        (pattern.to_string(), text.to_string())
    };
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard matching with backtracking on the last '%'.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '\\' && pi + 1 < p.len() && p[pi + 1] == t[ti] {
            pi += 2;
            ti += 1;
        } else if pi < p.len()
            && (p[pi] == '_' || (p[pi] == t[ti] && p[pi] != '%' && p[pi] != '\\'))
        {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Converts a domain value to a comparable stored value for the field.
fn coerce(field: &FieldDef, value: &Value) -> Option<Val> {
    if is_unset(value) {
        return Some(Val::False);
    }
    Some(match field.ftype {
        FieldType::Integer | FieldType::Float | FieldType::Monetary => match value {
            Value::Number(n) => Val::Float(n.as_f64()?),
            Value::Bool(true) => Val::Float(1.0),
            Value::String(s) => Val::Float(s.trim().parse().ok()?),
            _ => return None,
        },
        FieldType::Boolean => match value {
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Bool(n.as_f64()? != 0.0),
            _ => return None,
        },
        FieldType::Date => match value {
            Value::String(s) => Val::Date(parse_date(s)?),
            _ => return None,
        },
        FieldType::Datetime => match value {
            Value::String(s) => Val::Datetime(parse_datetime_exact(s)?),
            _ => return None,
        },
        FieldType::Many2one | FieldType::One2many | FieldType::Many2many => match value {
            Value::Number(n) => Val::Id(n.as_i64()?),
            Value::Bool(true) => return None,
            _ => return None,
        },
        _ => match value {
            Value::String(s) => Val::str(s),
            Value::Number(n) => Val::str(&n.to_string()),
            Value::Bool(true) => Val::Bool(true),
            _ => return None,
        },
    })
}

fn value_is_null(field: &FieldDef, value: &Val) -> bool {
    match value {
        Val::False => true,
        Val::Str(s) => s.is_empty() && field.ftype.is_textual(),
        Val::Ids(ids) => ids.is_empty(),
        Val::Bool(false) => field.ftype == FieldType::Boolean,
        _ => false,
    }
}

fn equal(field: &FieldDef, stored: &Val, wanted: &Val) -> bool {
    match (stored, wanted) {
        (_, Val::False) => value_is_null(field, stored),
        (Val::False, _) => false,
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Ids(ids), Val::Id(id)) => ids.contains(id),
        (Val::Id(a), Val::Id(b)) => a == b,
        (Val::Str(a), Val::Str(b)) => a == b,
        (Val::Date(a), Val::Date(b)) => a == b,
        (Val::Datetime(a), Val::Datetime(b)) => a == b,
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            _ => false,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_leaf(
    field: &FieldDef,
    stored: &Val,
    operator: Operator,
    raw: &Value,
    store: &Store,
    ctx: &Ctx,
    model: Option<usize>,
) -> bool {
    let relation_mi = field
        .relation
        .as_deref()
        .and_then(|r| store.model_index(r).ok());
    // Relational fields compared with names go through the target's display name.
    if let (Some(target), true) = (relation_mi, field.ftype.is_relational()) {
        let stored_ids: Vec<i64> = match stored {
            Val::Id(id) => vec![*id],
            Val::Ids(ids) => ids.to_vec(),
            _ => Vec::new(),
        };
        match operator {
            Operator::Any | Operator::NotAny => {
                let sub = Domain::from_json_value(raw).unwrap_or_default();
                let any = stored_ids
                    .iter()
                    .any(|&t| store.matches(target, t, &sub, ctx));
                return (operator == Operator::Any) == any;
            }
            Operator::ChildOf | Operator::ParentOf => {
                let roots = store.resolve_ids(target, raw, ctx);
                let set = if operator == Operator::ChildOf {
                    store.descendants(target, &roots)
                } else {
                    store.ancestors(target, &roots)
                };
                return stored_ids.iter().any(|t| set.contains(t));
            }
            Operator::Like
            | Operator::ILike
            | Operator::NotLike
            | Operator::NotILike
            | Operator::EqLike
            | Operator::EqILike => {
                let names: Vec<String> = stored_ids
                    .iter()
                    .map(|&t| store.display_name(target, t, ctx))
                    .collect();
                let text = raw
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| raw.to_string());
                let hit = names.iter().any(|n| text_like(operator, n, &text));
                return match operator {
                    Operator::NotLike | Operator::NotILike => {
                        stored_ids.is_empty()
                            || !names
                                .iter()
                                .any(|n| text_like(positive(operator), n, &text))
                    }
                    _ => hit,
                };
            }
            Operator::Eq | Operator::Ne | Operator::EqOrUnset | Operator::In | Operator::NotIn
                if list_of(raw).iter().any(|v| v.is_string()) =>
            {
                let wanted: HashSet<i64> = list_of(raw)
                    .iter()
                    .filter_map(|v| v.as_str())
                    .flat_map(|name| {
                        store.tables[target]
                            .ids()
                            .filter(|&t| store.display_name(target, t, ctx) == name)
                            .collect::<Vec<_>>()
                    })
                    .chain(list_of(raw).iter().filter_map(|v| v.as_i64()))
                    .collect();
                let hit = stored_ids.iter().any(|t| wanted.contains(t));
                let has_null = list_of(raw).iter().any(|v| is_unset(v));
                return match operator {
                    Operator::Ne | Operator::NotIn => !(hit || has_null && stored_ids.is_empty()),
                    _ => hit || (has_null && stored_ids.is_empty()),
                };
            }
            _ => {}
        }
    } else if matches!(operator, Operator::ChildOf | Operator::ParentOf) {
        // Non-relational: the record itself (id field) on a hierarchical model.
        if let (Some(mi), Val::Int(own)) = (model, stored)
            && field.name == "id"
        {
            let roots: Vec<i64> = list_of(raw).iter().filter_map(|v| v.as_i64()).collect();
            let set = if operator == Operator::ChildOf {
                store.descendants(mi, &roots)
            } else {
                store.ancestors(mi, &roots)
            };
            return set.contains(own);
        }
        return false;
    }
    if field.name == "id"
        && let (Operator::ChildOf | Operator::ParentOf, Some(_)) = (operator, model)
    {
        return false;
    }

    match operator {
        Operator::Eq | Operator::EqOrUnset => {
            coerce(field, raw).is_some_and(|w| equal(field, stored, &w))
        }
        Operator::Ne => match coerce(field, raw) {
            Some(Val::False) => !value_is_null(field, stored),
            Some(w) => value_is_null(field, stored) || !equal(field, stored, &w),
            None => true,
        },
        Operator::In | Operator::NotIn => {
            let wanted: Vec<Val> = list_of(raw)
                .iter()
                .filter_map(|v| coerce(field, v))
                .collect();
            let has_null = wanted.iter().any(|w| matches!(w, Val::False));
            let is_null = value_is_null(field, stored);
            let hit = if is_null {
                has_null
            } else {
                wanted
                    .iter()
                    .any(|w| !matches!(w, Val::False) && equal(field, stored, w))
            };
            if operator == Operator::In {
                hit
            } else if is_null {
                !has_null
            } else {
                !hit
            }
        }
        Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
            let Some(wanted) =
                day_bound(field, operator, raw, store, ctx).or_else(|| coerce(field, raw))
            else {
                return false;
            };
            if value_is_null(field, stored) && !matches!(stored, Val::Bool(false))
                || matches!(wanted, Val::False)
            {
                return false;
            }
            let ordering = stored.compare(&wanted);
            match operator {
                Operator::Gt => ordering.is_gt(),
                Operator::Ge => ordering.is_ge(),
                Operator::Lt => ordering.is_lt(),
                _ => ordering.is_le(),
            }
        }
        Operator::Like
        | Operator::ILike
        | Operator::EqLike
        | Operator::EqILike
        | Operator::NotLike
        | Operator::NotILike => {
            let text = match raw {
                Value::String(s) => s.clone(),
                Value::Bool(false) | Value::Null => String::new(),
                other => other.to_string(),
            };
            let stored_text = match stored {
                Val::Str(s) => Some(s.to_string()),
                Val::False => None,
                Val::Date(_) | Val::Datetime(_) => super::value::to_json(field.ftype, stored)
                    .as_str()
                    .map(str::to_string),
                other => other.as_f64().map(|f| f.to_string()),
            };
            match operator {
                Operator::NotLike | Operator::NotILike => match stored_text {
                    None => true,
                    Some(s) => !text_like(positive(operator), &s, &text),
                },
                _ => match stored_text {
                    // NULL never matches a positive LIKE.
                    None => false,
                    Some(s) => text_like(operator, &s, &text),
                },
            }
        }
        Operator::Any | Operator::NotAny | Operator::ChildOf | Operator::ParentOf => false,
    }
}

/// A date alone (`2025-03-05`) compared with a datetime field stands for a
/// moment of that day: its end for `>` and `<=` (so `> day` is after the whole
/// day and `<= day` includes it), its start for `<` and `>=`. Up to 18 the day
/// is a UTC one (the value gets ` 23:59:59` or ` 00:00:00`); 19 takes the day
/// in the caller's time zone (`tz`), and compares `>`/`<=` with the next
/// day's start, which for second-precise values is the same bound.
fn day_bound(
    field: &FieldDef,
    operator: Operator,
    raw: &Value,
    store: &Store,
    ctx: &Ctx,
) -> Option<Val> {
    if field.ftype != FieldType::Datetime {
        return None;
    }
    let text = raw.as_str().map(str::trim).filter(|t| t.len() == 10)?;
    let day = parse_date(text)?;
    let end_of_day = matches!(operator, Operator::Gt | Operator::Le);
    let local = if end_of_day {
        day.to_datetime(jiff::civil::time(23, 59, 59, 0))
    } else {
        day.to_datetime(jiff::civil::Time::midnight())
    };
    if store.version < OdooVersion::V19 {
        return Some(Val::Datetime(local));
    }
    let zone = ctx.tz.clone().or_else(|| store.user_tz(ctx.uid));
    let utc = match zone {
        Some(zone) => zone
            .to_ambiguous_zoned(local)
            .compatible()
            .ok()?
            .with_time_zone(jiff::tz::TimeZone::UTC)
            .datetime(),
        None => local,
    };
    Some(Val::Datetime(utc))
}

fn positive(operator: Operator) -> Operator {
    match operator {
        Operator::NotLike => Operator::Like,
        Operator::NotILike => Operator::ILike,
        other => other,
    }
}

fn text_like(operator: Operator, stored: &str, text: &str) -> bool {
    match operator {
        Operator::Like => like_match(&format!("%{}%", escape_like(text)), stored, false),
        Operator::ILike => like_match(&format!("%{}%", escape_like(text)), stored, true),
        Operator::EqLike => like_match(text, stored, false),
        Operator::EqILike => like_match(text, stored, true),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::like_match;

    #[test]
    fn like_patterns() {
        assert!(like_match("SKU-%", "SKU-12", false));
        assert!(!like_match("SKU-%", "sku-12", false));
        assert!(like_match("SKU-%", "sku-12", true));
        assert!(like_match("S_U", "SKU", false));
        assert!(!like_match("S_U", "SKKU", false));
        assert!(like_match("%a%b%", "xxaxxbxx", false));
        assert!(like_match("100\\%", "100%", false));
        assert!(!like_match("100\\%", "1000", false));
        assert!(like_match("%", "", false));
    }
}
