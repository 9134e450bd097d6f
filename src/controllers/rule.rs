//! ExceptionRule reconciler.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{self, DEFAULT_RESYNC, DEPENDENCY_RECHECK, KindContext, Reconciler, settle};
use super::routes;
use super::validate::{FieldError, check_domain, check_schedule};
use super::{Core, Error};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::approval::Approvals;
use super::connection::OdooClients;
use super::cronjob::{self, Applied};
use super::events::RuleLocks;
use super::routes::ChangePolls;
use super::rule_scan::ScanReport;
use super::scheduler::Scheduler;
use crate::api::common::{
    ConditionSet, ConditionStatus, condition_types as ct, find_condition, reasons,
};
use crate::api::params::ParamsError;
use crate::api::rule::ExceptionRuleStatus;
use crate::api::rule::{Execution, RuleMode, ScanOutcome};
use crate::api::{ExceptionRule, OdooConnection};
use crate::automation::{self, AutomationKey, AutomationSpec, SyncError, SyncMode};
use crate::gateway::{Gateway, RoutePath};
use crate::odoo::Secret;
use crate::scan::HistoryCache;
use crate::schedule::Schedule;

/// How soon a rule whose automation could not be synced for a passing reason
/// (Odoo unreachable) is looked at again; drift in a synced world is caught
/// by the regular resync ([`DEFAULT_RESYNC`]) or an on-demand reconcile.
const SYNC_RETRY: Duration = Duration::from_secs(30);

/// What the ExceptionRule reconciler uses, and with it the rule's runs: its
/// scheduled scans ([`scheduler`](super::scheduler)) and its event
/// re-evaluations ([`events`](super::events), [`routes`]).
pub struct RuleContext {
    pub core: Arc<Core>,
    /// Odoo clients, one per connection (the connection controller's).
    pub odoo: Arc<OdooClients>,
    /// Serves the rules' Odoo callback routes.
    pub gateway: Gateway,
    /// Timers and scans of scheduled rules (active on the leader only).
    pub scheduler: Scheduler,
    /// One rule's scans and event re-evaluations act one at a time, so that
    /// two of them never both find a fingerprint missing and both create it.
    pub rule_locks: RuleLocks,
    /// Odoo 16 write_date poll loops standing in for the webhook action.
    pub change_polls: ChangePolls,
    /// Demand history of done moves, one entry per connection, shared by every
    /// scheduled scan; on disk when `PLANOPS_CACHE_DIR` is set (the chart's volume).
    pub history: HistoryCache,
    /// How rules with `execution: CronJob` are materialised.
    pub cronjobs: cronjob::CronJobSettings,
    /// A run's approval gate asks for the governing policies' reconcile.
    pub approvals: Arc<Approvals>,
}

impl KindContext for RuleContext {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Reconciler for ExceptionRule {
    type Context = RuleContext;

