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

/// The longest domain text accepted, in bytes. Real domains are a few hundred
/// bytes; the bound keeps a hostile manifest from costing more than that. The
/// CRD fields that hold a domain carry the same `maxLength`.
pub const MAX_TEXT_LEN: usize = 8192;

/// How deep lists may nest in a domain's text: a leaf is two levels (the domain
/// and the leaf), a list value three, and each `any` sub-domain adds two more.
/// Parsing recurses per level, so the bound is what keeps a crafted domain from
/// overflowing a worker thread's stack.
pub const MAX_NESTING: usize = 32;

/// How deep `any` / `not any` sub-domains may nest.
pub const MAX_SUBDOMAIN_DEPTH: usize = 8;

/// How deep the expression tree may be, counting a chain of the same connector
/// (`'|', '|', '|', a, b, c, d`) as one level, as [`Domain::expr`] builds it.
/// Real domains stay under ten; the bound keeps whoever walks the tree
/// recursively (the simulator's evaluator, the tree's drop) within the stack.
pub const MAX_TREE_DEPTH: usize = 64;

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
    #[error("the domain is {length} bytes long; the limit is {limit}")]
    TooLong { length: usize, limit: usize },
    #[error("the domain nests {what} deeper than the limit of {limit} levels")]
    TooDeep { what: &'static str, limit: usize },
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
        check_length(text)?;
        let value: Value = serde_json::from_str(text).map_err(|err| DomainError::Syntax {
            position: err.column(),
            reason: err.to_string(),
        })?;
        Domain::from_json_value(&value)
    }

    /// Parses the Python-literal form users copy out of Odoo, e.g.
    /// `[('categ_id.name', '=', 'Seasonal'), '|', ('x', '!=', False)]`.
    pub fn parse_python(text: &str) -> Result<Domain, DomainError> {
        check_length(text)?;
        let value = python::parse(text)?;
        Domain::from_json_value(&value)
    }

    /// Parses either form: JSON first, then the Python literal.
    pub fn parse(text: &str) -> Result<Domain, DomainError> {
        check_length(text)?;
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Domain::from_json_value(&value),
            Err(_) => Domain::parse_python(text),
        }
    }

    /// Validates a JSON value as a domain.
    pub fn from_json_value(value: &Value) -> Result<Domain, DomainError> {
        if nesting(value) > MAX_NESTING {
            return Err(DomainError::TooDeep {
                what: "lists",
                limit: MAX_NESTING,
            });
        }
        Domain::from_json_value_at(value, 0)
    }

    /// `depth`: how many `any` sub-domains enclose this one.
    fn from_json_value_at(value: &Value, depth: usize) -> Result<Domain, DomainError> {
        if depth > MAX_SUBDOMAIN_DEPTH {
            return Err(DomainError::TooDeep {
                what: "'any' sub-domains",
                limit: MAX_SUBDOMAIN_DEPTH,
            });
        }
        let Value::Array(items) = value else {
            return Err(DomainError::NotAList {
                found: short_text(value),
            });
        };
        let mut terms = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            terms.push(parse_term(index, item, depth)?);
        }
        Domain::from_terms(terms)
    }

    fn check_arity(&self) -> Result<(), DomainError> {
        // Scanning right to left, the stack holds the complete expressions
        // available to the connector being looked at, as their tree shape.
        let mut available: Vec<Shape> = Vec::new();
        for (index, term) in self.terms.iter().enumerate().rev() {
            let expected = match term {
                Term::Leaf(_) => 0,
                Term::Not => 1,
                Term::And | Term::Or => 2,
            };
            if available.len() < expected {
                return Err(DomainError::MissingOperands {
                    index,
                    text: term_text(term),
                    expected,
                    found: available.len(),
                });
            }
            let operands = available.split_off(available.len() - expected);
            let shape = Shape::of(term, &operands);
            if shape.depth > MAX_TREE_DEPTH {
                return Err(DomainError::TooDeep {
                    what: "connectors",
                    limit: MAX_TREE_DEPTH,
                });
            }
            available.push(shape);
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

    /// The domain as a tree. Chains of one connector become one node
    /// (`'|', '|', a, b, c` is `Or([a, b, c])`), so the tree is as deep as
    /// [`MAX_TREE_DEPTH`] allows at most.
    pub fn expr(&self) -> Expr<'_> {
        // Prefix notation read right to left: operands are on the stack, the
        // first operand on top, when their connector comes.
        let mut stack: Vec<Expr<'_>> = Vec::new();
        for term in self.terms.iter().rev() {
            let expr = match term {
                Term::Leaf(c) => Expr::Leaf(c),
                Term::Not => match stack.pop() {
                    Some(Expr::Not(inner)) => *inner,
                    Some(inner) => Expr::Not(Box::new(inner)),
                    None => Expr::True,
                },
                Term::And | Term::Or => {
                    let is_and = matches!(term, Term::And);
                    let mut parts = Vec::new();
                    for operand in [stack.pop(), stack.pop()].into_iter().flatten() {
                        match (is_and, operand) {
                            (true, Expr::And(inner)) | (false, Expr::Or(inner)) => {
                                parts.extend(inner)
                            }
                            (_, other) => parts.push(other),
                        }
                    }
                    if is_and {
                        Expr::And(parts)
                    } else {
                        Expr::Or(parts)
                    }
                }
            };
            stack.push(expr);
        }
        // What is left are the top-level expressions, implicitly and-ed.
        stack.reverse();
        match stack.len() {
            0 => Expr::True,
            1 => stack.pop().unwrap_or(Expr::True),
            _ => Expr::And(stack),
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

/// The connector and depth of a sub-expression, as [`Domain::expr`] nests it.
#[derive(Clone, Copy)]
struct Shape {
    connector: Option<char>,
    depth: usize,
}

impl Shape {
    fn of(term: &Term, operands: &[Shape]) -> Shape {
        let connector = match term {
            Term::Leaf(_) => {
                return Shape {
                    connector: None,
                    depth: 1,
                };
            }
            Term::Not => '!',
            Term::And => '&',
            Term::Or => '|',
        };
        // An operand with the same connector merges into this node, and a
        // double negation cancels: neither adds a level.
        let deepest = operands
            .iter()
            .map(|o| {
                if o.connector == Some(connector) {
                    o.depth - 1
                } else {
                    o.depth
                }
            })
            .max()
            .unwrap_or(0);
        Shape {
            connector: Some(connector),
            depth: deepest + 1,
        }
    }
}

/// How deep lists and objects nest in `value`, counted without recursion so
/// that a value built in code, with no parser's limit, cannot exhaust the stack.
fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

fn check_length(text: &str) -> Result<(), DomainError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(DomainError::TooLong {
            length: text.len(),
            limit: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

/// At most 80 characters of the value's JSON, for messages. Serialising stops
/// once enough is written: every element of a nested domain is described, so
/// a full serialisation at each level would make validation quadratic.
fn short_text(value: &Value) -> String {
    const SHOWN: usize = 80;
    /// Enough bytes for `SHOWN` characters of any width, plus one to tell.
    const ENOUGH: usize = SHOWN * 4 + 1;
    struct Bounded(Vec<u8>);
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let room = ENOUGH - self.0.len();
            if room == 0 {
                return Err(std::io::Error::other("enough for a message"));
            }
            let taken = buf.len().min(room);
            self.0.extend_from_slice(&buf[..taken]);
            Ok(taken)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut written = Bounded(Vec::new());
    // The only error is the one `Bounded` raises when it has enough.
    let _ = serde_json::to_writer(&mut written, value);
    let text = String::from_utf8_lossy(&written.0);
    if text.chars().count() > SHOWN {
        let cut: String = text.chars().take(SHOWN - 3).collect();
        format!("{cut}...")
    } else {
        text.into_owned()
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

fn parse_term(index: usize, item: &Value, depth: usize) -> Result<Term, DomainError> {
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
            check_value(index, &text, operator, &value, depth)?;
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

fn check_value(
    index: usize,
    text: &str,
    op: Operator,
    value: &Value,
    depth: usize,
) -> Result<(), DomainError> {
    let bad = |reason: String| DomainError::BadValue {
        index,
        text: text.to_string(),
        reason,
    };
    match op {
        Operator::Any | Operator::NotAny => match value {
            Value::Array(_) => match Domain::from_json_value_at(value, depth + 1) {
                Ok(_) => Ok(()),
                // Reported as it is, not wrapped once per enclosing level.
                Err(err @ DomainError::TooDeep { .. }) => Err(err),
                Err(err) => Err(bad(format!("invalid sub-domain: {err}"))),
            },
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
            _ => no_object_inside(value).map_err(bad),
        },
        _ => match value {
            Value::Object(_) => Err(bad("objects are not valid domain values".into())),
            _ => no_object_inside(value).map_err(bad),
        },
    }
}

/// Objects are no domain values at any depth: a list holding one has no
/// Python-literal form (Odoo stores `filter_domain` as one), so it could not
/// be written back the way it was read.
fn no_object_inside(value: &Value) -> Result<(), String> {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(_) => return Err("objects are not valid domain values".into()),
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    Ok(())
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
    use super::{DomainError, MAX_NESTING};
    use serde_json::{Number, Value};

    pub(super) fn parse(text: &str) -> Result<Value, DomainError> {
        let mut parser = Parser {
            chars: text.char_indices().collect(),
            pos: 0,
            depth: 0,
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
        /// Lists and tuples open around the current position.
        depth: usize,
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
            if self.depth == MAX_NESTING {
                return Err(DomainError::TooDeep {
                    what: "lists",
                    limit: MAX_NESTING,
                });
            }
            self.depth += 1;
            self.pos += 1;
            let mut items = Vec::new();
            loop {
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    self.depth -= 1;
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
            // Python's ints have no bound; the ones JSON carries exactly stay
            // ints (a u64 past i64::MAX too), larger ones become floats.
            if !is_float {
                if let Ok(int) = text.parse::<i64>() {
                    return Ok(Value::Number(int.into()));
                }
                if let Ok(int) = text.parse::<u64>() {
                    return Ok(Value::Number(int.into()));
                }
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

    /// Found by the `domain` fuzz target: both were accepted but did not
    /// come back from their Python-literal form.
    #[test]
    fn what_is_accepted_comes_back_from_python() {
        let big = Domain::parse_json(r#"[["id","=",9223372036854775808]]"#).unwrap();
        assert_eq!(Domain::parse_python(&big.to_python()).unwrap(), big);
        assert_eq!(
            Domain::parse_python("[('id', '=', 18446744073709551615)]")
                .unwrap()
                .to_json_value(),
            json!([["id", "=", u64::MAX]])
        );
        // Past u64, a float, as before.
        assert_eq!(
            Domain::parse_python("[('id', '=', 18446744073709551616)]")
                .unwrap()
                .to_json_value(),
            json!([["id", "=", 18446744073709551616.0]])
        );
        // serde_json's float_roundtrip: the JSON text gives the same number back.
        let float = Domain::parse_json(r#"[["id","=",-9.200373647622161e+226]]"#).unwrap();
        assert_eq!(Domain::parse(&float.to_string()).unwrap(), float);
        for text in [
            r#"[["a","in",[{"x":1}]]]"#,
            r#"[["a","=",[[{"x":1}]]]]"#,
            r#"[["a","not in",[1,{"x":1}]]]"#,
        ] {
            assert!(
                matches!(
                    Domain::parse_json(text),
                    Err(DomainError::BadValue { index: 0, .. })
                ),
                "{text}"
            );
        }
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

    /// Runs `check` on a thread with a Tokio worker's stack, where the
    /// operator parses domains.
    fn on_a_worker_stack(check: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(check)
            .expect("spawning a thread")
            .join()
            .expect("the check panicked or overflowed its stack");
    }

    #[test]
    fn hostile_nesting_is_refused_without_exhausting_the_stack() {
        on_a_worker_stack(|| {
            for opening in ["[", "(", "[("] {
                let text = opening.repeat(4000);
                let err = Domain::parse(&text).unwrap_err();
                assert_eq!(
                    err,
                    DomainError::TooDeep {
                        what: "lists",
                        limit: MAX_NESTING
                    },
                    "{text:.20}"
                );
            }
            // JSON nests within serde_json's own limit, but beyond ours.
            let json = format!("{}{}", "[".repeat(100), "]".repeat(100));
            assert!(matches!(
                Domain::parse_json(&json),
                Err(DomainError::TooDeep { .. })
            ));
            // A value built in code has no parser's limit at all.
            let mut value = json!([]);
            for _ in 0..100_000 {
                value = Value::Array(vec![value]);
            }
            assert!(matches!(
                Domain::from_json_value(&value),
                Err(DomainError::TooDeep { .. })
            ));
            // serde_json drops a deep Value recursively; leak it rather than test that.
            std::mem::forget(value);
        });
    }

    /// `[["a","any",[["a","any",[... ["x","=",1] ...]]]]]` with `levels` sub-domains.
    fn nested_any(levels: usize) -> String {
        let mut text = r#"[["x","=",1]]"#.to_string();
        for _ in 0..levels {
            text = format!(r#"[["line_ids","any",{text}]]"#);
        }
        text
    }

    #[test]
    fn subdomains_nest_up_to_the_limit() {
        let deepest = Domain::parse(&nested_any(MAX_SUBDOMAIN_DEPTH)).unwrap();
        assert_eq!(deepest.terms().len(), 1);
        let python = Domain::parse_python(&deepest.to_python()).unwrap();
        assert_eq!(python, deepest);
        assert_eq!(
            Domain::parse(&nested_any(MAX_SUBDOMAIN_DEPTH + 1)).unwrap_err(),
            DomainError::TooDeep {
                what: "'any' sub-domains",
                limit: MAX_SUBDOMAIN_DEPTH
            }
        );
    }

    #[test]
    fn long_domains_are_refused_naming_the_limit() {
        let leaf = r#"["name","=","x"],"#;
        let text = format!("[{}]", leaf.repeat(MAX_TEXT_LEN / leaf.len() + 1));
        let err = Domain::parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the domain is {} bytes long; the limit is {MAX_TEXT_LEN}",
                text.len()
            )
        );
        // The longest accepted domain: connectors and leaves up to the limit.
        let leaves = (MAX_TEXT_LEN - 2) / (leaf.len() + 4);
        let text = format!(
            "[{}{}]",
            r#""&","#.repeat(leaves - 1),
            leaf.repeat(leaves).trim_end_matches(',')
        );
        assert!(text.len() <= MAX_TEXT_LEN);
        on_a_worker_stack(move || {
            let domain = Domain::parse(&text).unwrap();
            // Every consumer walks the tree; none may recurse past the stack.
            assert!(matches!(domain.expr(), Expr::And(parts) if parts.len() == leaves));
            let json = domain.to_json_value().to_string();
            assert_eq!(Domain::parse(&json).unwrap(), domain);
            let negations = (MAX_TEXT_LEN - 20) / 4;
            let text = format!(r#"[{}["a","=",1]]"#, r#""!","#.repeat(negations));
            let domain = Domain::parse(&text).unwrap();
            // A double negation cancels: an odd number of them is one.
            assert!(matches!(domain.expr(), Expr::Not(inner) if matches!(*inner, Expr::Leaf(_))));
        });
    }

    /// `'!', '&'` repeated `pairs` times: every pair adds two levels to the tree.
    fn alternating(pairs: usize) -> String {
        let leaf = r#"["a","=",1]"#;
        let mut terms = vec![r#""!","&""#.to_string(); pairs];
        terms.extend(vec![leaf.to_string(); pairs + 1]);
        format!("[{}]", terms.join(","))
    }

    #[test]
    fn the_expression_tree_is_bounded() {
        let deep = alternating(MAX_TREE_DEPTH / 2 - 1);
        let domain = Domain::parse(&deep).unwrap();
        assert!(matches!(domain.expr(), Expr::Not(_)));
        assert_eq!(
            Domain::parse(&alternating(MAX_TREE_DEPTH / 2 + 1)).unwrap_err(),
            DomainError::TooDeep {
                what: "connectors",
                limit: MAX_TREE_DEPTH
            }
        );
    }

    #[test]
    fn chains_of_one_connector_become_one_node() {
        let domain = Domain::parse(
            r#"["|","|",["a","=",1],["b","=",2],"&",["c","=",3],["d","=",4],["e","=",5]]"#,
        )
        .unwrap();
        let Expr::And(top) = domain.expr() else {
            panic!("an implicit and expected")
        };
        assert_eq!(top.len(), 2);
        let Expr::Or(alternatives) = &top[0] else {
            panic!("an or expected")
        };
        assert_eq!(alternatives.len(), 3);
        assert!(matches!(&alternatives[2], Expr::And(both) if both.len() == 2));
        assert!(matches!(&top[1], Expr::Leaf(c) if c.path == "e"));
    }

    #[test]
    fn messages_show_a_bounded_excerpt() {
        let long = json!(["name", "=", "é".repeat(500)]);
        let excerpt = short_text(&long);
        assert_eq!(excerpt.chars().count(), 80);
        assert!(excerpt.ends_with("..."));
        assert_eq!(short_text(&json!(["a", "=", 1])), r#"["a","=",1]"#);
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
