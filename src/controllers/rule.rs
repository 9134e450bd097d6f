//! ExceptionRule reconciler.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{DEFAULT_RESYNC, Reconciler, settle};
use super::validate::{FieldError, check_domain, check_schedule};
use super::{Context, Error};
use crate::api::ExceptionRule;
use crate::api::common::{ConditionSet, ConditionStatus, condition_types as ct, reasons};
use crate::api::rule::ExceptionRuleStatus;

impl Reconciler for ExceptionRule {
    fn validate(&self) -> Vec<FieldError> {
        let spec = &self.spec;
        let mut errors = Vec::new();
        if let Err(err) = spec.detector.kind() {
            errors.push(FieldError::new("spec.detector", err.to_string()));
        }
        if let Some(threshold) = &spec.detector.field_threshold {
            check_domain(
                &mut errors,
                "spec.detector.fieldThreshold.domain",
                Some(&threshold.domain),
            );
        }
        if let Some(scope) = &spec.scope {
            check_domain(
                &mut errors,
                "spec.scope.productDomain",
                scope.product_domain.as_deref(),
            );
        }
        if let Some(schedule) = &spec.triggers.schedule {
            check_schedule(&mut errors, schedule);
        }
        if let Some(events) = &spec.triggers.events {
            check_domain(
                &mut errors,
                "spec.triggers.events.filterDomain",
                events.filter_domain.as_deref(),
            );
            for (i, field) in events.watched_fields.iter().enumerate() {
                if !is_field_name(field) {
                    errors.push(FieldError::new(
                        format!("spec.triggers.events.watchedFields[{i}]"),
                        format!("{field:?} is not an Odoo field name"),
                    ));
                }
            }
        }
        errors
    }

    async fn evaluate(
        _obj: Arc<Self>,
        _ctx: Arc<Context>,
        conditions: &mut ConditionSet,
        _status: &mut ExceptionRuleStatus,
    ) -> Result<Duration, Error> {
        settle(
            conditions,
            ConditionStatus::True,
            reasons::RECONCILED,
            "spec valid and dependencies ready",
        );
        conditions.set(
            ct::SCHEDULED,
            ConditionStatus::False,
            reasons::NOT_ACTIVE,
            "scheduled scans are not active in this build",
        );
        Ok(DEFAULT_RESYNC)
    }
}

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
