//! ApprovalPolicy reconciler, and the gate that puts a rule's draft RFQs under
//! a policy.
//!
//! The gate ([`gate_purchases`]) runs after a rule's scan or event
//! re-evaluation created (or found) draft RFQs: for each one a policy governs,
//! it asks for approval in Odoo ([`approval::open`]) and pokes the policy's
//! controller. The controller keeps nothing in memory that matters: each
//! reconcile reads the policy's audit trail from Odoo
//! ([`approval::trail::read_trail`]), polls every pending request, escalates,
//! records refusals and breaches, carries decisions out exactly once, and
//! writes counts and the median cycle time to the status (only when they
//! changed, like every status write of the driver).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::connection::OdooClients;
use super::driver::{self, KindContext, ReconcileRequests, Reconciler, settle};
use super::rule::RuleContext;
use super::validate::{FieldError, check_domain};
use super::{Core, Error};
use crate::api::approval::{ApprovalBackend, ApprovalCounts, ApprovalPolicyStatus, GovernedAction};
use crate::api::common::{ConditionSet, ConditionStatus, condition_types as ct, reasons};
use crate::api::rule::ExceptionRuleSpec;
use crate::api::{ApprovalPolicy, ExceptionRule, OdooConnection};
use crate::approval::gate::{GateReport, PolicySource};
use crate::approval::levels::deadline;
use crate::approval::odoo_io::{
    PurchaseFacts, close_exception, find_pending, read_purchases, record_breach, user_by_id,
    withdraw,
};
use crate::approval::trail::{TrailEntry, TrailSummary, read_trail, summarize};
use crate::approval::{
    ApprovalError, Approver, Backend, FinalDecision, GateRequest, OutcomeReport, PendingState,
    ResolvedLevel, Step, carry_out, escalate, evaluate, open, poll, record_refusals,
    resolve_backend, resolve_levels,
};
use crate::automation::{self, AutomationKey, AutomationSpec, SyncMode, Trigger};
use crate::engine::RuleRef;
use crate::gateway::{
    EventHandler, Gateway, HandlerError, HandlerOutcome, InboundEvent, RoutePath,
};
use crate::odoo::OdooClient;
use crate::odoo::domain::Domain;
use futures::future::BoxFuture;

/// Seconds between polls when the policy does not say.
const DEFAULT_POLL_SECONDS: u64 = 60;
/// First wait after a failed poll; doubles per consecutive failure.
const FIRST_ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait between polls of a failing Odoo.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(600);
/// A deadline is looked at this long after it passed, so the clock has
/// surely moved past it when the request is evaluated.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

type Key = (String, String);

/// Reconcile requests and poll failure counts of every ApprovalPolicy.
#[derive(Default)]
pub struct Approvals {
    /// The gate (and the gateway) ask for a reconcile, which polls at once.
    requests: ReconcileRequests<ApprovalPolicy>,
    /// Consecutive failed polls per policy, for the backoff. Losing it on a
    /// restart only restarts the backoff.
    failures: Mutex<HashMap<Key, u32>>,
}

