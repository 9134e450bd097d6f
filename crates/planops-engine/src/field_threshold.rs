//! Field threshold: any Odoo model, domain, numeric field, comparison and value.
//!
//! Inputs read: `records` (the records the scan selected with the rule's domain,
//! with the compared field and the label field). The domain is applied by Odoo during
//! the scan; this detector only compares.
//!
//! A record is flagged when `field <comparison> value` holds. Integers, floats and
//! monetary values compare as numbers, booleans as 1/0; a record without a numeric
//! value in the field (missing, `null`, a relation) is skipped, because a comparison
//! with it would mean nothing.
//!
//! Priority = impact × urgency with impact = |field − value| (1 when equal, so an `Eq`
//! match still ranks) and urgency 1. Severity is the rule's fixed `severity` when set,
//! else the thresholds' class of the priority.

use serde_json::Value;

use super::exception::{
    ExceptionNumbers, FieldThresholdNumbers, Finding, NumberSource, PlanningException, RuleRef,
    SeverityBasis, Subject, SubjectKind,
};
use super::inputs::{GenericRecord, PlanningInput};
use super::params::{FieldThresholdParams, SeverityThresholds};

/// A field value as a number, the way Odoo returns numeric and boolean fields.
pub fn numeric_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// A record's label: the label field as text (a many2one shows its name), else
/// `model #id`.
fn label(record: &GenericRecord, field: &str, model: &str) -> String {
    match record.fields.get(field) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Array(pair)) if pair.len() == 2 => pair[1]
            .as_str()
            .map_or_else(|| format!("{model} #{}", record.id), str::to_owned),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("{model} #{}", record.id),
    }
}

/// Runs the field-threshold detector over `input.records`.
pub fn detect(
    params: &FieldThresholdParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
) -> Vec<PlanningException> {
    let mut found = Vec::new();
    for record in &input.records {
        let Some(actual) = record.fields.get(&params.field).and_then(numeric_value) else {
            continue;
        };
        if !params.comparison.holds(actual, params.value) {
            continue;
        }
        let difference = actual - params.value;
        let impact = if difference == 0.0 {
            1.0
        } else {
            difference.abs()
        };
        let subject = Subject {
            kind: SubjectKind::Record,
            model: params.model.clone().into(),
            ids: vec![record.id],
            label: label(record, params.subject_field(), &params.model),
        };
        let condition = format!(
            "{} {} {}",
            params.field,
            params.comparison.symbol(),
            params.value
        );
        let summary = format!(
            "{}: {} = {actual} ({condition})",
            subject.label, params.field
        );
        let narrative = format!(
            "{} ({} #{}) has {} = {actual}, which meets the rule's condition {condition} (difference {difference:+}).",
            subject.label, params.model, record.id, params.field
        );
        let provenance = vec![NumberSource::odoo(
            "actual",
            format!("{}.{}", params.model, params.field),
        )];
        let numbers = FieldThresholdNumbers {
            field: params.field.clone(),
            actual,
            threshold: params.value,
            difference,
        };
        let severity = match params.severity {
            Some(fixed) => SeverityBasis::Fixed(fixed),
            None => SeverityBasis::Priority { floor: None },
        };
        let finding = Finding {
            subject,
            numbers: ExceptionNumbers::FieldThreshold(numbers),
            impact,
            urgency: 1.0,
            severity,
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
    use crate::exception::Severity;
    use crate::params::Comparison;
    use jiff::civil::date;
    use serde_json::json;

    const RULE: RuleRef<'static> = RuleRef {
        namespace: "ns",
        rule: "quants",
    };

    fn record(id: i64, fields: Value) -> GenericRecord {
        let Value::Object(map) = fields else {
            panic!("object expected")
        };
        GenericRecord {
            id,
            fields: map.into_iter().collect(),
        }
    }

    fn params(comparison: Comparison, value: f64) -> FieldThresholdParams {
        FieldThresholdParams {
            model: "stock.quant".into(),
            domain: "[('location_id.usage', '=', 'internal')]".into(),
            field: "quantity".into(),
            comparison,
            value,
            subject_field: Some("product_id".into()),
            severity: None,
        }
    }

    #[test]
    fn compares_numbers_and_skips_non_numeric() {
        let mut input = PlanningInput::new(date(2025, 3, 1));
        input.records = vec![
            record(1, json!({"quantity": -3.0, "product_id": [5, "[A] Desk"]})),
            record(2, json!({"quantity": 4, "product_id": [6, "[B] Chair"]})),
            record(3, json!({"quantity": null})),
            record(4, json!({"product_id": [7, "[C] Lamp"]})),
            record(5, json!({"quantity": 0})),
        ];
        let found = detect(
            &params(Comparison::Lt, 0.0),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        assert_eq!(found.len(), 1);
        let e = &found[0];
        assert_eq!(e.subject.label, "[A] Desk");
        assert_eq!(e.subject.key(), "stock.quant:1");
        assert_eq!(e.impact, 3.0);
        assert_eq!(e.severity, Severity::Low);
        match &e.numbers {
            ExceptionNumbers::FieldThreshold(n) => {
                assert_eq!(n.actual, -3.0);
                assert_eq!(n.difference, -3.0);
            }
            other => panic!("{other:?}"),
        }

        // Lte 0 also catches the zero record; its label falls back to model #id.
        let found = detect(
            &params(Comparison::Lte, 0.0),
            &RULE,
            &SeverityThresholds::default(),
            &input,
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].subject.label, "stock.quant #5");
        assert_eq!(found[1].impact, 1.0);
    }

    #[test]
    fn booleans_and_fixed_severity() {
        let mut input = PlanningInput::new(date(2025, 3, 1));
        input.records = vec![
            record(1, json!({"quantity": true, "display_name": "x"})),
            record(2, json!({"quantity": false, "display_name": "y"})),
        ];
        let mut p = params(Comparison::Eq, 1.0);
        p.subject_field = None;
        p.severity = Some(Severity::Critical);
        let found = detect(&p, &RULE, &SeverityThresholds::default(), &input);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject.label, "x");
        assert_eq!(found[0].severity, Severity::Critical);
    }
}
