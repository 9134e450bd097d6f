//! Grouped reads with one result shape across versions: `read_group` on
//! 16–18, `formatted_read_group` on 19.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

use super::error::{ErrorKind, OdooError};
use super::transport::Call;

/// Date bucket size of a date/datetime group-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Granularity {
    fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
            Granularity::Year => "year",
        }
    }
}

/// One group-by: a field, with a granularity for dates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupBy {
    pub field: String,
    pub granularity: Option<Granularity>,
}

impl GroupBy {
    pub fn field(field: impl Into<String>) -> GroupBy {
        GroupBy {
            field: field.into(),
            granularity: None,
        }
    }

    pub fn date(field: impl Into<String>, granularity: Granularity) -> GroupBy {
        GroupBy {
            field: field.into(),
            granularity: Some(granularity),
        }
    }

    /// Odoo's spelling: `date_order:month`.
    pub fn spec(&self) -> String {
        match self.granularity {
            None => self.field.clone(),
            Some(g) => format!("{}:{}", self.field, g.as_str()),
        }
    }
}

/// Aggregate function of a grouped field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFn {
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
}

impl AggregateFn {
    fn as_str(self) -> &'static str {
        match self {
            AggregateFn::Sum => "sum",
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::CountDistinct => "count_distinct",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aggregate {
    pub field: String,
    pub function: AggregateFn,
}

impl Aggregate {
    pub fn new(field: impl Into<String>, function: AggregateFn) -> Aggregate {
        Aggregate {
            field: field.into(),
            function,
        }
    }

    pub fn sum(field: impl Into<String>) -> Aggregate {
        Aggregate::new(field, AggregateFn::Sum)
    }

    /// Odoo's spelling: `product_qty:sum`; also the key in [`Group::aggregates`].
    pub fn spec(&self) -> String {
        format!("{}:{}", self.field, self.function.as_str())
    }
}

/// What to group.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadGroupSpec {
    pub domain: Value,
    pub groupby: Vec<GroupBy>,
    pub aggregates: Vec<Aggregate>,
    pub offset: u64,
    pub limit: Option<u64>,
    /// e.g. `"product_id"` or `"date_order:month desc"`.
    pub order: Option<String>,
}

impl ReadGroupSpec {
    pub fn new(domain: Value, groupby: Vec<GroupBy>, aggregates: Vec<Aggregate>) -> ReadGroupSpec {
        ReadGroupSpec {
            domain,
            groupby,
            aggregates,
            offset: 0,
            limit: None,
            order: None,
        }
    }
}

/// The value of one group-by in one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupKey {
    /// `date_order:month`, as in [`GroupBy::spec`].
    pub groupby: String,
    /// Normalised: a many2one is its id, a date bucket is its first day
    /// (`"2025-02-01"`), an empty group is `false`, anything else is raw.
    pub value: Value,
    /// Odoo's label: the display name of a many2one, "February 2025" for a month.
    pub label: Option<String>,
}

/// One group, the same on every version.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// One entry per group-by, in the order asked.
    pub keys: Vec<GroupKey>,
    pub count: u64,
    /// By [`Aggregate::spec`]; `false` when the group had nothing to aggregate.
    pub aggregates: BTreeMap<String, Value>,
    /// A domain selecting exactly the group's records (query domain included).
    pub domain: Value,
}

impl Group {
    pub fn key(&self, groupby: &str) -> Option<&GroupKey> {
        self.keys.iter().find(|k| k.groupby == groupby)
    }

    /// An aggregate as a number (`false` reads as 0).
    pub fn aggregate(&self, aggregate: &Aggregate) -> f64 {
        self.aggregates
            .get(&aggregate.spec())
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.groupby, self.value)
    }
}

/// Builds the call for the server's major version.
pub(crate) fn build_call(model: &str, spec: &ReadGroupSpec, major: u32) -> Result<Call, OdooError> {
    let groupby: Vec<String> = spec.groupby.iter().map(GroupBy::spec).collect();
    let mut call = if major >= 19 {
        let mut aggregates: Vec<String> = spec.aggregates.iter().map(Aggregate::spec).collect();
        aggregates.push("__count".into());
        let call = Call::new(model, "formatted_read_group")
            .arg("domain", spec.domain.clone())
            .arg("groupby", json!(groupby))
            .arg("aggregates", json!(aggregates));
        match &spec.order {
            Some(order) => call.kwarg("order", order.clone()),
            None => call,
        }
    } else {
        // 16–18 key aggregates by field name: one function per field.
        let mut seen = std::collections::HashSet::new();
        for aggregate in &spec.aggregates {
            if !seen.insert(aggregate.field.as_str()) {
                return Err(OdooError::new(ErrorKind::InvalidArgument {
                    name: "planops.ReadGroup".into(),
                    message: format!(
                        "read_group before Odoo 19 cannot aggregate {:?} twice",
                        aggregate.field
                    ),
                }));
            }
        }
        let fields: Vec<String> = spec.aggregates.iter().map(Aggregate::spec).collect();
        let call = Call::new(model, "read_group")
            .arg("domain", spec.domain.clone())
            .arg("fields", json!(fields))
            .arg("groupby", json!(groupby))
            .kwarg("lazy", false);
        match &spec.order {
            Some(order) => call.kwarg("orderby", order.clone()),
            None => call,
        }
    };
    if spec.offset > 0 {
        call = call.kwarg("offset", spec.offset);
    }
    if let Some(limit) = spec.limit {
        call = call.kwarg("limit", limit);
    }
    Ok(call.idempotent(true))
}

