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

pub mod exception;
pub mod field_threshold;
pub mod inputs;
pub mod order_risk;
pub mod params;
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
    let mut found = match kind {
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
    found.sort_by(|a, b| {
        b.priority
            .total_cmp(&a.priority)
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inputs::{DemandHistory, StockItem};
    use crate::engine::params::ProjectedStockoutParams;
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
