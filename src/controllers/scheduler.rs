//! The in-process scheduler of `ExceptionRule` scans.
//!
//! The ExceptionRule reconciler calls [`Scheduler::ensure`] for every active rule
//! with a schedule; it starts one timer task per rule, which sleeps until the next
//! cron time (plus the rule's deterministic jitter), then starts a scan task that
//! scans, acts and records the result here. When a scan ends the scheduler asks the
//! controller to reconcile the rule, and the reconciler copies the result into the
//! status, so the status has a single writer and one write per scan. Controllers
//! (and so the scheduler) run on the leader only; losing the lease stops every task.
//!
//! Per-rule scan memory (supplier-delay dates) survives restarts in an owned
//! ConfigMap `planops-memory-<rule>`: it is operator state, not something users
//! read, and keeping it out of the status keeps `kubectl get -o yaml` short.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Core;
use super::driver::{self, ReconcileRequests};
use super::kinds::PlanopsKind;
use super::metrics::{ConnectionLabels, RuleLabels};
use super::rule::RuleContext;
use super::rule_scan::{self, Failure};
pub use super::rule_scan::{ScanReport, memory_configmap_name};
use super::tasks::{ObjectTasks, Stoppable};
use crate::actions::StaticSecrets;
use crate::api::ExceptionRule;
use crate::api::common::reasons;
use crate::scan::ScanMemory;
use crate::schedule::{MissedRun, Schedule, StartDecision};

/// What the reconciler reads back about a rule's schedule.
#[derive(Debug, Clone, Default)]
pub struct ScheduleView {
    /// When the next scan starts.
    pub next_fire: Option<Timestamp>,
    /// The last finished scan of this process, if any.
    pub last: Option<ScanReport>,
}

#[derive(Default)]
struct RuleState {
    /// The `metadata.generation` the running timer was started for.
    generation: Option<i64>,
    /// Stops the timer task (not the scans it started).
    timer: Option<CancellationToken>,
    /// Scans in flight, by id, so Replace can cancel them and Forbid can see them.
    running: BTreeMap<u64, CancellationToken>,
    next_fire: Option<Timestamp>,
    /// The scheduled time of the last run started or skipped.
    last_scheduled: Option<Timestamp>,
    last: Option<ScanReport>,
    /// Loaded from the ConfigMap before the first scan of this process.
    memory: Option<ScanMemory>,
}

impl Stoppable for RuleState {
    /// Cancels the timer and the scans in flight; the last result and the
    /// memory stay, for when the rule runs again.
    fn stop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.cancel();
        }
        for (_, scan) in std::mem::take(&mut self.running) {
            scan.cancel();
        }
        self.next_fire = None;
        self.generation = None;
    }
}

/// Timer and scan tasks of every scheduled rule.
#[derive(Default)]
pub struct Scheduler {
    rules: ObjectTasks<RuleState>,
    next_scan_id: AtomicU64,
    /// A finished scan asks for a reconcile of its rule, which records the result.
    requests: ReconcileRequests<ExceptionRule>,
}

impl Scheduler {
    /// Called when the controllers start: returns the stream of rules whose scan
    /// finished, for the ExceptionRule controller to reconcile.
    pub fn start(
        &self,
        scope: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<ExceptionRule>> {
        self.requests.start(scope)
    }

    /// Called when the controllers stop (shutdown, lost lease): cancels every timer
    /// and scan. Results and memory stay, for when this replica leads again.
    pub fn stop_all(&self) {
        self.requests.stop_all();
        self.rules.stop_all();
    }

    /// Stops the schedule of a rule that is no longer active (suspended, paused,
    /// no schedule, connection not ready); its last result is kept.
    pub fn stop(&self, namespace: &str, name: &str) {
        self.rules.stop(namespace, name);
    }

    /// Forgets a deleted rule.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.rules.forget(namespace, name);
    }

