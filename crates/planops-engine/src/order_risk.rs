//! Orders at risk: confirmed sales lines that stock and incoming receipts cannot cover
//! by their commitment date.
//!
//! Inputs read: `sale_lines`, `items` (on hand and dated receipts per product ×
//! warehouse), `products` (vendor lead time, label).
//!
//! Per product × warehouse, the open lines committed up to `today + windowDays` are
//! served first-committed-first (ties by line id), as a warehouse picks them. For line
//! k with open quantity q_k and cumulative open quantity D_k (itself and every line
//! committed before it):
//!
//! ```text
//! Supply(date) = OnHand + receipts dated ≤ date   (overdue receipts count as today)
//! shortfall_k  = min(q_k, max(0, D_k − Supply(max(commitment_k, today))))
//! ```
//!
//! On hand rather than free quantity, because the reservations that free quantity
//! subtracts belong to these same lines. A line is flagged when shortfall > 0 and its
//! open value (q × unit price) reaches `minValue`. `covered_on` is the first receipt
//! date from which Supply ≥ D_k, and `days_late` its distance to the commitment.
//!
//! Priority = impact × urgency: impact = shortfall × unit price (the quantity when the
//! price is 0); urgency = [`urgency`](super::exception::urgency) of the days until the
//! commitment against the main vendor's lead time (1 when a purchase ordered today
//! cannot arrive in time). A commitment already due is at least High.

use std::collections::HashMap;

use super::exception::{
    self, ExceptionNumbers, Finding, NumberSource, OrderRiskNumbers, PlanningException, RuleRef,
    Severity, SeverityBasis, Subject, SubjectKind,
};
use super::inputs::{
    DatedQty, PlanningInput, Product, SaleLine, StockItem, add_days, days_between,
};
use super::params::{OrderAtRiskParams, SeverityThresholds};

