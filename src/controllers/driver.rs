//! The reconcile flow every kind shares: finalizer, pause and suspend, spec
//! validation, dependency checks, status written only when it changed, Events on
//! transitions and the per-object ready gauge.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use rand::RngExt;

use super::kinds::{self, CommonStatus, PlanopsKind};
use super::validate::FieldError;
use super::{Core, Error};
use crate::api::OdooConnection;
use crate::api::common::{
    ConditionSet, ConditionStatus, DeletionPolicy, FIELD_MANAGER, FINALIZER,
    RECONCILE_REQUESTED_ANNOTATION, condition_types as ct, find_condition, is_paused, reasons,
};
use crate::gateway::check_secret;

/// How often a healthy resource is looked at again when nothing changed, as a
/// safety net for missed watch events.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);

/// A kind's context: its own state, and the [`Core`] that the shared flow
/// uses (the flow sees nothing else).
pub trait KindContext: Send + Sync + 'static {
    fn core(&self) -> &Core;
}

/// What a kind adds to the shared flow.
pub trait Reconciler: PlanopsKind {
    /// What this kind's reconciler uses.
    type Context: KindContext;

    /// Checks the schema cannot express (time zones, cron, domains, ...), each
    /// error naming its field. Also run offline by `planops validate`.
    fn validate(&self) -> Vec<FieldError>;

    /// [`Reconciler::validate`] and the checks every kind shares (the Secret
    /// references' names and keys): what the reconciler and `planops
    /// validate` run.
    fn check_spec(&self) -> Vec<FieldError> {
        let mut errors = self.validate();
        errors.extend(super::validate::check_secret_refs(&self.secret_refs()));
        errors
    }

    /// Kind-specific work once the spec is valid and dependencies are there.
    /// Sets the `Ready` condition (and any type-specific ones) and status
    /// fields; returns when to look again.
    fn evaluate(
        obj: Arc<Self>,
        ctx: Arc<Self::Context>,
        conditions: &mut ConditionSet,
        status: &mut Self::Status,
    ) -> impl Future<Output = Result<Duration, Error>> + Send;

    /// Runs instead of `evaluate` while the resource is paused, suspended, invalid
    /// or waiting for a dependency (`reason` is the one `Ready` gives): stops what
    /// `evaluate` started, such as a schedule, and says so in the status.
    fn inactive(
        obj: &Self,
        ctx: &Self::Context,
        conditions: &mut ConditionSet,
        status: &mut Self::Status,
        reason: &str,
    ) {
        let _ = (obj, ctx, conditions, status, reason);
    }

    /// The status fields this operator applies: all of them, unless the kind
    /// leaves some to another writer.
    fn applied_status(&self, status: &Self::Status) -> serde_json::Value {
        serde_json::to_value(status).unwrap_or_default()
    }

    /// Adds watches of objects this kind owns to its controller, so that a
    /// change to one (or its deletion) reconciles the owner.
    fn watch_owned(
        controller: kube::runtime::Controller<Self>,
        client: &kube::Client,
        scope: &Option<String>,
    ) -> kube::runtime::Controller<Self> {
        let _ = (client, scope);
        controller
    }

    /// Drops in-process state of a deleted resource (schedules, metric series),
    /// whatever its deletion policy.
    fn forget(obj: &Self, ctx: &Self::Context) {
        let _ = (obj, ctx);
    }

    /// Removes what PlanOps created in Odoo for the resource. Runs on deletion
    /// unless `deletionPolicy: Orphan`; must tolerate `evaluate` never having run.
    fn cleanup(
        obj: Arc<Self>,
        ctx: Arc<Self::Context>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (obj, ctx);
        async { Ok(()) }
    }
}

