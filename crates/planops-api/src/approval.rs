//! `ApprovalPolicy`: risky actions wait for the accountable person in Odoo.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, LocalObjectRef, StatusCore};

/// Gates a kind of planning decision behind approval in Odoo, with levels, SLAs and escalation.
// clippy reads the repeated `type_ = ...` keys of separate `printcolumn(...)` entries as
// one duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "planops.io",
    version = "v1alpha1",
    kind = "ApprovalPolicy",
    namespaced,
    status = "ApprovalPolicyStatus",
    shortname = "apol",
    category = "planops",
    doc = "Routes a kind of planning decision (emergency purchase, forecast override, ...) through approval in Odoo, with levels of approvers, SLAs, escalation and segregation of duties.",
    printcolumn(
        name = "Connection",
        type_ = "string",
        json_path = ".spec.connectionRef.name"
    ),
    printcolumn(name = "Governs", type_ = "string", json_path = ".spec.governs"),
    printcolumn(name = "Backend", type_ = "string", json_path = ".spec.backend"),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.counts.pending"
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
#[x_kube(validation = Rule::new("!has(self.match) || !has(self.match.maxAmount) || !has(self.match.minAmount) || self.match.maxAmount >= self.match.minAmount").message("spec.match.maxAmount must be at least spec.match.minAmount"))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicySpec {
    /// The `OdooConnection` (same namespace) where approvals happen.
    pub connection_ref: LocalObjectRef,
    /// The kind of decision this policy governs.
    pub governs: GovernedAction,
    /// Which decisions of that kind need approval. Unset: all of them.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<ApprovalMatch>,
    /// Where approval happens: `ApprovalsApp` (Enterprise `approval.request`), `Activity` (a "to approve" activity, Community) or `Auto` (by the connection's edition). Default `Auto`.
    #[serde(default)]
    pub backend: ApprovalBackend,
    /// Name of the `approval.category` used by the `ApprovalsApp` backend. Default `PlanOps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub approval_category: Option<String>,
    /// Ordered levels of approvers; a request escalates to the next level when a level's SLA passes.
    #[schemars(length(min = 1, max = 10))]
    pub levels: Vec<ApprovalLevel>,
    /// The user who raised or owns the underlying action can never approve it. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segregation_of_duties: Option<bool>,
    /// What PlanOps does once approved. Default `ConfirmPurchase` for emergency purchases, `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_approval: Option<ApprovalOutcomeAction>,
    /// What PlanOps does once rejected. Default `CancelPurchase` for emergency purchases, `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_rejection: Option<ApprovalOutcomeAction>,
    /// Seconds between polls for decisions. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 86400))]
    pub poll_interval_seconds: Option<u32>,
    /// Stop acting on this resource; status is still refreshed and reports `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// `Delete` (default) withdraws pending requests PlanOps opened on deletion; `Orphan` leaves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Kinds of planning decisions that can be gated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GovernedAction {
    /// A draft RFQ proposed by a rule's `proposePurchase` action.
    EmergencyPurchase,
    /// A change to a product's forecast.
    ForecastOverride,
    /// A change in how scarce stock is allocated between orders or warehouses.
    AllocationChange,
    /// A safety-stock level outside policy.
    SafetyStockException,
}

/// Which decisions need approval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalMatch {
    /// Decisions worth at least this amount need approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_amount: Option<f64>,
    /// Decisions above this amount are left to another policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub max_amount: Option<f64>,
    /// ISO 4217 currency of the amounts. Default: the company currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// Odoo domain over `product.product` (JSON or the Python-literal form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 8192))]
    pub product_domain: Option<String>,
    /// Odoo domain over `res.partner` (JSON or the Python-literal form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 8192))]
    pub partner_domain: Option<String>,
}

/// Where approval happens in Odoo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalBackend {
    /// `ApprovalsApp` on Enterprise, `Activity` on Community.
    #[default]
    Auto,
    /// Enterprise Approvals: an `approval.request` in the configured category.
    ApprovalsApp,
    /// A "to approve" activity on the record; the activity's outcome is the decision.
    Activity,
}

/// One level of approvers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.users) + size(self.groups) > 0").message("a level needs at least one user or group"))]
pub struct ApprovalLevel {
    /// Name of the level, shown in notes and status.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Approvers by Odoo login.
    #[serde(default)]
    #[schemars(length(max = 50), inner(length(min = 1, max = 256)))]
    pub users: Vec<String>,
    /// Approver groups by external id (for example `purchase.group_purchase_manager`) or full name.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 256)))]
    pub groups: Vec<String>,
    /// Approvals needed at this level. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub min_approvals: Option<u32>,
    /// Hours before the request escalates to the next level (or is reported as breached at the last), counted from when the request was opened plus the SLAs of the earlier levels. Fractions are allowed down to 0.0001 h (a third of a second, for tests). Default 24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0001, max = 8760.0))]
    pub sla_hours: Option<f64>,
}

/// What PlanOps carries out once a decision is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalOutcomeAction {
    /// Confirm the draft RFQ.
    ConfirmPurchase,
    /// Cancel the draft RFQ.
    CancelPurchase,
    /// Record the decision only.
    None,
}

/// Request counts of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalCounts {
    pub pending: u64,
    pub approved: u64,
    pub rejected: u64,
    pub escalated: u64,
    pub sla_breaches: u64,
}

/// Observed state of an `ApprovalPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicyStatus {
    /// Generation, conditions, last handled reconcile request.
    #[serde(flatten)]
    pub core: StatusCore,
    /// Backend in use after `Auto` was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<ApprovalBackend>,
    /// Pending, approved, rejected, escalated and SLA-breached requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ApprovalCounts>,
    /// Median time from request to decision, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_cycle_time_seconds: Option<f64>,
}