impl Approvals {
    /// Called when the controllers of `scope` start.
    pub fn start(
        &self,
        scope: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<ApprovalPolicy>> {
        self.requests.start(scope)
    }

    /// Called when the controllers stop (shutdown, lost lease).
    pub fn stop_all(&self) {
        self.requests.stop_all();
    }

    /// Asks for a reconcile of `namespace/name`: a request was opened or
    /// Odoo said a request changed.
    pub fn request(&self, namespace: &str, name: &str) {
        self.requests
            .request(&ObjectRef::<ApprovalPolicy>::new(name).within(namespace));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a failed poll and returns how long to wait before the next.
    fn failed(&self, namespace: &str, name: &str) -> Duration {
        let mut failures = self.lock();
        let n = failures
            .entry((namespace.to_string(), name.to_string()))
            .or_default();
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        FIRST_ERROR_BACKOFF
            .saturating_mul(factor)
            .min(MAX_ERROR_BACKOFF)
    }

    fn succeeded(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

/// Reasons of this kind's conditions.
mod approval_reasons {
    /// `Synced`: every pending request was polled.
    pub const POLLED: &str = "Polled";
    /// `Synced`/`Ready`: Odoo failed a read or write; retried with backoff.
    pub const ODOO_ERROR: &str = "OdooError";
    /// `Ready`: `backend: ApprovalsApp` on a Community database.
    pub const BACKEND_UNAVAILABLE: &str = "BackendUnavailable";
    /// `Ready`: a level's users and groups resolve to nobody in Odoo.
    pub const NO_APPROVERS: &str = "NoApprovers";
    /// `Ready`: the connection has no connected client yet.
    pub const CONNECTION_PENDING: &str = "ConnectionPending";
    /// `Synced`: the Odoo automation that calls back on decisions failed to sync.
    pub const CALLBACK_FAILED: &str = "CallbackFailed";
}

/// What the ApprovalPolicy reconciler uses.
pub struct ApprovalContext {
    pub core: Arc<Core>,
    /// Odoo clients, one per connection (the connection controller's).
    pub odoo: Arc<OdooClients>,
    /// Serves the policies' Odoo callback routes.
    pub gateway: Gateway,
    /// Reconcile requests (shared with the rules' gate) and poll backoff.
    pub approvals: Arc<Approvals>,
}

impl KindContext for ApprovalContext {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Reconciler for ApprovalPolicy {
    type Context = ApprovalContext;

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(m) = &self.spec.match_ {
            check_domain(
                &mut errors,
                "spec.match.productDomain",
                m.product_domain.as_deref(),
            );
            check_domain(
                &mut errors,
                "spec.match.partnerDomain",
                m.partner_domain.as_deref(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, level) in self.spec.levels.iter().enumerate() {
            if !names.insert(level.name.as_str()) {
                errors.push(FieldError::new(
                    format!("spec.levels[{i}].name"),
                    format!("{:?} is used by an earlier level", level.name),
                ));
            }
            let approvers = level.users.len() + level.groups.len();
            let needed = level.min_approvals.unwrap_or(1) as usize;
            if level.groups.is_empty() && needed > approvers {
                errors.push(FieldError::new(
                    format!("spec.levels[{i}].minApprovals"),
                    format!("needs {needed} approvals but the level names {approvers} users"),
                ));
            }
            for (j, user) in level.users.iter().enumerate() {
                if user.trim().is_empty() {
                    errors.push(FieldError::new(
                        format!("spec.levels[{i}].users[{j}]"),
                        "is empty",
                    ));
                }
            }
        }
        errors
    }

    async fn evaluate(
        obj: Arc<Self>,
        ctx: Arc<ApprovalContext>,
        conditions: &mut ConditionSet,
        status: &mut ApprovalPolicyStatus,
    ) -> Result<Duration, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        if obj.spec.governs != GovernedAction::EmergencyPurchase {
            // The kind is in the API for policies written ahead of the actions
            // that will make such decisions. A policy that governs nothing must
            // not look healthy to kstatus or Argo CD: only a spec change (or a
            // PlanOps release with such an action) helps, so it is stalled.
            let message = format!(
                "no PlanOps action makes {:?} decisions yet (only proposePurchase's EmergencyPurchase is gated): this policy has nothing to govern",
                obj.spec.governs
            );
            stalled(conditions, reasons::NOT_ACTIVE, &message);
            return Ok(driver::DEFAULT_RESYNC);
        }
        let Some(client) = ctx.odoo.get(&namespace, &obj.spec.connection_ref.name) else {
            let message = format!(
                "OdooConnection {namespace}/{} has no connected client yet",
                obj.spec.connection_ref.name
            );
            in_progress(conditions, approval_reasons::CONNECTION_PENDING, &message);
            return Ok(FIRST_ERROR_BACKOFF);
        };
        match poll_policy(&obj, &ctx.core, &client).await {
            Ok(report) => {
                ctx.approvals.succeeded(&namespace, &name);
                status.backend = Some(match report.backend {
                    Backend::ApprovalsApp => ApprovalBackend::ApprovalsApp,
                    Backend::Activity => ApprovalBackend::Activity,
                });
                let s = &report.summary;
                status.counts = Some(ApprovalCounts {
                    pending: s.pending,
                    approved: s.approved,
                    rejected: s.rejected,
                    escalated: s.escalated,
                    sla_breaches: s.sla_breaches,
                });
                status.median_cycle_time_seconds = s
                    .median_cycle_time
                    .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0);
                let counts = format!(
                    "{} pending, {} approved, {} rejected, {} escalated, {} SLA breaches",
                    s.pending, s.approved, s.rejected, s.escalated, s.sla_breaches
                );
                if report.errors.is_empty() {
                    settle(
                        conditions,
                        ConditionStatus::True,
                        reasons::RECONCILED,
                        counts,
                    );
                    let polled = format!(
                        "decisions polled from Odoo ({} backend)",
                        backend_label(report.backend)
                    );
                    match sync_callback(&ctx, &obj, &client, report.backend).await {
                        Ok(callback) => conditions.set(
                            ct::SYNCED,
                            ConditionStatus::True,
                            approval_reasons::POLLED,
                            format!("{polled}; {callback}"),
                        ),
                        // Polling still finds every decision: Ready stays, Synced says why
                        // decisions may take up to the poll interval.
                        Err(message) => conditions.set(
                            ct::SYNCED,
                            ConditionStatus::False,
                            approval_reasons::CALLBACK_FAILED,
                            format!(
                                "{polled}, but the Odoo callback could not be set up: {message}"
                            ),
                        ),
                    };
                    Ok(report.next)
                } else {
                    let message = report.errors.join("; ");
                    in_progress(conditions, approval_reasons::ODOO_ERROR, &message);
                    Ok(ctx.approvals.failed(&namespace, &name).min(report.next))
                }
            }
            Err(err) => {
                let message = err.to_string();
                match &err {
                    ApprovalError::BackendUnavailable => {
                        // Only a change to the spec (or the database) helps.
                        stalled(conditions, approval_reasons::BACKEND_UNAVAILABLE, &message);
                        Ok(driver::DEFAULT_RESYNC)
                    }
                    ApprovalError::Domain { .. } => {
                        stalled(conditions, reasons::INVALID_SPEC, &message);
                        Ok(driver::DEFAULT_RESYNC)
                    }
                    ApprovalError::NoApprovers { .. } => {
                        // Someone may create the user or fill the group in Odoo:
                        // look again at the poll interval.
                        stalled(conditions, approval_reasons::NO_APPROVERS, &message);
                        Ok(poll_interval(&obj))
                    }
                    _ => {
                        tracing::warn!(namespace = %namespace, policy = %name, error = %message, "polling approvals failed");
                        in_progress(conditions, approval_reasons::ODOO_ERROR, &message);
                        Ok(ctx.approvals.failed(&namespace, &name))
                    }
                }
            }
        }
    }

    fn inactive(
        obj: &Self,
        ctx: &ApprovalContext,
        conditions: &mut ConditionSet,
        _status: &mut ApprovalPolicyStatus,
        reason: &str,
    ) {
        // A paused or suspended policy acts on no callback either.
        ctx.gateway.remove_route(&RoutePath::approval(
            obj.namespace().unwrap_or_default(),
            obj.name_any(),
        ));
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reason,
            "decisions are not polled while the policy is not active",
        );
    }

    fn forget(obj: &Self, ctx: &ApprovalContext) {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        ctx.gateway
            .remove_route(&RoutePath::approval(namespace.clone(), name.clone()));
        ctx.approvals.succeeded(&namespace, &name);
        ctx.core.metrics.forget_policy(&namespace, &name);
    }

    /// `deletionPolicy: Delete`: pending requests are withdrawn in Odoo (approver
    /// lines cancelled, or activities closed) and the RFQ is left a draft with a
    /// note, so no approver keeps a to-do nobody will act on. Decided requests
    /// and their notes stay: they are the audit trail.
    async fn cleanup(obj: Arc<Self>, ctx: Arc<ApprovalContext>) -> Result<(), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let connection = &obj.spec.connection_ref.name;
        let Some(client) = ctx.odoo.get(&namespace, connection) else {
            let known = ctx
                .core
                .connections
                .get(&ObjectRef::new(connection).within(&namespace))
                .is_some();
            if known {
                // The connection exists but is not connected: retry rather
                // than leave approvers with requests nobody polls.
                return Err(Error::Approval(ApprovalError::Data(format!(
                    "OdooConnection {namespace}/{connection} is not connected; cannot withdraw pending requests"
                ))));
            }
            tracing::warn!(namespace = %namespace, policy = %name, connection = %connection, "connection gone; pending approval requests are left in Odoo");
            return Ok(());
        };
        if client.info().version.major >= automation::MIN_WEBHOOK_VERSION {
            let key = AutomationKey::for_approval(&namespace, &name);
            let removed = automation::remove(&client, &key)
                .await
                .map_err(Error::Automation)?;
            if !removed.is_empty() {
                tracing::info!(namespace = %namespace, policy = %name, ?removed, "removed the Odoo callback automation");
            }
        }
        let trail = read_trail(&client, &namespace, &name)
            .await
            .map_err(Error::Approval)?;
        let why = format!("ApprovalPolicy {namespace}/{name} was deleted");
        let mut withdrawn = 0;
        for entry in trail.iter().filter(|e| e.is_pending()) {
            let facts = read_purchases(&client, &[entry.rfq_id])
                .await
                .map_err(Error::Approval)?;
            let Some(facts) = facts.get(&entry.rfq_id) else {
                continue;
            };
            let Some(pending) =
                find_pending(&client, &entry.fingerprint, entry.rfq_id, &facts.name)
                    .await
                    .map_err(Error::Approval)?
            else {
                continue;
            };
            let explanation = format!("policy {name} was deleted");
            let gate = rebuilt_gate(&obj, &namespace, entry, facts, &explanation, None);
            if withdraw(&client, &pending, &gate, &why)
                .await
                .map_err(Error::Approval)?
            {
                withdrawn += 1;
            }
        }
        if withdrawn > 0 {
            driver::publish(
                &ctx.core,
                obj.as_ref(),
                EventType::Normal,
                "Withdrawn",
                "Cleanup",
                format!("{withdrawn} pending approval requests withdrawn in Odoo; their RFQs stay drafts"),
            )
            .await;
        }
        Ok(())
    }
}

/// Where the connection has a `callbackBaseUrl` (Odoo 17+: the webhook
/// action), a managed Odoo automation calls the policy's gateway route when
/// one of its requests changes state, and the route asks for a reconcile: the
/// decision is handled at once instead of at the next poll. Polling stays the
/// safety net (Odoo's webhooks are fire-and-forget). Returns what the
/// `Synced` message says about it.
async fn sync_callback(
    ctx: &Arc<ApprovalContext>,
    obj: &Arc<ApprovalPolicy>,
    client: &OdooClient,
    backend: Backend,
) -> Result<String, String> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let path = RoutePath::approval(namespace.clone(), name.clone());
    let key = AutomationKey::for_approval(&namespace, &name);
    let major = client.info().version.major;
    if major < automation::MIN_WEBHOOK_VERSION {
        ctx.gateway.remove_route(&path);
        return Ok(format!("Odoo {major} has no webhook action: polling only"));
    }
    let connection = &obj.spec.connection_ref.name;
    let callback = ctx
        .core
        .connections
        .get(&ObjectRef::<OdooConnection>::new(connection).within(&namespace))
        .and_then(|c| c.spec.callback_base_url.clone());
    let Some(callback) = callback else {
        ctx.gateway.remove_route(&path);
        // Records left from an earlier callbackBaseUrl would call a route
        // that is gone: remove them.
        automation::remove(client, &key)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(format!(
            "OdooConnection {namespace}/{connection} has no callbackBaseUrl: polling only"
        ));
    };
    let token = super::hook_token::approval_hook_token(&ctx.core.client, obj)
        .await
        .map_err(|e| {
            format!(
                "cannot read or create Secret {namespace}/{}: {e}",
                automation::approval_hook_secret_name(&name)
            )
        })?;
    let handler = ApprovalHintHandler {
        ctx: Arc::downgrade(ctx),
        namespace: namespace.clone(),
        policy: name.clone(),
        connection: connection.clone(),
    };
    ctx.gateway
        .upsert_route_in_term(
            path,
            super::routes::odoo_callback_route_config(token.clone()),
            Arc::new(handler),
            Some(ctx.core.work_for(obj.as_ref())),
        )
        .map_err(|e| format!("cannot serve the gateway route: {e}"))?;
    let url = crate::odoo::Secret::new(automation::approval_hook_url(
        &callback,
        &namespace,
        &name,
        token.expose(),
    ));
    let spec = callback_spec(obj, backend, key, url)?;
    let outcome = automation::sync(client, &spec, SyncMode::Apply)
        .await
        .map_err(|e| e.to_string())?;
    if !outcome.in_sync() {
        tracing::info!(namespace = %namespace, policy = %name, changes = %outcome.describe(), "Odoo callback automation synced");
    }
    Ok(format!(
        "Odoo calls back when a request changes (base.automation #{} on {})",
        outcome
            .automation_id
            .map_or("-".into(), |id| id.to_string()),
        spec.model
    ))
}

/// What Odoo watches: on ApprovalsApp, the request's status (a stored
/// computed field Odoo recomputes on every decision) within the policy's
/// category; on Activity, the "done" message an approver's activity leaves
/// on a gated RFQ (its body quotes the fingerprint).
fn callback_spec(
    obj: &ApprovalPolicy,
    backend: Backend,
    key: AutomationKey,
    webhook_url: crate::odoo::Secret,
) -> Result<AutomationSpec, String> {
    let (model, trigger, watched, domain) = match backend {
        Backend::ApprovalsApp => (
            "approval.request",
            Trigger::OnWrite,
            vec!["request_status".to_string()],
            json!([
                ["reference", "ilike", "planops:"],
                [
                    "category_id.name",
                    "=",
                    obj.spec.approval_category.as_deref().unwrap_or("PlanOps")
                ]
            ]),
        ),
        Backend::Activity => (
            "mail.message",
            Trigger::OnCreate,
            Vec::new(),
            json!([
                ["model", "=", "purchase.order"],
                ["message_type", "=", "notification"],
                ["body", "ilike", "planops:"]
            ]),
        ),
    };
    let filter = Domain::from_json_value(&domain).map_err(|e| e.to_string())?;
    Ok(AutomationSpec {
        key,
        label: format!(
            "approvals {}/{}",
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        ),
        model: model.to_string(),
        trigger,
        watched_fields: watched,
        filter_domain: Some(filter),
        webhook_url,
    })
}

/// Odoo's callback for one policy: whatever changed, the reconcile reads it
/// from Odoo (the payload is only a hint). Odoo 17 and 18 post it before
/// their commit, so the reconcile is asked for once the write is readable.
struct ApprovalHintHandler {
    /// Weak: the context owns the gateway, which owns the handlers.
    ctx: std::sync::Weak<ApprovalContext>,
    namespace: String,
    policy: String,
    connection: String,
}

impl EventHandler for ApprovalHintHandler {
    fn handle(&self, event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>> {
        Box::pin(async move {
            let ctx = self
                .ctx
                .upgrade()
                .ok_or_else(|| HandlerError::transient("the operator is stopping"))?;
            if let (Ok(hint), Some(client)) = (
                automation::HintedRecord::from_payload(&event.payload, None),
                ctx.odoo.get(&self.namespace, &self.connection),
            ) && let Err(err) = automation::await_hinted_write(&client, &hint).await
            {
                tracing::debug!(policy = %self.policy, error = %err, "cannot look for the hinted write; reconciling anyway");
            }
            ctx.approvals.request(&self.namespace, &self.policy);
            Ok(HandlerOutcome {
                detail: json!({"reconcile": "requested"}),
            })
        })
    }
}

fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::ApprovalsApp => "ApprovalsApp",
        Backend::Activity => "Activity",
    }
}

