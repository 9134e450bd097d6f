//! An Odoo webhook as a hint: which record it names, and waiting until the
//! write it reports can be read.
//!
//! Odoo 17 and 18 post the webhook from inside the transaction that made the
//! change (with a 1 s timeout) and commit only afterwards; a re-read made at
//! once still sees the values from before. 19 posts after the commit. The
//! payload carries the record's `write_date` as Python prints it, to the
//! microsecond, so on 17 and 18 the re-read waits, a bounded while, until
//! Odoo holds that write (or a later one).

use std::time::Duration;

use jiff::civil::DateTime;
use serde_json::{Map, Value, json};

use odoo_client::{OdooClient, OdooError, SearchOptions};

/// The first Odoo major version that posts webhooks after its commit.
pub const FIRST_VERSION_POSTING_AFTER_COMMIT: u32 = 19;

/// Pauses between looks while the write is not visible yet; the sum is the
/// longest wait (a little over 6 s: Odoo's sender gives up after 1 s, and the
/// rest of its transaction rarely takes long after that).
const BACKOFF: [Duration; 7] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1200),
    Duration::from_millis(1600),
    Duration::from_millis(2000),
];

/// The record an Odoo webhook action names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintedRecord {
    pub model: String,
    pub id: i64,
    /// The record's `write_date` when the webhook was sent, when the action
    /// sends that field.
    pub written: Option<DateTime>,
}

/// Why a payload names no record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HintError {
    #[error("the payload has no \"_model\"")]
    NoModel,
    #[error("the payload has no record id (\"_id\" or \"id\")")]
    NoId,
}

impl HintedRecord {
    /// Reads Odoo's payload: `_model` and `_id` (and `id`, added with the
    /// chosen fields) besides the fields the action sends. `watched` stands
    /// in for a missing `_model`. An unreadable `write_date` is ignored: the
    /// hint still names its record.
    pub fn from_payload(payload: &Value, watched: Option<&str>) -> Result<HintedRecord, HintError> {
        let model = payload
            .get("_model")
            .and_then(Value::as_str)
            .or(watched)
            .ok_or(HintError::NoModel)?;
        let id = payload
            .get("_id")
            .or_else(|| payload.get("id"))
            .and_then(Value::as_i64)
            .filter(|id| *id > 0)
            .ok_or(HintError::NoId)?;
        let written = payload
            .get("write_date")
            .and_then(Value::as_str)
            .and_then(parse_python_datetime);
        Ok(HintedRecord {
            model: model.to_string(),
            id,
            written,
        })
    }
}

/// Python's `str(datetime)`: `YYYY-MM-DD HH:MM:SS`, with `.ffffff` when the
/// microseconds are not zero.
fn parse_python_datetime(text: &str) -> Option<DateTime> {
    text.trim().replacen(' ', "T", 1).parse().ok()
}

/// A datetime for a domain, to the microsecond (Odoo hands domain values on
/// to PostgreSQL, which compares timestamps to the microsecond).
fn domain_datetime(at: DateTime) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// How waiting for the hinted write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Nothing to wait for: Odoo posts after its commit, or the payload has
    /// no `write_date`.
    NotNeeded,
    /// The write (or a later one) was readable after this many extra looks.
    Visible { retries: u32 },
    /// Still not readable when the wait ran out (the transaction rolled
    /// back, or the record is gone); the caller goes on with what Odoo holds.
    GaveUp,
}

/// On Odoo 17 and 18, waits until the record `hint` names carries at least
/// the `write_date` of the payload, with a bounded backoff. Made after the
/// gateway answered Odoo: the transaction that sent the hint cannot commit
/// before it has the answer.
pub async fn await_hinted_write(
    client: &OdooClient,
    hint: &HintedRecord,
) -> Result<Visibility, OdooError> {
    await_hinted_writes(client, &hint.model, std::slice::from_ref(hint)).await
}

