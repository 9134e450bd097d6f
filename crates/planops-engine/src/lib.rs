//! Pure planning logic: detectors, severity, priority and fingerprints. No I/O.
//!
//! A scan reads what a rule's detector needs from Odoo into a [`PlanningInput`] and
//! calls [`evaluate`]; it gets back one [`PlanningException`] per finding, ordered by
//! priority (highest first), each with its numbers, where they came from, a severity
//! and a fingerprint that stays the same across scans. Each detector module documents
//! its formulas:
//!
//! | detector | module |
//! |---|---|
//! | `projectedStockout` | [`stockout`] |
//! | `demandSpike` | [`spike`] |
//! | `supplierDelay` | [`supplier`] |
//! | `orderAtRisk` | [`order_risk`] |
//! | `fieldThreshold` | [`field_threshold`] |

pub mod approval;
pub mod exception;
pub mod field_threshold;
pub mod inputs;
pub mod order_risk;
pub mod schedule;
pub mod season;
pub mod spike;
pub mod stats;
pub mod stockout;
pub mod supplier;

pub use exception::{
    DetectorKind, ExceptionNumbers, NumberSource, Origin, PlanningException, RuleRef, Severity,
    Subject, SubjectKind, fingerprint,
};
pub use inputs::PlanningInput;
pub use params::{DetectorSpec, ParamsError, SeverityThresholds};
pub use planops_api::params;

/// What a scan must read from Odoo into [`PlanningInput`] for one detector, so it
/// fetches nothing the detector ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputNeeds {
    /// `items` with on hand (and `virtual_available` when cheap).
    pub stock_items: bool,
    /// `items[].history`: daily demand per product × warehouse.
    pub demand_history: bool,
    /// `items[].receipts` / `items[].deliveries`: dated incoming and outgoing moves.
    pub dated_moves: bool,
    /// `items[].orderpoint`: reordering rules with Odoo's computed figures.
    pub orderpoints: bool,
    /// `products` with `suppliers` (vendor price list lines) and cost.
    pub products: bool,
    /// `purchase_lines`: open purchase lines with last scan's planned dates.
    pub purchase_lines: bool,
    /// `receipt_history`: done receipts for measured lead times.
    pub receipt_history: bool,
    /// `sale_lines`: confirmed, undelivered sales lines.
    pub sale_lines: bool,
    /// `records`: the field-threshold model's records.
    pub records: bool,
}

impl InputNeeds {
    /// The inputs `kind`'s detector reads.
    pub fn of(kind: DetectorKind) -> InputNeeds {
        let none = InputNeeds::default();
        match kind {
            DetectorKind::ProjectedStockout => InputNeeds {
                stock_items: true,
                demand_history: true,
                dated_moves: true,
                orderpoints: true,
                products: true,
                ..none
            },
            DetectorKind::DemandSpike => InputNeeds {
                stock_items: true,
                demand_history: true,
                products: true,
                ..none
            },
            DetectorKind::SupplierDelay => InputNeeds {
                products: true,
                purchase_lines: true,
                receipt_history: true,
                ..none
            },
            DetectorKind::OrderAtRisk => InputNeeds {
                stock_items: true,
                dated_moves: true,
                products: true,
                sale_lines: true,
                ..none
            },
            DetectorKind::FieldThreshold => InputNeeds {
                records: true,
                ..none
            },
        }
    }
}

/// Evaluates `spec` over `input` for the rule `rule`. Fails only on an invalid spec
/// (no detector, several, or a value out of range); the data itself cannot make it
/// fail. Exceptions come back by descending priority, ties by fingerprint, so the
/// order is deterministic.
pub fn evaluate(
    rule: &RuleRef<'_>,
    spec: &DetectorSpec,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
) -> Result<Vec<PlanningException>, ParamsError> {
    let kind = spec.validate()?;
    thresholds.validate()?;
    let found = match kind {
        DetectorKind::ProjectedStockout => spec
            .projected_stockout
            .as_ref()
            .map(|p| stockout::detect(p, rule, thresholds, input)),
        DetectorKind::DemandSpike => spec
            .demand_spike
            .as_ref()
            .map(|p| spike::detect(p, rule, thresholds, input)),
        DetectorKind::SupplierDelay => spec
            .supplier_delay
            .as_ref()
            .map(|p| supplier::detect(p, rule, thresholds, input)),
        DetectorKind::OrderAtRisk => spec
            .order_at_risk
            .as_ref()
            .map(|p| order_risk::detect(p, rule, thresholds, input)),
        DetectorKind::FieldThreshold => spec
            .field_threshold
            .as_ref()
            .map(|p| field_threshold::detect(p, rule, thresholds, input)),
    }
    .unwrap_or_default();
    Ok(sort_by_priority(found))
}

