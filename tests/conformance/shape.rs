//! What the suite records of Odoo's answers, and the comparison of a run with
//! the answers recorded from a real server.
//!
//! An answer is kept as its *shape*, not its value: ids, names and dates differ
//! from one database to the next, but the structure a client decodes (an id or a
//! list of ids, a float or an int, a many2one pair or `false`, a datetime with or
//! without microseconds, which fields exist and their types, an error's Odoo
//! class) must not. Where the value itself is the point (a stock figure per
//! warehouse, the markup of a rendered message), a step records a `value` too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use planops::odoo::OdooError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One observed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `case/step`.
    pub step: String,
    /// What was asked (model, method and the arguments that matter).
    pub request: Value,
    /// The answer's shape, or `{"error": <Odoo exception class>}`.
    pub shape: Value,
    /// The answer's value, where it is the point of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The answers of one server, as committed under `tests/conformance/recorded/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    /// Which server answered: version, edition, source, date.
    pub server: Value,
    pub entries: Vec<Entry>,
}

/// The answers of one run.
#[derive(Debug, Default)]
pub struct Recorder {
    entries: Vec<Entry>,
}

impl Recorder {
    /// Records the answer (or error) of `request` under `step`.
    pub fn answer(&mut self, step: &str, request: Value, answer: &Result<Value, OdooError>) {
        let shape = match answer {
            Ok(value) => shape_of(value),
            Err(e) => json!({"error": error_name(e)}),
        };
        self.push(step, request, shape, None);
    }

    /// Records a value that is itself the point of the step.
    pub fn value(&mut self, step: &str, request: Value, value: Value) {
        self.push(step, request, shape_of(&value), Some(value));
    }

    fn push(&mut self, step: &str, request: Value, shape: Value, value: Option<Value>) {
        assert!(
            self.entries.iter().all(|e| e.step != step),
            "step {step} recorded twice"
        );
        self.entries.push(Entry {
            step: step.to_string(),
            request,
            shape,
            value,
        });
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// The Odoo class of an error (`ValidationError`, `AccessError`, ...), or the
/// client's own kind when Odoo named none.
pub fn error_name(e: &OdooError) -> String {
    match e.exception_name() {
        Some(name) => name.rsplit('.').next().unwrap_or(name).to_string(),
        None => format!("{:?}", e.kind())
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("unknown")
            .to_string(),
    }
}

/// The structure of a JSON value (see the module comment).
pub fn shape_of(value: &Value) -> Value {
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_f64() => json!("float"),
        Value::Number(_) => json!("int"),
        Value::String(s) => json!(string_kind(s)),
        Value::Array(items) => {
            if items.len() == 2 && items[0].is_i64() && items[1].is_string() {
                return json!("many2one");
            }
            let mut shapes: Vec<Value> = Vec::new();
            for item in items {
                let s = shape_of(item);
                if let Some(merged) = shapes.iter_mut().find(|known| mergeable(known, &s)) {
                    *merged = merge(merged, &s);
                } else {
                    shapes.push(s);
                }
            }
            shapes.sort_by_key(Value::to_string);
            match shapes.len() {
                0 => json!({"list": "empty"}),
                1 => json!({"list": shapes.remove(0)}),
                _ => json!({"list": {"any_of": shapes}}),
            }
        }
        Value::Object(map) => {
            let fields: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, shape_of(v))).collect();
            json!({ "dict": fields })
        }
    }
}

/// Datetimes and dates are strings to JSON, but their format is part of the
/// contract (microseconds, a `T`, a zone).
fn string_kind(s: &str) -> &'static str {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let is_date = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10);
    if !is_date {
        return "str";
    }
    match b.len() {
        10 => "date",
        19 if b[10] == b' ' => "datetime",
        26 if b[10] == b' ' && b[19] == b'.' => "datetime.micro",
        _ => "str",
    }
}

/// Records of one list merge into one dict shape (a field `false` in one row and
/// a many2one in another is one field that may be empty).
fn mergeable(a: &Value, b: &Value) -> bool {
    a == b || (a.get("dict").is_some() && b.get("dict").is_some())
}

