//! Grouped reads: `read_group` (16–19, deprecated in 19) and
//! `formatted_read_group` (19), with the result shapes Odoo answers.
//!
//! Both share one grouping core; they differ in how keys, aggregates and the
//! group's domain are written out.

use std::cmp::Ordering;
use std::collections::HashMap;

use jiff::Span;
use jiff::civil::{Date, Time};
use serde_json::{Map, Value, json};

use super::model::{FieldDef, FieldType};
use super::orm::Ctx;
use super::store::Store;
use super::value::{self, Val};
use crate::db::OrmError;
use odoo_client::domain::{Condition, Domain, Operator};

/// Date bucket of a `date:month`-style group-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Granularity {
    fn parse(text: &str) -> Option<Granularity> {
        Some(match text {
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            "quarter" => Granularity::Quarter,
            "year" => Granularity::Year,
            _ => return None,
        })
    }

    /// First day of the bucket holding `date` (PostgreSQL `date_trunc`; weeks
    /// start on Monday).
    pub fn start(self, date: Date) -> Date {
        let first_of = |month: i8| Date::new(date.year(), month, 1).unwrap_or(date);
        match self {
            Granularity::Day => date,
            Granularity::Week => date
                .checked_sub(Span::new().days(i64::from(date.weekday().to_monday_zero_offset())))
                .unwrap_or(date),
            Granularity::Month => first_of(date.month()),
            Granularity::Quarter => first_of((date.month() - 1) / 3 * 3 + 1),
            Granularity::Year => first_of(1),
        }
    }

    /// First day after the bucket that starts on `start`.
    pub fn end(self, start: Date) -> Date {
        let span = match self {
            Granularity::Day => Span::new().days(1),
            Granularity::Week => Span::new().days(7),
            Granularity::Month => Span::new().months(1),
            Granularity::Quarter => Span::new().months(3),
            Granularity::Year => Span::new().years(1),
        };
        start.checked_add(span).unwrap_or(start)
    }

    /// Odoo's label (babel patterns `dd MMM yyyy`, `'W'w YYYY`, `MMMM yyyy`,
    /// `QQQ yyyy`, `yyyy` in en_US). Weeks use ISO numbering, which matches
    /// babel's for Monday-start locales.
    pub fn label(self, start: Date) -> String {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let month = MONTHS[usize::try_from(start.month() - 1).unwrap_or(0) % 12];
        match self {
            Granularity::Day => format!("{:02} {} {}", start.day(), &month[..3], start.year()),
            Granularity::Week => {
                let iso = start.iso_week_date();
                format!("W{} {}", iso.week(), iso.year())
            }
            Granularity::Month => format!("{month} {}", start.year()),
            Granularity::Quarter => format!("Q{} {}", (start.month() - 1) / 3 + 1, start.year()),
            Granularity::Year => start.year().to_string(),
        }
    }
}

/// The user's calendar day of a UTC datetime (UTC without a `tz`).
fn local_date(utc: jiff::civil::DateTime, ctx: &Ctx) -> Date {
    match &ctx.tz {
        Some(tz) => jiff::tz::TimeZone::UTC
            .to_zoned(utc)
            .map(|z| z.with_time_zone(tz.clone()).date())
            .unwrap_or(utc.date()),
        None => utc.date(),
    }
}

/// The UTC datetime of midnight of `day` in the user's time zone.
fn utc_of_local_midnight(day: Date, ctx: &Ctx) -> jiff::civil::DateTime {
    let midnight = day.to_datetime(Time::midnight());
    match &ctx.tz {
        Some(tz) => tz
            .to_ambiguous_zoned(midnight)
            .compatible()
            .map(|z| z.with_time_zone(jiff::tz::TimeZone::UTC).datetime())
            .unwrap_or(midnight),
        None => midnight,
    }
}

/// One parsed group-by.
struct GroupBy {
    /// As asked: `date:month`, `product_id`.
    spec: String,
    field: FieldDef,
    granularity: Option<Granularity>,
}

