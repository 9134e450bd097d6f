//! Types shared by every PlanOps resource: references, GitOps controls and the
//! Kubernetes-convention conditions that kstatus, Flux and Argo CD read.

use jiff::Timestamp;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every PlanOps resource.
pub const GROUP: &str = "planops.io";
/// Field manager used for every server-side apply PlanOps makes.
pub const FIELD_MANAGER: &str = "planops";
/// Field manager of `planops scan <namespace>/<rule>` (the CronJob of
/// `execution: CronJob`), which owns the rule's `status.lastScan` and
/// `status.topExceptions` in that mode.
pub const SCAN_FIELD_MANAGER: &str = "planops-scan";
/// Finalizer that guards the Odoo-side clean-up of a resource.
pub const FINALIZER: &str = "planops.io/cleanup";
/// Annotation that pauses reconciliation (status is still refreshed).
pub const PAUSE_ANNOTATION: &str = "planops.io/paused";
/// Flux's on-demand reconcile annotation, echoed in `status.lastHandledReconcileAt`.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// A reference to another PlanOps resource in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the referenced resource, in this resource's namespace.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// A key of a Secret in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in this resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What happens to the records PlanOps created in Odoo when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove what PlanOps created in Odoo for this resource (automation records, open activities it owns).
    #[default]
    Delete,
    /// Leave everything in Odoo as it is.
    Orphan,
}

/// `True`, `False` or `Unknown`, as in `metav1.Condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// One observation of the resource's state, in the Kubernetes API convention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: `Ready` (summary), `Reconciling` and `Stalled` (kstatus, abnormal-true), or a kind-specific type such as `Synced` or `Scheduled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// One-word CamelCase reason, stable across releases (for example `Connected`, `InvalidSpec`).
    pub reason: String,
    /// Human-readable detail; names the offending field when the spec is at fault.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The part of the status every PlanOps kind shares, flattened into each kind's
/// status: what kstatus, Argo CD and Flux read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCore {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` on every kind, and the kind's own
    /// (`Synced`, `Scheduled`, `Connected`); each reason is listed in the kind's
    /// reference documentation.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Last value of the `reconcile.fluxcd.io/requestedAt` annotation that was handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Condition types used across kinds.
pub mod condition_types {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const SYNCED: &str = "Synced";
    pub const SCHEDULED: &str = "Scheduled";
    pub const CONNECTED: &str = "Connected";
}

/// Condition reasons. Stable strings: alerts and dashboards key on them.
pub mod reasons {
    pub const RECONCILED: &str = "Reconciled";
    pub const PROGRESSING: &str = "Progressing";
    pub const SUSPENDED: &str = "Suspended";
    pub const PAUSED: &str = "Paused";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const CONNECTION_NOT_FOUND: &str = "ConnectionNotFound";
    pub const CONNECTION_NOT_READY: &str = "ConnectionNotReady";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
    /// A Secret's value cannot serve its use: not a `whsec_` secret where one
    /// is needed, or shorter than the minimum for a signing key or token.
    pub const INVALID_SECRET: &str = "InvalidSecret";
    pub const CONNECTED: &str = "Connected";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const UNREACHABLE: &str = "Unreachable";
    pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";
    pub const NOT_ACTIVE: &str = "NotActive";
    pub const SCHEDULED: &str = "Scheduled";
    pub const NOT_SCHEDULED: &str = "NotScheduled";
    /// `execution: CronJob`, but the operator was not told its image.
    pub const NO_SCAN_IMAGE: &str = "NoScanImage";
    pub const DELETING: &str = "Deleting";
    /// A scheduled scan failed (Event reason and `Ready` reason of an ExceptionRule).
    pub const SCAN_FAILED: &str = "ScanFailed";
    /// `Ready` of an ExceptionRule: the last scan completed but left writes failed
    /// or unknown, which the next scan retries.
    pub const PARTIAL_FAILURE: &str = "PartialFailure";
    /// A scheduled scan was not started: the previous one still ran under
    /// `concurrencyPolicy: Forbid`, or a missed run was past its starting deadline.
    pub const SCAN_SKIPPED: &str = "ScanSkipped";
    /// A running scan was cancelled for a newer one (`concurrencyPolicy: Replace`).
    pub const SCAN_REPLACED: &str = "ScanReplaced";
    /// `Synced`: the Odoo automation records match the spec.
    pub const IN_SYNC: &str = "InSync";
    /// `Synced` (and an Event): drift in Odoo (edited, disabled, deleted) was repaired.
    pub const REPAIRED: &str = "Repaired";
    /// `Synced`: Odoo could not be reached to compare or repair the automation.
    pub const ODOO_UNREACHABLE: &str = "OdooUnreachable";
    /// `Synced`: the OdooConnection has no `callbackBaseUrl`, so Odoo cannot call the gateway.
    pub const NO_CALLBACK_URL: &str = "NoCallbackUrl";
    /// `Synced`: Odoo 16 has no webhook action; changes are found by polling `write_date`.
    pub const POLLING_FALLBACK: &str = "PollingFallback";
    /// `Synced`: Odoo refused the automation (model or field missing, access denied, ...).
    pub const SYNC_FAILED: &str = "SyncFailed";
    /// `Synced`: `mode: DryRun` rules compare but write nothing to Odoo.
    pub const DRY_RUN: &str = "DryRun";
}

