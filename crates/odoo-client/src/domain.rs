//! The Odoo domain type: parsed from JSON or from the Python-literal form users
//! copy out of Odoo, validated, and serialised back.
//!
//! A domain is a list in prefix (Polish) notation: leaves `[path, operator, value]`
//! and the connectors `&` (and, binary), `|` (or, binary) and `!` (not, unary).
//! Consecutive expressions at the top level are implicitly and-ed.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A comparison operator Odoo accepts in a domain leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    EqOrUnset,
    EqLike,
    Like,
    NotLike,
    ILike,
    NotILike,
    EqILike,
    In,
    NotIn,
    ChildOf,
    ParentOf,
    Any,
    NotAny,
}

impl Operator {
    pub const ALL: [Operator; 19] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Ge,
        Operator::Lt,
        Operator::Le,
        Operator::EqOrUnset,
        Operator::EqLike,
        Operator::Like,
        Operator::NotLike,
        Operator::ILike,
        Operator::NotILike,
        Operator::EqILike,
        Operator::In,
        Operator::NotIn,
        Operator::ChildOf,
        Operator::ParentOf,
        Operator::Any,
        Operator::NotAny,
    ];

    /// The operator as written in a domain.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::EqOrUnset => "=?",
            Operator::EqLike => "=like",
            Operator::Like => "like",
            Operator::NotLike => "not like",
            Operator::ILike => "ilike",
            Operator::NotILike => "not ilike",
            Operator::EqILike => "=ilike",
            Operator::In => "in",
            Operator::NotIn => "not in",
            Operator::ChildOf => "child_of",
            Operator::ParentOf => "parent_of",
            Operator::Any => "any",
            Operator::NotAny => "not any",
        }
    }

    /// Parses an operator; Odoo lower-cases operators and accepts `<>` as `!=`.
    pub fn parse(text: &str) -> Option<Operator> {
        let lowered = text.to_ascii_lowercase();
        if lowered == "<>" {
            return Some(Operator::Ne);
        }
        Operator::ALL.into_iter().find(|op| op.as_str() == lowered)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A leaf `[path, operator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Field name, possibly dotted through relations (`categ_id.name`).
    pub path: String,
    pub operator: Operator,
    /// The right-hand side; for `any`/`not any` it is itself a (validated) domain.
    pub value: Value,
}

impl Condition {
    pub fn new(path: impl Into<String>, operator: Operator, value: impl Into<Value>) -> Condition {
        Condition {
            path: path.into(),
            operator,
            value: value.into(),
        }
    }

    /// The sub-domain of an `any`/`not any` leaf.
    pub fn subdomain(&self) -> Option<Domain> {
        match self.operator {
            Operator::Any | Operator::NotAny => Domain::from_json_value(&self.value).ok(),
            _ => None,
        }
    }
}

/// One element of a domain list.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    And,
    Or,
    Not,
    Leaf(Condition),
}

/// A validated Odoo domain (prefix notation, arity checked).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Domain {
    terms: Vec<Term>,
}

/// The domain as a tree, convenient for evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<'a> {
    /// The empty domain: matches everything.
    True,
    And(Vec<Expr<'a>>),
    Or(Vec<Expr<'a>>),
    Not(Box<Expr<'a>>),
    Leaf(&'a Condition),
}

/// Why a domain was rejected; positions point at the offending element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("a domain must be a list, got {found}")]
    NotAList { found: String },
    #[error("domain element {index} ({text}) is not a valid term: {reason}")]
    BadTerm {
        index: usize,
        text: String,
        reason: String,
    },
    #[error("domain element {index} ({text}) uses unknown operator {operator:?}")]
    UnknownOperator {
        index: usize,
        text: String,
        operator: String,
    },
    #[error(
        "domain element {index} ({text}) expects {expected} operand(s) after it but finds {found}"
    )]
    MissingOperands {
        index: usize,
        text: String,
        expected: usize,
        found: usize,
    },
    #[error("domain element {index} ({text}) has an invalid value: {reason}")]
    BadValue {
        index: usize,
        text: String,
        reason: String,
    },
    #[error("domain syntax error at character {position}: {reason}")]
    Syntax { position: usize, reason: String },
}

impl Domain {
    /// The empty domain (all records).
    pub fn all() -> Domain {
        Domain::default()
    }

    /// A domain of and-ed leaves.
    pub fn from_conditions(conditions: impl IntoIterator<Item = Condition>) -> Domain {
        Domain {
            terms: conditions.into_iter().map(Term::Leaf).collect(),
        }
    }

    /// Builds a domain from terms, checking operator arity.
    pub fn from_terms(terms: Vec<Term>) -> Result<Domain, DomainError> {
        let domain = Domain { terms };
        domain.check_arity()?;
        Ok(domain)
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Parses the JSON form (`[["a","=",1],"|",...]`) from text.
    pub fn parse_json(text: &str) -> Result<Domain, DomainError> {
        let value: Value = serde_json::from_str(text).map_err(|err| DomainError::Syntax {
            position: err.column(),
            reason: err.to_string(),
        })?;
        Domain::from_json_value(&value)
    }

    /// Parses the Python-literal form users copy out of Odoo, e.g.
    /// `[('categ_id.name', '=', 'Seasonal'), '|', ('x', '!=', False)]`.
    pub fn parse_python(text: &str) -> Result<Domain, DomainError> {
        let value = python::parse(text)?;
        Domain::from_json_value(&value)
    }

    /// Parses either form: JSON first, then the Python literal.
    pub fn parse(text: &str) -> Result<Domain, DomainError> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Domain::from_json_value(&value),
            Err(_) => Domain::parse_python(text),
        }
    }

    /// Validates a JSON value as a domain.
    pub fn from_json_value(value: &Value) -> Result<Domain, DomainError> {
        let Value::Array(items) = value else {
            return Err(DomainError::NotAList {
                found: short_text(value),
            });
        };
        let mut terms = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            terms.push(parse_term(index, item)?);
        }
        Domain::from_terms(terms)
    }

    fn check_arity(&self) -> Result<(), DomainError> {
        // Scanning right to left, a stack depth counts complete expressions
        // available to the connector being looked at.
        let mut available = 0usize;
        for (index, term) in self.terms.iter().enumerate().rev() {
            let expected = match term {
                Term::Leaf(_) => 0,
                Term::Not => 1,
                Term::And | Term::Or => 2,
            };
            if available < expected {
                return Err(DomainError::MissingOperands {
                    index,
                    text: term_text(term),
                    expected,
                    found: available,
                });
            }
            available = available - expected + 1;
        }
        Ok(())
    }

    /// The domain with the implicit top-level `&` made explicit.
    pub fn normalized(&self) -> Domain {
        let mut top_level = 0usize;
        let mut pending = 1usize;
        // Count top-level expressions by walking left to right: each complete
        // expression consumes the pending operand slots.
        for term in &self.terms {
            if pending == 0 {
                top_level += 1;
                pending = 1;
            }
            match term {
                Term::Leaf(_) => pending -= 1,
                Term::Not => {}
                Term::And | Term::Or => pending += 1,
            }
        }
        if !self.terms.is_empty() {
            top_level += 1;
        }
        let mut terms = Vec::with_capacity(self.terms.len() + top_level);
        for _ in 1..top_level.max(1) {
            terms.push(Term::And);
        }
        terms.extend(self.terms.iter().cloned());
        Domain { terms }
    }

    /// `self AND other`.
    pub fn and(&self, other: &Domain) -> Domain {
        match (self.is_empty(), other.is_empty()) {
            (true, _) => other.clone(),
            (_, true) => self.clone(),
            _ => {
                let mut terms = vec![Term::And];
                terms.extend(self.normalized().terms);
                terms.extend(other.normalized().terms);
                Domain { terms }
            }
        }
    }

    /// `self OR other`; the empty domain (all records) absorbs the other side.
    pub fn or(&self, other: &Domain) -> Domain {
        if self.is_empty() || other.is_empty() {
            return Domain::all();
        }
        let mut terms = vec![Term::Or];
        terms.extend(self.normalized().terms);
        terms.extend(other.normalized().terms);
        Domain { terms }
    }

    /// The domain as a tree.
    pub fn expr(&self) -> Expr<'_> {
        if self.terms.is_empty() {
            return Expr::True;
        }
        let mut position = 0usize;
        let mut parts = Vec::new();
        while position < self.terms.len() {
            parts.push(build_expr(&self.terms, &mut position));
        }
        if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::True)
        } else {
            Expr::And(parts)
        }
    }

    /// The JSON form.
    pub fn to_json_value(&self) -> Value {
        Value::Array(
            self.terms
                .iter()
                .map(|term| match term {
                    Term::And => Value::String("&".into()),
                    Term::Or => Value::String("|".into()),
                    Term::Not => Value::String("!".into()),
                    Term::Leaf(c) => Value::Array(vec![
                        Value::String(c.path.clone()),
                        Value::String(c.operator.as_str().into()),
                        c.value.clone(),
                    ]),
                })
                .collect(),
        )
    }

    /// The Python-literal form, as Odoo stores `filter_domain` on automation rules.
    pub fn to_python(&self) -> String {
        let mut out = String::from("[");
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match term {
                Term::And => out.push_str("'&'"),
                Term::Or => out.push_str("'|'"),
                Term::Not => out.push_str("'!'"),
                Term::Leaf(c) => {
                    out.push('(');
                    python::write_str(&mut out, &c.path);
                    out.push_str(", ");
                    python::write_str(&mut out, c.operator.as_str());
                    out.push_str(", ");
                    python::write_value(&mut out, &c.value);
                    out.push(')');
                }
            }
        }
        out.push(']');
        out
    }
}

fn build_expr<'a>(terms: &'a [Term], position: &mut usize) -> Expr<'a> {
    let Some(term) = terms.get(*position) else {
        return Expr::True;
    };
    *position += 1;
    match term {
        Term::Leaf(c) => Expr::Leaf(c),
        Term::Not => Expr::Not(Box::new(build_expr(terms, position))),
        Term::And => {
            let left = build_expr(terms, position);
            let right = build_expr(terms, position);
            Expr::And(vec![left, right])
        }
        Term::Or => {
            let left = build_expr(terms, position);
            let right = build_expr(terms, position);
            Expr::Or(vec![left, right])
        }
    }
}

fn short_text(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn term_text(term: &Term) -> String {
    match term {
        Term::And => "'&'".into(),
        Term::Or => "'|'".into(),
        Term::Not => "'!'".into(),
        Term::Leaf(c) => format!("[{:?}, {:?}, {}]", c.path, c.operator.as_str(), c.value),
    }
}

fn parse_term(index: usize, item: &Value) -> Result<Term, DomainError> {
    let text = short_text(item);
    match item {
        Value::String(s) => match s.as_str() {
            "&" => Ok(Term::And),
            "|" => Ok(Term::Or),
            "!" => Ok(Term::Not),
            _ => Err(DomainError::BadTerm {
                index,
                text,
                reason: "a string element must be one of '&', '|', '!'".into(),
            }),
        },
        Value::Array(parts) => {
            if parts.len() != 3 {
                return Err(DomainError::BadTerm {
                    index,
                    text,
                    reason: format!("a leaf needs 3 elements, found {}", parts.len()),
                });
            }
            let path = match &parts[0] {
                Value::String(p) if !p.trim().is_empty() => p.clone(),
                Value::String(_) => {
                    return Err(DomainError::BadTerm {
                        index,
                        text,
                        reason: "the field path is empty".into(),
                    });
                }
                // Odoo's TRUE_LEAF (1, '=', 1) and FALSE_LEAF (0, '=', 1).
                Value::Number(n) if (n.as_i64() == Some(1) || n.as_i64() == Some(0)) => {
                    n.to_string()
                }
                other => {
                    return Err(DomainError::BadTerm {
                        index,
                        text,
                        reason: format!("the field path must be a string, got {other}"),
                    });
                }
            };
            let Value::String(op_text) = &parts[1] else {
                return Err(DomainError::BadTerm {
                    index,
                    text,
                    reason: "the operator must be a string".into(),
                });
            };
            let operator =
                Operator::parse(op_text).ok_or_else(|| DomainError::UnknownOperator {
                    index,
                    text: text.clone(),
                    operator: op_text.clone(),
                })?;
            let value = parts[2].clone();
            check_value(index, &text, operator, &value)?;
            Ok(Term::Leaf(Condition {
                path,
                operator,
                value,
            }))
        }
        other => Err(DomainError::BadTerm {
            index,
            text,
            reason: format!(
                "expected a leaf [path, operator, value] or a connector, got {}",
                json_kind(other)
            ),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn check_value(index: usize, text: &str, op: Operator, value: &Value) -> Result<(), DomainError> {
    let bad = |reason: String| DomainError::BadValue {
        index,
        text: text.to_string(),
        reason,
    };
    match op {
        Operator::Any | Operator::NotAny => match value {
            Value::Array(_) => Domain::from_json_value(value)
                .map(|_| ())
                .map_err(|err| bad(format!("invalid sub-domain: {err}"))),
            other => Err(bad(format!(
                "'{}' needs a sub-domain (list), got {}",
                op.as_str(),
                json_kind(other)
            ))),
        },
        Operator::Like
        | Operator::NotLike
        | Operator::ILike
        | Operator::NotILike
        | Operator::EqLike
        | Operator::EqILike => match value {
            Value::Object(_) | Value::Array(_) => Err(bad(format!(
                "'{}' compares with a string, got {}",
                op.as_str(),
                json_kind(value)
            ))),
            _ => Ok(()),
        },
        Operator::In | Operator::NotIn => match value {
            Value::Object(_) => Err(bad(format!("'{}' needs a list", op.as_str()))),
            _ => Ok(()),
        },
        _ => match value {
            Value::Object(_) => Err(bad("objects are not valid domain values".into())),
            _ => Ok(()),
        },
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json_value())
    }
}

impl std::str::FromStr for Domain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Domain {
    /// Accepts the JSON array, or a string holding either form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let parsed = match &value {
            Value::String(text) => Domain::parse(text),
            other => Domain::from_json_value(other),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Domain {
    fn schema_name() -> Cow<'static, str> {
        "OdooDomain".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Elements are either connector strings or [path, operator, value]
        // lists, which a structural (Kubernetes) schema cannot express.
        schemars::json_schema!({
            "type": "array",
            "description": "Odoo domain in prefix notation, e.g. [[\"state\",\"=\",\"purchase\"],\"|\",[\"a\",\"=\",1],[\"b\",\"!=\",false]]",
            "items": {"x-kubernetes-preserve-unknown-fields": true}
        })
    }
}

/// A small parser for the Python literal subset domains use.
mod python {
    use super::DomainError;
    use serde_json::{Number, Value};

    pub(super) fn parse(text: &str) -> Result<Value, DomainError> {
        let mut parser = Parser {
            chars: text.char_indices().collect(),
            pos: 0,
        };
        let value = parser.value()?;
        parser.skip_ws();
        if parser.pos < parser.chars.len() {
            return Err(parser.error("unexpected text after the end of the domain"));
        }
        Ok(value)
    }

    struct Parser {
        chars: Vec<(usize, char)>,
        pos: usize,
    }

    impl Parser {
        fn error(&self, reason: &str) -> DomainError {
            let position = self
                .chars
                .get(self.pos)
                .map(|(offset, _)| *offset)
                .unwrap_or_else(|| {
                    self.chars
                        .last()
                        .map(|(o, c)| o + c.len_utf8())
                        .unwrap_or(0)
                });
            DomainError::Syntax {
                position,
                reason: reason.to_string(),
            }
        }

        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).map(|(_, c)| *c)
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(c) if c.is_whitespace()) {
                self.pos += 1;
            }
        }

        fn value(&mut self) -> Result<Value, DomainError> {
            self.skip_ws();
            match self.peek() {
                None => Err(self.error("unexpected end of input")),
                Some('[') => self.sequence(']'),
                Some('(') => self.sequence(')'),
                Some('\'') | Some('"') => self.string().map(Value::String),
                Some(c) if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
                Some(c) if c.is_alphabetic() || c == '_' => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '_') {
                        self.pos += 1;
                    }
                    let word: String = self.chars[start..self.pos].iter().map(|(_, c)| c).collect();
                    // u'…' / r'…' prefixes from Python 2 era exports.
                    if matches!(word.as_str(), "u" | "U" | "r" | "R")
                        && matches!(self.peek(), Some('\'') | Some('"'))
                    {
                        let raw = word.eq_ignore_ascii_case("r");
                        return self.string_with(raw).map(Value::String);
                    }
                    match word.as_str() {
                        "True" => Ok(Value::Bool(true)),
                        "False" => Ok(Value::Bool(false)),
                        "None" => Ok(Value::Null),
                        _ => {
                            self.pos = start;
                            Err(self.error(&format!(
                                "unknown name {word:?} (only literals True, False, None are allowed)"
                            )))
                        }
                    }
                }
                Some(c) => Err(self.error(&format!("unexpected character {c:?}"))),
            }
        }

        fn sequence(&mut self, close: char) -> Result<Value, DomainError> {
            self.pos += 1;
            let mut items = Vec::new();
            loop {
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                items.push(self.value()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(c) if c == close => {}
                    None => return Err(self.error(&format!("missing closing {close:?}"))),
                    Some(c) => {
                        return Err(self.error(&format!("expected ',' or {close:?}, found {c:?}")));
                    }
                }
            }
        }

        fn string(&mut self) -> Result<String, DomainError> {
            self.string_with(false)
        }

        fn string_with(&mut self, raw: bool) -> Result<String, DomainError> {
            let Some(quote) = self.peek() else {
                return Err(self.error("expected a string"));
            };
            self.pos += 1;
            let mut out = String::new();
            loop {
                let Some(c) = self.peek() else {
                    return Err(self.error("unterminated string"));
                };
                self.pos += 1;
                if c == quote {
                    return Ok(out);
                }
                if c == '\n' {
                    self.pos -= 1;
                    return Err(self.error("newline inside a string"));
                }
                if c != '\\' || raw {
                    out.push(c);
                    continue;
                }
                let Some(escaped) = self.peek() else {
                    return Err(self.error("unterminated escape"));
                };
                self.pos += 1;
                match escaped {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\\' => out.push('\\'),
                    '\'' => out.push('\''),
                    '"' => out.push('"'),
                    '\n' => {}
                    'x' => out.push(self.hex_escape(2)?),
                    'u' => out.push(self.hex_escape(4)?),
                    'U' => out.push(self.hex_escape(8)?),
                    other => {
                        // Python keeps unknown escapes verbatim.
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
        }

        fn hex_escape(&mut self, digits: usize) -> Result<char, DomainError> {
            let mut code = 0u32;
            for _ in 0..digits {
                let digit = self
                    .peek()
                    .and_then(|c| c.to_digit(16))
                    .ok_or_else(|| self.error("bad hexadecimal escape"))?;
                code = code * 16 + digit;
                self.pos += 1;
            }
            char::from_u32(code).ok_or_else(|| self.error("escape is not a valid character"))
        }

        fn number(&mut self) -> Result<Value, DomainError> {
            let start = self.pos;
            if matches!(self.peek(), Some('-') | Some('+')) {
                self.pos += 1;
            }
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '.' || c == '_' || ((c == '-' || c == '+') && matches!(self.chars.get(self.pos.wrapping_sub(1)), Some((_, 'e')) | Some((_, 'E')))))
            {
                self.pos += 1;
            }
            let text: String = self.chars[start..self.pos]
                .iter()
                .map(|(_, c)| *c)
                .filter(|c| *c != '_')
                .collect();
            let is_float = text.contains(['.', 'e', 'E']);
            if !is_float && let Ok(int) = text.parse::<i64>() {
                return Ok(Value::Number(int.into()));
            }
            match text.parse::<f64>().ok().and_then(Number::from_f64) {
                Some(n) => Ok(Value::Number(n)),
                None => {
                    self.pos = start;
                    Err(self.error(&format!("invalid number {text:?}")))
                }
            }
        }
    }

    pub(super) fn write_str(out: &mut String, text: &str) {
        out.push('\'');
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('\'');
    }

    pub(super) fn write_value(out: &mut String, value: &Value) {
        match value {
            Value::Null => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => write_str(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_value(out, item);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_str(out, k);
                    out.push_str(": ");
                    write_value(out, v);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_json_and_round_trips() {
        let text = r#"[["state","=","purchase"],"|",["date_planned","<","2025-03-01"],["receipt_status","=","pending"]]"#;
        let domain = Domain::parse_json(text).unwrap();
        assert_eq!(domain.terms().len(), 4);
        let back = serde_json::to_string(&domain).unwrap();
        assert_eq!(back, text);
        let again: Domain = serde_json::from_str(&back).unwrap();
        assert_eq!(again, domain);
    }

    #[test]
    fn parses_python_literal() {
        let text = r#"[('categ_id.name', '=', 'Seasonal'), '|', ('x','!=',False), ("y", "in", [1, 2.5, -3]), ('n', '=', None), ('t', '=', True), ('s', 'ilike', 'it\'s "q"\n\x41')]"#;
        let domain = Domain::parse_python(text).unwrap();
        assert_eq!(
            domain.to_json_value(),
            json!([
                ["categ_id.name", "=", "Seasonal"],
                "|",
                ["x", "!=", false],
                ["y", "in", [1, 2.5, -3]],
                ["n", "=", null],
                ["t", "=", true],
                ["s", "ilike", "it's \"q\"\nA"]
            ])
        );
        // Python output parses back to the same domain.
        let python = domain.to_python();
        assert_eq!(Domain::parse_python(&python).unwrap(), domain);
        // `parse` detects either form.
        assert_eq!(Domain::parse(text).unwrap(), domain);
    }

    #[test]
    fn python_tuples_and_trailing_commas() {
        let domain = Domain::parse_python("[('a', 'in', (1, 2,)),]").unwrap();
        assert_eq!(domain.to_json_value(), json!([["a", "in", [1, 2]]]));
        let domain = Domain::parse_python("[(\"a\", \"=\", 1e3), ('b', '<>', 0)]").unwrap();
        assert_eq!(
            domain.to_json_value(),
            json!([["a", "=", 1000.0], ["b", "!=", 0]])
        );
    }

    #[test]
    fn any_subdomain_is_validated() {
        let ok = Domain::parse_json(r#"[["order_line","any",[["product_id","=",3]]]]"#).unwrap();
        let Term::Leaf(c) = &ok.terms()[0] else {
            panic!("leaf expected")
        };
        assert_eq!(c.subdomain().unwrap().terms().len(), 1);
        let err =
            Domain::parse_json(r#"[["order_line","any",[["product_id","eq",3]]]]"#).unwrap_err();
        assert!(
            matches!(err, DomainError::BadValue { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn normalisation_adds_implicit_and() {
        let domain =
            Domain::parse_json(r#"[["a","=",1],"|",["b","=",2],["c","=",3],["d","=",4]]"#).unwrap();
        let normal = domain.normalized();
        assert_eq!(
            normal.to_json_value(),
            json!([
                "&",
                "&",
                ["a", "=", 1],
                "|",
                ["b", "=", 2],
                ["c", "=", 3],
                ["d", "=", 4]
            ])
        );
        assert_eq!(normal.normalized(), normal);
        assert_eq!(Domain::all().normalized(), Domain::all());
        let Expr::And(parts) = domain.expr() else {
            panic!("implicit and")
        };
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn malformed_domains_point_at_the_element() {
        type Check = fn(&DomainError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            (r#"{"a":1}"#, |e| matches!(e, DomainError::NotAList { .. })),
            (r#"["|",["a","=",1]]"#, |e| {
                matches!(
                    e,
                    DomainError::MissingOperands {
                        index: 0,
                        expected: 2,
                        found: 1,
                        ..
                    }
                )
            }),
            (r#"[["a","=",1],"!"]"#, |e| {
                matches!(e, DomainError::MissingOperands { index: 1, .. })
            }),
            (r#"["&"]"#, |e| {
                matches!(
                    e,
                    DomainError::MissingOperands {
                        index: 0,
                        found: 0,
                        ..
                    }
                )
            }),
            (r#"[["a","==",1]]"#, |e| {
                matches!(e, DomainError::UnknownOperator { index: 0, .. })
            }),
            (r#"[["a","=",1],["b","=",2,3]]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 1, .. })
            }),
            (r#"[["a","="]]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 0, .. })
            }),
            (r#"[["a","=",1],"^"]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 1, .. })
            }),
            (r#"[[3,"=",1]]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 0, .. })
            }),
            (r#"[["","=",1]]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 0, .. })
            }),
            (r#"[["a",5,1]]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 0, .. })
            }),
            (r#"[["a","=",1], 7]"#, |e| {
                matches!(e, DomainError::BadTerm { index: 1, .. })
            }),
            (r#"[["a","like",[1]]]"#, |e| {
                matches!(e, DomainError::BadValue { index: 0, .. })
            }),
            (r#"[["a","any",5]]"#, |e| {
                matches!(e, DomainError::BadValue { index: 0, .. })
            }),
            (r#"[["a","=",{"x":1}]]"#, |e| {
                matches!(e, DomainError::BadValue { index: 0, .. })
            }),
            (r#"[["a","=",1"#, |e| {
                matches!(e, DomainError::Syntax { .. })
            }),
            ("[('a', '=', Foo)]", |e| {
                matches!(e, DomainError::Syntax { position: 12, .. })
            }),
            ("[('a', '=', 'open)]", |e| {
                matches!(e, DomainError::Syntax { .. })
            }),
            ("[('a', '=' 1)]", |e| {
                matches!(e, DomainError::Syntax { position: 11, .. })
            }),
            ("[('a', '=', 1)] x", |e| {
                matches!(e, DomainError::Syntax { .. })
            }),
            ("[('a', '=', 1.2.3)]", |e| {
                matches!(e, DomainError::Syntax { .. })
            }),
        ];
        for (text, check) in cases {
            let err = Domain::parse(text).unwrap_err();
            assert!(check(&err), "{text}: unexpected error {err:?}");
            assert!(!err.to_string().is_empty());
        }
        let err = Domain::parse(r#"[["a","=",1],["b","bogus",2]]"#).unwrap_err();
        assert!(err.to_string().contains("element 1"), "{err}");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn operators_round_trip() {
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.as_str()), Some(op));
        }
        assert_eq!(Operator::parse("ILIKE"), Some(Operator::ILike));
        assert_eq!(Operator::parse("<>"), Some(Operator::Ne));
    }

    #[test]
    fn deserializes_from_string_forms() {
        let d: Domain = serde_json::from_value(json!("[('a','=',1)]")).unwrap();
        assert_eq!(d.to_json_value(), json!([["a", "=", 1]]));
        assert!(serde_json::from_value::<Domain>(json!(5)).is_err());
    }

    #[test]
    fn and_combines() {
        let a = Domain::parse("[['a','=',1],['b','=',2]]").unwrap();
        let b = Domain::parse("[['c','=',3]]").unwrap();
        assert_eq!(
            a.and(&b).to_json_value(),
            json!(["&", "&", ["a", "=", 1], ["b", "=", 2], ["c", "=", 3]])
        );
    }

    #[test]
    fn or_combines_whole_domains() {
        let a = Domain::parse("[['a','=',1],['b','=',2]]").unwrap();
        let b = Domain::parse("['|',['c','=',3],['d','=',4]]").unwrap();
        assert_eq!(
            a.or(&b).to_json_value(),
            json!([
                "|",
                "&",
                ["a", "=", 1],
                ["b", "=", 2],
                "|",
                ["c", "=", 3],
                ["d", "=", 4]
            ])
        );
        assert!(a.or(&Domain::all()).is_empty(), "all records OR anything");
    }
}