/// Entry point handed to `Controller::run`.
pub async fn reconcile<K: Reconciler>(obj: Arc<K>, ctx: Arc<K::Context>) -> Result<Action, Error> {
    let _timer = ctx.core().metrics.reconcile_timer(K::KIND);
    let namespace = obj.namespace().ok_or(Error::MissingNamespace)?;
    let api: Api<K> = Api::namespaced(ctx.core().client.clone(), &namespace);
    let ctx_for_events = ctx.clone();
    finalizer(&api, FINALIZER, obj, move |event| async move {
        match event {
            FinalizerEvent::Apply(obj) => apply(obj, ctx_for_events).await,
            FinalizerEvent::Cleanup(obj) => cleanup(obj, ctx_for_events).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Requeue with jitter after a failure, so many failing objects do not retry in lockstep.
pub fn error_policy<K: Reconciler>(obj: Arc<K>, err: &Error, ctx: Arc<K::Context>) -> Action {
    if err.is_stale_object() {
        tracing::debug!(kind = K::KIND, name = %obj.name_any(), namespace = ?obj.namespace(), error = %err, "acted on a stale copy; retrying on the newer one");
        let jitter = rand::rng().random_range(0..500);
        return Action::requeue(Duration::from_millis(500 + jitter));
    }
    tracing::warn!(kind = K::KIND, name = %obj.name_any(), namespace = ?obj.namespace(), error = %err, "reconcile failed");
    ctx.core()
        .metrics
        .reconcile_errors
        .get_or_create(&super::metrics::ErrorLabels {
            kind: K::KIND.into(),
            error: err.metric_label().into(),
        })
        .inc();
    let jitter = rand::rng().random_range(0..5000);
    Action::requeue(Duration::from_millis(10_000 + jitter))
}

async fn cleanup<K: Reconciler>(obj: Arc<K>, ctx: Arc<K::Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    if obj.deletion_policy() == DeletionPolicy::Delete {
        K::cleanup(obj.clone(), ctx.clone()).await?;
    }
    K::forget(&obj, &ctx);
    ctx.core()
        .metrics
        .forget(K::KIND, &namespace, &obj.name_any());
    Ok(Action::await_change())
}

/// How soon an object waiting for its OdooConnection looks again, whatever
/// the watches say (see [`apply`]). Such a look writes nothing when nothing
/// changed.
pub(super) const DEPENDENCY_RECHECK: Duration = Duration::from_secs(5);

async fn apply<K: Reconciler>(obj: Arc<K>, ctx: Arc<K::Context>) -> Result<Action, Error> {
    let previous = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let mut conditions = ConditionSet::new(&previous.core().conditions, generation);
    let mut status = previous.clone();

    let requeue = if is_paused(obj.meta().annotations.as_ref()) {
        settle(
            &mut conditions,
            ConditionStatus::False,
            reasons::PAUSED,
            "reconciliation is paused by the planops.io/paused annotation",
        );
        K::inactive(&obj, &ctx, &mut conditions, &mut status, reasons::PAUSED);
        None
    } else if obj.suspended() {
        settle(
            &mut conditions,
            ConditionStatus::False,
            reasons::SUSPENDED,
            "spec.suspend is true",
        );
        K::inactive(&obj, &ctx, &mut conditions, &mut status, reasons::SUSPENDED);
        None
    } else {
        let verdict =
            evaluate_active(obj.clone(), ctx.clone(), &mut conditions, &mut status).await?;
        match verdict {
            Verdict::Evaluated(after) => Some(after),
            // The connection has not been probed yet (the operator just
            // started, or the connection was just created): writing
            // ConnectionNotReady now would be a status write and a Warning
            // per object for a state that lasts until the first probe, whose
            // status change reaches this object through the connection watch.
            Verdict::ConnectionPending => return Ok(Action::requeue(DEPENDENCY_RECHECK)),
            Verdict::Inactive => {
                let reason = conditions.reason(ct::READY).unwrap_or_default().to_string();
                K::inactive(&obj, &ctx, &mut conditions, &mut status, &reason);
                // The connection's change reaches this controller's watch and the
                // shared connection index by two streams; when the watch wins, this
                // reconcile read the old connection, and no later event would come.
                matches!(
                    reason.as_str(),
                    reasons::CONNECTION_NOT_FOUND | reasons::CONNECTION_NOT_READY
                )
                .then_some(DEPENDENCY_RECHECK)
            }
        }
    };

    let handled = obj
        .annotations()
        .get(RECONCILE_REQUESTED_ANNOTATION)
        .cloned()
        .or_else(|| previous.core().last_handled_reconcile_at.clone());
    let transitions: Vec<_> = conditions.transitions().into_iter().cloned().collect();
    *status.core_mut() = crate::api::common::StatusCore {
        observed_generation: generation,
        conditions: conditions.into_vec(),
        last_handled_reconcile_at: handled,
    };

    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    if let Some(ready) = find_condition(&status.core().conditions, ct::READY) {
        ctx.core().metrics.set_ready(
            K::KIND,
            &namespace,
            &name,
            ready.status == ConditionStatus::True,
            &ready.reason,
        );
    }

    if obj.status() != Some(&status) {
        write_status(&*obj, ctx.core(), &status).await?;
        for condition in transitions {
            let first = find_condition(&previous.core().conditions, &condition.type_).is_none();
            publish_transition(&*obj, ctx.core(), &condition, first).await;
        }
    }

    Ok(match requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// What [`evaluate_active`] came to.
enum Verdict {
    /// The kind's own work ran; look again after this long.
    Evaluated(Duration),
    /// Invalid, or waiting for a dependency: only a change to the resource or
    /// a dependency can help. The conditions say why.
    Inactive,
    /// The OdooConnection has no verdict yet: nothing to report.
    ConnectionPending,
}

/// Validation, dependencies, then the kind's own work.
async fn evaluate_active<K: Reconciler>(
    obj: Arc<K>,
    ctx: Arc<K::Context>,
    conditions: &mut ConditionSet,
    status: &mut K::Status,
) -> Result<Verdict, Error> {
    let core = ctx.core();
    let errors = obj.check_spec();
    if !errors.is_empty() {
        let message = FieldError::join(&errors);
        conditions
            .set(
                ct::READY,
                ConditionStatus::False,
                reasons::INVALID_SPEC,
                message.clone(),
            )
            .set(
                ct::STALLED,
                ConditionStatus::True,
                reasons::INVALID_SPEC,
                message,
            )
            .set(
                ct::RECONCILING,
                ConditionStatus::False,
                reasons::INVALID_SPEC,
                "",
            );
        return Ok(Verdict::Inactive);
    }
    let namespace = obj.namespace().unwrap_or_default();

    if let Some(connection) = obj.connection_name() {
        let found = core
            .connections
            .get(&ObjectRef::<OdooConnection>::new(connection).within(&namespace));
        match found {
            None => {
                waiting(
                    conditions,
                    reasons::CONNECTION_NOT_FOUND,
                    format!(
                        "spec.connectionRef.name: OdooConnection {namespace}/{connection} not found"
                    ),
                );
                return Ok(Verdict::Inactive);
            }
            Some(conn) => {
                let Some(ready) = conn
                    .status
                    .as_ref()
                    .and_then(|s| find_condition(&s.core.conditions, ct::READY))
                else {
                    return Ok(Verdict::ConnectionPending);
                };
                if ready.status != ConditionStatus::True {
                    waiting(
                        conditions,
                        reasons::CONNECTION_NOT_READY,
                        format!(
                            "spec.connectionRef.name: OdooConnection {namespace}/{connection} is not Ready"
                        ),
                    );
                    return Ok(Verdict::Inactive);
                }
            }
        }
    }

    for (field, secret_ref) in obj.secret_refs() {
        let secrets: Api<Secret> = Api::namespaced(core.client.clone(), &namespace);
        core.api_limiter.until_ready().await;
        let secret = secrets
            .get_opt(&secret_ref.name)
            .await
            .map_err(Error::Kube)?;
        let Some(secret) = secret else {
            waiting(
                conditions,
                reasons::SECRET_NOT_FOUND,
                format!("{field}: Secret {namespace}/{} not found", secret_ref.name),
            );
            return Ok(Verdict::Inactive);
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&secret_ref.key))
            .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&secret_ref.key).cloned())
            });
        let Some(value) = value else {
            waiting(
                conditions,
                reasons::SECRET_KEY_MISSING,
                format!(
                    "{field}: Secret {namespace}/{} has no key {:?}",
                    secret_ref.name, secret_ref.key
                ),
            );
            return Ok(Verdict::Inactive);
        };
        if let Some(kind) = kinds::secret_use(&field)
            && let Err(problem) = check_secret(kind, &crate::odoo::Secret::new(value))
        {
            // Waiting, not stalled: fixing the Secret reconciles the object
            // through the Secret watch.
            waiting(
                conditions,
                reasons::INVALID_SECRET,
                format!(
                    "{field}: the value of key {:?} in Secret {namespace}/{} {problem}",
                    secret_ref.key, secret_ref.name
                ),
            );
            return Ok(Verdict::Inactive);
        }
    }

    let after = K::evaluate(obj, ctx, conditions, status).await?;
    Ok(Verdict::Evaluated(after))
}

/// Waiting on something outside the resource: kstatus reads it as InProgress.
fn waiting(conditions: &mut ConditionSet, reason: &str, message: String) {
    conditions
        .set(ct::READY, ConditionStatus::False, reason, message.clone())
        .set(ct::RECONCILING, ConditionStatus::True, reason, message)
        .set(ct::STALLED, ConditionStatus::False, reason, "");
}

/// A settled state: neither progressing nor stalled.
pub fn settle(
    conditions: &mut ConditionSet,
    ready: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
) {
    conditions
        .set(ct::READY, ready, reason, message)
        .set(ct::RECONCILING, ConditionStatus::False, reason, "")
        .set(ct::STALLED, ConditionStatus::False, reason, "");
}

async fn write_status<K: Reconciler>(
    obj: &K,
    core: &Core,
    status: &K::Status,
) -> Result<(), Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(core.client.clone(), &namespace);
    // The resourceVersion makes the write conditional on the object this
    // status was computed from: another writer of the status (`planops scan`
    // in a CronJob writes `lastScan`) is never overwritten with a stale copy;
    // the 409 retries on the newer object (see `Error::is_stale_object`).
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": obj.applied_status(status),
    });
    core.api_limiter.until_ready().await;
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    core.metrics
        .status_writes
        .get_or_create(&super::metrics::KindLabels {
            kind: K::KIND.into(),
        })
        .inc();
    Ok(())
}

