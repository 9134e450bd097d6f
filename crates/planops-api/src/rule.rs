//! `ExceptionRule`: one detector over a scope of products, run on a schedule and
//! on Odoo events, whose findings become actions in Odoo.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, LocalObjectRef, SecretKeyRef, StatusCore};
use crate::params::{DetectorKind, DetectorSpec, ParamsError, Severity, SeverityThresholds};
use crate::schedule::ScheduleSpec;

/// Finds one kind of planning exception in Odoo and puts it in front of the accountable person.
// clippy reads the repeated `type_ = ...` keys of separate `printcolumn(...)` entries as
// one duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "planops.io",
    version = "v1alpha1",
    kind = "ExceptionRule",
    namespaced,
    status = "ExceptionRuleStatus",
    shortname = "exr",
    category = "planops",
    doc = "Finds one kind of planning exception (projected stockout, demand spike, supplier delay, order at risk, field threshold) in Odoo on a schedule and on Odoo events, and acts on it in Odoo exactly once.",
    printcolumn(
        name = "Connection",
        type_ = "string",
        json_path = ".spec.connectionRef.name"
    ),
    printcolumn(name = "Detector", type_ = "string", json_path = ".status.detector"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.triggers.schedule.cron"
    ),
    printcolumn(
        name = "Last Scan",
        type_ = "date",
        json_path = ".status.lastScan.startTime"
    ),
    printcolumn(
        name = "Open",
        type_ = "integer",
        json_path = ".status.lastScan.exceptionsOpen"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("[has(self.detector.projectedStockout), has(self.detector.demandSpike), has(self.detector.supplierDelay), has(self.detector.orderAtRisk), has(self.detector.fieldThreshold)].filter(x, x).size() == 1").message("spec.detector sets exactly one of projectedStockout, demandSpike, supplierDelay, orderAtRisk or fieldThreshold").field_path(".detector"))]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRuleSpec {
    /// The `OdooConnection` (same namespace) to scan.
    pub connection_ref: LocalObjectRef,
    /// The detector and its parameters: exactly one of `projectedStockout`, `demandSpike`, `supplierDelay`, `orderAtRisk`, `fieldThreshold`.
    pub detector: DetectorSpec,
    /// Which products and warehouses the rule looks at. Unset: every storable product in every warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSpec>,
    /// How priority maps to severity. Unset: the documented defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityThresholds>,
    /// When the rule runs: on a schedule, on Odoo events, or both.
    pub triggers: TriggersSpec,
    /// What PlanOps does in Odoo for each exception, in order.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub actions: Vec<ActionSpec>,
    /// `Enforce` writes to Odoo; `DryRun` computes and reports everything and writes nothing. Default `Enforce`.
    #[serde(default)]
    pub mode: RuleMode,
    /// `InProcess` (default) runs scans in the operator; `CronJob` materialises an owned `batch/v1` CronJob running `planops scan`.
    #[serde(default)]
    pub execution: Execution,
    /// Days an exception a planner closed stays quiet while its cause persists. Default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 365))]
    pub snooze_days: Option<u32>,
    /// Open exceptions listed in status, highest priority first. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub status_top_exceptions: Option<u32>,
    /// Stop scheduling and acting; status is still refreshed and reports `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// `Delete` (default) removes the Odoo automation and open activities PlanOps created for this rule on deletion; `Orphan` leaves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

impl ExceptionRuleSpec {
    /// What a scan checks before it reads anything: the detector's ranges and
    /// cross-field rules and the severity thresholds. The reconciler and
    /// `planops validate` run the same, so a spec every scan would refuse is
    /// refused (`Stalled/InvalidSpec`) before it is scheduled.
    pub fn validate_params(&self) -> Result<DetectorKind, ParamsError> {
        let kind = self.detector.validate()?;
        self.severity.clone().unwrap_or_default().validate()?;
        Ok(kind)
    }
}

/// Products and warehouses a rule looks at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSpec {
    /// Odoo domain over `product.product`, as JSON (`[["categ_id.name","=","Seasonal"]]`) or in the Python-literal form copied from Odoo (`[('categ_id.name', '=', 'Seasonal')]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 8192))]
    pub product_domain: Option<String>,
    /// Warehouse codes (`stock.warehouse.code`), for example `["WH", "EAST"]`. Empty: all warehouses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 64)))]
    pub warehouses: Vec<String>,
}

