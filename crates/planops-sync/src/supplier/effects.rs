//! Applies one normalised supplier event to its purchase order in Odoo,
//! exactly once per event.
//!
//! What an event does:
//!
//! | event | effect |
//! |---|---|
//! | `Confirmation`, `Delay` with promised dates | `date_planned` of the matched `purchase.order.line`s (when `effects.updatePromisedDates`, default true) |
//! | `Shipment`, `Cancellation` | recorded only: evidence + chatter note. A cancellation does **not** cancel the PO: that stays a buyer's decision in Odoo |
//! | every event | the supplier's payload as an `ir.attachment` on the PO (`supplier-event-<fingerprint>.json`), and a chatter note (`message_post`, when `effects.chatterNote`, default true) with the attachment and the fingerprint |
//!
//! **Exactly once.** The event's fingerprint (connector namespace/name + event
//! id) names the attachment and is written into the note. Writes go in a fixed
//! order — dates, then attachment, then note — so the attachment marks "dates
//! done": a replay finds it and writes no date again (a later event's date is
//! never overwritten by an old event delivered twice), and posts the note only
//! if it is still missing. A lost reply is handled per write: the attachment is
//! created with a search-then-create that finds the first attempt's record, and
//! an ambiguous `message_post` failure is followed by a search for the note.
//! A date write is idempotent by itself (same value), and is skipped when the
//! line already carries the date.
//!
//! **Nothing half-applied.** The PO and every product code are resolved before
//! the first write; an event naming a product the PO does not have is rejected
//! with nothing written.

use odoo_client::values::html_escape;
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use jiff::civil::Date;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::mapping::SupplierEvent;
use crate::managed::{Note, PostError, post_note};
use odoo_client::{OdooClient, OdooError, RecordExt, SearchOptions};
use planops_api::supplier::{EffectsSpec, SupplierEventType};

/// The model every effect is on.
const ORDER_MODEL: &str = "purchase.order";
const LINE_MODEL: &str = "purchase.order.line";
const ATTACHMENT_MODEL: &str = "ir.attachment";

/// Who applies the event: the connector and its resolved supplier.
#[derive(Debug, Clone)]
pub struct ConnectorTarget {
    pub namespace: String,
    pub name: String,
    /// `res.partner` id of the supplier; POs of other partners are never touched.
    pub partner_id: i64,
    pub effects: EffectsSpec,
}

impl ConnectorTarget {
    fn update_dates(&self) -> bool {
        self.effects.update_promised_dates.unwrap_or(true)
    }

    fn chatter(&self) -> bool {
        self.effects.chatter_note.unwrap_or(true)
    }
}

/// `planops:` + 32 hex digits of SHA-256 over namespace, connector and event id,
/// the same shape as a rule exception's fingerprint so one search finds either.
pub fn event_fingerprint(namespace: &str, connector: &str, event_id: &str) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in [namespace, connector, "supplier-event", event_id]
        .iter()
        .enumerate()
    {
        if i > 0 {
            hasher.update([0x1f]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    format!("planops:{}", hex::encode(&digest[..16]))
}

/// Name of the evidence attachment of a fingerprint.
pub fn attachment_name(fingerprint: &str) -> String {
    let hex = fingerprint.strip_prefix("planops:").unwrap_or(fingerprint);
    format!("supplier-event-{hex}.json")
}

/// What applying an event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub purchase_order_id: i64,
    pub purchase_order_name: String,
    /// `purchase.order.line`s whose `date_planned` this call wrote.
    pub lines_updated: usize,
    /// Products the event is about (its lines, or the whole order's), for
    /// re-evaluating rules.
    pub product_ids: Vec<i64>,
    /// This call posted the chatter note.
    pub note_posted: bool,
    /// The chatter note (posted now or found from an earlier attempt), when
    /// Odoo named it.
    pub note_id: Option<i64>,
    /// The event had been fully recorded before: nothing was written.
    pub duplicate: bool,
    pub fingerprint: String,
}

/// Why the sender's event cannot apply; sending it again will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no purchase order {reference:?} (by name or vendor reference) of this supplier")]
    PurchaseOrderNotFound { reference: String },
    #[error("{count} purchase orders of this supplier match {reference:?}")]
    AmbiguousPurchaseOrder { reference: String, count: usize },
    #[error("purchase order {order} has no line for product code(s) {}", codes.join(", "))]
    ProductNotOnOrder { order: String, codes: Vec<String> },
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// The sender's fault (HTTP 422): nothing was written.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Odoo could not be reached or failed transiently (HTTP 503): retry later;
    /// what was written is found again by the retry.
    #[error("Odoo unavailable: {0}")]
    Transient(OdooError),
    /// Odoo refused a call (rights, configuration): retry after fixing it.
    #[error("Odoo refused: {0}")]
    Odoo(OdooError),
}

