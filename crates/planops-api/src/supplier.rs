//! `SupplierConnector`: a supplier's confirmations, delays and shipments, received
//! by webhook or polled, mapped to normalised events and applied in Odoo.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, LocalObjectRef, SecretKeyRef, StatusCore};

/// A supplier's event feed (webhook and/or poll) mapped onto its purchase orders in Odoo.
// clippy reads the repeated `type_ = ...` keys of separate `printcolumn(...)` entries as
// one duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "planops.io",
    version = "v1alpha1",
    kind = "SupplierConnector",
    namespaced,
    status = "SupplierConnectorStatus",
    shortname = "supc",
    category = "planops",
    doc = "A supplier's confirmations, delays and shipments, received by webhook or polled, mapped with JSONPath to normalised events and applied to its purchase orders in Odoo.",
    printcolumn(
        name = "Connection",
        type_ = "string",
        json_path = ".spec.connectionRef.name"
    ),
    printcolumn(name = "Route", type_ = "string", json_path = ".status.routePath"),
    printcolumn(
        name = "Accepted",
        type_ = "integer",
        json_path = ".status.events.accepted"
    ),
    printcolumn(
        name = "Rejected",
        type_ = "integer",
        json_path = ".status.events.rejected"
    ),
    printcolumn(
        name = "Last Event",
        type_ = "date",
        json_path = ".status.lastEventTime"
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
#[serde(rename_all = "camelCase")]
pub struct SupplierConnectorSpec {
    /// The `OdooConnection` (same namespace) holding the supplier's purchase orders.
    pub connection_ref: LocalObjectRef,
    /// The supplier in Odoo (`res.partner`), by exactly one of id, reference or name.
    pub supplier: SupplierSelector,
    /// How events arrive: a webhook route on the gateway, polling of the supplier's API, or both.
    pub inbound: InboundSpec,
    /// How a payload maps onto a normalised supplier event (RFC 9535 JSONPath expressions).
    pub mapping: MappingSpec,
    /// What an accepted event does in Odoo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<EffectsSpec>,
    /// Stop acting on this resource; status is still refreshed and reports `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// `Delete` (default) removes what PlanOps created in Odoo for this connector on deletion; `Orphan` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Identifies a supplier (`res.partner`) in Odoo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.partnerId), has(self.ref), has(self.name)].filter(x, x).size() == 1").message("set exactly one of partnerId, ref or name"))]
pub struct SupplierSelector {
    /// Database id of the `res.partner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub partner_id: Option<i64>,
    /// The partner's internal reference (`ref`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub reference: Option<String>,
    /// The partner's exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name: Option<String>,
}

/// Where supplier events come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.webhook) || has(self.poll)").message("set webhook, poll or both"))]
pub struct InboundSpec {
    /// Receive events on a gateway route, `/hooks/suppliers/<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookInbound>,
    /// Poll the supplier's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollInbound>,
}

/// A webhook route on the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookInbound {
    /// How a delivery proves it comes from the supplier.
    pub auth: WebhookAuth,
    /// Largest accepted delivery age (and clock skew), in seconds, against replays: for Standard Webhooks, and for hmacSha256 with a timestampHeader. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub timestamp_tolerance_seconds: Option<u32>,
    /// Largest accepted body, in bytes. Default 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 16777216))]
    pub max_body_bytes: Option<u32>,
    /// Deliveries accepted per second on this route before answering 429. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub rate_limit_per_second: Option<u32>,
}

/// Exactly one authentication scheme for a webhook route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.standardWebhooks), has(self.hmacSha256), has(self.bearer)].filter(x, x).size() == 1").message("set exactly one of standardWebhooks, hmacSha256 or bearer"))]
pub struct WebhookAuth {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` (HMAC-SHA256, `whsec_` secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_webhooks: Option<StandardWebhooksAuth>,
    /// A generic HMAC-SHA256 signature of the body in a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_sha256: Option<HmacAuth>,
    /// A static bearer token in the `Authorization` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerAuth>,
}

/// Standard Webhooks signing secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandardWebhooksAuth {
    /// Secret keys holding the signing secrets; several are accepted at once during a rotation.
    #[schemars(length(min = 1, max = 5))]
    pub secret_refs: Vec<SecretKeyRef>,
}

/// Generic HMAC-SHA256 of the raw body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HmacAuth {
    /// Secret key holding the shared secret.
    pub secret_ref: SecretKeyRef,
    /// Header carrying the signature. Default `X-Signature-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub header: Option<String>,
    /// Prefix before the hex digest in the header, for example `sha256=`. Default empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub prefix: Option<String>,
    /// Header carrying the Unix time in seconds at which the sender signed, for example `X-Signature-Timestamp`. Set: the signature covers `<timestamp>.<body>` and a delivery outside `timestampToleranceSeconds` is refused, even after a restart. Unset: the signature covers the body alone, and only the gateway's in-memory dedup stops a replayed delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub timestamp_header: Option<String>,
}

/// A static bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BearerAuth {
    /// Secret key holding the token.
    pub secret_ref: SecretKeyRef,
}