/// One parsed aggregate.
struct Agg {
    /// Result key: the field or alias (read_group), the spec (formatted).
    key: String,
    field: Option<FieldDef>,
    function: String,
}

/// The value a record groups under: a many2one id, a date bucket start, or the raw value.
type Key = Val;

struct Bucket {
    keys: Vec<Key>,
    ids: Vec<i64>,
}

/// Output dialect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 16–18 `read_group`: labels for dates, `__range`, `__domain`.
    Classic,
    /// 19 `formatted_read_group`: `[start, label]` dates, `__extra_domain`.
    Formatted,
}

/// Arguments of `read_group`.
pub struct ReadGroupArgs<'a> {
    pub domain: &'a Domain,
    pub fields: &'a [String],
    pub groupby: &'a [String],
    pub offset: usize,
    pub limit: Option<usize>,
    pub orderby: Option<&'a str>,
    pub lazy: bool,
}

/// Arguments of `formatted_read_group`.
pub struct FormattedArgs<'a> {
    pub domain: &'a Domain,
    pub groupby: &'a [String],
    pub aggregates: &'a [String],
    pub offset: usize,
    pub limit: Option<usize>,
    pub order: Option<&'a str>,
}

fn invalid(message: String) -> OrmError {
    OrmError::Value(message)
}

impl Store {
    pub fn read_group(
        &self,
        model: &str,
        args: &ReadGroupArgs,
        ctx: &Ctx,
    ) -> Result<Value, OrmError> {
        let mi = self.model_index(model)?;
        let all = self.parse_groupbys(mi, args.groupby)?;
        if all.is_empty() {
            return Err(invalid(format!(
                "{model}.read_group(): groupby is required"
            )));
        }
        // lazy: only the first group-by, the rest go to __context.
        let applied = if args.lazy { 1 } else { all.len() };
        let groupbys = &all[..applied];
        let mut aggs = Vec::new();
        for spec in args.fields {
            if let Some(agg) = self.parse_field_spec(mi, spec, groupbys)? {
                aggs.push(agg);
            }
        }
        let count_key = if args.lazy {
            format!("{}_count", groupbys[0].field.name)
        } else {
            "__count".to_string()
        };
        let rows = self.grouped_rows(
            mi,
            args.domain,
            groupbys,
            &aggs,
            &count_key,
            (args.offset, args.limit, args.orderby),
            Shape::Classic,
            ctx,
        )?;
        let rest: Vec<&str> = all[applied..].iter().map(|g| g.spec.as_str()).collect();
        Ok(Value::Array(
            rows.into_iter()
                .map(|mut row| {
                    if args.lazy && !rest.is_empty() {
                        row.insert("__context".into(), json!({"group_by": rest}));
                    }
                    Value::Object(row)
                })
                .collect(),
        ))
    }

    pub fn formatted_read_group(
        &self,
        model: &str,
        args: &FormattedArgs,
        ctx: &Ctx,
    ) -> Result<Value, OrmError> {
        let mi = self.model_index(model)?;
        let groupbys = self.parse_groupbys(mi, args.groupby)?;
        let mut aggs = Vec::new();
        let mut count_key = None;
        for spec in args.aggregates {
            if spec == "__count" {
                count_key = Some("__count".to_string());
                continue;
            }
            let (name, function) = spec.split_once(':').ok_or_else(|| {
                invalid(format!(
                    "Invalid aggregate {spec:?}: expected 'field:function'"
                ))
            })?;
            let field = self.group_field(mi, name)?;
            check_function(function)?;
            aggs.push(Agg {
                key: spec.clone(),
                field: Some(field),
                function: function.to_string(),
            });
        }
        let rows = self.grouped_rows(
            mi,
            args.domain,
            &groupbys,
            &aggs,
            count_key.as_deref().unwrap_or(""),
            (args.offset, args.limit, args.order),
            Shape::Formatted,
            ctx,
        )?;
        Ok(Value::Array(rows.into_iter().map(Value::Object).collect()))
    }