    fn validate(&self) -> Vec<FieldError> {
        let spec = &self.spec;
        let mut errors = Vec::new();
        match spec.validate_params() {
            Ok(_) => {}
            Err(ParamsError::Invalid { field, reason }) => {
                errors.push(FieldError::new(format!("spec.{field}"), reason))
            }
            Err(err) => errors.push(FieldError::new("spec.detector", err.to_string())),
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
            if spec.execution == Execution::CronJob
                && let Err(reason) = cronjob::cronjob_schedule(&schedule.cron)
            {
                errors.push(FieldError::new(
                    "spec.triggers.schedule.cron",
                    format!("execution CronJob: {reason}"),
                ));
            }
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
        ctx: Arc<RuleContext>,
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
        let cronjob = obj.spec.execution == Execution::CronJob;
        // A rule that ran as a CronJob and runs in process now leaves no
        // CronJob behind; one that runs as a CronJob is not scheduled here.
        let mut schedule_problem = None;
        if cronjob {
            ctx.scheduler.forget(&namespace, &name);
            schedule_problem = sync_cronjob(&ctx, &obj, conditions, status).await?;
        } else if ran_as_cronjob(&obj) {
            remove_cronjob(&ctx, &obj).await?;
            release_scan_status(&ctx.core.client, Some(&ctx.core.api_limiter), &obj)
                .await
                .map_err(Error::Kube)?;
        }
        let schedule = match &obj.spec.triggers.schedule {
            _ if cronjob => None,
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
                    "execution InProcess: cron {:?} in {}",
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
            // `planops scan` in the CronJob writes lastScan itself; what it
            // wrote stands, and a failure (or writes it left undone) shows on
            // Ready like one in process.
            None if cronjob => obj
                .status
                .as_ref()
                .and_then(|s| s.last_scan.as_ref())
                .filter(|l| {
                    l.outcome == Some(ScanOutcome::Failed) || l.writes_failed + l.writes_unknown > 0
                })
                .map(|l| ScanReport {
                    last_scan: l.clone(),
                    top: status.top_exceptions.clone(),
                    error: (l.outcome == Some(ScanOutcome::Failed))
                        .then(|| l.message.clone().unwrap_or_default()),
                }),
            None => ctx.scheduler.last(&namespace, &name),
        };
        let problem = sync_automation(&ctx, &obj, conditions).await;
        let mut scan_failed = false;
        match last {
            Some(report) => {
                let (ready, reason, message) = report.readiness();
                scan_failed = report.error.is_some();
                status.last_scan = Some(report.last_scan);
                // A failed scan keeps the last good list: the exceptions are still
                // open in Odoo, the scan just could not confirm them.
                if !scan_failed {
                    status.top_exceptions = report.top;
                }
                settle(conditions, ready, reason, message);
            }
            None => settle(
                conditions,
                ConditionStatus::True,
                reasons::RECONCILED,
                "spec valid and dependencies ready",
            ),
        }
        if let Some(problem) = schedule_problem {
            // Nothing can run the rule's scans until someone fixes this.
            problem.report(conditions);
            return Ok(DEFAULT_RESYNC);
        }
        match problem {
            // Events cannot reach the rule: Ready says so, unless a failed scan
            // already does.
            Some(problem) if !scan_failed => {
                problem.report(conditions);
                Ok(problem.retry.unwrap_or(DEFAULT_RESYNC))
            }
            Some(SyncProblem {
                retry: Some(retry), ..
            }) => Ok(retry),
            _ => Ok(DEFAULT_RESYNC),
        }
    }

    /// Removes the rule's automation records from Odoo (the driver skips this
    /// under `deletionPolicy: Orphan`).
    async fn cleanup(obj: Arc<Self>, ctx: Arc<RuleContext>) -> Result<(), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let connection = &obj.spec.connection_ref.name;
        let known = ctx
            .core
            .connections
            .get(&ObjectRef::<OdooConnection>::new(connection).within(&namespace))
            .is_some();
        if !known {
            // Nothing can reach that Odoo any more; blocking the deletion
            // forever would not help either.
            tracing::warn!(rule = %obj.name_any(), %namespace, connection, "OdooConnection is gone; leaving any automation records in Odoo");
            return Ok(());
        }
        let client = ctx.odoo.get(&namespace, connection).ok_or_else(|| {
            Error::Automation(SyncError::NotConnected {
                connection: format!("{namespace}/{connection}"),
            })
        })?;
        if client.info().version.major < automation::MIN_WEBHOOK_VERSION {
            return Ok(());
        }
        let removed = automation::remove(
            &client,
            &AutomationKey::for_rule(&namespace, &obj.name_any()),
        )
        .await
        .map_err(Error::Automation)?;
        if !removed.is_empty() {
            tracing::info!(rule = %obj.name_any(), %namespace, ?removed, "removed the Odoo automation");
        }
        Ok(())
    }

    fn inactive(
        obj: &Self,
        ctx: &RuleContext,
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
        // A paused or suspended rule acts on no event.
        routes::remove_rule_route(ctx, &obj.namespace().unwrap_or_default(), &obj.name_any());
        // Records may still exist in Odoo: keep a `Synced` condition, so a
        // `triggers.events` removed meanwhile is still cleaned up afterwards.
        // Unknown, not the old verdict: nothing was compared.
        let had_synced = obj
            .status
            .as_ref()
            .and_then(|s| find_condition(&s.core.conditions, ct::SYNCED))
            .is_some();
        if had_synced {
            conditions.set(
                ct::SYNCED,
                ConditionStatus::Unknown,
                reason,
                format!("the Odoo automation is not compared while {message}"),
            );
        }
    }

    /// With `execution: CronJob`, `planops scan` owns `lastScan` and
    /// `topExceptions` (field manager `planops-scan`): the operator neither
    /// writes nor co-owns them, so a field the scan drops (a failed scan's
    /// `message`) really goes.
    fn applied_status(&self, status: &ExceptionRuleStatus) -> serde_json::Value {
        let mut value = serde_json::to_value(status).unwrap_or_default();
        if self.spec.execution == Execution::CronJob
            && let Some(fields) = value.as_object_mut()
        {
            fields.remove("lastScan");
            fields.remove("topExceptions");
        }
        value
    }

