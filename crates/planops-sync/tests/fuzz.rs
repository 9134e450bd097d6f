//! Fuzz target `jsonpath`: the JSONPath parser of mappings, poll paths and the
//! gateway's event id, and compiled supplier mappings applied to any payload.
//! See docs/reference/testing.md#fuzzing.
//!
//! Properties: no path or payload panics or exhausts the stack; parsing ends
//! quickly whatever the text (the nesting limit guards against the parser's
//! backtracking); a mapping answers an event or a `MappingError`, and the
//! event it answers holds trimmed non-empty references and non-negative
//! quantities; a payload made to fit its mapping maps to the event it was
//! made from.

#[path = "../../../tests/fuzz/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use planops_api::supplier::{MappingSpec, SupplierEventType};
use planops_sync::supplier::mapping::{
    CompiledMapping, EventLine, SupplierEvent, parse_date, parse_json_path,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Longest a parse may take, far above what one takes: a failure here is
/// the exponential backtracking the nesting limit exists for.
const SLOW_PARSE: Duration = Duration::from_secs(2);

/// Pieces of JSONPath text, whole segments and single characters.
const TOKENS: &[&str] = &[
    "$",
    "@",
    ".",
    "..",
    "*",
    "[",
    "]",
    "(",
    ")",
    "?",
    ",",
    ":",
    "'",
    "\"",
    "\\",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "-",
    "0",
    "1",
    "-1",
    "9007199254740992",
    "9007199254740991",
    "1e3",
    "1.5",
    "null",
    "true",
    "false",
    ".name",
    ".sku",
    "['a b']",
    "[\"x\"]",
    "[*]",
    "[0]",
    "[-1]",
    "[1:3]",
    "[::-1]",
    "[0:9007199254740991:2]",
    "[?@.qty > 1]",
    "[?",
    "@[?",
    "length(",
    "count(",
    "match(",
    "search(",
    "value(",
    "'[a-'",
    "'.*'",
    "'\\u00e9'",
    "'\\ud800'",
    " ",
    "é",
    "\u{0}",
];

/// One segment of a generated path, from plain names to nested filters.
fn segment() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("type".to_string()),
        Just("po".to_string()),
        Just("lines".to_string()),
        Just("sku".to_string()),
        Just("qty".to_string()),
        Just("eta".to_string()),
        "[a-z_]{1,6}",
    ];
    let simple = prop_oneof![
        name.clone().prop_map(|n| format!(".{n}")),
        name.clone().prop_map(|n| format!("['{n}']")),
        name.clone().prop_map(|n| format!("..{n}")),
        Just(".*".to_string()),
        Just("..*".to_string()),
        Just("[*]".to_string()),
        any::<i64>().prop_map(|i| format!("[{i}]")),
        (-3i64..3).prop_map(|i| format!("[{i}]")),
        (
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            any::<Option<i64>>()
        )
            .prop_map(|(a, b, c)| {
                let part = |x: Option<i64>| x.map(|v| v.to_string()).unwrap_or_default();
                format!("[{}:{}:{}]", part(a), part(b), part(c))
            }),
        Just("[0, 'sku', *]".to_string()),
    ];
    let filter = (
        name.clone(),
        proptest::sample::select(&["==", "!=", "<", "<=", ">", ">="][..]),
        prop_oneof![
            Just("1".to_string()),
            Just("'A'".to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
            Just("-1.5e3".to_string()),
            name.clone().prop_map(|n| format!("@.{n}")),
            name.clone().prop_map(|n| format!("$..{n}")),
        ],
        proptest::sample::select(
            &[
                "@.{}",
                "length(@.{})",
                "count(@.{})",
                "value(@..{})",
                "!@.{}",
            ][..],
        ),
    )
        .prop_map(|(n, op, rhs, form)| {
            let lhs = form.replace("{}", &n);
            if lhs.starts_with('!') {
                format!("[?{lhs}]")
            } else {
                format!("[?{lhs} {op} {rhs}]")
            }
        });
    let function = (
        name,
        proptest::sample::select(&["match", "search"][..]),
        proptest::sample::select(&["'S.*'", "'['", "'(a+)+$'", "'\\\\d{1000}{1000}'", "''"][..]),
    )
        .prop_map(|(n, f, re)| format!("[?{f}(@.{n}, {re})]"));
    prop_oneof![
        6 => simple,
        2 => filter,
        1 => function,
    ]
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(segment(), 0..6).prop_map(|segments| {
        let mut path = "$".to_string();
        for s in segments {
            path.push_str(&s);
        }
        path
    })
}

