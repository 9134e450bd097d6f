//! Supplier delay: late or pushed-back purchase lines, and suppliers whose measured
//! lead time deteriorated against their vendor lead time.
//!
//! Inputs read: `purchase_lines` (open lines with the planned date seen at the last
//! scan), `receipt_history` (done receipts), `products` (vendor lines, to fill in a
//! receipt's vendor lead time when the scan did not).
//!
//! **Line exceptions** (subject: `purchase.order.line`). With `days_late = today −
//! date_planned` and `slip = date_planned − previous date_planned`:
//! Late when `days_late > graceDays`; PushedBack when `slip ≥ minSlipDays` (a line that
//! is both is reported as Late, with its slip). Impact = open qty × `price_unit` (the
//! quantity when the price is 0). Urgency: 1 for a late line; for a pushed-back line
//! [`urgency`](super::exception::urgency) of the days until the new date against the
//! slip (a 10-day slip on a line due in 5 days matters now; 2 days on a line due in 40
//! days hardly).
//!
//! **Supplier exceptions** (subject: `res.partner`). Per vendor, the
//! `recentReceipts` most recent receipts with a known vendor lead time give
//! `LT_i = received_on − ordered_on` and `late_i = LT_i − delay_i`. Flagged when there
//! are at least `minReceipts`, `median(late_i) ≥ minLeadTimeIncreaseDays` and
//! `median(LT_i) / median(delay_i) ≥ leadTimeRatio` (the ratio test is skipped when the
//! vendor lead time is 0). On-time rate = share of those receipts done by their promised
//! date. Impact = value still to receive from the vendor; urgency =
//! min(1, median(late_i) / max(median(delay_i), 1)).

use std::collections::HashMap;

use super::exception::{
    self, DelayReason, ExceptionNumbers, Finding, NumberSource, PlanningException, RuleRef,
    SeverityBasis, Subject, SubjectKind, SupplierDelayNumbers,
};
use super::inputs::{PlanningInput, Product, PurchaseLine, ReceiptRecord, days_between};
use super::params::{SeverityThresholds, SupplierDelayParams};
use super::stats;

/// Runs the supplier-delay detector.
pub fn detect(
    params: &SupplierDelayParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
) -> Vec<PlanningException> {
    let products: HashMap<i64, &Product> = input.products.iter().map(|p| (p.id, p)).collect();
    let mut found = Vec::new();
    for line in &input.purchase_lines {
        if let Some(e) = line_exception(params, rule, thresholds, input.today, line, &products) {
            found.push(e);
        }
    }
    found.extend(supplier_exceptions(
        params, rule, thresholds, input, &products,
    ));
    found
}

fn line_open_value(line: &PurchaseLine) -> (f64, f64) {
    let open_qty = (line.qty_ordered - line.qty_received).max(0.0);
    (open_qty, open_qty * line.price_unit)
}

fn line_exception(
    params: &SupplierDelayParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    today: jiff::civil::Date,
    line: &PurchaseLine,
    products: &HashMap<i64, &Product>,
) -> Option<PlanningException> {
    let (open_qty, open_value) = line_open_value(line);
    if open_qty <= 0.0 {
        return None;
    }
    let days_late = days_between(line.date_planned, today);
    let slip = line
        .previous_date_planned
        .map(|prev| days_between(prev, line.date_planned));
    let late = days_late > i64::from(params.grace_days());
    let pushed = slip.is_some_and(|s| s >= i64::from(params.min_slip_days()));
    let reason = match (late, pushed) {
        (true, _) => DelayReason::Late,
        (false, true) => DelayReason::PushedBack,
        (false, false) => return None,
    };
    let urgency = match reason {
        DelayReason::Late => 1.0,
        _ => exception::urgency(
            -days_late,
            slip.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        ),
    };
    let impact = if line.price_unit > 0.0 {
        open_value
    } else {
        open_qty
    };
    let product_label = products
        .get(&line.product_id)
        .map_or_else(|| format!("product #{}", line.product_id), |p| p.label());
    let subject = Subject {
        kind: SubjectKind::PurchaseLine,
        model: "purchase.order.line".into(),
        ids: vec![line.id],
        label: format!(
            "{} {} ({})",
            line.order_name, product_label, line.partner_name
        ),
    };
    let summary = match reason {
        DelayReason::Late => format!(
            "{}: {} days late, {open_qty} still to receive",
            subject.label, days_late
        ),
        _ => format!(
            "{}: pushed back {} days to {}",
            subject.label,
            slip.unwrap_or(0),
            line.date_planned
        ),
    };
    let mut narrative = format!(
        "{} from {} for {product_label}: {open_qty} of {} still to receive (value {open_value:.2}), planned for {}",
        line.order_name, line.partner_name, line.qty_ordered, line.date_planned
    );
    if late {
        narrative.push_str(&format!(", now {days_late} days late"));
    }
    if let (Some(prev), Some(s)) = (line.previous_date_planned, slip)
        && s != 0
    {
        narrative.push_str(&format!(
            "; the planned date moved from {prev} ({s:+} days) since the last scan"
        ));
    }
    narrative.push('.');
    let provenance = vec![
        NumberSource::odoo("datePlanned", "purchase.order.line.date_planned"),
        NumberSource::planops(
            "previousDatePlanned",
            "date_planned recorded at the previous scan",
        ),
        NumberSource::odoo("openQty", "purchase.order.line.product_qty − qty_received"),
    ];
    let numbers = SupplierDelayNumbers {
        reason,
        supplier_id: line.partner_id,
        date_planned: Some(line.date_planned),
        previous_date_planned: line.previous_date_planned,
        days_late: Some(days_late.max(0)),
        slip_days: slip,
        open_qty: Some(open_qty),
        open_value,
        measured_lead_time_days: None,
        measured_lead_time_p90_days: None,
        vendor_lead_time_days: None,
        lead_time_ratio: None,
        on_time_rate: None,
        receipts: None,
    };
    let finding = Finding {
        subject,
        numbers: ExceptionNumbers::SupplierDelay(numbers),
        impact,
        urgency,
        severity: SeverityBasis::Priority { floor: None },
        provenance,
        summary,
        narrative,
    };
    Some(finding.into_exception(rule, thresholds))
}