fn poll_interval(obj: &ApprovalPolicy) -> Duration {
    Duration::from_secs(
        obj.spec
            .poll_interval_seconds
            .map(u64::from)
            .unwrap_or(DEFAULT_POLL_SECONDS),
    )
}

/// Working on it (a passing condition such as an Odoo error): kstatus reads InProgress.
fn in_progress(conditions: &mut ConditionSet, reason: &str, message: &str) {
    conditions
        .set(ct::READY, ConditionStatus::False, reason, message)
        .set(ct::RECONCILING, ConditionStatus::True, reason, message)
        .set(ct::STALLED, ConditionStatus::False, reason, "")
        .set(ct::SYNCED, ConditionStatus::False, reason, message);
}

/// Only a change to the spec or to Odoo's data helps: kstatus reads Failed.
fn stalled(conditions: &mut ConditionSet, reason: &str, message: &str) {
    conditions
        .set(ct::READY, ConditionStatus::False, reason, message)
        .set(ct::RECONCILING, ConditionStatus::False, reason, "")
        .set(ct::STALLED, ConditionStatus::True, reason, message)
        .set(ct::SYNCED, ConditionStatus::False, reason, message);
}

/// The gate request of a pending request, rebuilt from Odoo: the policy's
/// current spec, the RFQ as it is now, the rule from the trail.
fn rebuilt_gate<'a>(
    obj: &'a ApprovalPolicy,
    namespace: &'a str,
    entry: &'a TrailEntry,
    facts: &'a PurchaseFacts,
    explanation: &'a str,
    requester: Option<&'a Approver>,
) -> GateRequest<'a> {
    GateRequest {
        fingerprint: &entry.fingerprint,
        namespace,
        policy: obj.metadata.name.as_deref().unwrap_or_default(),
        spec: &obj.spec,
        rfq_id: entry.rfq_id,
        request: &facts.request,
        narrative: &facts.notes,
        explanation,
        requester,
        rule: entry.rule.as_deref(),
    }
}