/// A payload whose keys are mostly those the generated paths look for.
fn payload() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        proptest::sample::select(&["type", "po", "id", "lines", "sku", "qty", "eta", "data"][..])
            .prop_map(str::to_string),
        harness::json_string(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        harness::json_number().prop_map(Value::Number),
        harness::json_string().prop_map(Value::String),
        proptest::sample::select(
            &[
                "Delay",
                "Confirmation",
                "2025-03-14",
                "2025-03-14T23:30:00-02:00",
                "  ",
                "-1",
                "1e999"
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A mapping spec of generated (or any) paths; some specs do not compile.
fn spec() -> impl Strategy<Value = Value> {
    let field = prop_oneof![4 => path(), 1 => harness::token_soup(TOKENS)];
    (
        field.clone(),
        field.clone(),
        proptest::option::of(field.clone()),
        proptest::option::of(field.clone()),
        proptest::option::of(field.clone()),
        proptest::option::of(field.clone()),
        proptest::option::of(field),
        proptest::collection::btree_map(
            harness::json_string(),
            proptest::sample::select(&["Delay", "Confirmation", "Shipment", "Cancellation"][..]),
            0..3,
        ),
    )
        .prop_map(|(kind, po, id, lines, code, qty, date, values)| {
            let mut spec = json!({"eventType": kind, "purchaseOrderRef": po});
            for (name, value) in [
                ("eventId", id),
                ("lines", lines),
                ("productCode", code),
                ("quantity", qty),
                ("promisedDate", date),
            ] {
                if let Some(value) = value {
                    spec[name] = Value::String(value);
                }
            }
            spec["eventTypeValues"] = json!(values);
            spec
        })
}

/// A parse, and queries on fixed and generated documents when it parses.
fn check_path(text: &str, document: &Value) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let parsed = parse_json_path(text);
    let took = started.elapsed();
    prop_assert!(took < SLOW_PARSE, "parsing {:?} took {:?}", text, took);
    match parsed {
        Ok(path) => {
            for doc in [
                document,
                &json!({"type": "Delay", "data": {"po": "P1", "lines": [{"sku": "A", "qty": 1}]}}),
                &json!([[[[1]]], {"a": {"a": {"a": null}}}]),
            ] {
                let _ = path.query(doc).all();
            }
        }
        Err(err) => prop_assert!(!err.to_string().is_empty()),
    }
    Ok(())
}

fn check_event(event: &SupplierEvent) -> Result<(), TestCaseError> {
    let trimmed = |s: &str| !s.is_empty() && s.trim() == s;
    prop_assert!(trimmed(&event.purchase_order_ref), "{:?}", event);
    if let Some(id) = &event.event_id {
        prop_assert!(trimmed(id), "{:?}", event);
    }
    for line in &event.lines {
        prop_assert!(trimmed(&line.product_code), "{:?}", event);
        if let Some(q) = line.quantity {
            prop_assert!(q.is_finite() && q >= 0.0, "{:?}", event);
        }
    }
    Ok(())
}

fn check_mapping(spec: &Value, payload: &Value) -> Result<(), TestCaseError> {
    let Ok(spec) = serde_json::from_value::<MappingSpec>(spec.clone()) else {
        return Ok(());
    };
    match CompiledMapping::compile(&spec) {
        Ok(mapping) => match mapping.map(payload) {
            Ok(event) => check_event(&event)?,
            Err(err) => {
                prop_assert!(!err.kind().is_empty());
                prop_assert!(!err.to_string().is_empty());
            }
        },
        Err(err) => prop_assert!(!err.to_string().is_empty()),
    }
    Ok(())
}

/// A line of a fitting payload: product code, quantity, promised (y, m, d).
type Line = (Value, Option<f64>, Option<(i16, i8, i8)>);

/// An event and the payload a supplier would send for it.
#[derive(Debug, Clone)]
struct Fitting {
    kind: SupplierEventType,
    id: Option<String>,
    po: Value,
    lines: Vec<Line>,
    noise: Value,
}

fn fitting() -> impl Strategy<Value = Fitting> {
    let reference = prop_oneof![
        "[A-Za-z0-9/_-]{1,12}".prop_map(Value::String),
        (0u32..1_000_000).prop_map(Value::from),
    ];
    let line = (
        reference.clone(),
        proptest::option::of(prop_oneof![
            (0u32..10_000).prop_map(f64::from),
            (0.0f64..1e9),
        ]),
        proptest::option::of((1900i16..2200, 1i8..=12, 1i8..=28)),
    );
    (
        proptest::sample::select(
            &[
                SupplierEventType::Confirmation,
                SupplierEventType::Delay,
                SupplierEventType::Shipment,
                SupplierEventType::Cancellation,
            ][..],
        ),
        proptest::option::of("[a-z0-9_]{1,20}"),
        reference,
        proptest::collection::vec(line, 1..5),
        harness::json_value(),
    )
        .prop_map(|(kind, id, po, lines, noise)| Fitting {
            kind,
            id,
            po,
            lines,
            noise,
        })
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_fitting(case: &Fitting) -> Result<(), TestCaseError> {
    let kind = match case.kind {
        SupplierEventType::Confirmation => "order.confirmed",
        SupplierEventType::Delay => "order.delayed",
        SupplierEventType::Shipment => "order.shipped",
        SupplierEventType::Cancellation => "order.cancelled",
    };
    let lines: Vec<Value> = case
        .lines
        .iter()
        .map(|(sku, qty, eta)| {
            let mut line = json!({"sku": sku, "noise": case.noise});
            if let Some(q) = qty {
                line["qty"] = json!(q);
            }
            if let Some((y, m, d)) = eta {
                line["eta"] = json!(format!("{y:04}-{m:02}-{d:02}"));
            }
            line
        })
        .collect();
    let mut payload =
        json!({"type": kind, "data": {"po": case.po, "lines": lines}, "noise": case.noise});
    if let Some(id) = &case.id {
        payload["id"] = json!(id);
    }
    let mut spec = json!({
        "eventType": "$.type",
        "eventTypeValues": {
            "order.confirmed": "Confirmation", "order.delayed": "Delay",
            "order.shipped": "Shipment", "order.cancelled": "Cancellation",
        },
        "purchaseOrderRef": "$.data.po",
        "lines": "$.data.lines",
        "productCode": "$.sku",
        "quantity": "$.qty",
        "promisedDate": "$.eta",
    });
    if case.id.is_some() {
        spec["eventId"] = json!("$.id");
    }
    let spec: MappingSpec = serde_json::from_value(spec).expect("a mapping spec");
    let mapping = CompiledMapping::compile(&spec).expect("the mapping compiles");
    let expected = SupplierEvent {
        kind: case.kind,
        event_id: case.id.clone(),
        purchase_order_ref: as_text(&case.po),
        promised_date: None,
        lines: case
            .lines
            .iter()
            .map(|(sku, qty, eta)| EventLine {
                product_code: as_text(sku),
                quantity: *qty,
                promised_date: eta.map(|(y, m, d)| jiff::civil::date(y, m, d)),
            })
            .collect(),
    };
    prop_assert_eq!(mapping.map(&payload), Ok(expected));
    Ok(())
}

#[derive(Debug, Clone)]
enum Input {
    Path(String, Value),
    Mapping(Value, Value),
    Fitting(Fitting),
    Date(String),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => (any::<String>(), Just(Value::Null)).prop_map(|(p, d)| Input::Path(p, d)),
        3 => (harness::token_soup(TOKENS), payload()).prop_map(|(p, d)| Input::Path(p, d)),
        3 => (harness::mutated("jsonpath", TOKENS), payload())
            .prop_map(|(p, d)| Input::Path(String::from_utf8_lossy(&p).into_owned(), d)),
        3 => (path(), payload()).prop_map(|(p, d)| Input::Path(p, d)),
        4 => (spec(), payload()).prop_map(|(s, p)| Input::Mapping(s, p)),
        2 => fitting().prop_map(Input::Fitting),
        1 => prop_oneof![
            any::<String>(),
            "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,12})?)?(Z|[+-][0-9]{2}:?[0-9]{2}|\\[[A-Za-z/_]{1,20}\\])?)?",
        ]
        .prop_map(Input::Date),
    ]
}

fn check(input: Input) -> Result<(), TestCaseError> {
    match input {
        Input::Path(text, document) => check_path(&text, &document),
        Input::Mapping(spec, payload) => check_mapping(&spec, &payload),
        Input::Fitting(case) => check_fitting(&case),
        Input::Date(text) => {
            let _ = parse_date(&text);
            Ok(())
        }
    }
}

#[test]
fn fuzz_jsonpath() {
    harness::fuzz("jsonpath", 3000, input(), check);
}

/// Corpus files: a `.json` file is `{"spec": ..., "payload": ...}`, any other
/// file one JSONPath.
#[test]
fn jsonpath_corpus() {
    harness::replay("jsonpath", |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let outcome = match serde_json::from_str::<Value>(&text) {
            Ok(case) if case.get("spec").is_some() => {
                check_mapping(&case["spec"], &case["payload"])
            }
            _ => check_path(&text, &Value::Null),
        };
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    });
}
