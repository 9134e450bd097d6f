//! Fuzz target `domain`: the Odoo domain parser (JSON and Python-literal
//! forms, and JSON values built in code). See docs/reference/testing.md#fuzzing.
//!
//! Properties: no input panics or exhausts the stack; every accepted domain
//! gives itself back from its JSON value, its JSON text and (within the length
//! limit) its Python text; its expression tree can be built and holds every
//! leaf once; normalising it is idempotent and keeps the leaves.

#[path = "../../../tests/fuzz/harness.rs"]
mod harness;

use odoo_client::domain::{Domain, Expr, MAX_TEXT_LEN, Term};
use proptest::prelude::*;
use serde_json::Value;

/// Pieces of domain text, in both forms, including the ones that go wrong.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "(",
    ")",
    ",",
    ", ",
    "'&'",
    "'|'",
    "'!'",
    "\"&\"",
    "\"|\"",
    "\"!\"",
    "'name'",
    "\"state\"",
    "'='",
    "'!='",
    "'<>'",
    "'in'",
    "'not in'",
    "'any'",
    "\"any\"",
    "'ilike'",
    "'=?'",
    "1",
    "0",
    "-2.5e3",
    "1e400",
    "18446744073709551616",
    "9223372036854775808",
    "1_000",
    "0x10",
    "+",
    "-",
    ".",
    "True",
    "False",
    "None",
    "Foo",
    "u'x'",
    "r'\\x'",
    "'\\x41'",
    "'\\u00e9'",
    "'\\U0010ffff'",
    "'\\U00110000'",
    "'\\ud800'",
    "'it\\'s'",
    "'\\",
    "'",
    "\"",
    "\\",
    "\n",
    "[[",
    "]]",
    "((",
    "'a.b'",
    "{}",
    "{\"a\": 1}",
    "null",
    "true",
    "é",
];

/// Python-literal text of any JSON value, in one of several styles (quotes,
/// tuples, trailing commas, u-prefixes), as users paste it from Odoo.
fn python(value: &Value, style: u8, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            let quote = if style & 1 == 0 { '\'' } else { '"' };
            if style & 8 != 0 {
                out.push('u');
            }
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push(quote);
        }
        Value::Array(items) => {
            let tuple = style & 2 != 0 && items.len() == 3;
            out.push(if tuple { '(' } else { '[' });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python(item, style, out);
            }
            if style & 4 != 0 && !items.is_empty() {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        Value::Object(map) => {
            out.push('{');
            for (k, v) in map {
                python(&Value::String(k.clone()), style, out);
                out.push_str(": ");
                python(v, style, out);
                out.push_str(", ");
            }
            out.push('}');
        }
    }
}

fn python_text(value: &Value, style: u8) -> String {
    let mut out = String::new();
    python(value, style, &mut out);
    out
}

/// Leaves of the expression tree, counted with an explicit stack.
fn leaves_in(expr: &Expr<'_>) -> usize {
    let mut count = 0;
    let mut pending = vec![expr];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::True => {}
            Expr::Leaf(_) => count += 1,
            Expr::Not(inner) => pending.push(inner),
            Expr::And(parts) | Expr::Or(parts) => pending.extend(parts.iter()),
        }
    }
    count
}

fn leaves(domain: &Domain) -> usize {
    domain
        .terms()
        .iter()
        .filter(|t| matches!(t, Term::Leaf(_)))
        .count()
}