/// An Event for a condition that changed; `first`: the object had no
/// condition of this type before (its first verdict).
async fn publish_transition<K: Reconciler>(
    obj: &K,
    core: &Core,
    condition: &crate::api::common::Condition,
    first: bool,
) {
    // Reconciling and Stalled mirror Ready's story; one Event per story is enough.
    if condition.type_ == ct::RECONCILING
        || (condition.type_ == ct::STALLED && condition.status != ConditionStatus::True)
    {
        return;
    }
    let healthy = match condition.type_.as_str() {
        ct::STALLED => false,
        _ => condition.status == ConditionStatus::True || condition.reason == reasons::SUSPENDED,
    };
    // A new object that comes up healthy tells nothing its status does not:
    // at start-up that Event would be one more write per object (two with
    // Scheduled) for no news. A first verdict that is a problem still gets
    // its Warning, and every later change its Event.
    if first && healthy {
        return;
    }
    let note = if condition.message.is_empty() {
        format!("{} is {:?}", condition.type_, condition.status)
    } else {
        format!(
            "{} is {:?}: {}",
            condition.type_, condition.status, condition.message
        )
    };
    let type_ = if healthy {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let action = format!("{}Changed", condition.type_);
    publish(core, obj, type_, &condition.reason, &action, note).await;
}

/// Publishes one Event about `obj`, paced by the API rate limit like every
/// other write. An Event is a courtesy: failing to send one is logged, never
/// an error of the reconcile.
pub(super) async fn publish<K: PlanopsKind>(
    core: &Core,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(truncate(&note, 1024)),
        action: action.into(),
        secondary: None,
    };
    core.api_limiter.until_ready().await;
    if let Err(err) = core.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(kind = K::KIND, name = %obj.name_any(), error = %err, "could not publish event");
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with an ellipsis
/// when cut (Events allow 1 KiB of note).
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Reconcile requests from background tasks (scans, poll loops, the gateway)
/// to the running controllers of `K`, one channel per watched scope (`None`:
/// all namespaces). The reconciler stays the one status writer: a task that
/// changed something asks for a reconcile instead of writing status itself.
pub struct ReconcileRequests<K: kube::Resource> {
    senders: std::sync::Mutex<Vec<(Option<String>, ReconcileSender<K>)>>,
}

type ReconcileSender<K> = tokio::sync::mpsc::UnboundedSender<ObjectRef<K>>;

impl<K: kube::Resource> Default for ReconcileRequests<K> {
    fn default() -> Self {
        ReconcileRequests {
            senders: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl<K: kube::Resource> ReconcileRequests<K>
where
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Option<String>, ReconcileSender<K>)>> {
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called when the controllers of `scope` start: the stream to feed them.
    pub fn start(
        &self,
        scope: Option<String>,
    ) -> tokio::sync::mpsc::UnboundedReceiver<ObjectRef<K>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut senders = self.lock();
        senders.retain(|(s, _)| *s != scope);
        senders.push((scope, tx));
        rx
    }

    /// Called when the controllers stop (shutdown, lost lease).
    pub fn stop_all(&self) {
        self.lock().clear();
    }

    /// Asks the controller watching `object`'s namespace for a reconcile.
    pub fn request(&self, object: &ObjectRef<K>) {
        for (scope, tx) in self.lock().iter() {
            if scope.is_none() || *scope == object.namespace {
                // The receiver is gone only while controllers stop; nothing to do then.
                let _ = tx.send(object.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
