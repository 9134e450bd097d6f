//! From a supplier's payload to a normalised [`SupplierEvent`], with the
//! `SupplierConnector`'s RFC 9535 JSONPath mapping compiled once.
//!
//! Rules every payload must satisfy, each broken one a [`MappingError`]:
//!
//! * `eventType`, `purchaseOrderRef`, `eventId` (when set) and a line's
//!   `productCode` must match exactly one node; zero nodes is *missing*, more
//!   than one *ambiguous*. `quantity` and `promisedDate` are optional: zero
//!   nodes or `null` mean "not given", more than one is still ambiguous.
//! * Strings are expected for the type, references and codes; a number is
//!   accepted as its decimal text (supplier references are often numeric).
//! * The event type is looked up in `eventTypeValues`; without that table the
//!   value must be one of `Confirmation`, `Delay`, `Shipment`, `Cancellation`.
//! * Dates are ISO 8601: a date (`2025-03-14`), or a date-time, which becomes
//!   the calendar date **in UTC** (`2025-03-14T23:30:00-02:00` is 2025-03-15);
//!   a date-time without an offset is read as UTC.
//! * Quantities are non-negative numbers (or numeric strings).
//! * With `lines` set, the paths of `productCode`, `quantity` and
//!   `promisedDate` are evaluated with each line as the root `$`; a `lines`
//!   path that matches one array node stands for its elements. Without
//!   `lines`, `promisedDate` is read from the payload and applies to the
//!   whole order.
//!
//! Mapping is all or nothing: one bad line rejects the whole payload.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use serde_json::Value;
use serde_json_path::JsonPath;

use planops_api::supplier::{MappingSpec, SupplierEventType};

/// Longest piece of a payload quoted in an error.
const MAX_QUOTE: usize = 64;

/// A normalised supplier event.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplierEvent {
    pub kind: SupplierEventType,
    /// The payload's own event id, when the mapping reads one.
    pub event_id: Option<String>,
    /// Odoo PO name or the supplier's reference (`partner_ref`).
    pub purchase_order_ref: String,
    /// Order-level promised date (only when the mapping has no `lines`).
    pub promised_date: Option<Date>,
    pub lines: Vec<EventLine>,
}

/// One line of a supplier event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    /// The product's `default_code`.
    pub product_code: String,
    pub quantity: Option<f64>,
    pub promised_date: Option<Date>,
}

/// A mapping expression that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("spec.mapping.{field}: {text:?} is not a JSONPath expression: {message}")]
    InvalidPath {
        field: &'static str,
        text: String,
        message: String,
    },
    #[error(
        "spec.mapping.productCode: required when lines is set (lines are matched by product code)"
    )]
    MissingProductCode,
    #[error("spec.mapping.{0}: is read per line; set lines too")]
    NeedsLines(&'static str),
}

/// Why a payload does not map. The field is the mapping field, prefixed with
/// `lines[i].` for a line (0-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("{field}: {path} matched nothing")]
    Missing { field: String, path: String },
    #[error("{field}: {path} matched {count} values where one is expected")]
    Ambiguous {
        field: String,
        path: String,
        count: usize,
    },
    #[error("{field}: expected {expected}, got {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("eventType: {value:?} is not a known event type (known: {known})")]
    UnknownEventType { value: String, known: String },
    #[error("{field}: {value:?} is not an ISO 8601 date or date-time")]
    BadDate { field: String, value: String },
    #[error("{field}: quantity {value} is negative")]
    NegativeQuantity { field: String, value: f64 },
}

impl MappingError {
    /// A short label for metrics and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            MappingError::Missing { .. } => "missing",
            MappingError::Ambiguous { .. } => "ambiguous",
            MappingError::WrongType { .. } => "wrong_type",
            MappingError::UnknownEventType { .. } => "unknown_event_type",
            MappingError::BadDate { .. } => "bad_date",
            MappingError::NegativeQuantity { .. } => "negative_quantity",
        }
    }
}

/// The longest JSONPath accepted, in bytes; the CRD fields say the same.
pub const MAX_JSON_PATH_LEN: usize = 512;