struct PollReport {
    backend: Backend,
    summary: TrailSummary,
    /// When to poll again: the poll interval, or sooner when a deadline falls before it.
    next: Duration,
    /// Requests that could not be handled this time (the others were).
    errors: Vec<String>,
}

async fn poll_policy(
    obj: &ApprovalPolicy,
    core: &Core,
    client: &OdooClient,
) -> Result<PollReport, ApprovalError> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let backend = resolve_backend(obj.spec.backend, client.info())?;
    // Resolved on every reconcile, pending requests or not, so that a level
    // naming nobody in Odoo shows on the policy before a purchase needs it.
    let levels = resolve_levels(client, &obj.spec.levels).await?;
    let mut trail = read_trail(client, &namespace, &name).await?;
    let mut errors = Vec::new();
    let pending: Vec<&TrailEntry> = trail.iter().filter(|e| e.is_pending()).collect();
    // Nothing pending, nothing to poll: a new request pokes the controller
    // (the gate asks for a reconcile), so only the safety-net resync remains.
    let mut next = if pending.is_empty() {
        driver::DEFAULT_RESYNC
    } else {
        poll_interval(obj)
    };
    if !pending.is_empty() {
        let ids: Vec<i64> = pending.iter().map(|e| e.rfq_id).collect();
        let facts = read_purchases(client, &ids).await?;
        let mut wrote = false;
        for entry in pending {
            match process(obj, core, client, &levels, entry, facts.get(&entry.rfq_id)).await {
                Ok(handled) => {
                    wrote |= handled.wrote;
                    if let Some(until) = handled.until {
                        next = next.min(until);
                    }
                }
                Err(err) => {
                    tracing::warn!(namespace = %namespace, policy = %name, fingerprint = %entry.fingerprint, error = %err, "approval request not handled; retrying");
                    errors.push(format!("{}: {err}", entry.fingerprint));
                }
            }
        }
        if wrote {
            // The counts come from the trail: read what this poll added.
            trail = read_trail(client, &namespace, &name).await?;
        }
    }
    Ok(PollReport {
        backend,
        summary: summarize(&trail),
        next,
        errors,
    })
}