/// Normalises the groups returned by either method.
pub(crate) fn parse_groups(
    spec: &ReadGroupSpec,
    result: Value,
    major: u32,
) -> Result<Vec<Group>, OdooError> {
    let Value::Array(rows) = result else {
        return Err(OdooError::protocol(format!(
            "grouped read returned {result}, not a list"
        )));
    };
    rows.into_iter()
        .map(|row| match row {
            Value::Object(row) => parse_group(spec, row, major),
            other => Err(OdooError::protocol(format!(
                "group is not an object: {other}"
            ))),
        })
        .collect()
}

fn parse_group(
    spec: &ReadGroupSpec,
    mut row: Map<String, Value>,
    major: u32,
) -> Result<Group, OdooError> {
    let count = row
        .get("__count")
        .and_then(Value::as_u64)
        .ok_or_else(|| OdooError::protocol("group without __count"))?;
    let ranges = row.remove("__range");
    let mut keys = Vec::with_capacity(spec.groupby.len());
    for groupby in &spec.groupby {
        let name = groupby.spec();
        let raw = row.remove(&name).unwrap_or(Value::Bool(false));
        let range_start = ranges
            .as_ref()
            .and_then(|r| r.get(&name))
            .and_then(|r| r.get("from"))
            .and_then(Value::as_str);
        keys.push(normalise_key(
            name.clone(),
            raw,
            groupby.granularity.is_some(),
            range_start,
        ));
    }
    let mut aggregates = BTreeMap::new();
    for aggregate in &spec.aggregates {
        let key = if major >= 19 {
            aggregate.spec()
        } else {
            aggregate.field.clone()
        };
        let value = row.remove(&key).unwrap_or(Value::Bool(false));
        aggregates.insert(aggregate.spec(), value);
    }
    let domain = if major >= 19 {
        let extra = row.remove("__extra_domain").unwrap_or_else(|| json!([]));
        and_domains(&spec.domain, &extra)
    } else {
        row.remove("__domain")
            .unwrap_or_else(|| spec.domain.clone())
    };
    Ok(Group {
        keys,
        count,
        aggregates,
        domain,
    })
}

fn normalise_key(
    groupby: String,
    raw: Value,
    is_date: bool,
    range_start: Option<&str>,
) -> GroupKey {
    match raw {
        // 19 date bucket: ["2025-02-01", "February 2025"]; m2o: [42, "Widget"].
        Value::Array(pair) if pair.len() == 2 => {
            let mut it = pair.into_iter();
            let value = it.next().unwrap_or(Value::Bool(false));
            let label = it.next().and_then(|l| l.as_str().map(str::to_string));
            let value = match value {
                Value::String(text) if is_date => Value::String(text.chars().take(10).collect()),
                other => other,
            };
            GroupKey {
                groupby,
                value,
                label,
            }
        }
        // 16–18 date bucket: the label, with the start in __range.
        Value::String(label) if is_date => {
            let value = range_start
                .map(|start| Value::String(start.chars().take(10).collect()))
                .unwrap_or_else(|| Value::String(label.clone()));
            GroupKey {
                groupby,
                value,
                label: Some(label),
            }
        }
        other => GroupKey {
            groupby,
            value: other,
            label: None,
        },
    }
}

/// AND of two domains in prefix notation.
fn and_domains(a: &Value, b: &Value) -> Value {
    match (a.as_array(), b.as_array()) {
        (Some(a), Some(b)) if a.is_empty() => Value::Array(b.clone()),
        (Some(a), Some(b)) if b.is_empty() => Value::Array(a.clone()),
        (Some(a), Some(b)) => {
            let mut out = vec![json!("&")];
            out.extend(wrap_and(a));
            out.extend(wrap_and(b));
            Value::Array(out)
        }
        _ => b.clone(),
    }
}