/// [`await_hinted_write`] for hints on records of `model` (others are not
/// waited for), one search a look whatever their number: a burst of events
/// waits as long as one. `GaveUp` when any of them is still not readable.
pub async fn await_hinted_writes(
    client: &OdooClient,
    model: &str,
    hints: &[HintedRecord],
) -> Result<Visibility, OdooError> {
    if client.info().version.major >= FIRST_VERSION_POSTING_AFTER_COMMIT {
        return Ok(Visibility::NotNeeded);
    }
    let mut waiting: Vec<(i64, DateTime)> = hints
        .iter()
        .filter(|h| h.model == model)
        .filter_map(|h| Some((h.id, h.written?)))
        .collect();
    if waiting.is_empty() {
        return Ok(Visibility::NotNeeded);
    }
    let mut context = Map::new();
    // An archived record is hinted too (e.g. by a rule on archiving).
    context.insert("active_test".into(), json!(false));
    let client = client.with_context(context);
    let mut retries = 0;
    loop {
        let found = client
            .search(model, &written_since(&waiting), &SearchOptions::default())
            .await?;
        waiting.retain(|(id, _)| !found.contains(id));
        if waiting.is_empty() {
            return Ok(Visibility::Visible { retries });
        }
        let Some(pause) = BACKOFF.get(retries as usize) else {
            return Ok(Visibility::GaveUp);
        };
        tokio::time::sleep(*pause).await;
        retries += 1;
    }
}

/// The records of `waiting` that carry at least their `write_date`:
/// `(id = a AND write_date >= x) OR (id = b AND ...)`, in Odoo's prefix form.
fn written_since(waiting: &[(i64, DateTime)]) -> Value {
    let mut domain: Vec<Value> = vec![json!("|"); waiting.len().saturating_sub(1)];
    for (id, written) in waiting {
        domain.push(json!("&"));
        domain.push(json!(["id", "=", id]));
        domain.push(json!(["write_date", ">=", domain_datetime(*written)]));
    }
    Value::Array(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_record_and_when_it_was_written() {
        let payload = json!({"_action": "Send Webhook Notification(#12)", "_id": 42,
            "_model": "sale.order", "id": 42, "state": "sale",
            "write_date": "2026-12-05 17:06:18.123456"});
        let hint = HintedRecord::from_payload(&payload, Some("sale.order.line")).unwrap();
        assert_eq!(hint.model, "sale.order");
        assert_eq!(hint.id, 42);
        let written = hint.written.unwrap();
        assert_eq!(written.subsec_nanosecond(), 123_456_000);
        assert_eq!(domain_datetime(written), "2026-12-05 17:06:18.123456");
        // Python leaves the fraction out when it is zero.
        let whole = HintedRecord::from_payload(
            &json!({"_model": "sale.order", "_id": 1, "write_date": "2026-12-05 17:06:18"}),
            None,
        )
        .unwrap();
        assert_eq!(
            domain_datetime(whole.written.unwrap()),
            "2026-12-05 17:06:18.000000"
        );
        // Without `_model` the rule's watched model is assumed; an odd
        // `write_date` leaves nothing to wait for.
        let bare =
            HintedRecord::from_payload(&json!({"id": 7, "write_date": false}), Some("sale.order"))
                .unwrap();
        assert_eq!(
            bare,
            HintedRecord {
                model: "sale.order".into(),
                id: 7,
                written: None
            }
        );
    }

    #[test]
    fn several_hints_are_looked_for_in_one_domain() {
        let at = |s: &str| s.parse::<DateTime>().unwrap();
        assert_eq!(
            written_since(&[(4, at("2026-12-05T17:06:18.5"))]),
            json!([
                "&",
                ["id", "=", 4],
                ["write_date", ">=", "2026-12-05 17:06:18.500000"]
            ])
        );
        assert_eq!(
            written_since(&[
                (4, at("2026-12-05T17:06:18")),
                (9, at("2026-12-05T17:06:19"))
            ]),
            json!([
                "|",
                "&",
                ["id", "=", 4],
                ["write_date", ">=", "2026-12-05 17:06:18.000000"],
                "&",
                ["id", "=", 9],
                ["write_date", ">=", "2026-12-05 17:06:19.000000"]
            ])
        );
    }

    #[test]
    fn a_payload_without_a_record_is_refused() {
        for payload in [
            json!({"_model": "sale.order"}),
            json!({"_model": "sale.order", "_id": "42"}),
            json!({"_model": "sale.order", "_id": 0}),
            json!([1, 2]),
        ] {
            assert_eq!(
                HintedRecord::from_payload(&payload, Some("sale.order")),
                Err(HintError::NoId),
                "{payload}"
            );
        }
        assert_eq!(
            HintedRecord::from_payload(&json!({"_id": 1}), None),
            Err(HintError::NoModel)
        );
    }

    #[test]
    fn the_wait_is_bounded() {
        let total: Duration = BACKOFF.iter().sum();
        assert!(total <= Duration::from_secs(7), "{total:?}");
        assert!(total >= Duration::from_secs(2), "{total:?}");
    }
}