impl From<OdooError> for ApplyError {
    fn from(err: OdooError) -> Self {
        if err.is_transient() {
            ApplyError::Transient(err)
        } else {
            ApplyError::Odoo(err)
        }
    }
}

struct OrderLine {
    id: i64,
    product_id: i64,
    date_planned: Option<String>,
}

/// Applies `event` (whose id gave `fingerprint`) with `evidence` (the payload
/// as received) attached.
pub async fn apply(
    client: &OdooClient,
    target: &ConnectorTarget,
    event: &SupplierEvent,
    fingerprint: &str,
    evidence: &[u8],
) -> Result<Applied, ApplyError> {
    let (order_id, order_name) =
        find_order(client, target.partner_id, &event.purchase_order_ref).await?;
    let (lines, codes) = order_lines(client, order_id).await?;

    // Every event line must name a product of the order, before anything is written.
    let mut matched: Vec<(&OrderLine, Option<Date>)> = Vec::new();
    let mut unknown = Vec::new();
    if event.lines.is_empty() {
        matched.extend(lines.iter().map(|l| (l, event.promised_date)));
    }
    for line in &event.lines {
        let on_order: Vec<&OrderLine> = lines
            .iter()
            .filter(|l| codes.get(&l.product_id).map(String::as_str) == Some(&line.product_code))
            .collect();
        if on_order.is_empty() {
            unknown.push(line.product_code.clone());
        }
        matched.extend(on_order.into_iter().map(|l| (l, line.promised_date)));
    }
    if !unknown.is_empty() {
        return Err(Rejection::ProductNotOnOrder {
            order: order_name,
            codes: unknown,
        }
        .into());
    }
    let product_ids: Vec<i64> = matched
        .iter()
        .map(|(l, _)| l.product_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let name = attachment_name(fingerprint);
    let attachment_domain = json!([
        ["res_model", "=", ORDER_MODEL],
        ["res_id", "=", order_id],
        ["name", "=", name]
    ]);
    let attachment = client
        .search(
            ATTACHMENT_MODEL,
            &attachment_domain,
            &SearchOptions::limit(1),
        )
        .await?
        .first()
        .copied();
    let note = if target.chatter() {
        find_note(client, order_id, fingerprint).await?
    } else {
        None
    };
    let duplicate = attachment.is_some() && (note.is_some() || !target.chatter());
    if duplicate {
        return Ok(Applied {
            purchase_order_id: order_id,
            purchase_order_name: order_name,
            lines_updated: 0,
            product_ids,
            note_posted: false,
            note_id: note,
            duplicate: true,
            fingerprint: fingerprint.to_string(),
        });
    }

    // 1. Dates, unless an earlier attempt got as far as the attachment.
    let mut changes: Vec<(i64, Option<String>, Date)> = Vec::new();
    let sets_dates = matches!(
        event.kind,
        SupplierEventType::Confirmation | SupplierEventType::Delay
    );
    if attachment.is_none() && sets_dates && target.update_dates() {
        let mut writes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (line, date) in &matched {
            let Some(date) = date else { continue };
            if let Some(value) = planned_value(line.date_planned.as_deref(), *date) {
                changes.push((line.id, line.date_planned.clone(), *date));
                writes.entry(value).or_default().push(line.id);
            }
        }
        for (value, ids) in writes {
            let mut vals = Map::new();
            vals.insert("date_planned".into(), json!(value));
            client.write(LINE_MODEL, &ids, vals).await?;
        }
    }

    // 2. The evidence, whose existence marks the dates as done.
    let attachment = match attachment {
        Some(id) => id,
        None => {
            let mut vals = Map::new();
            vals.insert("name".into(), json!(name));
            vals.insert("res_model".into(), json!(ORDER_MODEL));
            vals.insert("res_id".into(), json!(order_id));
            vals.insert("type".into(), json!("binary"));
            vals.insert("mimetype".into(), json!("application/json"));
            vals.insert(
                "datas".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(evidence)),
            );
            client
                .find_or_create(ATTACHMENT_MODEL, &attachment_domain, &vals)
                .await?
                .id
        }
    };

    // 3. The note.
    let mut note_posted = false;
    let mut note_id = note;
    if target.chatter() && note.is_none() {
        let body = note_body(
            target,
            event,
            &order_name,
            fingerprint,
            &changes,
            &codes,
            &lines,
        );
        let note = Note {
            model: ORDER_MODEL,
            res_id: order_id,
            html: body,
            attachment_ids: vec![attachment],
        };
        match post_note(client, &note, || find_note(client, order_id, fingerprint)).await {
            Ok(posted) => {
                note_posted = true;
                note_id = posted.id;
            }
            Err(PostError::Post(err))
                if err.transient_kind().is_some_and(|k| k.may_have_committed()) =>
            {
                return Err(ApplyError::Transient(err));
            }
            Err(PostError::Post(err)) => return Err(err.into()),
            Err(PostError::Lookup(err)) => return Err(err),
        }
    }

    Ok(Applied {
        purchase_order_id: order_id,
        purchase_order_name: order_name,
        lines_updated: changes.len(),
        product_ids,
        note_posted,
        note_id,
        duplicate: false,
        fingerprint: fingerprint.to_string(),
    })
}

