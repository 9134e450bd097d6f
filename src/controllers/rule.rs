//! ExceptionRule reconciler.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{DEFAULT_RESYNC, Reconciler, settle};
use super::validate::{FieldError, check_domain, check_schedule};
use super::{Context, Error};
use kube::ResourceExt;

use crate::api::ExceptionRule;
use crate::api::common::{ConditionSet, ConditionStatus, condition_types as ct, reasons};
use crate::api::rule::ExceptionRuleStatus;
use crate::api::rule::Execution;
use crate::schedule::Schedule;

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
        obj: Arc<Self>,
        ctx: Arc<Context>,
        conditions: &mut ConditionSet,
        status: &mut ExceptionRuleStatus,
    ) -> Result<Duration, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        status.detector = obj
            .spec
            .detector
            .kind()
            .ok()
            .map(|k| k.as_str().to_string());
        let schedule = match &obj.spec.triggers.schedule {
            None => {
                inactive_schedule(
                    &ctx,
                    &obj,
                    conditions,
                    status,
                    reasons::NOT_SCHEDULED,
                    "spec.triggers.schedule is not set",
                );
                None
            }
            Some(spec) if spec.suspend.unwrap_or(false) => {
                inactive_schedule(
                    &ctx,
                    &obj,
                    conditions,
                    status,
                    reasons::SUSPENDED,
                    "spec.triggers.schedule.suspend is true",
                );
                None
            }
            Some(_) if obj.spec.execution == Execution::CronJob => {
                inactive_schedule(
                    &ctx,
                    &obj,
                    conditions,
                    status,
                    reasons::NOT_ACTIVE,
                    "spec.execution CronJob is not implemented yet; use InProcess",
                );
                None
            }
            // validate() already checked it: a parse error here cannot happen,
            // but is reported rather than unwrapped.
            Some(spec) => match Schedule::parse(spec) {
                Ok(schedule) => Some(schedule),
                Err(err) => {
                    inactive_schedule(
                        &ctx,
                        &obj,
                        conditions,
                        status,
                        reasons::INVALID_SPEC,
                        &err.to_string(),
                    );
                    None
                }
            },
        };
        let last = match schedule {
            Some(schedule) => {
                let message = format!(
                    "cron {:?} in {}",
                    schedule.expression(),
                    schedule.time_zone().iana_name().unwrap_or("UTC")
                );
                let view = ctx.scheduler.ensure(&ctx, &obj, schedule);
                status.next_scan_time = view.next_fire.map(|t| t.to_string());
                conditions.set(
                    ct::SCHEDULED,
                    ConditionStatus::True,
                    reasons::SCHEDULED,
                    message,
                );
                view.last
            }
            None => ctx.scheduler.last(&namespace, &name),
        };
        match last {
            Some(report) => {
                status.last_scan = Some(report.last_scan);
                // A failed scan keeps the last good list: the exceptions are still
                // open in Odoo, the scan just could not confirm them.
                if report.error.is_none() {
                    status.top_exceptions = report.top;
                }
                match report.error {
                    Some(error) => settle(
                        conditions,
                        ConditionStatus::False,
                        reasons::SCAN_FAILED,
                        format!("the last scan failed: {error}"),
                    ),
                    None => settle(
                        conditions,
                        ConditionStatus::True,
                        reasons::RECONCILED,
                        "spec valid, dependencies ready, last scan succeeded",
                    ),
                }
            }
            None => settle(
                conditions,
                ConditionStatus::True,
                reasons::RECONCILED,
                "spec valid and dependencies ready",
            ),
        }
        Ok(DEFAULT_RESYNC)
    }

    fn inactive(
        obj: &Self,
        ctx: &Context,
        conditions: &mut ConditionSet,
        status: &mut ExceptionRuleStatus,
        reason: &str,
    ) {
        let message = match reason {
            reasons::PAUSED => "reconciliation is paused",
            reasons::SUSPENDED => "spec.suspend is true",
            reasons::CONNECTION_NOT_FOUND | reasons::CONNECTION_NOT_READY => {
                "the connection is not ready"
            }
            reasons::INVALID_SPEC => "the spec is invalid",
            _ => "a dependency is not ready",
        };
        inactive_schedule(ctx, obj, conditions, status, reason, message);
    }

    fn forget(obj: &Self, ctx: &Context) {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        ctx.scheduler.forget(&namespace, &name);
        ctx.metrics.forget_rule(&namespace, &name);
    }
}

/// Stops the rule's schedule and reports `Scheduled=False` with `reason`.
fn inactive_schedule(
    ctx: &Context,
    obj: &ExceptionRule,
    conditions: &mut ConditionSet,
    status: &mut ExceptionRuleStatus,
    reason: &str,
    message: &str,
) {
    ctx.scheduler
        .stop(&obj.namespace().unwrap_or_default(), &obj.name_any());
    status.next_scan_time = None;
    conditions.set(ct::SCHEDULED, ConditionStatus::False, reason, message);
}

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