    /// Makes sure `rule` runs on `schedule`: starts its timer, or restarts it when
    /// the spec changed. Returns what the status should show.
    pub fn ensure(
        &self,
        ctx: &Arc<RuleContext>,
        rule: &Arc<ExceptionRule>,
        schedule: Schedule,
    ) -> ScheduleView {
        let namespace = rule.namespace().unwrap_or_default();
        let name = rule.name_any();
        let generation = rule.meta().generation;
        self.rules.with_entry(&namespace, &name, |state| {
        let running = state.timer.as_ref().is_some_and(|t| !t.is_cancelled());
        if !running || state.generation != generation {
            if let Some(timer) = state.timer.take() {
                timer.cancel();
            }
            let now = Timestamp::now();
            let jitter_key = format!("{namespace}/{name}");
            // After a restart the last run is in the status: the scheduled time it
            // was for, else its start; a rule that never ran counts from creation.
            let last = state
                .last_scheduled
                .or_else(|| last_scheduled_in_status(rule))
                .or_else(|| rule.creation_timestamp().map(|t| t.0))
                .unwrap_or(now);
            let catch_up = match schedule.missed_run(last, now) {
                MissedRun::NothingMissed => None,
                MissedRun::RunNow { scheduled, missed } => {
                    tracing::info!(namespace, rule = name, %scheduled, missed, "running a missed scan now");
                    Some(scheduled)
                }
                MissedRun::Skip { scheduled, missed } => {
                    tracing::info!(namespace, rule = name, %scheduled, missed, "missed scan is past its starting deadline; skipped");
                    state.last_scheduled = Some(scheduled);
                    ctx.core.metrics.scan_outcome("skipped");
                    let ctx = ctx.clone();
                    let rule = rule.clone();
                    let note = format!(
                        "{missed} scheduled scan(s) missed, the latest at {scheduled}; past startingDeadlineSeconds, skipped"
                    );
                    tokio::spawn(async move {
                        driver::publish(
                            &ctx.core,
                            rule.as_ref(),
                            EventType::Normal,
                            reasons::SCAN_SKIPPED,
                            "Scan",
                            note,
                        )
                        .await;
                    });
                    None
                }
            };
            let first = schedule.next_run(now, &jitter_key);
            state.next_fire = first.map(|n| n.fire_at);
            state.generation = generation;
            let token = ctx.core.work_for(rule.as_ref());
            state.timer = Some(token.clone());
            tokio::spawn(timer_loop(
                ctx.clone(),
                rule.clone(),
                schedule,
                jitter_key,
                catch_up,
                token,
            ));
        }
        ScheduleView {
            next_fire: state.next_fire,
            last: state.last.clone(),
        }
        })
    }

    /// The last result of a rule, whatever its schedule's state.
    pub fn last(&self, namespace: &str, name: &str) -> Option<ScanReport> {
        self.rules
            .with(namespace, name, |state| state.and_then(|s| s.last.clone()))
    }

    fn notify(&self, rule: &ExceptionRule) {
        self.requests.request(&ObjectRef::from_obj(rule));
    }
}

fn last_scheduled_in_status(rule: &ExceptionRule) -> Option<Timestamp> {
    let last = rule.status.as_ref()?.last_scan.as_ref()?;
    last.scheduled_time
        .as_deref()
        .unwrap_or(&last.start_time)
        .parse()
        .ok()
}

/// Sleeps until each scheduled time and starts its scan; runs until cancelled.
async fn timer_loop(
    ctx: Arc<RuleContext>,
    rule: Arc<ExceptionRule>,
    schedule: Schedule,
    jitter_key: String,
    catch_up: Option<Timestamp>,
    token: CancellationToken,
) {
    if let Some(scheduled) = catch_up {
        fire(&ctx, &rule, &schedule, scheduled).await;
    }
    let mut after = Timestamp::now();
    loop {
        let Some(next) = schedule.next_run(after, &jitter_key) else {
            return;
        };
        let wait: Duration = next
            .fire_at
            .duration_since(Timestamp::now())
            .try_into()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = token.cancelled() => return,
        }
        if token.is_cancelled() {
            return;
        }
        fire(&ctx, &rule, &schedule, next.scheduled).await;
        // The next run counts from this scheduled time, not from now, so a late
        // wake-up does not drop the run after it.
        after = next.scheduled;
    }
}