struct Handled {
    /// Something was written to Odoo (the trail changed).
    wrote: bool,
    /// How soon this request needs another look (its next deadline).
    until: Option<Duration>,
}

fn until(at: Timestamp) -> Duration {
    let secs = at.duration_since(Timestamp::now()).as_secs_f64().max(0.0);
    Duration::from_secs_f64(secs) + DEADLINE_SLACK
}

/// One pending request: poll, evaluate, and act on the step.
async fn process(
    obj: &ApprovalPolicy,
    core: &Core,
    client: &OdooClient,
    levels: &[ResolvedLevel],
    entry: &TrailEntry,
    facts: Option<&PurchaseFacts>,
) -> Result<Handled, ApprovalError> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let fingerprint = entry.fingerprint.as_str();
    let nothing = Handled {
        wrote: false,
        until: None,
    };
    let Some(facts) = facts else {
        tracing::warn!(namespace = %namespace, policy = %name, fingerprint, rfq = entry.rfq_id, "RFQ of a pending approval is gone from Odoo");
        return Ok(nothing);
    };
    let requester = match facts.owner_uid {
        Some(uid) => user_by_id(client, uid).await?,
        None => None,
    };
    let explanation = format!("policy {name} governs this request");
    let gate = rebuilt_gate(
        obj,
        &namespace,
        entry,
        facts,
        &explanation,
        requester.as_ref(),
    );
    let Some(pending) = find_pending(client, fingerprint, entry.rfq_id, &facts.name).await? else {
        // Someone deleted the request (or every approval activity) in Odoo:
        // nobody can decide any more. Say so on the RFQ once and stop waiting;
        // the RFQ stays a draft for a buyer.
        tracing::warn!(namespace = %namespace, policy = %name, fingerprint, rfq = entry.rfq_id, "approval request deleted in Odoo; withdrawing");
        let gone = crate::approval::Pending {
            backend: Backend::Activity,
            fingerprint: fingerprint.to_string(),
            rfq_id: entry.rfq_id,
            rfq_name: facts.name.clone(),
            request_id: None,
            opened_at: entry.requested_at.unwrap_or_else(Timestamp::now),
            created: false,
        };
        let why = "the approval request was deleted in Odoo";
        let wrote = withdraw(client, &gone, &gate, why).await?;
        withdrawn_event(core, obj, wrote, &gone, why).await;
        return Ok(Handled { wrote, until: None });
    };
    let mut directory: Vec<Approver> = levels.iter().flat_map(|l| l.approvers.clone()).collect();
    directory.extend(requester.clone());
    let mut observed = poll(client, &pending, &directory).await?;
    // Odoo 16 and 17 delete a done activity: whoever decided was involved.
    let decided: Vec<i64> = observed.decisions.iter().map(|d| d.uid).collect();
    observed.involved.extend(decided);
    let requester_uid = requester.as_ref().map(|r| r.uid);
    let segregation = obj.spec.segregation_of_duties.unwrap_or(true);
    let level = observed.level(levels, requester_uid);
    let mut wrote = false;
    if level == 0 {
        // A policy edited while the request waits: the first level's (new)
        // approvers are asked too; `open` completes what is missing only.
        let missing = levels.first().is_some_and(|l| {
            l.approvers.iter().any(|a| {
                let barred = segregation && Some(a.uid) == requester_uid;
                !barred && !observed.involved.contains(&a.uid)
            })
        });
        if missing {
            open(client, pending.backend, &gate, levels).await?;
            tracing::info!(fingerprint, policy = %name, "first-level approvers completed after a policy change");
            wrote = true;
        }
    }
    if observed.cancelled {
        let decision = FinalDecision::Rejected {
            by: "Odoo".into(),
            reason: "the approval request was cancelled in Odoo".into(),
        };
        return outcome(obj, core, client, &pending, &gate, &decision).await;
    }
    let state = PendingState {
        opened_at: pending.opened_at,
        level,
        requester_uid,
        segregation_of_duties: segregation,
    };
    let evaluation = evaluate(levels, &state, &observed.decisions, Timestamp::now());
    if !evaluation.refused.is_empty() {
        let posted = record_refusals(client, &pending, &gate, &evaluation.refused).await?;
        if posted > 0 {
            wrote = true;
            for r in &evaluation.refused {
                core.metrics.approval_decision(&namespace, &name, "refused");
                driver::publish(
                    core,
                    obj,
                    EventType::Warning,
                    "DecisionRefused",
                    "Approve",
                    format!(
                        "{} on {} ({fingerprint}) not counted: {}",
                        r.decision.who, pending.rfq_name, r.reason
                    ),
                )
                .await;
            }
        }
    }
    let decided = matches!(
        evaluation.step,
        Step::Approved { .. } | Step::Rejected { .. }
    );
    if !decided && !matches!(facts.state.as_str(), "draft" | "sent" | "to approve") {
        // Someone confirmed or cancelled the RFQ in Odoo before a decision:
        // there is nothing left to gate. (A decided request goes on to
        // `carry_out`, which finishes an outcome cut short after the button.)
        let why = format!("the RFQ is in state {} in Odoo", facts.state);
        let now = withdraw(client, &pending, &gate, &why).await?;
        withdrawn_event(core, obj, now, &pending, &why).await;
        return Ok(Handled {
            wrote: wrote || now,
            until: None,
        });
    }
    match evaluation.step {
        Step::Wait { deadline, .. } => Ok(Handled {
            wrote,
            until: Some(until(deadline)),
        }),
        Step::Escalate { to, note } => {
            escalate(client, &pending, &gate, levels, to, &note).await?;
            tracing::info!(fingerprint, policy = %name, rfq = pending.rfq_id, to = to + 1, "approval request escalated");
            core.metrics
                .approval_decision(&namespace, &name, "escalated");
            driver::publish(
                core,
                obj,
                EventType::Warning,
                "Escalated",
                "Escalate",
                format!("{} ({fingerprint}): {note}", pending.rfq_name),
            )
            .await;
            Ok(Handled {
                wrote: true,
                until: Some(until(deadline(levels, pending.opened_at, to))),
            })
        }
        Step::LastLevelBreached { level, since } => {
            let level_name = levels
                .get(level)
                .map(|l| l.name.as_str())
                .unwrap_or_default();
            if record_breach(client, &pending, &gate, level_name, since).await? {
                tracing::warn!(fingerprint, policy = %name, rfq = pending.rfq_id, level = level_name, "last approval level's SLA breached");
                core.metrics
                    .approval_sla_breaches
                    .get_or_create(&super::metrics::PolicyLabels {
                        namespace: namespace.clone(),
                        policy: name.clone(),
                    })
                    .inc();
                driver::publish(
                    core,
                    obj,
                    EventType::Warning,
                    "SlaBreached",
                    "Escalate",
                    format!(
                        "{} ({fingerprint}): no decision from the last level ({level_name}) by {since}",
                        pending.rfq_name
                    ),
                )
                .await;
                wrote = true;
            }
            Ok(Handled { wrote, until: None })
        }
        Step::Approved { level, by } => {
            let decision = FinalDecision::Approved {
                by,
                level: levels
                    .get(level)
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
            };
            outcome(obj, core, client, &pending, &gate, &decision).await
        }
        Step::Rejected { by, reason } => {
            let decision = FinalDecision::Rejected { by, reason };
            outcome(obj, core, client, &pending, &gate, &decision).await
        }
    }
}

