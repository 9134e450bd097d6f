//! Stored field values and their conversion from and to JSON.

use std::cmp::Ordering;
use std::sync::Arc;

use jiff::civil::{Date, DateTime};
use serde_json::{Value, json};

use super::model::{FieldDef, FieldType};

/// One stored value. `False` is Odoo's NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    False,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Date(Date),
    Datetime(DateTime),
    /// many2one target id.
    Id(i64),
    /// many2many ids.
    Ids(Arc<[i64]>),
}

impl Val {
    pub fn str(text: &str) -> Val {
        Val::Str(Arc::from(text))
    }

    pub fn is_false(&self) -> bool {
        match self {
            Val::False => true,
            Val::Bool(b) => !b,
            Val::Str(s) => s.is_empty(),
            Val::Ids(ids) => ids.is_empty(),
            _ => false,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    pub fn as_id(&self) -> Option<i64> {
        match self {
            Val::Id(id) => Some(*id),
            Val::Int(id) => Some(*id),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn ids(&self) -> &[i64] {
        match self {
            Val::Ids(ids) => ids,
            _ => &[],
        }
    }

    /// Total order used for sorting (NULLs handled by the caller).
    pub fn compare(&self, other: &Val) -> Ordering {
        match (self, other) {
            (Val::Str(a), Val::Str(b)) => a.cmp(b),
            (Val::Date(a), Val::Date(b)) => a.cmp(b),
            (Val::Datetime(a), Val::Datetime(b)) => a.cmp(b),
            (Val::Date(a), Val::Datetime(b)) => a.to_datetime(jiff::civil::Time::midnight()).cmp(b),
            (Val::Datetime(a), Val::Date(b)) => {
                a.cmp(&b.to_datetime(jiff::civil::Time::midnight()))
            }
            (Val::Id(a), Val::Id(b)) => a.cmp(b),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            },
        }
    }
}

pub fn format_date(date: Date) -> String {
    date.strftime("%Y-%m-%d").to_string()
}

pub fn format_datetime(datetime: DateTime) -> String {
    datetime.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Parses "YYYY-MM-DD".
pub fn parse_date(text: &str) -> Option<Date> {
    let head = text.get(..10)?;
    head.parse::<Date>().ok()
}

/// Parses "YYYY-MM-DD HH:MM:SS" (also with 'T', fractions, or a bare date).
pub fn parse_datetime(text: &str) -> Option<DateTime> {
    let trimmed = text.trim();
    if trimmed.len() == 10 {
        return parse_date(trimmed).map(|d| d.to_datetime(jiff::civil::Time::midnight()));
    }
    let normalised = trimmed.replacen(' ', "T", 1);
    let without_zone = normalised.trim_end_matches('Z');
    without_zone
        .parse::<DateTime>()
        .ok()
        .map(|dt| dt.with().subsec_nanosecond(0).build().unwrap_or(dt))
}

/// Like [`parse_datetime`] but keeping fractions of a second, to the
/// microsecond: a domain compares `write_date` as PostgreSQL does.
pub fn parse_datetime_exact(text: &str) -> Option<DateTime> {
    let trimmed = text.trim();
    if trimmed.len() == 10 {
        return parse_datetime(trimmed);
    }
    let at: DateTime = trimmed
        .replacen(' ', "T", 1)
        .trim_end_matches('Z')
        .parse()
        .ok()?;
    let micros = at.subsec_nanosecond() / 1000 * 1000;
    at.with().subsec_nanosecond(micros).build().ok()
}

/// Why a JSON value cannot be stored in a field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertError(pub String);

/// Converts a JSON write value for a non-x2many field.
pub fn from_json(field: &FieldDef, value: &Value) -> Result<Val, ConvertError> {
    let bad = || {
        ConvertError(format!(
            "Wrong value for {}: {}",
            field.name,
            truncate(&value.to_string())
        ))
    };
    if value.is_null() || value == &Value::Bool(false) && field.ftype != FieldType::Boolean {
        return Ok(match field.ftype {
            FieldType::Integer => Val::Int(0),
            FieldType::Float | FieldType::Monetary => Val::Float(0.0),
            FieldType::Boolean => Val::Bool(false),
            _ => Val::False,
        });
    }
    Ok(match field.ftype {
        FieldType::Char | FieldType::Text | FieldType::Html | FieldType::Binary => match value {
            Value::String(s) => Val::str(s),
            Value::Number(n) => Val::str(&n.to_string()),
            Value::Bool(true) => Val::str("True"),
            _ => return Err(bad()),
        },
        FieldType::Selection => match value {
            Value::String(s) => {
                if !field.selection.is_empty() && !field.selection.iter().any(|(k, _)| k == s) {
                    return Err(ConvertError(format!(
                        "Wrong value for {}: {:?}",
                        field.name, s
                    )));
                }
                Val::str(s)
            }
            _ => return Err(bad()),
        },
        FieldType::Integer => match value {
            Value::Number(n) => Val::Int(
                n.as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .ok_or_else(bad)?,
            ),
            Value::Bool(b) => Val::Int(i64::from(*b)),
            Value::String(s) => Val::Int(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        FieldType::Float | FieldType::Monetary => match value {
            Value::Number(n) => Val::Float(n.as_f64().ok_or_else(bad)?),
            Value::Bool(b) => Val::Float(if *b { 1.0 } else { 0.0 }),
            Value::String(s) => Val::Float(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        FieldType::Boolean => Val::Bool(match value {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            _ => return Err(bad()),
        }),
        FieldType::Date => match value {
            Value::String(s) => Val::Date(parse_date(s).ok_or_else(|| {
                ConvertError(format!("time data '{s}' does not match format '%Y-%m-%d'"))
            })?),
            _ => return Err(bad()),
        },
        FieldType::Datetime => match value {
            Value::String(s) => Val::Datetime(parse_datetime(s).ok_or_else(|| {
                ConvertError(format!(
                    "time data '{s}' does not match format '%Y-%m-%d %H:%M:%S'"
                ))
            })?),
            _ => return Err(bad()),
        },
        FieldType::Many2one => match value {
            Value::Number(n) => Val::Id(n.as_i64().ok_or_else(bad)?),
            // Odoo accepts [id, name] pairs as they come back from read().
            Value::Array(pair) if !pair.is_empty() => Val::Id(pair[0].as_i64().ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        FieldType::One2many | FieldType::Many2many => return Err(bad()),
    })
}

/// The JSON shape `read` returns for a stored value (many2one as bare id;
/// the caller adds display names).
pub fn to_json(field_type: FieldType, value: &Val) -> Value {
    match (field_type, value) {
        (FieldType::Integer, Val::False) => json!(0),
        (FieldType::Float | FieldType::Monetary, Val::False) => json!(0.0),
        (FieldType::Boolean, Val::False) => Value::Bool(false),
        (FieldType::One2many | FieldType::Many2many, Val::False) => json!([]),
        (_, Val::False) => Value::Bool(false),
        (_, Val::Bool(b)) => Value::Bool(*b),
        (FieldType::Float | FieldType::Monetary, Val::Int(i)) => json!(*i as f64),
        (_, Val::Int(i)) => json!(i),
        (FieldType::Integer, Val::Float(f)) => json!(*f as i64),
        (_, Val::Float(f)) => json!(round_float(*f)),
        (_, Val::Str(s)) => Value::String(s.to_string()),
        (FieldType::Datetime, Val::Date(d)) => {
            Value::String(format!("{} 00:00:00", format_date(*d)))
        }
        (_, Val::Date(d)) => Value::String(format_date(*d)),
        (FieldType::Date, Val::Datetime(dt)) => Value::String(format_date(dt.date())),
        (_, Val::Datetime(dt)) => Value::String(format_datetime(*dt)),
        (_, Val::Id(id)) => json!(id),
        (_, Val::Ids(ids)) => json!(ids.as_ref()),
    }
}

/// Rounds away binary noise the way Odoo's float_round at 1e-6 would.
pub fn round_float(value: f64) -> f64 {
    let rounded = (value * 1e6).round() / 1e6;
    if rounded == 0.0 { 0.0 } else { rounded }
}

fn truncate(text: &str) -> String {
    if text.len() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text.to_string()
    }
}