/// One due run: applies the concurrency policy and starts the scan.
async fn fire(
    ctx: &Arc<RuleContext>,
    rule: &Arc<ExceptionRule>,
    schedule: &Schedule,
    scheduled: Timestamp,
) {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let jitter_key = format!("{namespace}/{name}");
    let id = ctx.scheduler.next_scan_id.fetch_add(1, Ordering::Relaxed);
    let started = ctx.scheduler.rules.with(&namespace, &name, |state| {
        let state = state?;
        state.last_scheduled = Some(scheduled);
        // Status shows the run after this one from now on; it is written together
        // with this run's result, so an idle rule costs one write per scan.
        state.next_fire = schedule.next_run(scheduled, &jitter_key).map(|n| n.fire_at);
        let decision = schedule
            .concurrency_policy()
            .decide(!state.running.is_empty());
        let token = ctx.core.work_for(rule.as_ref());
        match decision {
            StartDecision::Skip => {}
            StartDecision::ReplaceRunning => {
                for (_, scan) in std::mem::take(&mut state.running) {
                    scan.cancel();
                }
                state.running.insert(id, token.clone());
            }
            StartDecision::Start => {
                state.running.insert(id, token.clone());
            }
        }
        Some((decision, token))
    });
    let Some((decision, token)) = started else {
        return;
    };
    match decision {
        StartDecision::Skip => {
            tracing::info!(namespace, rule = name, %scheduled, "previous scan still running; skipped (concurrencyPolicy Forbid)");
            ctx.core.metrics.scan_outcome("skipped");
            driver::publish(&ctx.core, rule.as_ref(), EventType::Normal, reasons::SCAN_SKIPPED, "Scan", format!("scan scheduled for {scheduled} skipped: the previous scan still runs (concurrencyPolicy Forbid)"))
            .await;
        }
        StartDecision::ReplaceRunning | StartDecision::Start => {
            if decision == StartDecision::ReplaceRunning {
                tracing::info!(namespace, rule = name, %scheduled, "cancelled the running scan (concurrencyPolicy Replace)");
                driver::publish(&ctx.core, rule.as_ref(), EventType::Normal, reasons::SCAN_REPLACED, "Scan", format!("the running scan was cancelled for the one scheduled at {scheduled} (concurrencyPolicy Replace)"))
                .await;
            }
            tokio::spawn(scan_task(
                ctx.clone(),
                rule.clone(),
                schedule.time_zone().clone(),
                scheduled,
                id,
                token,
            ));
        }
    }
}

/// One scan with its actions; records the result and asks for a reconcile.
async fn scan_task(
    ctx: Arc<RuleContext>,
    rule: Arc<ExceptionRule>,
    time_zone: jiff::tz::TimeZone,
    scheduled: Timestamp,
    id: u64,
    token: CancellationToken,
) {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let connection = rule.spec.connection_ref.name.clone();
    let started = Timestamp::now();
    let clock = std::time::Instant::now();
    let result = tokio::select! {
        r = run(&ctx, &rule, &time_zone) => Some(r),
        _ = token.cancelled() => None,
    };
    let duration = clock.elapsed();
    let metrics = &ctx.core.metrics;
    let Some(result) = result else {
        // Replaced (or the controllers stopped). Actions are idempotent per
        // fingerprint, so stopping mid-write leaves nothing to repair.
        metrics.scan_outcome("replaced");
        return;
    };
    metrics
        .scan_duration
        .get_or_create(&RuleLabels {
            namespace: namespace.clone(),
            rule: name.clone(),
        })
        .observe(duration.as_secs_f64());
    let conn_labels = ConnectionLabels {
        namespace: namespace.clone(),
        connection,
    };
    let report = match result {
        Ok((report, calls)) => {
            metrics.odoo_calls.get_or_create(&conn_labels).inc_by(calls);
            if report.unsettled_writes() > 0 {
                // Alertable apart from clean scans: writes keep failing while
                // the scans themselves succeed.
                metrics.scan_outcome("partial");
                tracing::warn!(
                    namespace,
                    rule = name,
                    writes_failed = report.last_scan.writes_failed,
                    writes_unknown = report.last_scan.writes_unknown,
                    "scheduled scan left writes to the next one"
                );
            } else {
                metrics.scan_outcome("succeeded");
            }
            report
        }
        Err(failure) => {
            metrics
                .odoo_calls
                .get_or_create(&conn_labels)
                .inc_by(failure.calls);
            if failure.odoo {
                metrics.odoo_errors.get_or_create(&conn_labels).inc();
            }
            metrics.scan_outcome("failed");
            tracing::warn!(namespace, rule = name, error = %failure.message, "scheduled scan failed");
            driver::publish(
                &ctx.core,
                rule.as_ref(),
                EventType::Warning,
                reasons::SCAN_FAILED,
                "Scan",
                format!("scan scheduled for {scheduled} failed: {}", failure.message),
            )
            .await;
            ScanReport::failed(failure.message, failure.calls)
        }
    };
    let mut report = report;
    report.stamp(started, Some(scheduled), duration);
    let notify = ctx.scheduler.rules.with(&namespace, &name, |state| {
        let Some(state) = state else {
            return false;
        };
        // Not in `running` any more: cancelled or stopped while finishing, so
        // its result is stale.
        let current = state.running.remove(&id).is_some();
        if current {
            state.last = Some(report);
        }
        current
    });
    if notify {
        ctx.scheduler.notify(&rule);
    }
}