/// How deep brackets and parentheses may nest in a JSONPath. The parser
/// backtracks through nested filters in time exponential in their depth (a
/// 63-byte path of 20 unclosed `[?@` takes seconds to refuse), so the depth
/// is bounded before it runs. Real mappings nest two or three levels.
pub const MAX_JSON_PATH_NESTING: usize = 8;

/// Why a text is not a JSONPath PlanOps accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonPathError {
    #[error("{length} bytes long; the limit is {MAX_JSON_PATH_LEN}")]
    TooLong { length: usize },
    #[error("brackets nest deeper than the limit of {MAX_JSON_PATH_NESTING} levels")]
    TooDeep,
    #[error("{0}")]
    Syntax(String),
}

/// Parses an RFC 9535 JSONPath within the length and nesting limits: the one
/// parser for the mapping, the poll paths and validation.
pub fn parse_json_path(text: &str) -> Result<JsonPath, JsonPathError> {
    if text.len() > MAX_JSON_PATH_LEN {
        return Err(JsonPathError::TooLong { length: text.len() });
    }
    let shape = shape_outside_strings(text);
    if shape.deepest > MAX_JSON_PATH_NESTING {
        return Err(JsonPathError::TooDeep);
    }
    // serde_json_path 0.7 panics ("we do not use streaming parsers") when the
    // text ends inside a `\u` escape of a quoted string (`$['\u`): its string
    // parser reads one character in nom's streaming mode. Only a string left
    // open at the end can get there, and such a path is invalid anyway.
    if shape.open_string {
        return Err(JsonPathError::Syntax(
            "a quoted name or string is not closed".into(),
        ));
    }
    JsonPath::parse(text).map_err(|e| JsonPathError::Syntax(e.to_string()))
}

/// What [`parse_json_path`] checks before the parser runs.
struct Shape {
    /// The deepest nesting of `[` and `(` outside quoted names and strings.
    deepest: usize,
    /// The text ends inside a quoted name or string.
    open_string: bool,
}

fn shape_outside_strings(text: &str) -> Shape {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' | '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ']' | ')' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    Shape {
        deepest,
        open_string: quote.is_some(),
    }
}

/// A parsed path with its source text, for error messages.
#[derive(Debug, Clone)]
struct Path {
    text: String,
    path: JsonPath,
}

impl Path {
    fn compile(field: &'static str, text: &str) -> Result<Path, CompileError> {
        parse_json_path(text)
            .map(|path| Path {
                text: text.to_string(),
                path,
            })
            .map_err(|e| CompileError::InvalidPath {
                field,
                text: text.to_string(),
                message: e.to_string(),
            })
    }

    fn optional(field: &'static str, text: Option<&str>) -> Result<Option<Path>, CompileError> {
        text.map(|t| Path::compile(field, t)).transpose()
    }

    /// The one node the path must match.
    fn one<'v>(&self, root: &'v Value, field: &Field<'_>) -> Result<&'v Value, MappingError> {
        match self.at_most_one(root, field)? {
            Some(v) => Ok(v),
            None => Err(MappingError::Missing {
                field: field.to_string(),
                path: self.text.clone(),
            }),
        }
    }

    /// The node the path matches, if any; `null` counts as none.
    fn at_most_one<'v>(
        &self,
        root: &'v Value,
        field: &Field<'_>,
    ) -> Result<Option<&'v Value>, MappingError> {
        let nodes = self.path.query(root).all();
        match nodes.as_slice() {
            [] | [Value::Null] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(MappingError::Ambiguous {
                field: field.to_string(),
                path: self.text.clone(),
                count: many.len(),
            }),
        }
    }
}

/// A field name, with the line it belongs to.
struct Field<'a> {
    name: &'a str,
    line: Option<usize>,
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(i) => write!(f, "lines[{i}].{}", self.name),
            None => f.write_str(self.name),
        }
    }
}

fn field(name: &str) -> Field<'_> {
    Field { name, line: None }
}

/// A [`MappingSpec`] with its expressions parsed.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    event_type: Path,
    event_type_values: BTreeMap<String, SupplierEventType>,
    event_id: Option<Path>,
    purchase_order_ref: Path,
    lines: Option<Path>,
    product_code: Option<Path>,
    quantity: Option<Path>,
    promised_date: Option<Path>,
}

