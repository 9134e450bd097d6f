//! A supplier's measured lead time over a window of done receipts: the same
//! receipts and day arithmetic as the supplier-delay detector
//! (`engine::supplier`), so the connector's status and a rule's findings agree.
//!
//! One sample per done receipt move of a purchase line of the supplier, with
//! its date (`stock.move.date`, the done date) within the window:
//!
//! * lead time = done date − order confirmation date (`date_approve`, else
//!   `date_order`), in whole UTC calendar days;
//! * on time = done on or before the line's `date_planned` (UTC date); the
//!   rate is over samples whose line has a planned date (0 when none has).
//!
//! p50 and p90 interpolate between order statistics
//! ([`planops_engine::stats::quantile_in_place`]).

use jiff::civil::Date;
use serde_json::json;

use crate::scan::fetch::receipts_from;
use odoo_client::{OdooClient, OdooError, PageOptions, RecordExt};
use planops_api::supplier::LeadTimeStats;
use planops_engine::inputs::{ReceiptRecord, add_days, days_between};
use planops_engine::stats;

/// Statistics of `receipts`, or `None` when there are none.
pub fn summarize(receipts: &[ReceiptRecord]) -> Option<LeadTimeStats> {
    if receipts.is_empty() {
        return None;
    }
    let mut lead: Vec<f64> = receipts
        .iter()
        .map(|r| days_between(r.ordered_on, r.received_on) as f64)
        .collect();
    let mut promised = 0u32;
    let mut on_time = 0u32;
    for r in receipts {
        if let Some(p) = r.promised_on {
            promised += 1;
            if r.received_on <= p {
                on_time += 1;
            }
        }
    }
    let p90 = stats::quantile_in_place(&mut lead, 0.9)?;
    let p50 = stats::quantile_in_place(&mut lead, 0.5)?;
    let on_time_rate = if promised == 0 {
        0.0
    } else {
        f64::from(on_time) / f64::from(promised)
    };
    Some(LeadTimeStats {
        p50_days: round(p50, 2),
        p90_days: round(p90, 2),
        on_time_rate: round(on_time_rate, 4),
        samples: u32::try_from(receipts.len()).unwrap_or(u32::MAX),
    })
}

/// Rounded so that the status does not change on float noise.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Done receipts of `partner_id` whose done date is on or after
/// `today − window_days`.
pub async fn receipts(
    client: &OdooClient,
    partner_id: i64,
    window_days: u32,
    today: Date,
) -> Result<Vec<ReceiptRecord>, OdooError> {
    let since = add_days(today, -i64::from(window_days));
    let moves = client
        .search_read_all(
            "stock.move",
            &json!([
                ["state", "=", "done"],
                ["purchase_line_id.partner_id", "=", partner_id],
                ["date", ">=", format!("{since} 00:00:00")]
            ]),
            &["id", "purchase_line_id", "product_id", "date"],
            &PageOptions::default(),
        )
        .await?;
    let mut line_ids = Vec::new();
    for m in &moves {
        if let Some(l) = m.many2one("purchase_line_id")? {
            line_ids.push(l.id);
        }
    }
    line_ids.sort_unstable();
    line_ids.dedup();
    let mut lines = Vec::with_capacity(line_ids.len());
    for chunk in line_ids.chunks(500) {
        lines.extend(
            client
                .read(
                    "purchase.order.line",
                    chunk,
                    &["id", "order_id", "partner_id", "date_planned"],
                )
                .await?,
        );
    }
    let mut order_ids = Vec::new();
    for l in &lines {
        if let Some(o) = l.many2one("order_id")? {
            order_ids.push(o.id);
        }
    }
    order_ids.sort_unstable();
    order_ids.dedup();
    let mut orders = Vec::with_capacity(order_ids.len());
    for chunk in order_ids.chunks(500) {
        orders.extend(
            client
                .read(
                    "purchase.order",
                    chunk,
                    &["id", "date_approve", "date_order"],
                )
                .await?,
        );
    }
    let mut out = receipts_from(&moves, &lines, &orders, &[])?;
    out.retain(|r| r.partner_id == partner_id);
    Ok(out)
}

/// Measures the supplier's lead time; `None` without receipts in the window.
pub async fn measure(
    client: &OdooClient,
    partner_id: i64,
    window_days: u32,
    today: Date,
) -> Result<Option<LeadTimeStats>, OdooError> {
    let receipts = receipts(client, partner_id, window_days, today).await?;
    Ok(summarize(&receipts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn receipt(ordered: Date, received: Date, promised: Option<Date>) -> ReceiptRecord {
        ReceiptRecord {
            partner_id: 1,
            product_id: 2,
            ordered_on: ordered,
            received_on: received,
            promised_on: promised,
            vendor_delay_days: None,
        }
    }

    #[test]
    fn summarizes_hand_computed_receipts() {
        let o = date(2025, 1, 1);
        // Lead times 10, 12, 14, 20 days; promised day 12 for each.
        let p = Some(date(2025, 1, 13));
        let receipts = vec![
            receipt(o, date(2025, 1, 11), p),
            receipt(o, date(2025, 1, 13), p),
            receipt(o, date(2025, 1, 15), p),
            receipt(o, date(2025, 1, 21), None),
        ];
        let s = summarize(&receipts).expect("stats");
        // Sorted 10,12,14,20: p50 at 1.5 → 13; p90 at 2.7 → 14 + 0.7·6 = 18.2.
        assert_eq!(s.p50_days, 13.0);
        assert_eq!(s.p90_days, 18.2);
        // Two of the three with a promise were on time.
        assert_eq!(s.on_time_rate, 0.6667);
        assert_eq!(s.samples, 4);
        assert_eq!(summarize(&[]), None);
    }
}