/// Scan and act; the report and the Odoo calls made.
async fn run(
    ctx: &Arc<RuleContext>,
    rule: &ExceptionRule,
    time_zone: &jiff::tz::TimeZone,
) -> Result<(ScanReport, u64), Failure> {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let connection = &rule.spec.connection_ref.name;
    let client = ctx.odoo.get(&namespace, connection).ok_or_else(|| {
        Failure::local(format!(
            "OdooConnection {namespace}/{connection} has no connected client"
        ))
    })?;
    // Every rule of a connection reads its demand history through the one cache.
    let history_key =
        rule_scan::connection_history_key(&ctx.core.connections, &namespace, connection);
    let lock = ctx.rule_locks.of(&namespace, &name);
    let _acting = lock.lock().await;
    let memory = load_memory(ctx, &namespace, &name)
        .await
        .map_err(|e| Failure::local(format!("reading the scan memory: {e}")))?;
    let secrets = read_secrets(&ctx.core, rule, &namespace)
        .await
        .map_err(|e| Failure::local(format!("reading notify secrets: {e}")))?;
    let today = Timestamp::now().to_zoned(time_zone.clone()).date();
    let scanned = rule_scan::scan_rule(
        &client,
        rule,
        today,
        &memory,
        &secrets,
        crate::scan::ScanOptions {
            history: history_key.as_ref().map(|k| (&ctx.history, k)),
            ..Default::default()
        },
        &super::approval::ListedPolicies {
            client: &ctx.core.client,
            limiter: Some(&ctx.core.api_limiter),
        },
    )
    .await?;
    if scanned.run.outcome.memory != memory {
        save_memory(ctx, rule, &scanned.run.outcome.memory)
            .await
            .map_err(|e| Failure::local(format!("saving the scan memory: {e}")))?;
    }
    super::approval::publish_gate(ctx, rule, &scanned.gate).await;
    ctx.core
        .metrics
        .set_exceptions_open(&namespace, &name, scanned.open_by_severity);
    Ok((scanned.report, scanned.calls))
}

/// The rule's scan memory: this process's copy, else its ConfigMap.
pub(super) async fn load_memory(
    ctx: &RuleContext,
    namespace: &str,
    name: &str,
) -> Result<ScanMemory, kube::Error> {
    if let Some(memory) = ctx.scheduler.rules.with(namespace, name, |state| {
        state.and_then(|s| s.memory.clone())
    }) {
        return Ok(memory);
    }
    ctx.core.api_limiter.until_ready().await;
    let memory = rule_scan::read_memory(&ctx.core.client, namespace, name).await?;
    ctx.scheduler.rules.with(namespace, name, |state| {
        if let Some(state) = state {
            state.memory = Some(memory.clone());
        }
    });
    Ok(memory)
}

pub(super) async fn save_memory(
    ctx: &RuleContext,
    rule: &ExceptionRule,
    memory: &ScanMemory,
) -> Result<(), kube::Error> {
    ctx.core.api_limiter.until_ready().await;
    rule_scan::write_memory(&ctx.core.client, rule, memory).await?;
    let namespace = rule.namespace().unwrap_or_default();
    ctx.scheduler
        .rules
        .with(&namespace, &rule.name_any(), |state| {
            if let Some(state) = state {
                state.memory = Some(memory.clone());
            }
        });
    Ok(())
}

/// [`rule_scan::secret_values`] paced by the operator's API rate limit.
pub(super) async fn read_secrets<K: PlanopsKind>(
    core: &Core,
    obj: &K,
    namespace: &str,
) -> Result<StaticSecrets, kube::Error> {
    rule_scan::secret_values(&core.client, Some(&core.api_limiter), obj, namespace).await
}