/// The supplier's PO by name or vendor reference; a name match wins over a
/// reference match (a supplier may quote another order's name as its reference).
async fn find_order(
    client: &OdooClient,
    partner_id: i64,
    reference: &str,
) -> Result<(i64, String), ApplyError> {
    let rows = client
        .search_read(
            ORDER_MODEL,
            &json!([
                ["partner_id", "=", partner_id],
                "|",
                ["name", "=", reference],
                ["partner_ref", "=", reference]
            ]),
            &["id", "name"],
            &SearchOptions::limit(10),
        )
        .await?;
    let mut found = Vec::new();
    for row in &rows {
        found.push((
            row.id()?,
            row.str_field("name")?.unwrap_or_default().to_string(),
        ));
    }
    let by_name: Vec<&(i64, String)> = found.iter().filter(|(_, n)| n == reference).collect();
    match (by_name.as_slice(), found.as_slice()) {
        ([one], _) => Ok((*one).clone()),
        ([], [one]) => Ok(one.clone()),
        ([], []) => Err(Rejection::PurchaseOrderNotFound {
            reference: reference.to_string(),
        }
        .into()),
        (_, many) => Err(Rejection::AmbiguousPurchaseOrder {
            reference: reference.to_string(),
            count: many.len(),
        }
        .into()),
    }
}

/// Product lines of the order and the `default_code` of each product.
async fn order_lines(
    client: &OdooClient,
    order_id: i64,
) -> Result<(Vec<OrderLine>, BTreeMap<i64, String>), ApplyError> {
    let rows = client
        .search_read_all(
            LINE_MODEL,
            &json!([["order_id", "=", order_id]]),
            &["id", "product_id", "date_planned", "display_type"],
            &Default::default(),
        )
        .await?;
    let mut lines = Vec::new();
    for row in &rows {
        // Section and note lines carry no product.
        let Some(product) = row.many2one("product_id")? else {
            continue;
        };
        lines.push(OrderLine {
            id: row.id()?,
            product_id: product.id,
            date_planned: row.str_field("date_planned")?.map(str::to_string),
        });
    }
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l.product_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut codes = BTreeMap::new();
    for row in client
        .with_context(inactive_too())
        .read("product.product", &ids, &["id", "default_code"])
        .await?
    {
        if let Some(code) = row.str_field("default_code")? {
            codes.insert(row.id()?, code.to_string());
        }
    }
    Ok((lines, codes))
}

/// Archived products still name their PO lines.
fn inactive_too() -> Map<String, Value> {
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    context
}

async fn find_note(
    client: &OdooClient,
    order_id: i64,
    fingerprint: &str,
) -> Result<Option<i64>, ApplyError> {
    let ids = client
        .search(
            "mail.message",
            &json!([
                ["model", "=", ORDER_MODEL],
                ["res_id", "=", order_id],
                ["body", "ilike", fingerprint]
            ]),
            &SearchOptions::limit(1),
        )
        .await?;
    Ok(ids.first().copied())
}