/// Runs the order-at-risk detector.
pub fn detect(
    params: &OrderAtRiskParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
) -> Vec<PlanningException> {
    let today = input.today;
    let last_day = add_days(today, i64::from(params.window_days()));
    let products: HashMap<i64, &Product> = input.products.iter().map(|p| (p.id, p)).collect();
    let items: HashMap<(i64, i64), &StockItem> = input
        .items
        .iter()
        .map(|i| ((i.product_id, i.warehouse_id), i))
        .collect();
    let mut groups: HashMap<(i64, i64), Vec<&SaleLine>> = HashMap::new();
    for line in &input.sale_lines {
        if line.commitment_date <= last_day && line.open_qty() > 0.0 {
            groups
                .entry((line.product_id, line.warehouse_id))
                .or_default()
                .push(line);
        }
    }
    let mut keys: Vec<(i64, i64)> = groups.keys().copied().collect();
    keys.sort_unstable();

    let mut found = Vec::new();
    let mut receipts: Vec<DatedQty> = Vec::new();
    for key in keys {
        let Some(lines) = groups.get_mut(&key) else {
            continue;
        };
        lines.sort_by_key(|l| (l.commitment_date, l.id));
        let item = items.get(&key).copied();
        let on_hand = item.map_or(0.0, |i| i.on_hand);
        receipts.clear();
        if let Some(i) = item {
            receipts.extend(i.receipts.iter().map(|r| DatedQty {
                date: r.date.max(today),
                qty: r.qty,
            }));
        }
        receipts.sort_by_key(|r| r.date);
        let product = products.get(&key.0).copied();
        let lead = product
            .and_then(|p| p.main_supplier(today))
            .map_or(0, |s| s.delay_days);

        let mut cumulative = 0.0;
        for line in lines.iter() {
            let open = line.open_qty();
            let ahead = cumulative;
            cumulative += open;
            let due = line.commitment_date.max(today);
            let incoming: f64 = receipts
                .iter()
                .take_while(|r| r.date <= due)
                .map(|r| r.qty)
                .sum();
            let supply = on_hand + incoming;
            let shortfall = (cumulative - supply).max(0.0).min(open);
            let open_value = open * line.price_unit;
            if shortfall <= 0.0 || open_value < params.min_value() {
                continue;
            }
            let mut running = on_hand;
            let covered_on = receipts.iter().find_map(|r| {
                running += r.qty;
                (running >= cumulative).then_some(r.date)
            });
            let days_late = covered_on.map(|d| days_between(line.commitment_date, d).max(0));
            let value_at_risk = shortfall * line.price_unit;
            let impact = if line.price_unit > 0.0 {
                value_at_risk
            } else {
                shortfall
            };
            let days_until = days_between(today, line.commitment_date);
            let urgency = exception::urgency(days_until, lead);
            let floor = (days_until <= 0).then_some(Severity::High);

            let product_label =
                product.map_or_else(|| format!("product #{}", line.product_id), |p| p.label());
            let subject = Subject {
                kind: SubjectKind::SaleLine,
                model: "sale.order.line".into(),
                ids: vec![line.id],
                label: format!(
                    "{} {} ({})",
                    line.order_name, product_label, line.partner_name
                ),
            };
            let summary = format!(
                "{}: {shortfall} of {open} not covered by {}",
                subject.label, line.commitment_date
            );
            let mut narrative = format!(
                "{} promised {} {open} × {product_label} on {} (open value {open_value:.2}). The warehouse has {on_hand} on hand and {incoming} arriving by then, and {ahead} is committed to earlier orders, so {shortfall} cannot ship on time (value at risk {value_at_risk:.2}).",
                line.order_name, line.partner_name, line.commitment_date
            );
            match (covered_on, days_late) {
                (Some(date), Some(late)) => narrative.push_str(&format!(
                    " Known receipts cover it on {date}, {late} days late."
                )),
                _ => narrative.push_str(&format!(
                    " No known receipt covers it; a purchase ordered today needs {lead} days."
                )),
            }
            let provenance = vec![
                NumberSource::odoo("commitmentDate", "sale.order.commitment_date"),
                NumberSource::odoo("openQty", "sale.order.line.product_uom_qty − qty_delivered"),
                NumberSource::odoo("onHand", "product.product.qty_available in the warehouse"),
                NumberSource::odoo(
                    "incomingByCommitment",
                    "incoming stock.move / purchase.order.line dates",
                ),
                NumberSource::planops(
                    "shortfallQty",
                    "first-committed-first allocation of on hand and dated receipts",
                ),
            ];
            let numbers = OrderRiskNumbers {
                commitment_date: line.commitment_date,
                open_qty: open,
                shortfall_qty: shortfall,
                open_value,
                value_at_risk,
                on_hand,
                incoming_by_commitment: incoming,
                demand_ahead_qty: ahead,
                covered_on,
                days_late,
            };
            let finding = Finding {
                subject,
                numbers: ExceptionNumbers::OrderAtRisk(numbers),
                impact,
                urgency,
                severity: SeverityBasis::Priority { floor },
                provenance,
                summary,
                narrative,
            };
            found.push(finding.into_exception(rule, thresholds));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{Date, date};

    const TODAY: Date = date(2025, 3, 10);
    const RULE: RuleRef<'static> = RuleRef {
        namespace: "ns",
        rule: "orders",
    };

    fn sale(id: i64, commitment: Date, qty: f64, price: f64) -> SaleLine {
        SaleLine {
            id,
            order_name: format!("S{id:05}"),
            partner_name: "Customer".into(),
            product_id: 1,
            warehouse_id: 1,
            commitment_date: commitment,
            qty_ordered: qty,
            qty_delivered: 0.0,
            price_unit: price,
        }
    }

    fn numbers(e: &PlanningException) -> &OrderRiskNumbers {
        match &e.numbers {
            ExceptionNumbers::OrderAtRisk(n) => n,
            other => panic!("{other:?}"),
        }
    }

    fn input() -> PlanningInput {
        let mut input = PlanningInput::new(TODAY);
        input.items = vec![StockItem {
            product_id: 1,
            warehouse_id: 1,
            on_hand: 10.0,
            receipts: vec![
                DatedQty {
                    date: date(2025, 3, 15),
                    qty: 20.0,
                },
                DatedQty {
                    date: date(2025, 3, 30),
                    qty: 50.0,
                },
            ],
            ..Default::default()
        }];
        input
    }

    #[test]
    fn allocation_hand_computed() {
        // On hand 10, receipts 20 on Mar 15 and 50 on Mar 30 (outside the 14-day window,
        // but it still dates the cover). Lines in commitment order:
        //  A (Mar 12, 8):  D = 8,  supply 10        → covered.
        //  B (Mar 14, 6):  D = 14, supply 10        → shortfall 4; covered Mar 15, 1 day late.
        //  C (Mar 20, 20): D = 34, supply 30        → shortfall 4; covered Mar 30, 10 days late.
        //  D (Apr 1, 5): outside the window, ignored.
        let mut input = input();
        input.sale_lines = vec![
            sale(3, date(2025, 3, 20), 20.0, 10.0),
            sale(1, date(2025, 3, 12), 8.0, 10.0),
            sale(2, date(2025, 3, 14), 6.0, 10.0),
            sale(4, date(2025, 4, 1), 5.0, 10.0),
        ];
        let found = detect(
            &OrderAtRiskParams::default(),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        assert_eq!(found.len(), 2);
        let b = numbers(&found[0]);
        assert_eq!(found[0].subject.ids, vec![2]);
        assert_eq!(b.shortfall_qty, 4.0);
        assert_eq!(b.demand_ahead_qty, 8.0);
        assert_eq!(b.incoming_by_commitment, 0.0);
        assert_eq!(b.covered_on, Some(date(2025, 3, 15)));
        assert_eq!(b.days_late, Some(1));
        assert_eq!(b.value_at_risk, 40.0);
        // Commitment in 4 days, no vendor: lead counts as 1 day → urgency 1/4.
        assert_eq!(found[0].urgency, 0.25);
        assert_eq!(found[0].priority, 10.0);
        let c = numbers(&found[1]);
        assert_eq!(c.shortfall_qty, 4.0);
        assert_eq!(c.incoming_by_commitment, 20.0);
        assert_eq!(c.covered_on, Some(date(2025, 3, 30)));
        assert_eq!(c.days_late, Some(10));
        assert_eq!(c.open_value, 200.0);

        // A value threshold of 100 keeps only C (open value 200; B is 60).
        let params = OrderAtRiskParams {
            min_value: Some(100.0),
            ..Default::default()
        };
        let found = detect(&params, &RULE, &SeverityThresholds::default(), &input);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject.ids, vec![3]);
    }

    #[test]
    fn overdue_line_without_stock_record() {
        // No stock item at all, line overdue: whole quantity short, never covered,
        // at least High.
        let mut input = PlanningInput::new(TODAY);
        let mut line = sale(9, date(2025, 3, 1), 5.0, 0.0);
        line.qty_delivered = 2.0;
        input.sale_lines = vec![line];
        let found = detect(
            &OrderAtRiskParams::default(),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        let n = numbers(&found[0]);
        assert_eq!(n.open_qty, 3.0);
        assert_eq!(n.shortfall_qty, 3.0);
        assert_eq!(n.covered_on, None);
        assert_eq!(found[0].impact, 3.0);
        assert_eq!(found[0].severity, Severity::High);
    }

    #[test]
    fn fully_covered_lines_are_quiet() {
        let mut input = input();
        input.sale_lines = vec![sale(1, date(2025, 3, 16), 30.0, 1.0)];
        assert!(
            detect(
                &OrderAtRiskParams::default(),
                &RULE,
                &SeverityThresholds::default(),
                &input
            )
            .is_empty()
        );
    }
}