    fn watch_owned(
        controller: kube::runtime::Controller<Self>,
        client: &kube::Client,
        scope: &Option<String>,
    ) -> kube::runtime::Controller<Self> {
        let api: kube::Api<k8s_openapi::api::batch::v1::CronJob> = match scope {
            Some(ns) => kube::Api::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        };
        controller.owns(
            api,
            kube::runtime::watcher::Config::default().labels(cronjob::SELECTOR),
        )
    }

    fn forget(obj: &Self, ctx: &RuleContext) {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        ctx.scheduler.forget(&namespace, &name);
        ctx.core.metrics.forget_rule(&namespace, &name);
        routes::remove_rule_route(ctx, &namespace, &name);
        ctx.rule_locks.forget(&namespace, &name);
    }
}

/// Stops the rule's schedule and reports `Scheduled=False` with `reason`. A
/// rule's CronJob is suspended instead (in the background: this runs from the
/// driver's synchronous `inactive` too), and one left from `execution:
/// CronJob` is deleted, its scan's status fields released.
fn inactive_schedule(
    ctx: &RuleContext,
    obj: &ExceptionRule,
    conditions: &mut ConditionSet,
    status: &mut ExceptionRuleStatus,
    reason: &str,
    message: &str,
) {
    let namespace = obj.namespace().unwrap_or_default();
    ctx.scheduler.stop(&namespace, &obj.name_any());
    status.next_scan_time = None;
    let cronjob = obj.spec.execution == Execution::CronJob;
    if cronjob || ran_as_cronjob(obj) {
        let client = ctx.core.client.clone();
        let rule = obj.clone();
        tokio::spawn(async move {
            let result = if cronjob {
                cronjob::suspend_owned(&client, &rule).await
            } else {
                match cronjob::delete_owned(&client, None, &rule).await {
                    Ok(_) => release_scan_status(&client, None, &rule).await,
                    Err(err) => Err(err),
                }
            };
            if let Err(err) = result {
                tracing::warn!(rule = %rule.name_any(), namespace = ?rule.namespace(), error = %err, "could not suspend or remove the rule's CronJob; retried at the next reconcile");
            }
        });
    }
    let message = if cronjob {
        format!("{CRONJOB_MARK}: {message}")
    } else {
        message.to_string()
    };
    conditions.set(ct::SCHEDULED, ConditionStatus::False, reason, message);
}

/// How the `Scheduled` message of a rule with `execution: CronJob` starts: the
/// reconciler's memory, across restarts, that the rule may own a CronJob.
const CRONJOB_MARK: &str = "execution CronJob";

fn ran_as_cronjob(obj: &ExceptionRule) -> bool {
    obj.status
        .as_ref()
        .and_then(|s| find_condition(&s.core.conditions, ct::SCHEDULED))
        .is_some_and(|c| c.message.starts_with(CRONJOB_MARK))
}

/// Makes the rule's CronJob match its schedule and sets `Scheduled`. Returns
/// what keeps it from running at all (no image to run).
async fn sync_cronjob(
    ctx: &Arc<RuleContext>,
    obj: &Arc<ExceptionRule>,
    conditions: &mut ConditionSet,
    status: &mut ExceptionRuleStatus,
) -> Result<Option<SyncProblem>, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    // The CronJob's controller, not PlanOps, decides when it runs next.
    status.next_scan_time = None;
    let Some(schedule) = &obj.spec.triggers.schedule else {
        remove_cronjob(ctx, obj).await?;
        conditions.set(
            ct::SCHEDULED,
            ConditionStatus::False,
            reasons::NOT_SCHEDULED,
            format!("{CRONJOB_MARK}: spec.triggers.schedule is not set"),
        );
        return Ok(None);
    };
    let Some(image) = ctx.cronjobs.image.as_deref() else {
        let message = format!(
            "{CRONJOB_MARK}: the operator does not know its image (--scan-image / PLANOPS_IMAGE, which the chart sets), so it cannot create the CronJob"
        );
        conditions.set(
            ct::SCHEDULED,
            ConditionStatus::False,
            reasons::NO_SCAN_IMAGE,
            message.clone(),
        );
        return Ok(Some(SyncProblem {
            reason: reasons::NO_SCAN_IMAGE,
            message,
            retry: None,
        }));
    };
    let desired = match cronjob::desired(obj, schedule, image, &ctx.cronjobs) {
        Ok(desired) => desired,
        // validate() refuses such a cron first; reported rather than unwrapped.
        Err(reason) => {
            let message = format!("{CRONJOB_MARK}: spec.triggers.schedule.cron: {reason}");
            conditions.set(
                ct::SCHEDULED,
                ConditionStatus::False,
                reasons::INVALID_SPEC,
                message.clone(),
            );
            return Ok(Some(SyncProblem {
                reason: reasons::INVALID_SPEC,
                message,
                retry: None,
            }));
        }
    };
    let job = cronjob::cronjob_name(&name);
    let applied = cronjob::ensure(
        &ctx.core.client,
        &ctx.core.api_limiter,
        &namespace,
        &desired,
    )
    .await
    .map_err(Error::Kube)?;
    let was_scheduled = obj
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.core.conditions, ct::SCHEDULED))
        .is_some_and(|c| {
            c.status == ConditionStatus::True && c.observed_generation == obj.meta().generation
        });
    match applied {
        Applied::Unchanged => {}
        // At the same generation a difference is someone else's change.
        Applied::Created | Applied::Updated if was_scheduled => {
            driver::publish(
                &ctx.core,
                obj.as_ref(),
                EventType::Warning,
                reasons::REPAIRED,
                "SyncCronJob",
                format!("CronJob {job} was deleted or changed outside the rule; restored it"),
            )
            .await;
        }
        Applied::Created | Applied::Updated => {
            driver::publish(
                &ctx.core,
                obj.as_ref(),
                EventType::Normal,
                "CronJobSynced",
                "SyncCronJob",
                format!("CronJob {job} runs `planops scan {namespace}/{name}`"),
            )
            .await;
        }
    }
    let zone = schedule.time_zone.as_deref().unwrap_or("Etc/UTC");
    let cron = desired["spec"]["schedule"].as_str().unwrap_or_default();
    if schedule.suspend.unwrap_or(false) {
        conditions.set(
            ct::SCHEDULED,
            ConditionStatus::False,
            reasons::SUSPENDED,
            format!("{CRONJOB_MARK}: CronJob {job} is suspended (spec.triggers.schedule.suspend)"),
        );
    } else {
        conditions.set(
            ct::SCHEDULED,
            ConditionStatus::True,
            reasons::SCHEDULED,
            format!(
                "{CRONJOB_MARK}: CronJob {job} runs `planops scan {namespace}/{name}` on cron {cron:?} in {zone}"
            ),
        );
    }
    Ok(None)
}