/// When a rule runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.schedule) || has(self.events)").message("set triggers.schedule, triggers.events or both"))]
pub struct TriggersSpec {
    /// Scheduled scans over the whole scope: the safety net that guarantees completeness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Odoo changes that re-evaluate the records they name at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventTriggerSpec>,
}

/// An Odoo automation rule, owned by PlanOps, that calls the gateway when records change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTriggerSpec {
    /// Odoo model watched, for example `sale.order.line` or `purchase.order.line`.
    #[schemars(
        length(min = 1, max = 128),
        pattern(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
    )]
    pub model: String,
    /// Record operations that fire the trigger: `Create`, `Write` or both (the default).
    // Not named `on`: YAML 1.1 parsers, kubectl's among them, read a bare `on` key as `true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub operations: Vec<RecordOperation>,
    /// Fields whose change fires the trigger on write. Empty: any field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 128)))]
    pub watched_fields: Vec<String>,
    /// Odoo domain the record must match after the change (JSON or Python-literal form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 8192))]
    pub filter_domain: Option<String>,
    /// On Odoo 16, which has no webhook action, the model is polled on `write_date` at this interval, in seconds. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 3600))]
    pub poll_interval_seconds: Option<u32>,
}

/// Record operations that fire an event trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RecordOperation {
    Create,
    Write,
}

/// One action taken for each exception: exactly one of its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.activity), has(self.proposePurchase), has(self.notify), has(self.chatterNote)].filter(x, x).size() == 1").message("an action sets exactly one of activity, proposePurchase, notify or chatterNote"))]
pub struct ActionSpec {
    /// A `mail.activity` on the product (or order) for the accountable person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<ActivityAction>,
    /// A draft RFQ to the product's main vendor for the suggested quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propose_purchase: Option<ProposePurchaseAction>,
    /// An outbound webhook signed with the Standard Webhooks scheme (n8n, Slack, Teams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyAction>,
    /// A chatter message on the record explaining what PlanOps found and did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatter_note: Option<ChatterNoteAction>,
}

/// Creates a `mail.activity` per exception.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.assignee.user), has(self.assignee.group)].filter(x, x).size() == 1").message("assignee sets exactly one of user or group"))]
pub struct ActivityAction {
    /// Name of the `mail.activity.type`. Default `To-Do`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub activity_type: Option<String>,
    /// Who gets the activity.
    pub assignee: Assignee,
    /// Days from detection to the activity's deadline. Default 1 (0 for Critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 365))]
    pub deadline_days: Option<u32>,
    /// Only exceptions at or above this severity get the action. Default `Low`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
}

/// The accountable person: one user, or the members of a group in turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignee {
    /// Odoo login of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub user: Option<String>,
    /// Group by external id (`purchase.group_purchase_user`) or full name; members take turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub group: Option<String>,
}

/// Creates a draft RFQ per exception that has a suggested order quantity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposePurchaseAction {
    /// Only exceptions at or above this severity get an RFQ. Default `High`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// `ApprovalPolicy` (same namespace) that gates confirming the RFQ. Unset: the best-matching policy governing `EmergencyPurchase`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy_ref: Option<LocalObjectRef>,
}

/// Posts each exception to an outbound webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyAction {
    /// Secret key holding the target URL (URLs of chat webhooks are credentials).
    pub url_secret_ref: SecretKeyRef,
    /// Secret key holding the Standard Webhooks signing secret (`whsec_...`). Unset: unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_ref: Option<SecretKeyRef>,
    /// Only exceptions at or above this severity are sent. Default `Medium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
}