/// Carries the decision out (once: [`carry_out`] keys it by the fingerprint),
/// closes a rejected exception, and reports it as Event and metrics.
async fn outcome(
    obj: &ApprovalPolicy,
    core: &Core,
    client: &OdooClient,
    pending: &crate::approval::Pending,
    gate: &GateRequest<'_>,
    decision: &FinalDecision,
) -> Result<Handled, ApprovalError> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let fingerprint = pending.fingerprint.as_str();
    let report = match carry_out(client, pending, gate, decision).await {
        Ok(report) => report,
        Err(ApprovalError::RfqState { state, .. }) => {
            let why = format!("the RFQ is in state {state} in Odoo");
            let wrote = withdraw(client, pending, gate, &why).await?;
            withdrawn_event(core, obj, wrote, pending, &why).await;
            return Ok(Handled { wrote, until: None });
        }
        Err(err) => return Err(err),
    };
    let (approved, note) = match decision {
        FinalDecision::Approved { by, level } => (
            true,
            format!(
                "{} ({fingerprint}) approved by {} (level {level}): {}",
                pending.rfq_name,
                by.join(", "),
                describe(&report)
            ),
        ),
        FinalDecision::Rejected { by, reason } => (
            false,
            format!(
                "{} ({fingerprint}) rejected by {by}: {reason}; {}",
                pending.rfq_name,
                describe(&report)
            ),
        ),
    };
    if let FinalDecision::Rejected { by, reason } = decision {
        let reason = format!(
            "emergency purchase {} rejected by {by}: {reason}",
            pending.rfq_name
        );
        close_exception(client, fingerprint, &reason).await?;
    }
    if !matches!(report, OutcomeReport::AlreadyDone { .. }) {
        let cycle = Timestamp::now()
            .duration_since(pending.opened_at)
            .as_secs_f64();
        core.metrics
            .approval_cycle
            .get_or_create(&super::metrics::PolicyLabels {
                namespace: namespace.clone(),
                policy: name.clone(),
            })
            .observe(cycle.max(0.0));
        core.metrics.approval_decision(
            &namespace,
            &name,
            if approved { "approved" } else { "rejected" },
        );
        tracing::info!(fingerprint, policy = %name, rfq = pending.rfq_id, approved, cycle_seconds = cycle, "approval decision carried out");
        driver::publish(
            core,
            obj,
            EventType::Normal,
            if approved { "Approved" } else { "Rejected" },
            "Decide",
            note,
        )
        .await;
    }
    Ok(Handled {
        wrote: true,
        until: None,
    })
}

