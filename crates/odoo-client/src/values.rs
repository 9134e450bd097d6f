//! Decoding of the values Odoo returns in `read`/`search_read` records
//! (`false` for empty, `[id, "name"]` many2ones, UTC date and datetime
//! strings) and in method results, and the encoding of HTML bodies.

use serde_json::{Map, Value};

use super::error::OdooError;
use super::transport::Call;

/// One record as returned by `read` / `search_read`.
pub type Record = Map<String, Value>;

/// A many2one value: `[id, "display name"]` (or a bare id with `load=None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Many2one {
    pub id: i64,
    /// Empty when the server sent a bare id.
    pub name: String,
}

fn bad(field: &str, expected: &str, value: &Value) -> OdooError {
    OdooError::protocol(format!("field {field:?}: expected {expected}, got {value}"))
}

/// Typed access to the fields of a record. Every getter treats `false` and
/// `null` (Odoo's "empty") as `None` and reports a wrong type as a protocol
/// error naming the field.
pub trait RecordExt {
    fn field(&self, name: &str) -> Option<&Value>;

    /// The record id (always present in read results).
    fn id(&self) -> Result<i64, OdooError> {
        self.field("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| OdooError::protocol("record without an integer id"))
    }

    fn many2one(&self, name: &str) -> Result<Option<Many2one>, OdooError> {
        match self.field(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(|id| {
                    Some(Many2one {
                        id,
                        name: String::new(),
                    })
                })
                .ok_or_else(|| bad(name, "a record id", &Value::Number(n.clone()))),
            Some(value @ Value::Array(pair)) => match pair.as_slice() {
                [Value::Number(id), label] => {
                    let id = id.as_i64().ok_or_else(|| bad(name, "[id, name]", value))?;
                    let label = label.as_str().unwrap_or_default().to_string();
                    Ok(Some(Many2one { id, name: label }))
                }
                _ => Err(bad(name, "[id, name]", value)),
            },
            Some(other) => Err(bad(name, "a many2one", other)),
        }
    }

    fn str_field(&self, name: &str) -> Result<Option<&str>, OdooError> {
        match self.field(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(bad(name, "a string", other)),
        }
    }

    /// A number field; Odoo sends `0`/`0.0` rather than `false`, but a few
    /// computed fields do send `false`, read as 0.
    fn number(&self, name: &str) -> Result<f64, OdooError> {
        match self.field(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(0.0),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| bad(name, "a number", &Value::Null)),
            Some(other) => Err(bad(name, "a number", other)),
        }
    }

    fn bool_field(&self, name: &str) -> Result<bool, OdooError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(bad(name, "a boolean", other)),
        }
    }

    /// A date field (`"YYYY-MM-DD"`).
    fn date(&self, name: &str) -> Result<Option<jiff::civil::Date>, OdooError> {
        let Some(text) = self.str_field(name)? else {
            return Ok(None);
        };
        // Tolerate a datetime where a date is expected (a field that changed type).
        let day = text.get(..10).unwrap_or(text);
        day.parse()
            .map(Some)
            .map_err(|e| OdooError::protocol(format!("field {name:?}: bad date {text:?}: {e}")))
    }

    /// A datetime field (`"YYYY-MM-DD HH:MM:SS"`, UTC, naive).
    fn datetime(&self, name: &str) -> Result<Option<jiff::Timestamp>, OdooError> {
        let Some(text) = self.str_field(name)? else {
            return Ok(None);
        };
        parse_datetime(text)
            .map(Some)
            .map_err(|e| OdooError::protocol(format!("field {name:?}: {e}")))
    }

    /// An x2many field: the list of ids.
    fn ids(&self, name: &str) -> Result<Vec<i64>, OdooError> {
        match self.field(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(Vec::new()),
            Some(value @ Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_i64()
                        .ok_or_else(|| bad(name, "a list of ids", value))
                })
                .collect(),
            Some(other) => Err(bad(name, "a list of ids", other)),
        }
    }
}

impl RecordExt for Record {
    fn field(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// Parses Odoo's naive UTC datetime text.
pub fn parse_datetime(text: &str) -> Result<jiff::Timestamp, String> {
    let civil: jiff::civil::DateTime = text
        .trim()
        .replacen(' ', "T", 1)
        .parse()
        .map_err(|e| format!("bad datetime {text:?}: {e}"))?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("bad datetime {text:?}: {e}"))
}

/// Formats a timestamp the way Odoo stores datetimes.
pub fn format_datetime(ts: jiff::Timestamp) -> String {
    ts.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `text` made safe inside the HTML of an Odoo `Html` field (notes, message
/// bodies): what PlanOps writes there is text, never markup.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The id of the one record a create-like call returned (`create` of one
/// dict, `message_post`, `action_feedback`): a bare id where Odoo downgrades
/// the record to its id, a one-element list where it sends the recordset as
/// its ids (`message_post` on 19, `create` over JSON-2). `null` (a method
/// returning nothing, such as `button_cancel`), `false` (nothing done) and
/// several ids are no record id.
pub fn returned_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::Array(items) => match items.as_slice() {
            [Value::Number(n)] => n.as_i64(),
            _ => None,
        },
        _ => None,
    }
}

/// `message_post` with an HTML `body`: from 17 on Odoo escapes a plain string
/// body sent over RPC (tags would show as text) unless `body_is_html` is set;
/// 16 has no such parameter and stores the body as HTML.
pub fn post_as_html(call: Call, major: u32) -> Call {
    if major >= 17 {
        call.kwarg("body_is_html", true)
    } else {
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn decodes_many2one_shapes() {
        let r = record(json!({"id": 1, "a": [42, "[SKU-1] Widget"], "b": false, "c": 7, "d": "x"}));
        assert_eq!(
            r.many2one("a").unwrap(),
            Some(Many2one {
                id: 42,
                name: "[SKU-1] Widget".into()
            })
        );
        assert_eq!(r.many2one("b").unwrap(), None);
        assert_eq!(r.many2one("c").unwrap().unwrap().id, 7);
        assert!(r.many2one("d").is_err());
        assert_eq!(r.id().unwrap(), 1);
    }

    #[test]
    fn returned_ids() {
        assert_eq!(returned_id(&json!(42)), Some(42));
        assert_eq!(returned_id(&json!([42])), Some(42));
        assert_eq!(returned_id(&Value::Null), None);
        assert_eq!(returned_id(&json!(false)), None);
        assert_eq!(returned_id(&json!([1, 2])), None);
        assert_eq!(returned_id(&json!([])), None);
        assert_eq!(returned_id(&json!({})), None);
    }

    #[test]
    fn decodes_dates_and_false() {
        let r = record(
            json!({"d": "2025-03-01", "dt": "2025-03-01 08:00:00", "n": false,
                              "q": 12.5, "ids": [1, 2], "s": "SKU"}),
        );
        assert_eq!(r.date("d").unwrap().unwrap().to_string(), "2025-03-01");
        let ts = r.datetime("dt").unwrap().unwrap();
        assert_eq!(format_datetime(ts), "2025-03-01 08:00:00");
        assert_eq!(r.date("n").unwrap(), None);
        assert_eq!(r.str_field("n").unwrap(), None);
        assert_eq!(r.number("q").unwrap(), 12.5);
        assert_eq!(r.number("n").unwrap(), 0.0);
        assert_eq!(r.ids("ids").unwrap(), vec![1, 2]);
        assert_eq!(r.str_field("s").unwrap(), Some("SKU"));
        assert!(r.date("s").is_err());
    }
}