/// Posts a chatter message on the record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatterNoteAction {
    /// Only exceptions at or above this severity get a note. Default `Low`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
}

/// Whether a rule writes to Odoo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RuleMode {
    /// Write activities, RFQs, notes and notifications.
    #[default]
    Enforce,
    /// Compute and report everything; write nothing to Odoo.
    DryRun,
}

/// Where scans run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Execution {
    /// In the operator process, on the leader.
    #[default]
    InProcess,
    /// In an owned `batch/v1` CronJob running `planops scan` with the operator's image.
    CronJob,
}

/// Outcome of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScanOutcome {
    Succeeded,
    Failed,
    Skipped,
}

/// Summary of the last scan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastScan {
    /// When the scan started (RFC 3339).
    pub start_time: String,
    /// The time the cron schedule named for this scan (RFC 3339); the start is later by
    /// the rule's jitter and any delay. Unset for scans not started by the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    /// Wall time of the scan, in milliseconds.
    pub duration_millis: u64,
    /// Product × warehouse (or record) subjects evaluated.
    pub subjects_evaluated: u64,
    /// Exceptions open after the scan.
    pub exceptions_open: u64,
    /// Exceptions newly opened by the scan.
    pub exceptions_opened: u64,
    /// Exceptions resolved by the scan.
    pub exceptions_resolved: u64,
    /// Calls made to Odoo.
    pub odoo_calls: u64,
    /// Writes the scan's actions did not make (Odoo refused or failed them); the next scan retries them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub writes_failed: u64,
    /// Writes whose outcome is unknown (the reply was lost and the look-up failed too); the next scan looks them up before writing, so none is duplicated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub writes_unknown: u64,
    /// `Succeeded`, `Failed` or `Skipped`. A scan that completed is `Succeeded` even when some writes failed: see `writesFailed` and `writesUnknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ScanOutcome>,
    /// Why the scan failed or was skipped, or which writes it left to the next scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// serde's `skip_serializing_if` hands the field by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One open exception, as listed in status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionSummary {
    /// Stable key of the exception; every Odoo write made for it carries it.
    pub fingerprint: String,
    /// What it is about, for example `[SKU-0042] Widget @ WH`.
    pub subject: String,
    pub severity: Severity,
    /// Impact × urgency.
    pub priority: f64,
    /// One line with the numbers.
    pub summary: String,
}

/// Observed state of an `ExceptionRule`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRuleStatus {
    /// Generation, conditions, last handled reconcile request.
    #[serde(flatten)]
    pub core: StatusCore,
    /// The detector in use, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// Summary of the last scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<LastScan>,
    /// When the next scheduled scan runs (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scan_time: Option<String>,
    /// The highest-priority open exceptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_exceptions: Vec<ExceptionSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_counts_are_optional_in_last_scan() {
        // A status written before the counts existed still reads.
        let older: LastScan = serde_json::from_value(serde_json::json!({
            "startTime": "2026-01-01T06:00:00Z", "durationMillis": 5, "subjectsEvaluated": 2,
            "exceptionsOpen": 1, "exceptionsOpened": 1, "exceptionsResolved": 0,
            "odooCalls": 9, "outcome": "Succeeded"
        }))
        .unwrap();
        assert_eq!((older.writes_failed, older.writes_unknown), (0, 0));
        // Zero counts stay out of the status, so a clean scan writes what it did before.
        let written = serde_json::to_value(&older).unwrap();
        assert!(written.get("writesFailed").is_none(), "{written}");
        let partial = LastScan {
            writes_failed: 2,
            writes_unknown: 1,
            ..older
        };
        let written = serde_json::to_value(&partial).unwrap();
        assert_eq!(written["writesFailed"], 2);
        assert_eq!(written["writesUnknown"], 1);
    }
}