fn merge(a: &Value, b: &Value) -> Value {
    if a == b {
        return a.clone();
    }
    let (Some(x), Some(y)) = (a["dict"].as_object(), b["dict"].as_object()) else {
        return a.clone();
    };
    let mut out = x.clone();
    for (k, v) in y {
        let merged = match out.get(k) {
            None => v.clone(),
            Some(known) if known == v => v.clone(),
            Some(known) => union(known, v),
        };
        out.insert(k.clone(), merged);
    }
    json!({ "dict": out })
}

fn union(a: &Value, b: &Value) -> Value {
    let mut all: Vec<Value> = Vec::new();
    for v in [a, b] {
        match v.get("any_of").and_then(Value::as_array) {
            Some(items) => all.extend(items.iter().cloned()),
            None => all.push(v.clone()),
        }
    }
    all.sort_by_key(Value::to_string);
    all.dedup();
    json!({ "any_of": all })
}

/// Where the answers of Odoo `major` are kept.
pub fn recording_path(major: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/recorded")
        .join(format!("odoo-{major}.json"))
}

pub fn load(major: u32) -> Option<Recording> {
    let text = std::fs::read_to_string(recording_path(major)).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not a recording: {e}",
            recording_path(major).display()
        )
    }))
}

pub fn save(major: u32, recording: &Recording) {
    let text = serde_json::to_string_pretty(recording).expect("a recording serialises");
    std::fs::write(recording_path(major), text + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", recording_path(major).display()));
}

/// The differences between what the simulator answered and what real Odoo
/// answered, one line each; empty when they agree.
pub fn compare(recorded: &[Entry], observed: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    let by_step: BTreeMap<&str, &Entry> = observed.iter().map(|e| (e.step.as_str(), e)).collect();
    for want in recorded {
        let Some(got) = by_step.get(want.step.as_str()) else {
            problems.push(format!("{}: not run against the simulator", want.step));
            continue;
        };
        if got.request != want.request {
            problems.push(format!(
                "{}: the request changed since it was recorded (re-record against real Odoo)\n  recorded: {}\n  now:      {}",
                want.step, want.request, got.request
            ));
        } else if got.shape != want.shape {
            problems.push(format!(
                "{}: answer shape differs\n  Odoo:      {}\n  simulator: {}",
                want.step, want.shape, got.shape
            ));
        } else if want.value.is_some() && got.value != want.value {
            problems.push(format!(
                "{}: answer differs\n  Odoo:      {}\n  simulator: {}",
                want.step,
                want.value.as_ref().map_or(String::new(), Value::to_string),
                got.value.as_ref().map_or(String::new(), Value::to_string)
            ));
        }
    }
    for got in observed {
        if !recorded.iter().any(|w| w.step == got.step) {
            problems.push(format!(
                "{}: never recorded from real Odoo (run the suite against it with PLANOPS_CONFORMANCE_RECORD=1)",
                got.step
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_keep_structure_and_drop_values() {
        assert_eq!(shape_of(&json!(7)), json!("int"));
        assert_eq!(shape_of(&json!(7.0)), json!("float"));
        assert_eq!(shape_of(&json!([7])), json!({"list": "int"}));
        assert_eq!(shape_of(&json!([3, "WH"])), json!("many2one"));
        assert_eq!(shape_of(&json!("2026-12-05 10:00:00")), json!("datetime"));
        assert_eq!(
            shape_of(&json!("2026-12-05 10:00:00.123456")),
            json!("datetime.micro")
        );
        let rows = json!([{"id": 1, "uom": false}, {"id": 2, "uom": [1, "Units"]}]);
        assert_eq!(
            shape_of(&rows),
            json!({"list": {"dict": {"id": "int", "uom": {"any_of": ["bool", "many2one"]}}}})
        );
    }

    #[test]
    fn comparison_names_each_difference() {
        let entry = |step: &str, shape: Value| Entry {
            step: step.into(),
            request: json!({}),
            shape,
            value: None,
        };
        let recorded = vec![entry("a/x", json!("int")), entry("a/y", json!("int"))];
        let observed = vec![
            entry("a/x", json!({"list": "int"})),
            entry("a/z", json!("int")),
        ];
        let problems = compare(&recorded, &observed);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("a/x: answer shape differs"));
        assert!(problems[1].contains("a/y: not run"));
        assert!(problems[2].contains("a/z: never recorded"));
    }
}