/// Back in process, the operator owns `lastScan` again: `planops scan` lets
/// go of what it wrote (an apply of nothing as its field manager), so no
/// field of a CronJob's scan lingers beside the operator's. The status write
/// of this reconcile then meets a newer object and retries on it.
async fn release_scan_status(
    client: &kube::Client,
    limiter: Option<&governor::DefaultDirectRateLimiter>,
    obj: &ExceptionRule,
) -> Result<(), kube::Error> {
    let api: kube::Api<ExceptionRule> =
        kube::Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": ExceptionRule::api_version(&()),
        "kind": ExceptionRule::kind(&()),
        "status": {},
    });
    if let Some(limiter) = limiter {
        limiter.until_ready().await;
    }
    api.patch_status(
        &obj.name_any(),
        &kube::api::PatchParams::apply(crate::api::common::SCAN_FIELD_MANAGER),
        &kube::api::Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Deletes the CronJob a rule no longer runs as (and says so).
async fn remove_cronjob(ctx: &RuleContext, obj: &ExceptionRule) -> Result<(), Error> {
    let deleted = cronjob::delete_owned(&ctx.core.client, Some(&ctx.core.api_limiter), obj)
        .await
        .map_err(Error::Kube)?;
    if deleted {
        driver::publish(
            &ctx.core,
            obj,
            EventType::Normal,
            "CronJobRemoved",
            "SyncCronJob",
            format!(
                "deleted CronJob {}: the rule no longer runs as a CronJob",
                cronjob::cronjob_name(&obj.name_any())
            ),
        )
        .await;
    }
    Ok(())
}

/// Why the rule's events cannot work; reported on `Ready` as well as `Synced`.
struct SyncProblem {
    reason: &'static str,
    message: String,
    /// When to look again, for a problem that passes by itself; `None`:
    /// someone has to fix something.
    retry: Option<Duration>,
}

impl SyncProblem {
    fn report(&self, conditions: &mut ConditionSet) {
        let (reconciling, stalled) = if self.retry.is_some() {
            (ConditionStatus::True, ConditionStatus::False)
        } else {
            (ConditionStatus::False, ConditionStatus::True)
        };
        conditions
            .set(
                ct::READY,
                ConditionStatus::False,
                self.reason,
                self.message.clone(),
            )
            .set(
                ct::RECONCILING,
                reconciling,
                self.reason,
                self.message.clone(),
            )
            .set(ct::STALLED, stalled, self.reason, self.message.clone());
    }
}

/// Makes Odoo's automation records match `spec.triggers.events` and sets
/// `Synced`. Without `triggers.events` it removes records left from an
/// earlier spec and sets no `Synced` condition.
async fn sync_automation(
    ctx: &Arc<RuleContext>,
    obj: &Arc<ExceptionRule>,
    conditions: &mut ConditionSet,
) -> Option<SyncProblem> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let connection_name = &obj.spec.connection_ref.name;
    let connection_label = format!("{namespace}/{connection_name}");
    let client = ctx.odoo.get(&namespace, connection_name);
    let key = AutomationKey::for_rule(&namespace, &name);

    let Some(events) = &obj.spec.triggers.events else {
        routes::remove_rule_route(ctx, &namespace, &name);
        remove_automation(ctx, obj, client, &key, conditions).await;
        return None;
    };

    let Some(client) = client else {
        let problem = fail(
            conditions,
            reasons::ODOO_UNREACHABLE,
            format!("OdooConnection {connection_label} has no connected client yet"),
            true,
        );
        // The client appears with the connection's first probe after a start
        // or failover; the rule's route and automation should follow within
        // seconds, not at the next retry of an unreachable Odoo.
        return problem.map(|p| SyncProblem {
            retry: Some(DEPENDENCY_RECHECK),
            ..p
        });
    };
    let major = client.info().version.major;
    if major < automation::MIN_WEBHOOK_VERSION {
        let every = events
            .poll_interval_seconds
            .unwrap_or(automation::DEFAULT_POLL_INTERVAL_SECONDS);
        ctx.gateway
            .remove_route(&RoutePath::odoo(&namespace, &name));
        ctx.change_polls
            .ensure(ctx, obj, Duration::from_secs(u64::from(every.max(1))));
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reasons::POLLING_FALLBACK,
            format!(
                "Odoo {major} has no webhook action: PlanOps polls {} on write_date every {every}s instead",
                events.model
            ),
        );
        return None;
    }
    let callback = ctx
        .core
        .connections
        .get(&ObjectRef::<OdooConnection>::new(connection_name).within(&namespace))
        .and_then(|c| c.spec.callback_base_url.clone());
    let Some(callback) = callback else {
        ctx.gateway
            .remove_route(&RoutePath::odoo(&namespace, &name));
        return fail(
            conditions,
            reasons::NO_CALLBACK_URL,
            format!(
                "OdooConnection {connection_label} has no spec.callbackBaseUrl, so Odoo cannot call PlanOps; set it to the gateway's URL as Odoo sees it"
            ),
            false,
        );
    };
    let token = match super::hook_token::hook_token(&ctx.core.client, obj).await {
        Ok(token) => token,
        Err(err) => {
            return fail(
                conditions,
                reasons::SYNC_FAILED,
                format!(
                    "cannot read or create Secret {namespace}/{}: {err}",
                    automation::hook_secret_name(&name)
                ),
                true,
            );
        }
    };
    ctx.change_polls.stop(&namespace, &name);
    if let Err(err) = routes::upsert_rule_route(ctx, obj, token.clone()) {
        return fail(
            conditions,
            reasons::SYNC_FAILED,
            format!("cannot serve the gateway route: {err}"),
            false,
        );
    }
    let url = Secret::new(automation::hook_url(
        &callback,
        &namespace,
        &name,
        token.expose(),
    ));
    let spec = match AutomationSpec::for_rule(&namespace, &name, events, url) {
        Ok(spec) => spec,
        Err(err) => return fail(conditions, reasons::INVALID_SPEC, err.to_string(), false),
    };
    let mode = match obj.spec.mode {
        RuleMode::Enforce => SyncMode::Apply,
        RuleMode::DryRun => SyncMode::DryRun,
    };
    let outcome = match automation::sync(&client, &spec, mode).await {
        Ok(outcome) => outcome,
        Err(err) => {
            let transient = err.is_transient();
            let reason = if transient {
                reasons::ODOO_UNREACHABLE
            } else {
                reasons::SYNC_FAILED
            };
            return fail(
                conditions,
                reason,
                format!("Odoo automation for {}: {err}", events.model),
                transient,
            );
        }
    };
    let records = format!(
        "base.automation #{} and webhook action #{} on {}",
        outcome
            .automation_id
            .map_or("-".into(), |id| id.to_string()),
        outcome.action_id.map_or("-".into(), |id| id.to_string()),
        events.model
    );
    if outcome.in_sync() {
        conditions.set(
            ct::SYNCED,
            ConditionStatus::True,
            reasons::IN_SYNC,
            format!("{records} match the spec"),
        );
        return None;
    }
    let changes = outcome.describe();
    if !outcome.applied {
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reasons::DRY_RUN,
            format!("mode DryRun writes nothing to Odoo; would have: {changes}"),
        );
        return None;
    }
    // Once in sync at this generation, a difference is drift made in Odoo
    // (or a new callback URL or token), not a spec change.
    let was_synced = obj
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.core.conditions, ct::SYNCED))
        .is_some_and(|c| {
            c.status == ConditionStatus::True && c.observed_generation == obj.meta().generation
        });
    if was_synced {
        conditions.set(
            ct::SYNCED,
            ConditionStatus::True,
            reasons::REPAIRED,
            format!("{records} drifted in Odoo and were repaired: {changes}"),
        );
        driver::publish(
            &ctx.core,
            obj.as_ref(),
            EventType::Warning,
            reasons::REPAIRED,
            "SyncAutomation",
            format!("Odoo automation drifted from the spec; {changes}"),
        )
        .await;
    } else {
        conditions.set(
            ct::SYNCED,
            ConditionStatus::True,
            reasons::IN_SYNC,
            format!("{records} match the spec"),
        );
        driver::publish(
            &ctx.core,
            obj.as_ref(),
            EventType::Normal,
            "AutomationSynced",
            "SyncAutomation",
            format!("Odoo automation on {}: {changes}", events.model),
        )
        .await;
    }
    None
}