/// Polling of a supplier API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.bearerTokenRef) && has(self.headerAuth))").message("set at most one of bearerTokenRef or headerAuth"))]
pub struct PollInbound {
    /// URL polled with GET (http or https); the cursor is appended as a query parameter.
    #[schemars(length(min = 1, max = 2048), pattern(r"^https?://[^\s/]+(/\S*)?$"))]
    pub url: String,
    /// Seconds between polls. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub interval_seconds: Option<u32>,
    /// Bearer token for the supplier API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_ref: Option<SecretKeyRef>,
    /// A header whose value comes from a Secret (for API-key schemes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_auth: Option<HeaderAuth>,
    /// Query parameter carrying the cursor. Default `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub cursor_param: Option<String>,
    /// JSONPath to the list of events in a poll response. Default `$.events[*]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub items_path: Option<String>,
    /// JSONPath to the next cursor in a poll response. Default `$.nextCursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub next_cursor_path: Option<String>,
}

/// A request header whose value is read from a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAuth {
    /// Header name, for example `X-Api-Key`.
    #[schemars(length(min = 1, max = 128))]
    pub header: String,
    /// Secret key holding the header value.
    pub secret_ref: SecretKeyRef,
}

/// Normalised supplier event types.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum SupplierEventType {
    /// The supplier confirms the order or lines, with promised dates.
    Confirmation,
    /// The supplier announces a later date.
    Delay,
    /// Goods have shipped.
    Shipment,
    /// The supplier cancels the order or lines.
    Cancellation,
}

/// JSONPath (RFC 9535) expressions from a payload to a normalised supplier event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingSpec {
    /// Path to the supplier's event type, for example `$.type`.
    #[schemars(length(min = 1, max = 512))]
    pub event_type: String,
    /// Supplier event type values mapped to normalised types, for example `{"order.delayed": "Delay"}`. Unset: the value must already be one of the normalised names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100))]
    pub event_type_values: BTreeMap<String, SupplierEventType>,
    /// Path to a unique event id used for deduplication. Default: the `webhook-id` header, else a hash of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub event_id: Option<String>,
    /// Path to the purchase order reference (the Odoo PO name or the supplier's `partner_ref`).
    #[schemars(length(min = 1, max = 512))]
    pub purchase_order_ref: String,
    /// Path to the list of lines. Unset: the event applies to the whole order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub lines: Option<String>,
    /// Path, relative to a line (`$` is the line), to the product code (`default_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub product_code: Option<String>,
    /// Path, relative to a line, to the quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub quantity: Option<String>,
    /// Path (relative to a line when `lines` is set) to the promised date (ISO 8601 date or date-time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub promised_date: Option<String>,
}

/// What an accepted supplier event does in Odoo.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectsSpec {
    /// Write promised dates onto the purchase lines (`date_planned`). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_promised_dates: Option<bool>,
    /// Post a chatter note on the purchase order with the supplier's message attached as evidence. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chatter_note: Option<bool>,
    /// Window of receipts over which lead-time statistics are measured, in days. Default 180.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 7, max = 1095))]
    pub lead_time_window_days: Option<u32>,
    /// `ExceptionRule`s (same namespace) re-evaluated at once for the affected products.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub reevaluate_rules: Vec<LocalObjectRef>,
}

/// Counts of events seen by a connector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicate: u64,
}

/// Measured supplier lead time over the effects window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadTimeStats {
    /// Median lead time in days.
    pub p50_days: f64,
    /// 90th percentile lead time in days.
    pub p90_days: f64,
    /// Share of receipts on or before their promised date, 0 to 1.
    pub on_time_rate: f64,
    /// Receipts measured.
    pub samples: u32,
}

/// Observed state of a `SupplierConnector`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierConnectorStatus {
    /// Generation, conditions, last handled reconcile request.
    #[serde(flatten)]
    pub core: StatusCore,
    /// Gateway path of the webhook route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_path: Option<String>,
    /// Resolved `res.partner` id of the supplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<i64>,
    /// Events received, accepted, rejected and duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventCounts>,
    /// When the last event was accepted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
    /// Poll cursor to resume from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_cursor: Option<String>,
    /// Measured lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_time: Option<LeadTimeStats>,
}