fn vendor_delay(receipt: &ReceiptRecord, products: &HashMap<i64, &Product>) -> Option<u32> {
    receipt.vendor_delay_days.or_else(|| {
        products.get(&receipt.product_id).and_then(|p| {
            p.suppliers
                .iter()
                .filter(|s| s.partner_id == receipt.partner_id)
                .min_by_key(|s| (s.sequence, s.id))
                .map(|s| s.delay_days)
        })
    })
}

fn supplier_exceptions(
    params: &SupplierDelayParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
    products: &HashMap<i64, &Product>,
) -> Vec<PlanningException> {
    let mut by_partner: HashMap<i64, Vec<(&ReceiptRecord, u32)>> = HashMap::new();
    for r in &input.receipt_history {
        if let Some(delay) = vendor_delay(r, products) {
            by_partner.entry(r.partner_id).or_default().push((r, delay));
        }
    }
    let mut names: HashMap<i64, &str> = HashMap::new();
    let mut open_value: HashMap<i64, f64> = HashMap::new();
    for line in &input.purchase_lines {
        names.insert(line.partner_id, &line.partner_name);
        *open_value.entry(line.partner_id).or_default() += line_open_value(line).1;
    }
    for p in &input.products {
        for s in &p.suppliers {
            names.entry(s.partner_id).or_insert(&s.partner_name);
        }
    }

    let mut partners: Vec<i64> = by_partner.keys().copied().collect();
    partners.sort_unstable();
    let mut found = Vec::new();
    let (mut lead, mut delay, mut late) = (Vec::new(), Vec::new(), Vec::new());
    for partner in partners {
        let Some(receipts) = by_partner.get_mut(&partner) else {
            continue;
        };
        receipts.sort_by_key(|r| std::cmp::Reverse(r.0.received_on));
        receipts.truncate(params.recent_receipts() as usize);
        if receipts.len() < params.min_receipts() as usize {
            continue;
        }
        lead.clear();
        delay.clear();
        late.clear();
        let mut on_time = 0u32;
        let mut promised = 0u32;
        for (r, d) in receipts.iter() {
            let lt = days_between(r.ordered_on, r.received_on) as f64;
            lead.push(lt);
            delay.push(f64::from(*d));
            late.push(lt - f64::from(*d));
            if let Some(p) = r.promised_on {
                promised += 1;
                if r.received_on <= p {
                    on_time += 1;
                }
            }
        }
        let (Some(median_late), Some(median_lead), Some(median_delay)) = (
            stats::median_in_place(&mut late),
            stats::median_in_place(&mut lead),
            stats::median_in_place(&mut delay),
        ) else {
            continue;
        };
        let ratio = (median_delay > 0.0).then(|| median_lead / median_delay);
        if median_late < params.min_lead_time_increase_days()
            || ratio.is_some_and(|r| r < params.lead_time_ratio())
        {
            continue;
        }
        let p90 = stats::quantile_in_place(&mut lead, 0.9);
        let on_time_rate = (promised > 0).then(|| f64::from(on_time) / f64::from(promised));
        let value = open_value.get(&partner).copied().unwrap_or(0.0);
        let urgency = (median_late / median_delay.max(1.0)).min(1.0);
        let name = names
            .get(&partner)
            .map_or_else(|| format!("vendor #{partner}"), |n| (*n).to_owned());
        let subject = Subject {
            kind: SubjectKind::Supplier,
            model: "res.partner".into(),
            ids: vec![partner],
            label: name.clone(),
        };
        let n = receipts.len();
        let summary = format!(
            "{name}: lead time {median_lead:.0} days against {median_delay:.0} promised (last {n} receipts)"
        );
        let mut narrative = format!(
            "Over its last {n} receipts {name} took a median of {median_lead:.1} days from order to receipt (90th percentile {:.1}), against a vendor lead time of {median_delay:.1} days: a median of {median_late:.1} days late",
            p90.unwrap_or(median_lead)
        );
        if let Some(r) = ratio {
            narrative.push_str(&format!(" (ratio {r:.2})"));
        }
        narrative.push('.');
        if let Some(rate) = on_time_rate {
            narrative.push_str(&format!(" On time: {:.0} %.", rate * 100.0));
        }
        narrative.push_str(&format!(
            " Open purchase value with this vendor: {value:.2}. Consider updating the vendor lead time in Odoo or raising safety stock."
        ));
        let provenance = vec![
            NumberSource::planops(
                "measuredLeadTimeDays",
                "median of receipt done date − order confirmation date",
            ),
            NumberSource::odoo("vendorLeadTimeDays", "product.supplierinfo.delay"),
            NumberSource::planops(
                "onTimeRate",
                "receipts done by their promised date ÷ receipts with a promised date",
            ),
        ];
        let numbers = SupplierDelayNumbers {
            reason: DelayReason::LeadTimeDeterioration,
            supplier_id: partner,
            date_planned: None,
            previous_date_planned: None,
            days_late: None,
            slip_days: None,
            open_qty: None,
            open_value: value,
            measured_lead_time_days: Some(median_lead),
            measured_lead_time_p90_days: p90,
            vendor_lead_time_days: Some(median_delay),
            lead_time_ratio: ratio,
            on_time_rate,
            receipts: Some(n as u32),
        };
        let finding = Finding {
            subject,
            numbers: ExceptionNumbers::SupplierDelay(numbers),
            impact: value,
            urgency,
            severity: SeverityBasis::Priority { floor: None },
            provenance,
            summary,
            narrative,
        };
        found.push(finding.into_exception(rule, thresholds));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{SupplierInfo, add_days};
    use jiff::civil::{Date, date};

    const TODAY: Date = date(2025, 3, 10);
    const RULE: RuleRef<'static> = RuleRef {
        namespace: "ns",
        rule: "suppliers",
    };

    fn line(id: i64, planned: Date, previous: Option<Date>) -> PurchaseLine {
        PurchaseLine {
            id,
            order_name: format!("P{id:05}"),
            partner_id: 7,
            partner_name: "Acme".into(),
            product_id: 1,
            warehouse_id: Some(1),
            qty_ordered: 100.0,
            qty_received: 40.0,
            price_unit: 2.5,
            date_planned: planned,
            previous_date_planned: previous,
        }
    }

    fn numbers(e: &PlanningException) -> &SupplierDelayNumbers {
        match &e.numbers {
            ExceptionNumbers::SupplierDelay(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn late_and_pushed_back_lines() {
        let mut input = PlanningInput::new(TODAY);
        input.purchase_lines = vec![
            // Planned 4 days ago: late by 4; 60 open × 2.5 = 150.
            line(1, date(2025, 3, 6), Some(date(2025, 3, 6))),
            // Moved from Mar 12 to Mar 20 (slip 8), due in 10 days: urgency 8/10.
            line(2, date(2025, 3, 20), Some(date(2025, 3, 12))),
            // On time, unchanged: nothing.
            line(3, date(2025, 3, 15), Some(date(2025, 3, 15))),
            // Due today: not late with grace 0.
            line(4, TODAY, None),
        ];
        let mut fully_received = line(5, date(2025, 1, 1), None);
        fully_received.qty_received = 100.0;
        input.purchase_lines.push(fully_received);
        let found = detect(
            &SupplierDelayParams::default(),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        assert_eq!(found.len(), 2);
        let late = numbers(&found[0]);
        assert_eq!(late.reason, DelayReason::Late);
        assert_eq!(late.days_late, Some(4));
        assert_eq!(late.open_qty, Some(60.0));
        assert_eq!(late.open_value, 150.0);
        assert_eq!(found[0].priority, 150.0);
        assert_eq!(found[0].subject.ids, vec![1]);
        let pushed = numbers(&found[1]);
        assert_eq!(pushed.reason, DelayReason::PushedBack);
        assert_eq!(pushed.slip_days, Some(8));
        assert_eq!(pushed.days_late, Some(0));
        assert!((found[1].urgency - 0.8).abs() < 1e-12);
        assert_eq!(found[1].priority, 120.0);
        assert!(
            found[1].narrative.contains("+8 days"),
            "{}",
            found[1].narrative
        );

        // Grace of 5 days forgives the first line.
        let lenient = SupplierDelayParams {
            grace_days: Some(5),
            ..Default::default()
        };
        assert_eq!(
            detect(&lenient, &RULE, &SeverityThresholds::default(), &input).len(),
            1
        );
    }

    fn receipt(ordered: Date, lead: i64, promised_lead: i64) -> ReceiptRecord {
        ReceiptRecord {
            partner_id: 7,
            product_id: 1,
            ordered_on: ordered,
            received_on: add_days(ordered, lead),
            promised_on: Some(add_days(ordered, promised_lead)),
            vendor_delay_days: None,
        }
    }

    #[test]
    fn lead_time_deterioration_hand_computed() {
        // Vendor delay 10 days (from supplierinfo). Receipts with lead times
        // 10, 12, 14, 15, 16 (most recent last), promised at 10 days each.
        // Median LT 14, median delay 10 → ratio 1.4 ≥ 1.2; median lateness 4 ≥ 2.
        // p90 of 10 12 14 15 16 = 15 + 0.6 × 1 = 15.6. On time: 1 of 5 = 0.2.
        // Open value: line 60 × 2.5 = 150; urgency = min(1, 4 / 10) = 0.4 → 60.
        let mut input = PlanningInput::new(TODAY);
        input.products = vec![Product {
            id: 1,
            default_code: None,
            name: "Bolt".into(),
            standard_price: 1.0,
            suppliers: vec![SupplierInfo {
                id: 3,
                partner_id: 7,
                partner_name: "Acme".into(),
                min_qty: 0.0,
                delay_days: 10,
                price: 1.0,
                sequence: 1,
                date_start: None,
                date_end: None,
            }],
        }];
        input.receipt_history = [10, 12, 14, 15, 16]
            .iter()
            .enumerate()
            .map(|(i, lt)| receipt(add_days(date(2025, 1, 1), 7 * i as i64), *lt, 10))
            .collect();
        input.purchase_lines = vec![line(1, date(2025, 3, 20), None)];
        let found = detect(
            &SupplierDelayParams::default(),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        assert_eq!(found.len(), 1);
        let e = &found[0];
        assert_eq!(e.subject.kind, SubjectKind::Supplier);
        assert_eq!(e.subject.label, "Acme");
        let n = numbers(e);
        assert_eq!(n.reason, DelayReason::LeadTimeDeterioration);
        assert_eq!(n.measured_lead_time_days, Some(14.0));
        assert_eq!(n.vendor_lead_time_days, Some(10.0));
        assert_eq!(n.lead_time_ratio, Some(1.4));
        assert!((n.measured_lead_time_p90_days.unwrap() - 15.6).abs() < 1e-9);
        assert_eq!(n.on_time_rate, Some(0.2));
        assert_eq!(n.receipts, Some(5));
        assert!((e.priority - 60.0).abs() < 1e-9);

        // Only the 3 most recent receipts (14, 15, 16): median 15, still flagged;
        // a stricter ratio of 1.6 is not reached (1.5).
        let strict = SupplierDelayParams {
            recent_receipts: Some(3),
            lead_time_ratio: Some(1.6),
            ..Default::default()
        };
        assert!(detect(&strict, &RULE, &SeverityThresholds::default(), &input).is_empty());
        // Too few receipts to judge.
        let needs_more = SupplierDelayParams {
            min_receipts: Some(6),
            recent_receipts: Some(10),
            ..Default::default()
        };
        assert!(detect(&needs_more, &RULE, &SeverityThresholds::default(), &input).is_empty());
    }

    #[test]
    fn zero_vendor_lead_time_uses_lateness_only() {
        let mut input = PlanningInput::new(TODAY);
        input.receipt_history = [3, 3, 4]
            .iter()
            .map(|lt| ReceiptRecord {
                vendor_delay_days: Some(0),
                ..receipt(date(2025, 2, 1), *lt, 0)
            })
            .collect();
        let found = detect(
            &SupplierDelayParams::default(),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        let n = numbers(&found[0]);
        assert_eq!(n.lead_time_ratio, None);
        assert_eq!(n.measured_lead_time_days, Some(3.0));
        // Urgency = min(1, 3 / max(0, 1)) = 1; no open lines → impact 0.
        assert_eq!(found[0].urgency, 1.0);
        assert_eq!(found[0].impact, 0.0);
        assert_eq!(found[0].subject.label, "vendor #7");
    }
}