/// A Warning Event for a request withdrawn now (`posted`: its note was
/// written by this call, so a retry does not repeat the Event).
async fn withdrawn_event(
    core: &Core,
    obj: &ApprovalPolicy,
    posted: bool,
    pending: &crate::approval::Pending,
    why: &str,
) {
    if posted {
        driver::publish(
            core,
            obj,
            EventType::Warning,
            "Withdrawn",
            "Withdraw",
            format!(
                "approval of {} ({}) withdrawn: {why}; the RFQ is left as it is",
                pending.rfq_name, pending.fingerprint
            ),
        )
        .await;
    }
}

fn describe(report: &OutcomeReport) -> String {
    report.summary()
}

/// The `EmergencyPurchase` policies of a rule's namespace and connection, listed
/// through the API when a run has drafts to gate: what the operator and
/// `planops scan <namespace>/<rule>` give [`RuleRun`](crate::run::RuleRun).
pub struct ListedPolicies<'a> {
    pub client: &'a kube::Client,
    /// The operator's API rate limit; none for a one-off command.
    pub limiter: Option<&'a governor::DefaultDirectRateLimiter>,
}

impl PolicySource for ListedPolicies<'_> {
    fn governing<'a>(
        &'a self,
        rule: &'a RuleRef<'a>,
        spec: &'a ExceptionRuleSpec,
    ) -> BoxFuture<'a, Result<Vec<ApprovalPolicy>, String>> {
        Box::pin(async move {
            if let Some(limiter) = self.limiter {
                limiter.until_ready().await;
            }
            let api: Api<ApprovalPolicy> = Api::namespaced(self.client.clone(), rule.namespace);
            let listed = api
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok(listed
                .items
                .into_iter()
                .filter(|p| may_govern(p, spec))
                .collect())
        })
    }
}