impl CompiledMapping {
    pub fn compile(spec: &MappingSpec) -> Result<CompiledMapping, CompileError> {
        let mapping = CompiledMapping {
            event_type: Path::compile("eventType", &spec.event_type)?,
            event_type_values: spec.event_type_values.clone(),
            event_id: Path::optional("eventId", spec.event_id.as_deref())?,
            purchase_order_ref: Path::compile("purchaseOrderRef", &spec.purchase_order_ref)?,
            lines: Path::optional("lines", spec.lines.as_deref())?,
            product_code: Path::optional("productCode", spec.product_code.as_deref())?,
            quantity: Path::optional("quantity", spec.quantity.as_deref())?,
            promised_date: Path::optional("promisedDate", spec.promised_date.as_deref())?,
        };
        if mapping.lines.is_some() && mapping.product_code.is_none() {
            return Err(CompileError::MissingProductCode);
        }
        if mapping.lines.is_none() {
            if mapping.product_code.is_some() {
                return Err(CompileError::NeedsLines("productCode"));
            }
            if mapping.quantity.is_some() {
                return Err(CompileError::NeedsLines("quantity"));
            }
        }
        Ok(mapping)
    }

    /// Maps one payload; the whole payload or nothing.
    pub fn map(&self, payload: &Value) -> Result<SupplierEvent, MappingError> {
        let kind = self.kind(payload)?;
        let event_id = match &self.event_id {
            Some(path) => Some(text(
                path.one(payload, &field("eventId"))?,
                &field("eventId"),
            )?),
            None => None,
        };
        let reference = field("purchaseOrderRef");
        let purchase_order_ref = text(
            self.purchase_order_ref.one(payload, &reference)?,
            &reference,
        )?;
        let (promised_date, lines) = match &self.lines {
            None => (self.date(payload, None)?, Vec::new()),
            Some(path) => (None, self.lines(path, payload)?),
        };
        Ok(SupplierEvent {
            kind,
            event_id,
            purchase_order_ref,
            promised_date,
            lines,
        })
    }