/// The `date_planned` to write for `date`, or `None` when the line already
/// has that date. The line's time of day is kept (noon UTC when it has none,
/// which falls on the same calendar day from UTC-11 to UTC+11), so a planner's
/// view of the line only moves by the days the supplier announced.
fn planned_value(current: Option<&str>, date: Date) -> Option<String> {
    let current = current.map(str::trim);
    if current.and_then(|c| c.get(..10)) == Some(date.to_string().as_str()) {
        return None;
    }
    let time = current
        .and_then(|c| c.get(11..19))
        .filter(|t| t.len() == 8)
        .unwrap_or("12:00:00");
    Some(format!("{date} {time}"))
}

fn note_body(
    target: &ConnectorTarget,
    event: &SupplierEvent,
    order_name: &str,
    fingerprint: &str,
    changes: &[(i64, Option<String>, Date)],
    codes: &BTreeMap<i64, String>,
    lines: &[OrderLine],
) -> String {
    let kind = match event.kind {
        SupplierEventType::Confirmation => "confirmation",
        SupplierEventType::Delay => "delay",
        SupplierEventType::Shipment => "shipment",
        SupplierEventType::Cancellation => "cancellation",
    };
    let mut body = format!(
        "<p>Supplier {kind} for {}, received by PlanOps SupplierConnector {}/{}.</p>",
        html_escape(order_name),
        html_escape(&target.namespace),
        html_escape(&target.name),
    );
    if let Some(date) = event.promised_date {
        body.push_str(&format!("<p>Promised date: {date}</p>"));
    }
    if !event.lines.is_empty() {
        body.push_str("<ul>");
        for line in &event.lines {
            body.push_str(&format!("<li>{}", html_escape(&line.product_code)));
            if let Some(q) = line.quantity {
                body.push_str(&format!(", quantity {q}"));
            }
            if let Some(d) = line.promised_date {
                body.push_str(&format!(", promised {d}"));
            }
            body.push_str("</li>");
        }
        body.push_str("</ul>");
    }
    if !changes.is_empty() {
        body.push_str("<p>Expected arrival updated:</p><ul>");
        for (line_id, before, after) in changes {
            let code = lines
                .iter()
                .find(|l| l.id == *line_id)
                .and_then(|l| codes.get(&l.product_id))
                .map_or("?", String::as_str);
            let before = before
                .as_deref()
                .and_then(|b| b.get(..10))
                .unwrap_or("none");
            body.push_str(&format!(
                "<li>{}: {before} → {after}</li>",
                html_escape(code)
            ));
        }
        body.push_str("</ul>");
    }
    if event.kind == SupplierEventType::Cancellation {
        body.push_str("<p>The order was not cancelled automatically: review it.</p>");
    }
    body.push_str(&format!(
        "<p>The supplier's message is attached. Event {}</p>",
        html_escape(fingerprint)
    ));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_separates_parts() {
        let a = event_fingerprint("ns", "acme", "evt-1");
        assert!(a.starts_with("planops:") && a.len() == 40, "{a}");
        assert_eq!(a, event_fingerprint("ns", "acme", "evt-1"));
        assert_ne!(a, event_fingerprint("ns", "acm", "eevt-1"));
        assert_ne!(a, event_fingerprint("ns2", "acme", "evt-1"));
        // printf 'ns\x1facme\x1fsupplier-event\x1fevt-1' | sha256sum | cut -c1-32
        assert_eq!(a, "planops:4e3e831f4ed2449e6f2e2b724f3d2b26");
        assert_eq!(
            attachment_name(&a),
            "supplier-event-4e3e831f4ed2449e6f2e2b724f3d2b26.json"
        );
    }

    #[test]
    fn planned_value_keeps_the_time_and_skips_the_same_day() {
        let d = jiff::civil::date(2025, 3, 20);
        assert_eq!(planned_value(Some("2025-03-20 10:00:00"), d), None);
        assert_eq!(
            planned_value(Some("2025-03-10 10:00:00"), d).as_deref(),
            Some("2025-03-20 10:00:00")
        );
        assert_eq!(
            planned_value(None, d).as_deref(),
            Some("2025-03-20 12:00:00")
        );
    }
}