    fn group_field(&self, mi: usize, name: &str) -> Result<FieldDef, OrmError> {
        let def = &self.tables[mi].def;
        def.field(name)
            .cloned()
            .ok_or_else(|| invalid(format!("Invalid field {name:?} on model {:?}", def.name)))
    }

    fn parse_groupbys(&self, mi: usize, specs: &[String]) -> Result<Vec<GroupBy>, OrmError> {
        specs
            .iter()
            .map(|spec| {
                let (name, granularity) = match spec.split_once(':') {
                    Some((name, g)) => (
                        name,
                        Some(Granularity::parse(g).ok_or_else(|| {
                            invalid(format!(
                                "Invalid groupby {spec:?}: unknown granularity {g:?}"
                            ))
                        })?),
                    ),
                    None => (spec.as_str(), None),
                };
                let field = self.group_field(mi, name)?;
                let is_date = matches!(field.ftype, FieldType::Date | FieldType::Datetime);
                if granularity.is_some() && !is_date {
                    return Err(invalid(format!(
                        "Invalid groupby {spec:?}: granularity on a non-date field"
                    )));
                }
                if field.ftype.is_x2many() || field.ftype == FieldType::Binary {
                    return Err(invalid(format!(
                        "Field {name:?} of type {} cannot be grouped by in the simulator",
                        field.ftype.as_str()
                    )));
                }
                Ok(GroupBy {
                    spec: spec.clone(),
                    // Odoo groups dates by month unless told otherwise.
                    granularity: granularity.or(is_date.then_some(Granularity::Month)),
                    field,
                })
            })
            .collect()
    }

    /// A `read_group` `fields` entry: `field`, `field:agg`, `alias:agg(field)`
    /// or `__count`. Fields without an aggregate (no function and not numeric)
    /// and the group-by fields themselves are skipped, as Odoo does.
    fn parse_field_spec(
        &self,
        mi: usize,
        spec: &str,
        groupbys: &[GroupBy],
    ) -> Result<Option<Agg>, OrmError> {
        if spec == "__count" || spec == "id" {
            return Ok(None);
        }
        let (key, name, function) = match spec.split_once(':') {
            Some((alias, rest)) => match rest.split_once('(') {
                Some((function, field)) => (alias, field.trim_end_matches(')'), Some(function)),
                None => (alias, alias, Some(rest)),
            },
            None => (spec, spec, None),
        };
        let field = self.group_field(mi, name)?;
        if groupbys.iter().any(|g| g.field.name == field.name) {
            return Ok(None);
        }
        let function = match function {
            Some(f) => {
                check_function(f)?;
                f.to_string()
            }
            None if field.ftype.is_numeric() => "sum".to_string(),
            None => return Ok(None),
        };
        Ok(Some(Agg {
            key: key.to_string(),
            field: Some(field),
            function,
        }))
    }