/// Descending priority, ties by fingerprint. Exceptions are large structs, so an index
/// permutation is sorted and applied in place, moving each exception about once
/// instead of O(n log n) times.
fn sort_by_priority(mut found: Vec<PlanningException>) -> Vec<PlanningException> {
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        found[b]
            .priority
            .total_cmp(&found[a].priority)
            .then_with(|| found[a].fingerprint.cmp(&found[b].fingerprint))
    });
    // Position i must receive the element now at order[i]. Following each cycle of the
    // permutation, one swap settles one position.
    for start in 0..order.len() {
        let mut current = start;
        while order[current] != start {
            let next = order[current];
            found.swap(current, next);
            order[current] = current;
            current = next;
        }
        order[current] = current;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{DemandHistory, StockItem};
    use crate::params::ProjectedStockoutParams;
    use jiff::civil::date;

    #[test]
    fn evaluate_sorts_by_priority_and_rejects_bad_specs() {
        let mut input = PlanningInput::new(date(2025, 3, 1));
        for (product_id, on_hand) in [(1, 5.0), (2, -50.0), (3, 1000.0)] {
            input.items.push(StockItem {
                product_id,
                warehouse_id: 1,
                on_hand,
                history: DemandHistory {
                    end: Some(date(2025, 2, 28)),
                    daily: vec![3.0; 90],
                },
                ..Default::default()
            });
        }
        let rule = RuleRef {
            namespace: "ns",
            rule: "r",
        };
        let spec = DetectorSpec {
            projected_stockout: Some(ProjectedStockoutParams::default()),
            ..Default::default()
        };
        let found = evaluate(&rule, &spec, &SeverityThresholds::default(), &input).unwrap();
        // Product 3 (1000 on hand) is fine; product 2 (−50) is worse than product 1 (5).
        let ids: Vec<i64> = found.iter().map(|e| e.subject.ids[0]).collect();
        assert_eq!(ids, vec![2, 1]);
        // Re-evaluating with different numbers keeps the fingerprints.
        input.items[1].on_hand = -10.0;
        let again = evaluate(&rule, &spec, &SeverityThresholds::default(), &input).unwrap();
        assert_eq!(again[0].fingerprint, found[0].fingerprint);
        assert_ne!(again[0].numbers, found[0].numbers);

        assert_eq!(
            evaluate(
                &rule,
                &DetectorSpec::default(),
                &SeverityThresholds::default(),
                &input
            ),
            Err(ParamsError::NoDetector)
        );
    }

    #[test]
    fn permutation_sort_orders_by_priority_then_fingerprint() {
        let mut input = PlanningInput::new(date(2025, 3, 1));
        // Negative on hand −n and no demand gives priority n (shortage n, urgency 1).
        let on_hand = [-3.0, -9.0, -1.0, -9.0, -5.0, -2.0, -7.0, -4.0];
        for (i, q) in on_hand.iter().enumerate() {
            input.items.push(StockItem {
                product_id: i as i64 + 1,
                warehouse_id: 1,
                on_hand: *q,
                ..Default::default()
            });
        }
        let spec = DetectorSpec {
            projected_stockout: Some(ProjectedStockoutParams::default()),
            ..Default::default()
        };
        let rule = RuleRef {
            namespace: "ns",
            rule: "r",
        };
        let found = evaluate(&rule, &spec, &SeverityThresholds::default(), &input).unwrap();
        let priorities: Vec<f64> = found.iter().map(|e| e.priority).collect();
        assert_eq!(priorities, vec![9.0, 9.0, 7.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        assert!(found[0].fingerprint < found[1].fingerprint);
    }

    #[test]
    fn input_needs_match_what_detectors_read() {
        let stockout = InputNeeds::of(DetectorKind::ProjectedStockout);
        assert!(stockout.demand_history && stockout.dated_moves && !stockout.sale_lines);
        let field = InputNeeds::of(DetectorKind::FieldThreshold);
        assert!(field.records && !field.stock_items && !field.products);
        assert!(InputNeeds::of(DetectorKind::OrderAtRisk).sale_lines);
        assert!(InputNeeds::of(DetectorKind::SupplierDelay).receipt_history);
    }

    #[test]
    fn exceptions_serialise_with_tagged_numbers() {
        let mut input = PlanningInput::new(date(2025, 3, 1));
        input.items.push(StockItem {
            product_id: 1,
            warehouse_id: 1,
            on_hand: -1.0,
            ..Default::default()
        });
        let spec = DetectorSpec {
            projected_stockout: Some(ProjectedStockoutParams::default()),
            ..Default::default()
        };
        let rule = RuleRef {
            namespace: "ns",
            rule: "r",
        };
        let found = evaluate(&rule, &spec, &SeverityThresholds::default(), &input).unwrap();
        let json = serde_json::to_value(&found[0]).unwrap();
        assert_eq!(json["detector"], "ProjectedStockout");
        assert_eq!(json["numbers"]["kind"], "ProjectedStockout");
        assert_eq!(json["numbers"]["stockoutDate"], "2025-03-01");
        assert_eq!(json["severity"], "High");
        let back: PlanningException = serde_json::from_value(json).unwrap();
        assert_eq!(back, found[0]);
    }
}