/// Makes an implicitly-ANDed term list one expression (prefixes n-1 "&").
fn wrap_and(terms: &[Value]) -> Vec<Value> {
    let expressions = count_expressions(terms);
    let mut out: Vec<Value> = (1..expressions).map(|_| json!("&")).collect();
    out.extend(terms.iter().cloned());
    out
}

/// Number of top-level expressions in a prefix-notation term list.
fn count_expressions(terms: &[Value]) -> usize {
    let mut needed: i64 = 0;
    let mut expressions = 0;
    for term in terms {
        if needed == 0 {
            expressions += 1;
            needed = 1;
        }
        match term.as_str() {
            Some("&") | Some("|") => needed += 1,
            Some("!") => {}
            _ => needed -= 1,
        }
    }
    expressions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ReadGroupSpec {
        ReadGroupSpec::new(
            json!([["state", "=", "purchase"]]),
            vec![
                GroupBy::field("product_id"),
                GroupBy::date("date_order", Granularity::Month),
            ],
            vec![Aggregate::sum("product_qty")],
        )
    }

    #[test]
    fn calls_differ_by_version() {
        let old = build_call("purchase.order.line", &spec(), 17).unwrap();
        assert_eq!(old.method, "read_group");
        assert_eq!(old.args[1].1, json!(["product_qty:sum"]));
        assert_eq!(old.args[2].1, json!(["product_id", "date_order:month"]));
        assert_eq!(old.kwargs["lazy"], json!(false));
        let new = build_call("purchase.order.line", &spec(), 19).unwrap();
        assert_eq!(new.method, "formatted_read_group");
        assert_eq!(new.args[2].1, json!(["product_qty:sum", "__count"]));
        let mut twice = spec();
        twice
            .aggregates
            .push(Aggregate::new("product_qty", AggregateFn::Max));
        assert!(build_call("x", &twice, 18).is_err());
        assert!(build_call("x", &twice, 19).is_ok());
    }

    #[test]
    fn both_shapes_normalise_to_the_same_groups() {
        let v17 = json!([{
            "product_id": [42, "[SKU-1] Widget"], "date_order:month": "February 2025",
            "__count": 3, "product_qty": 120.0,
            "__range": {"date_order:month": {"from": "2025-02-01 00:00:00", "to": "2025-03-01 00:00:00"}},
            "__domain": ["&", "&", ["product_id", "=", 42], "&", ["date_order", ">=", "2025-02-01 00:00:00"],
                         ["date_order", "<", "2025-03-01 00:00:00"], ["state", "=", "purchase"]]
        }]);
        let v19 = json!([{
            "product_id": [42, "[SKU-1] Widget"], "date_order:month": ["2025-02-01", "February 2025"],
            "__count": 3, "product_qty:sum": 120.0,
            "__extra_domain": ["&", ["product_id", "=", 42], "&", ["date_order", ">=", "2025-02-01"],
                               ["date_order", "<", "2025-03-01"]]
        }]);
        let a = parse_groups(&spec(), v17, 17).unwrap();
        let b = parse_groups(&spec(), v19, 19).unwrap();
        for groups in [&a, &b] {
            let g = &groups[0];
            assert_eq!(g.count, 3);
            assert_eq!(g.aggregate(&Aggregate::sum("product_qty")), 120.0);
            let product = g.key("product_id").unwrap();
            assert_eq!(product.value, json!(42));
            assert_eq!(product.label.as_deref(), Some("[SKU-1] Widget"));
            let month = g.key("date_order:month").unwrap();
            assert_eq!(month.value, json!("2025-02-01"));
            assert_eq!(month.label.as_deref(), Some("February 2025"));
        }
        assert_eq!(b[0].domain[0], json!("&"));
        assert_eq!(b[0].domain[1], json!(["state", "=", "purchase"]));
    }

    #[test]
    fn empty_groups_and_aggregates_are_false() {
        let v19 = json!([{"product_id": false, "date_order:month": false, "__count": 1,
                          "product_qty:sum": false, "__extra_domain": [["product_id", "=", false]]}]);
        let g = &parse_groups(&spec(), v19, 19).unwrap()[0];
        assert_eq!(g.key("product_id").unwrap().value, json!(false));
        assert_eq!(g.aggregate(&Aggregate::sum("product_qty")), 0.0);
    }

    #[test]
    fn and_of_domains_wraps_implicit_ands() {
        let a = json!([["a", "=", 1], ["b", "=", 2]]);
        let b = json!(["|", ["c", "=", 3], ["d", "=", 4]]);
        assert_eq!(
            and_domains(&a, &b),
            json!([
                "&",
                "&",
                ["a", "=", 1],
                ["b", "=", 2],
                "|",
                ["c", "=", 3],
                ["d", "=", 4]
            ])
        );
        assert_eq!(and_domains(&json!([]), &b), b);
    }
}