/// Returns whether the pause annotation asks PlanOps to leave the resource alone.
pub fn is_paused(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Builds the conditions of a status so that an unchanged observation keeps its
/// `lastTransitionTime`: a resource whose world did not move produces a status
/// equal to the one already stored, and so no write.
#[derive(Debug)]
pub struct ConditionSet {
    previous: Vec<Condition>,
    next: Vec<Condition>,
    generation: Option<i64>,
    now: String,
}

impl ConditionSet {
    pub fn new(previous: &[Condition], generation: Option<i64>) -> Self {
        ConditionSet {
            previous: previous.to_vec(),
            next: Vec::new(),
            generation,
            now: Timestamp::now().to_string(),
        }
    }

    /// Sets one condition; the transition time moves only when the status does.
    pub fn set(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| self.now.clone());
        self.next.retain(|c| c.type_ != type_);
        self.next.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.into(),
            last_transition_time,
            observed_generation: self.generation,
        });
        self
    }

    /// Conditions whose status differs from the previous set: the transitions
    /// worth a Kubernetes Event.
    pub fn transitions(&self) -> Vec<&Condition> {
        self.next
            .iter()
            .filter(|c| {
                !self
                    .previous
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status && p.reason == c.reason)
            })
            .collect()
    }

    /// The reason of a condition set so far.
    pub fn reason(&self, type_: &str) -> Option<&str> {
        self.next
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.reason.as_str())
    }

    pub fn into_vec(self) -> Vec<Condition> {
        self.next
    }
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_condition_keeps_its_transition_time() {
        let mut first = ConditionSet::new(&[], Some(1));
        first.set(
            condition_types::READY,
            ConditionStatus::True,
            reasons::RECONCILED,
            "ok",
        );
        let mut stored = first.into_vec();
        stored[0].last_transition_time = "2020-01-01T00:00:00Z".into();

        let mut again = ConditionSet::new(&stored, Some(1));
        again.set(
            condition_types::READY,
            ConditionStatus::True,
            reasons::RECONCILED,
            "ok",
        );
        assert!(again.transitions().is_empty());
        assert_eq!(again.into_vec(), stored);
    }

    #[test]
    fn status_change_moves_transition_time_and_reports_transition() {
        let stored = vec![Condition {
            type_: condition_types::READY.into(),
            status: ConditionStatus::True,
            reason: reasons::RECONCILED.into(),
            message: String::new(),
            last_transition_time: "2020-01-01T00:00:00Z".into(),
            observed_generation: Some(1),
        }];
        let mut next = ConditionSet::new(&stored, Some(2));
        next.set(
            condition_types::READY,
            ConditionStatus::False,
            reasons::INVALID_SPEC,
            "spec.url: bad",
        );
        assert_eq!(next.transitions().len(), 1);
        let out = next.into_vec();
        assert_ne!(out[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert_eq!(out[0].observed_generation, Some(2));
    }

    #[test]
    fn pause_annotation_is_read_case_insensitively() {
        let mut a = std::collections::BTreeMap::new();
        assert!(!is_paused(Some(&a)));
        a.insert(PAUSE_ANNOTATION.to_string(), "True".to_string());
        assert!(is_paused(Some(&a)));
        a.insert(PAUSE_ANNOTATION.to_string(), "no".to_string());
        assert!(!is_paused(Some(&a)));
        assert!(!is_paused(None));
    }
}