    /// Groups the records matching `domain`, aggregates, orders and pages.
    #[allow(clippy::too_many_arguments)]
    fn grouped_rows(
        &self,
        mi: usize,
        domain: &Domain,
        groupbys: &[GroupBy],
        aggs: &[Agg],
        count_key: &str,
        (offset, limit, order): (usize, Option<usize>, Option<&str>),
        shape: Shape,
        ctx: &Ctx,
    ) -> Result<Vec<Map<String, Value>>, OrmError> {
        let model = self.tables[mi].def.name.clone();
        let ids = self.search(&model, domain, 0, None, Some("id"), ctx)?;
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for id in ids {
            let keys: Vec<Key> = groupbys
                .iter()
                .map(|g| self.group_key(mi, id, g, ctx))
                .collect();
            let signature = format!("{keys:?}");
            match index.get(&signature) {
                Some(&i) => buckets[i].ids.push(id),
                None => {
                    index.insert(signature, buckets.len());
                    buckets.push(Bucket {
                        keys,
                        ids: vec![id],
                    });
                }
            }
        }
        let values: Vec<Vec<Val>> = buckets
            .iter()
            .map(|b| {
                aggs.iter()
                    .map(|a| self.aggregate(mi, &b.ids, a, ctx))
                    .collect()
            })
            .collect();
        let mut order_index: Vec<usize> = (0..buckets.len()).collect();
        let comparator = self.group_order(mi, groupbys, aggs, count_key, order, &buckets, ctx)?;
        order_index.sort_by(|&a, &b| comparator(&buckets[a], &values[a], &buckets[b], &values[b]));
        let page = order_index
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX));
        let mut rows = Vec::new();
        for i in page {
            let bucket = &buckets[i];
            let mut row = Map::new();
            let mut ranges = Map::new();
            let mut group_domain = Domain::all();
            for (g, key) in groupbys.iter().zip(&bucket.keys) {
                let (json_key, range, part) = self.format_key(g, key, shape, ctx)?;
                row.insert(g.spec.clone(), json_key);
                if let Some(range) = range {
                    ranges.insert(g.spec.clone(), range);
                }
                group_domain = group_domain.and(&part);
            }
            if !count_key.is_empty() {
                row.insert(count_key.to_string(), json!(bucket.ids.len()));
            }
            for (agg, value) in aggs.iter().zip(&values[i]) {
                let ftype = agg.field.as_ref().map_or(FieldType::Float, |f| f.ftype);
                row.insert(agg.key.clone(), agg_json(ftype, &agg.function, value));
            }
            match shape {
                Shape::Classic => {
                    if groupbys.iter().any(|g| g.granularity.is_some()) {
                        row.insert("__range".into(), Value::Object(ranges));
                    }
                    row.insert("__domain".into(), domain.and(&group_domain).to_json_value());
                }
                Shape::Formatted => {
                    row.insert("__extra_domain".into(), group_domain.to_json_value());
                }
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn group_key(&self, mi: usize, id: i64, g: &GroupBy, ctx: &Ctx) -> Key {
        let value = self.get(mi, id, &g.field, ctx);
        match (g.granularity, value) {
            (Some(gran), Val::Date(d)) => Val::Date(gran.start(d)),
            // Datetimes are stored in UTC and bucket by the user's day (`tz`), as
            // Odoo groups on `timezone(tz, field)`.
            (Some(gran), Val::Datetime(dt)) => Val::Date(gran.start(local_date(dt, ctx))),
            (_, Val::Str(s)) if s.is_empty() => Val::False,
            (_, other) => other,
        }
    }

    /// The group value as written out, the `__range` entry, and the domain part.
    fn format_key(
        &self,
        g: &GroupBy,
        key: &Key,
        shape: Shape,
        ctx: &Ctx,
    ) -> Result<(Value, Option<Value>, Domain), OrmError> {
        let name = g.field.name.clone();
        let leaf = |op: Operator, v: Value| Domain::from_conditions([Condition::new(&name, op, v)]);
        if let (Some(gran), Val::Date(start)) = (g.granularity, key) {
            let end = gran.end(*start);
            // A datetime bucket's bounds are the local midnights, written in UTC.
            let text = |d: Date| match g.field.ftype {
                FieldType::Datetime => value::format_datetime(utc_of_local_midnight(d, ctx)),
                _ => value::format_date(d),
            };
            let (from, to) = (text(*start), text(end));
            let part = leaf(Operator::Ge, json!(from)).and(&leaf(Operator::Lt, json!(to)));
            let label = gran.label(*start);
            let shown = match shape {
                Shape::Classic => json!(label),
                Shape::Formatted => json!([from, label]),
            };
            return Ok((shown, Some(json!({"from": from, "to": to})), part));
        }
        if key.is_false() && !matches!(key, Val::Bool(_) | Val::Int(_) | Val::Float(_)) {
            let range = g.granularity.map(|_| Value::Bool(false));
            return Ok((
                Value::Bool(false),
                range,
                leaf(Operator::Eq, Value::Bool(false)),
            ));
        }
        let shown = match (g.field.ftype, key) {
            (FieldType::Many2one, Val::Id(target)) => {
                let rel = g.field.relation.as_deref().unwrap_or_default();
                let ti = self.model_index(rel)?;
                json!([target, self.display_name(ti, *target, ctx)])
            }
            (ftype, v) => value::to_json(ftype, v),
        };
        let raw = match key {
            Val::Id(target) => json!(target),
            other => value::to_json(g.field.ftype, other),
        };
        Ok((shown, None, leaf(Operator::Eq, raw)))
    }

    fn aggregate(&self, mi: usize, ids: &[i64], agg: &Agg, ctx: &Ctx) -> Val {
        let Some(field) = &agg.field else {
            return Val::Int(ids.len() as i64);
        };
        let values: Vec<Val> = ids.iter().map(|&id| self.get(mi, id, field, ctx)).collect();
        let numbers = || values.iter().filter_map(Val::as_f64);
        let non_null = || {
            values.iter().filter(|v| {
                !v.is_false() || matches!(v, Val::Int(_) | Val::Float(_) | Val::Bool(_))
            })
        };
        match agg.function.as_str() {
            "sum" => Val::Float(numbers().sum()),
            "avg" => {
                let n = numbers().count();
                if n == 0 {
                    Val::False
                } else {
                    Val::Float(numbers().sum::<f64>() / n as f64)
                }
            }
            "min" | "max" => {
                let want = if agg.function == "min" {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                non_null()
                    .cloned()
                    .reduce(|best, v| if v.compare(&best) == want { v } else { best })
                    .unwrap_or(Val::False)
            }
            "count" => Val::Int(non_null().count() as i64),
            "count_distinct" => {
                let mut seen: Vec<String> = non_null().map(|v| format!("{v:?}")).collect();
                seen.sort();
                seen.dedup();
                Val::Int(seen.len() as i64)
            }
            "bool_and" => Val::Bool(values.iter().all(|v| matches!(v, Val::Bool(true)))),
            "bool_or" => Val::Bool(values.iter().any(|v| matches!(v, Val::Bool(true)))),
            // array_agg
            _ => Val::Ids(
                values
                    .iter()
                    .filter_map(|v| v.as_id().or_else(|| v.as_f64().map(|f| f as i64)))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        }
    }

    /// The ordering of groups: `orderby`/`order` terms, else the group-bys
    /// ascending (many2one by the comodel's `_order`, as PostgreSQL joins do).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn group_order<'a>(
        &self,
        mi: usize,
        groupbys: &'a [GroupBy],
        aggs: &'a [Agg],
        count_key: &str,
        order: Option<&str>,
        buckets: &[Bucket],
        ctx: &Ctx,
    ) -> Result<Box<dyn Fn(&Bucket, &[Val], &Bucket, &[Val]) -> Ordering + 'a>, OrmError> {
        enum Term {
            Key(usize),
            Agg(usize),
            Count,
        }
        let mut terms: Vec<(Term, bool)> = Vec::new();
        match order.map(str::trim).filter(|o| !o.is_empty()) {
            Some(order) => {
                for part in order.split(',') {
                    let mut words = part.split_whitespace();
                    let Some(name) = words.next() else { continue };
                    let desc = words.next().is_some_and(|w| w.eq_ignore_ascii_case("desc"));
                    let term = if name == "__count" || name == count_key {
                        Term::Count
                    } else if let Some(i) = groupbys
                        .iter()
                        .position(|g| g.spec == name || g.field.name == name)
                    {
                        Term::Key(i)
                    } else if let Some(i) = aggs.iter().position(|a| {
                        a.key == name || a.field.as_ref().is_some_and(|f| f.name == name)
                    }) {
                        Term::Agg(i)
                    } else {
                        return Err(invalid(format!(
                            "Invalid order {name:?} for model {:?}: not a group-by or aggregate",
                            self.tables[mi].def.name
                        )));
                    };
                    terms.push((term, desc));
                }
            }
            None => terms.extend((0..groupbys.len()).map(|i| (Term::Key(i), false))),
        }
        // Rank many2one targets by their model's default order once.
        let mut ranks: Vec<HashMap<i64, usize>> = Vec::with_capacity(groupbys.len());
        for (i, g) in groupbys.iter().enumerate() {
            let mut rank = HashMap::new();
            if let (FieldType::Many2one, Some(rel)) = (g.field.ftype, g.field.relation.as_deref()) {
                let mut targets: Vec<i64> =
                    buckets.iter().filter_map(|b| b.keys[i].as_id()).collect();
                targets.sort_unstable();
                targets.dedup();
                let ti = self.model_index(rel)?;
                let comodel_order = self.tables[ti].def.order.clone();
                self.sort(ti, &mut targets, &comodel_order, ctx)?;
                rank = targets
                    .into_iter()
                    .enumerate()
                    .map(|(r, id)| (id, r))
                    .collect();
            }
            ranks.push(rank);
        }
        Ok(Box::new(
            move |a: &Bucket, av: &[Val], b: &Bucket, bv: &[Val]| {
                for (term, desc) in &terms {
                    let ordering = match term {
                        Term::Count => a.ids.len().cmp(&b.ids.len()),
                        Term::Agg(i) => nulls_last(&av[*i], &bv[*i], |x, y| x.compare(y)),
                        Term::Key(i) => nulls_last(&a.keys[*i], &b.keys[*i], |x, y| {
                            match (x.as_id(), y.as_id(), ranks[*i].is_empty()) {
                                (Some(p), Some(q), false) => {
                                    ranks[*i].get(&p).cmp(&ranks[*i].get(&q))
                                }
                                _ => x.compare(y),
                            }
                        }),
                    };
                    let ordering = if *desc { ordering.reverse() } else { ordering };
                    if ordering.is_ne() {
                        return ordering;
                    }
                }
                Ordering::Equal
            },
        ))
    }
}

/// PostgreSQL puts NULLs last ascending.
fn nulls_last(a: &Val, b: &Val, cmp: impl Fn(&Val, &Val) -> Ordering) -> Ordering {
    let null = |v: &Val| matches!(v, Val::False);
    match (null(a), null(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => cmp(a, b),
    }
}

fn check_function(function: &str) -> Result<(), OrmError> {
    const KNOWN: [&str; 9] = [
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "count_distinct",
        "bool_and",
        "bool_or",
        "array_agg",
    ];
    if KNOWN.contains(&function) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid aggregation function {function:?}"
        )))
    }
}