/// Whether `policy` may govern the drafts of a rule with `spec`: it governs
/// emergency purchases on the rule's connection, is valid and is not being deleted.
pub fn may_govern(policy: &ApprovalPolicy, spec: &ExceptionRuleSpec) -> bool {
    policy.spec.governs == GovernedAction::EmergencyPurchase
        && policy.meta().deletion_timestamp.is_none()
        && policy.spec.connection_ref.name == spec.connection_ref.name
        && policy.validate().is_empty()
}

/// Tells the cluster what a run's approval gate did: an `ApprovalRequested` Event
/// on each governing policy (which then polls at once), or an
/// `ApprovalGateFailed` Event on the rule.
pub async fn publish_gate(ctx: &RuleContext, rule: &ExceptionRule, gate: &GateReport) {
    let namespace = rule.namespace().unwrap_or_default();
    let rule_name = rule.name_any();
    for requested in &gate.requested {
        driver::publish(
            &ctx.core,
            &requested.policy,
            EventType::Normal,
            "ApprovalRequested",
            "Gate",
            format!(
                "{} ({}) from rule {rule_name} waits for approval: {}",
                requested.rfq_name, requested.fingerprint, requested.explanation
            ),
        )
        .await;
        ctx.approvals
            .request(&namespace, &requested.policy.name_any());
    }
    if let Some(err) = &gate.error {
        tracing::warn!(namespace = %namespace, rule = %rule_name, error = %err, "could not put draft RFQs under approval; the next scan retries");
        driver::publish(
            &ctx.core,
            rule,
            EventType::Warning,
            "ApprovalGateFailed",
            "Approve",
            format!("could not put draft RFQs under approval: {err}"),
        )
        .await;
    }
}