/// Removes the records of a `triggers.events` the spec no longer has. Only
/// rules that still report `Synced` can own records, so others cost no Odoo
/// call; `Synced` stays (False) until the removal succeeded.
async fn remove_automation(
    ctx: &RuleContext,
    obj: &ExceptionRule,
    client: Option<crate::odoo::OdooClient>,
    key: &AutomationKey,
    conditions: &mut ConditionSet,
) {
    let had_synced = obj
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.core.conditions, ct::SYNCED))
        .is_some();
    if !had_synced {
        return;
    }
    let Some(client) = client else {
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reasons::ODOO_UNREACHABLE,
            "spec.triggers.events was removed; its Odoo automation is removed once the connection is back",
        );
        return;
    };
    if client.info().version.major < automation::MIN_WEBHOOK_VERSION {
        return;
    }
    if obj.spec.mode == RuleMode::DryRun {
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reasons::DRY_RUN,
            "spec.triggers.events was removed; mode DryRun leaves its Odoo automation in place",
        );
        return;
    }
    match automation::remove(&client, key).await {
        Ok(removed) => {
            if !removed.is_empty() {
                let what: Vec<String> = removed.iter().map(ToString::to_string).collect();
                driver::publish(
                    &ctx.core,
                    obj,
                    EventType::Normal,
                    "AutomationRemoved",
                    "SyncAutomation",
                    format!(
                        "spec.triggers.events was removed: deleted the {} from Odoo",
                        what.join(" and ")
                    ),
                )
                .await;
            }
        }
        Err(err) => {
            let reason = if err.is_transient() {
                reasons::ODOO_UNREACHABLE
            } else {
                reasons::SYNC_FAILED
            };
            conditions.set(
                ct::SYNCED,
                ConditionStatus::False,
                reason,
                format!(
                    "spec.triggers.events was removed but its Odoo automation could not be: {err}"
                ),
            );
        }
    }
}

fn fail(
    conditions: &mut ConditionSet,
    reason: &'static str,
    message: String,
    transient: bool,
) -> Option<SyncProblem> {
    conditions.set(ct::SYNCED, ConditionStatus::False, reason, message.clone());
    Some(SyncProblem {
        reason,
        message,
        retry: transient.then_some(SYNC_RETRY),
    })
}

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