/// Aggregates keep the field's type: integer sums stay integers.
fn agg_json(ftype: FieldType, function: &str, value: &Val) -> Value {
    match (function, value) {
        ("count" | "count_distinct", Val::Int(n)) => json!(n),
        ("sum", Val::Float(f)) if ftype == FieldType::Integer => json!(*f as i64),
        ("sum" | "avg", Val::Float(f)) => json!(value::round_float(*f)),
        (_, Val::Ids(ids)) => json!(ids.as_ref()),
        (_, Val::Bool(b)) => json!(b),
        (_, Val::Id(id)) => json!(id),
        (_, v) => value::to_json(ftype, v),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::db::{ADMIN_UID, Database, DatasetParams, OdooVersion, SimConfig};

    fn db(version: OdooVersion) -> Database {
        Database::new(SimConfig {
            version,
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

    /// Four moves tagged `RG`: product A 2 + 3 in February, 4 in March;
    /// product B 5 in March. Returns (A, B).
    fn moves(db: &Database) -> (i64, i64) {
        let create = |model: &str, vals: Value| {
            call(db, model, "create", json!([vals]), json!({}))
                .as_i64()
                .unwrap_or_default()
        };
        let here = create("stock.location", json!({"name": "RG", "usage": "internal"}));
        let there = create(
            "stock.location",
            json!({"name": "RG out", "usage": "customer"}),
        );
        let mut vals = json!({"name": "Group probe", "categ_id": 1, "uom_id": 1});
        if db.version() < OdooVersion::V19 {
            vals["uom_po_id"] = json!(1);
        }
        let tmpl = create("product.template", vals);
        let a = create(
            "product.product",
            json!({"product_tmpl_id": tmpl, "default_code": "RG-A"}),
        );
        let b = create(
            "product.product",
            json!({"product_tmpl_id": tmpl, "default_code": "RG-B"}),
        );
        for (product, qty, date) in [
            (a, 2.0, "2025-02-03 10:00:00"),
            (a, 3.0, "2025-02-20 23:00:00"),
            (a, 4.0, "2025-03-05 10:00:00"),
            (b, 5.0, "2025-03-06 09:00:00"),
        ] {
            create(
                "stock.move",
                json!({"product_id": product, "product_uom_qty": qty, "location_id": here,
                       "location_dest_id": there, "date": date, "origin": "RG", "state": "done"}),
            );
        }
        (a, b)
    }

    #[test]
    fn datetimes_bucket_by_the_users_day_in_the_tz_context() {
        let db = db(OdooVersion::V17);
        let (a, _) = moves(&db);
        // 2025-02-20 23:00 UTC is already 21 February in Brussels.
        let domain = json!([["origin", "=", "RG"], ["product_id", "=", a]]);
        let days = |context: Value| {
            call(
                &db,
                "stock.move",
                "read_group",
                json!([domain, ["product_uom_qty:sum"], ["date:day"]]),
                json!({"lazy": false, "orderby": "date:day asc", "context": context}),
            )
        };
        let utc = days(json!({}));
        assert_eq!(utc[1]["date:day"], json!("20 Feb 2025"));
        let brussels = days(json!({"tz": "Europe/Brussels"}));
        assert_eq!(brussels[1]["date:day"], json!("21 Feb 2025"));
        assert_eq!(brussels[1]["product_uom_qty"], json!(3.0));
        // The bounds are Brussels midnights, in UTC.
        assert_eq!(
            brussels[1]["__range"]["date:day"],
            json!({"from": "2025-02-20 23:00:00", "to": "2025-02-21 23:00:00"})
        );
        // An unknown zone is ignored, as in Odoo.
        assert_eq!(
            days(json!({"tz": "Mars/Olympus"}))[1]["date:day"],
            json!("20 Feb 2025")
        );
    }

    #[test]
    fn read_group_eager_lazy_and_date_buckets() {
        let db = db(OdooVersion::V17);
        let (a, b) = moves(&db);
        let domain = json!([["origin", "=", "RG"]]);
        let groups = call(
            &db,
            "stock.move",
            "read_group",
            json!([
                domain,
                ["product_uom_qty:sum"],
                ["product_id", "date:month"]
            ]),
            json!({"lazy": false}),
        );
        let groups = groups.as_array().unwrap();
        assert_eq!(groups.len(), 3, "{groups:?}");
        // Default order: product by its _order (default_code), then month.
        assert_eq!(groups[0]["product_id"], json!([a, "[RG-A] Group probe"]));
        assert_eq!(groups[0]["date:month"], json!("February 2025"));
        assert_eq!(groups[0]["__count"], json!(2));
        assert_eq!(groups[0]["product_uom_qty"], json!(5.0));
        assert_eq!(
            groups[0]["__range"]["date:month"],
            json!({"from": "2025-02-01 00:00:00", "to": "2025-03-01 00:00:00"})
        );
        assert_eq!(
            groups[0]["__domain"],
            json!([
                "&",
                ["origin", "=", "RG"],
                "&",
                ["product_id", "=", a],
                "&",
                ["date", ">=", "2025-02-01 00:00:00"],
                ["date", "<", "2025-03-01 00:00:00"]
            ])
        );
        assert_eq!(groups[1]["date:month"], json!("March 2025"));
        assert_eq!(groups[1]["product_uom_qty"], json!(4.0));
        assert_eq!(groups[2]["product_id"][0], json!(b));
        assert_eq!(groups[2]["product_uom_qty"], json!(5.0));

        // Lazy: first group-by only, `<field>_count`, the rest in __context.
        let lazy = call(
            &db,
            "stock.move",
            "read_group",
            json!([domain, ["product_uom_qty"], ["product_id", "date:month"]]),
            json!({}),
        );
        assert_eq!(lazy.as_array().map(Vec::len), Some(2));
        assert_eq!(lazy[0]["product_id_count"], json!(3));
        assert_eq!(lazy[0]["product_uom_qty"], json!(9.0));
        assert_eq!(lazy[0]["__context"], json!({"group_by": ["date:month"]}));
        assert!(lazy[0].get("date:month").is_none());

        // Day, week, quarter and year labels; order by count desc, then limit.
        let label = |spec: &str| {
            let rows = call(
                &db,
                "stock.move",
                "read_group",
                json!([domain, [], [spec]]),
                json!({"lazy": false, "orderby": format!("{spec} asc")}),
            );
            rows[0][spec].clone()
        };
        assert_eq!(label("date:day"), json!("03 Feb 2025"));
        assert_eq!(label("date:week"), json!("W6 2025"));
        assert_eq!(label("date:quarter"), json!("Q1 2025"));
        assert_eq!(label("date:year"), json!("2025"));
        let top = call(
            &db,
            "stock.move",
            "read_group",
            json!([domain, ["product_uom_qty:max"], ["product_id"]]),
            json!({"orderby": "product_uom_qty desc", "limit": 1}),
        );
        assert_eq!(
            top,
            json!([{"product_id": [b, "[RG-B] Group probe"], "product_id_count": 1,
            "product_uom_qty": 5.0, "__domain": ["&", ["origin", "=", "RG"], ["product_id", "=", b]]}])
        );
    }

    #[test]
    fn formatted_read_group_is_the_19_shape() {
        let db = db(OdooVersion::V19);
        let (a, _) = moves(&db);
        let groups = call(
            &db,
            "stock.move",
            "formatted_read_group",
            json!([
                [["origin", "=", "RG"]],
                ["product_id", "date:month"],
                ["product_uom_qty:sum", "__count"]
            ]),
            json!({}),
        );
        assert_eq!(groups[0]["product_id"], json!([a, "[RG-A] Group probe"]));
        assert_eq!(
            groups[0]["date:month"],
            json!(["2025-02-01 00:00:00", "February 2025"])
        );
        assert_eq!(groups[0]["__count"], json!(2));
        assert_eq!(groups[0]["product_uom_qty:sum"], json!(5.0));
        assert_eq!(
            groups[0]["__extra_domain"],
            json!([
                "&",
                ["product_id", "=", a],
                "&",
                ["date", ">=", "2025-02-01 00:00:00"],
                ["date", "<", "2025-03-01 00:00:00"]
            ])
        );
        // Not there before 19.
        let old = db_err(OdooVersion::V17);
        assert!(old.contains("formatted_read_group"), "{old}");
    }

    fn db_err(version: OdooVersion) -> String {
        let db = db(version);
        db.execute_kw(
            ADMIN_UID,
            "stock.move",
            "formatted_read_group",
            vec![json!([]), json!(["product_id"]), json!(["__count"])],
            Default::default(),
        )
        .map(|v| v.to_string())
        .unwrap_or_else(|e| e.to_string())
    }
}