/// What every accepted domain must satisfy.
fn check_accepted(domain: &Domain) -> Result<(), TestCaseError> {
    let json = domain.to_json_value();
    prop_assert_eq!(
        Domain::from_json_value(&json),
        Ok(domain.clone()),
        "JSON value"
    );
    let text = json.to_string();
    if text.len() <= MAX_TEXT_LEN {
        prop_assert_eq!(
            Domain::parse(&text),
            Ok(domain.clone()),
            "JSON text {}",
            text
        );
        let deserialized: Result<Domain, _> = serde_json::from_value(Value::String(text.clone()));
        prop_assert_eq!(deserialized.ok(), Some(domain.clone()), "from a string");
    }
    let python = domain.to_python();
    if python.len() <= MAX_TEXT_LEN {
        prop_assert_eq!(
            Domain::parse_python(&python),
            Ok(domain.clone()),
            "Python text {}",
            python
        );
    }
    let expected = leaves(domain);
    prop_assert_eq!(leaves_in(&domain.expr()), expected, "leaves in the tree");
    let normal = domain.normalized();
    prop_assert_eq!(&normal.normalized(), &normal, "normalising twice");
    prop_assert_eq!(
        leaves_in(&normal.expr()),
        expected,
        "leaves once normalised"
    );
    for term in domain.terms() {
        if let Term::Leaf(c) = term
            && matches!(c.operator.as_str(), "any" | "not any")
        {
            prop_assert!(c.subdomain().is_some(), "sub-domain of {:?}", c);
        }
    }
    prop_assert!(!domain.to_string().is_empty());
    Ok(())
}

/// Every parser on one text; what any of them accepts is checked.
fn check_text(text: &str) -> Result<(), TestCaseError> {
    let either = Domain::parse(text);
    let json = Domain::parse_json(text);
    let python = Domain::parse_python(text);
    if json.is_ok() {
        prop_assert_eq!(&either, &json, "parse takes JSON first");
    }
    for parsed in [either, json, python] {
        match parsed {
            Ok(domain) => check_accepted(&domain)?,
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }
    Ok(())
}

fn check_value(value: &Value) -> Result<(), TestCaseError> {
    match Domain::from_json_value(value) {
        Ok(domain) => check_accepted(&domain),
        Err(err) => {
            prop_assert!(!err.to_string().is_empty());
            Ok(())
        }
    }
}

#[derive(Debug, Clone)]
enum Input {
    Text(String),
    Value(Value),
    /// A well-formed domain: must be accepted, in both forms.
    Valid(Value, u8),
}

fn input() -> impl Strategy<Value = Input> {
    let nested = (
        proptest::sample::select(&["[", "(", "[(", "['a', 'in', [", "[[\"a\",\"any\","][..]),
        0usize..48,
        proptest::sample::select(&["", "('a', '=', 1)", "[\"a\",\"=\",1]", "1"][..]),
    )
        .prop_map(|(open, depth, middle)| {
            let close: String = open
                .chars()
                .rev()
                .filter_map(|c| match c {
                    '[' => Some(']'),
                    '(' => Some(')'),
                    _ => None,
                })
                .collect();
            format!("{}{middle}{}", open.repeat(depth), close.repeat(depth))
        });
    prop_oneof![
        2 => any::<String>().prop_map(Input::Text),
        4 => harness::token_soup(TOKENS).prop_map(Input::Text),
        4 => harness::mutated("domain", TOKENS)
            .prop_map(|bytes| Input::Text(String::from_utf8_lossy(&bytes).into_owned())),
        1 => nested.prop_map(Input::Text),
        4 => (harness::domain_json(), any::<u8>(), any::<bool>()).prop_map(|(v, style, as_python)| {
            if as_python {
                Input::Text(python_text(&v, style))
            } else {
                Input::Text(v.to_string())
            }
        }),
        2 => harness::domain_json().prop_map(Input::Value),
        1 => harness::json_value().prop_map(Input::Value),
        3 => (harness::valid_domain_json(), any::<u8>()).prop_map(|(v, s)| Input::Valid(v, s)),
    ]
}

fn check(input: Input) -> Result<(), TestCaseError> {
    match input {
        Input::Text(text) => check_text(&text),
        Input::Value(value) => check_value(&value),
        Input::Valid(value, style) => {
            let domain = Domain::from_json_value(&value);
            prop_assert!(domain.is_ok(), "refused {}: {:?}", value, domain);
            check_value(&value)?;
            let text = python_text(&value, style);
            if text.len() <= MAX_TEXT_LEN {
                prop_assert_eq!(Domain::parse_python(&text), domain, "as Python: {}", text);
            }
            Ok(())
        }
    }
}

#[test]
fn fuzz_domain() {
    harness::fuzz("domain", 4000, input(), check);
}

#[test]
fn domain_corpus() {
    harness::replay("domain", |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Err(failure) = check_text(&text) {
            panic!("{failure}");
        }
    });
}