    fn kind(&self, payload: &Value) -> Result<SupplierEventType, MappingError> {
        let f = field("eventType");
        let value = text(self.event_type.one(payload, &f)?, &f)?;
        if self.event_type_values.is_empty() {
            return match value.as_str() {
                "Confirmation" => Ok(SupplierEventType::Confirmation),
                "Delay" => Ok(SupplierEventType::Delay),
                "Shipment" => Ok(SupplierEventType::Shipment),
                "Cancellation" => Ok(SupplierEventType::Cancellation),
                _ => Err(MappingError::UnknownEventType {
                    value: quote(&value),
                    known: "Confirmation, Delay, Shipment, Cancellation".into(),
                }),
            };
        }
        self.event_type_values
            .get(&value)
            .copied()
            .ok_or_else(|| MappingError::UnknownEventType {
                value: quote(&value),
                known: self
                    .event_type_values
                    .keys()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn lines(&self, path: &Path, payload: &Value) -> Result<Vec<EventLine>, MappingError> {
        let nodes = path.path.query(payload).all();
        // `$.lines` (the array) reads as `$.lines[*]` (its elements).
        let nodes: Vec<&Value> = match nodes.as_slice() {
            [Value::Array(items)] => items.iter().collect(),
            _ => nodes,
        };
        if nodes.is_empty() {
            return Err(MappingError::Missing {
                field: "lines".into(),
                path: path.text.clone(),
            });
        }
        let Some(code_path) = &self.product_code else {
            // compile() refuses lines without productCode.
            return Err(MappingError::Missing {
                field: "lines[0].productCode".into(),
                path: String::new(),
            });
        };
        let mut lines = Vec::with_capacity(nodes.len());
        for (i, line) in nodes.into_iter().enumerate() {
            if !line.is_object() {
                return Err(MappingError::WrongType {
                    field: format!("lines[{i}]"),
                    expected: "an object",
                    found: type_name(line),
                });
            }
            let code = Field {
                name: "productCode",
                line: Some(i),
            };
            let product_code = text(code_path.one(line, &code)?, &code)?;
            let quantity = match &self.quantity {
                Some(q) => {
                    let f = Field {
                        name: "quantity",
                        line: Some(i),
                    };
                    q.at_most_one(line, &f)?
                        .map(|v| quantity(v, &f))
                        .transpose()?
                }
                None => None,
            };
            lines.push(EventLine {
                product_code,
                quantity,
                promised_date: self.date(line, Some(i))?,
            });
        }
        Ok(lines)
    }

    fn date(&self, root: &Value, line: Option<usize>) -> Result<Option<Date>, MappingError> {
        let Some(path) = &self.promised_date else {
            return Ok(None);
        };
        let f = Field {
            name: "promisedDate",
            line,
        };
        let Some(value) = path.at_most_one(root, &f)? else {
            return Ok(None);
        };
        let Value::String(s) = value else {
            return Err(MappingError::WrongType {
                field: f.to_string(),
                expected: "an ISO 8601 date string",
                found: type_name(value),
            });
        };
        parse_date(s)
            .map(Some)
            .ok_or_else(|| MappingError::BadDate {
                field: f.to_string(),
                value: quote(s),
            })
    }
}

/// An ISO 8601 date, or the UTC date of a date-time (no offset: UTC).
pub fn parse_date(text: &str) -> Option<Date> {
    let text = text.trim();
    if text.len() == 10 {
        return text.parse::<Date>().ok();
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.to_zoned(jiff::tz::TimeZone::UTC).date());
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .map(|dt| dt.date())
}

fn text(value: &Value, f: &Field<'_>) -> Result<String, MappingError> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Value::String(_) => Err(MappingError::WrongType {
            field: f.to_string(),
            expected: "a non-empty string",
            found: "an empty string",
        }),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(MappingError::WrongType {
            field: f.to_string(),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

fn quantity(value: &Value, f: &Field<'_>) -> Result<f64, MappingError> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
    .ok_or_else(|| MappingError::WrongType {
        field: f.to_string(),
        expected: "a number",
        found: type_name(value),
    })?;
    if n < 0.0 {
        return Err(MappingError::NegativeQuantity {
            field: f.to_string(),
            value: n,
        });
    }
    Ok(n)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Payload text quoted in an error, cut short: errors end up in logs and responses.
fn quote(text: &str) -> String {
    if text.len() <= MAX_QUOTE {
        return text.to_string();
    }
    let mut end = MAX_QUOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths_are_bounded_before_the_parser_runs() {
        // Nested filters that never close made the parser backtrack for
        // seconds at 20 levels, doubling with each more.
        let backtracking = format!("$[?{}", "@[?".repeat(20));
        assert_eq!(
            parse_json_path(&backtracking).unwrap_err(),
            JsonPathError::TooDeep
        );
        let long = format!("$.{}", "a".repeat(MAX_JSON_PATH_LEN));
        assert_eq!(
            parse_json_path(&long).unwrap_err().to_string(),
            format!(
                "{} bytes long; the limit is {MAX_JSON_PATH_LEN}",
                long.len()
            )
        );
        // Found by the `jsonpath` fuzz target: the parser panicked on a text
        // ending inside a unicode escape; every such text is now refused.
        for open in [
            r"$['\u",
            r"$['\uD",
            r"$['\uD800\u",
            r"$['\uD800\uD",
            r#"$[?@.a == "\u"#,
            "$['abc",
        ] {
            assert_eq!(
                parse_json_path(open).unwrap_err().to_string(),
                "a quoted name or string is not closed",
                "{open}"
            );
        }
        assert!(parse_json_path(r"$['\u00e9']").is_ok());
        // Brackets inside names and strings are text, not nesting.
        let quoted = format!("$['{}'][?@.kind == '{}']", "[".repeat(20), "(".repeat(20));
        assert!(parse_json_path(&quoted).is_ok());
        // The worst case the limit admits still finishes (a test that hangs
        // here is the failure), on a worker thread's stack.
        let at_the_limit = format!("$[?{}", "@[?".repeat(MAX_JSON_PATH_NESTING - 1));
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || assert!(parse_json_path(&at_the_limit).is_err()))
            .expect("spawning a thread")
            .join()
            .expect("parsing overflowed the stack");
    }

    fn spec(value: Value) -> MappingSpec {
        serde_json::from_value(value).expect("a mapping spec")
    }

    fn lines_mapping() -> CompiledMapping {
        CompiledMapping::compile(&spec(json!({
            "eventType": "$.type",
            "eventTypeValues": {"order.delayed": "Delay", "order.confirmed": "Confirmation"},
            "eventId": "$.id",
            "purchaseOrderRef": "$.data.po",
            "lines": "$.data.lines[*]",
            "productCode": "$.sku",
            "quantity": "$.qty",
            "promisedDate": "$.eta",
        })))
        .expect("compiles")
    }

    fn delay_payload() -> Value {
        json!({
            "id": "evt_1", "type": "order.delayed",
            "data": {"po": "P00042", "lines": [
                {"sku": "SKU-1", "qty": 10, "eta": "2025-03-20"},
                {"sku": "SKU-2", "qty": "2.5", "eta": "2025-03-21T23:30:00-02:00"},
                {"sku": 4711, "eta": null},
            ]}
        })
    }

    #[test]
    fn maps_lines_with_event_type_values() {
        let event = lines_mapping().map(&delay_payload()).expect("maps");
        assert_eq!(event.kind, SupplierEventType::Delay);
        assert_eq!(event.event_id.as_deref(), Some("evt_1"));
        assert_eq!(event.purchase_order_ref, "P00042");
        assert_eq!(event.promised_date, None);
        assert_eq!(
            event.lines,
            vec![
                EventLine {
                    product_code: "SKU-1".into(),
                    quantity: Some(10.0),
                    promised_date: Some(jiff::civil::date(2025, 3, 20)),
                },
                // 23:30 at UTC-2 is 01:30 UTC the next day.
                EventLine {
                    product_code: "SKU-2".into(),
                    quantity: Some(2.5),
                    promised_date: Some(jiff::civil::date(2025, 3, 22)),
                },
                EventLine {
                    product_code: "4711".into(),
                    quantity: None,
                    promised_date: None,
                },
            ]
        );
    }

    #[test]
    fn maps_an_order_level_date_with_normalised_names() {
        let mapping = CompiledMapping::compile(&spec(json!({
            "eventType": "$.kind",
            "purchaseOrderRef": "$.order",
            "promisedDate": "$.promised",
        })))
        .expect("compiles");
        let event = mapping
            .map(&json!({"kind": "Confirmation", "order": "SUP-77", "promised": "2025-04-01T08:00:00Z"}))
            .expect("maps");
        assert_eq!(event.kind, SupplierEventType::Confirmation);
        assert_eq!(event.event_id, None);
        assert_eq!(event.promised_date, Some(jiff::civil::date(2025, 4, 1)));
        assert!(event.lines.is_empty());
        // A date-time without offset is UTC; a missing optional date is none.
        let event = mapping
            .map(&json!({"kind": "Shipment", "order": 981}))
            .expect("maps");
        assert_eq!(event.kind, SupplierEventType::Shipment);
        assert_eq!(event.purchase_order_ref, "981");
        assert_eq!(event.promised_date, None);
        assert_eq!(
            parse_date("2025-04-01T23:59:59"),
            Some(jiff::civil::date(2025, 4, 1))
        );
    }

    #[test]
    fn a_lines_path_to_the_array_reads_its_elements() {
        let mapping = CompiledMapping::compile(&spec(json!({
            "eventType": "$.type", "purchaseOrderRef": "$.po",
            "lines": "$.lines", "productCode": "$.sku",
        })))
        .expect("compiles");
        let event = mapping
            .map(
                &json!({"type": "Cancellation", "po": "P1", "lines": [{"sku": "A"}, {"sku": "B"}]}),
            )
            .expect("maps");
        assert_eq!(event.lines.len(), 2);
        assert_eq!(event.lines[1].product_code, "B");
    }

    fn err(payload: Value) -> MappingError {
        lines_mapping().map(&payload).expect_err("must not map")
    }

    #[test]
    fn each_error_kind_names_its_field() {
        let mut p = delay_payload();
        p.as_object_mut().unwrap().remove("type");
        assert_eq!(
            err(p),
            MappingError::Missing {
                field: "eventType".into(),
                path: "$.type".into()
            }
        );

        let mut p = delay_payload();
        p["data"]["lines"][1]["sku"] = json!(null);
        assert_eq!(
            err(p).to_string(),
            "lines[1].productCode: $.sku matched nothing"
        );

        // Two nodes where one is required.
        let mapping = CompiledMapping::compile(&spec(json!({
            "eventType": "$.type", "purchaseOrderRef": "$..po",
        })))
        .unwrap();
        let e = mapping
            .map(&json!({"type": "Delay", "po": "A", "x": {"po": "B"}}))
            .unwrap_err();
        assert_eq!(
            e,
            MappingError::Ambiguous {
                field: "purchaseOrderRef".into(),
                path: "$..po".into(),
                count: 2
            }
        );

        let mut p = delay_payload();
        p["data"]["po"] = json!({"name": "P1"});
        assert!(matches!(
            err(p),
            MappingError::WrongType { ref field, found: "an object", .. } if field == "purchaseOrderRef"
        ));

        let mut p = delay_payload();
        p["data"]["lines"][0]["qty"] = json!(true);
        assert_eq!(
            err(p).to_string(),
            "lines[0].quantity: expected a number, got a boolean"
        );

        let mut p = delay_payload();
        p["type"] = json!("order.exploded");
        let e = err(p);
        assert_eq!(e.kind(), "unknown_event_type");
        assert!(e.to_string().contains("\"order.delayed\""), "{e}");

        // Without eventTypeValues only the normalised names are known.
        let plain = CompiledMapping::compile(&spec(json!({
            "eventType": "$.type", "purchaseOrderRef": "$.po",
        })))
        .unwrap();
        assert_eq!(
            plain
                .map(&json!({"type": "delay", "po": "P1"}))
                .unwrap_err()
                .kind(),
            "unknown_event_type"
        );

        for bad in [
            "2025-02-30",
            "next week",
            "2025/03/01",
            "2025-03-01T25:00:00Z",
        ] {
            let mut p = delay_payload();
            p["data"]["lines"][0]["eta"] = json!(bad);
            assert_eq!(
                err(p),
                MappingError::BadDate {
                    field: "lines[0].promisedDate".into(),
                    value: bad.into()
                },
                "{bad}"
            );
        }
        let mut p = delay_payload();
        p["data"]["lines"][0]["eta"] = json!(20250301);
        assert_eq!(err(p).kind(), "wrong_type");

        let mut p = delay_payload();
        p["data"]["lines"][2]["qty"] = json!(-1);
        assert_eq!(
            err(p),
            MappingError::NegativeQuantity {
                field: "lines[2].quantity".into(),
                value: -1.0
            }
        );

        let mut p = delay_payload();
        p["data"]["lines"] = json!([]);
        assert_eq!(err(p).kind(), "missing");

        let mut p = delay_payload();
        p["data"]["lines"][0] = json!("SKU-1");
        assert_eq!(err(p).kind(), "wrong_type");

        let mut p = delay_payload();
        p["id"] = json!("");
        assert_eq!(err(p).kind(), "wrong_type");
    }

    #[test]
    fn quoted_values_are_cut_short() {
        let mut p = delay_payload();
        p["type"] = json!("x".repeat(500));
        let message = err(p).to_string();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn compile_errors_name_the_field() {
        let e = CompiledMapping::compile(&spec(json!({
            "eventType": "$.type[", "purchaseOrderRef": "$.po",
        })))
        .unwrap_err();
        assert!(matches!(
            e,
            CompileError::InvalidPath {
                field: "eventType",
                ..
            }
        ));
        assert_eq!(
            CompiledMapping::compile(&spec(json!({
                "eventType": "$.type", "purchaseOrderRef": "$.po", "lines": "$.lines[*]",
            })))
            .unwrap_err(),
            CompileError::MissingProductCode
        );
        assert_eq!(
            CompiledMapping::compile(&spec(json!({
                "eventType": "$.type", "purchaseOrderRef": "$.po", "quantity": "$.q",
            })))
            .unwrap_err(),
            CompileError::NeedsLines("quantity")
        );
    }
}
