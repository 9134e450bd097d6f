//! `OdooConnection`: one Odoo database reached over its external API.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, StatusCore};

/// One Odoo database reached over its external API. Every other PlanOps resource names one.
// clippy reads the repeated `type_ = ...` keys of separate `printcolumn(...)` entries as
// one duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "planops.io",
    version = "v1alpha1",
    kind = "OdooConnection",
    namespaced,
    status = "OdooConnectionStatus",
    shortname = "odc",
    category = "planops",
    doc = "One Odoo database reached over its external API (JSON-RPC or JSON-2), with the credentials, rate limits and retries every call to it uses.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Database", type_ = "string", json_path = ".spec.database"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.serverVersion"
    ),
    printcolumn(name = "Edition", type_ = "string", json_path = ".status.edition"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OdooConnectionSpec {
    /// Base URL of the Odoo server, for example `https://erp.example.com` (http or https).
    #[schemars(length(min = 1, max = 2048), pattern(r"^https?://[^\s/]+(/\S*)?$"))]
    pub url: String,
    /// Name of the Odoo database.
    #[schemars(length(min = 1, max = 128))]
    pub database: String,
    /// Wire protocol: `Auto` (JSON-2 on Odoo 19 and later, JSON-RPC before), `JsonRpc` or `Json2`. Default `Auto`.
    #[serde(default)]
    pub protocol: OdooProtocol,
    /// Secret holding the login and the API key. Credentials are never given inline.
    pub credentials_secret_ref: CredentialsSecretRef,
    /// Limits on the load PlanOps puts on this Odoo, shared by every rule that uses the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Timeout of one call to Odoo, in seconds. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<u32>,
    /// Retries of transient failures (5xx, timeouts, resets, serialization failures, 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Base URL at which Odoo reaches the PlanOps gateway (for automation webhooks and approval callbacks), for example `https://planops.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://[^\s/]+(/\S*)?$"))]
    pub callback_base_url: Option<String>,
    /// How often the connection is probed while healthy, in seconds. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub probe_interval_seconds: Option<u32>,
    /// Stop acting on this resource; status is still refreshed and reports `Suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// `Delete` (default) removes what PlanOps created in Odoo through this connection's resources on deletion; `Orphan` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Wire protocol used to talk to Odoo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OdooProtocol {
    /// JSON-2 on Odoo 19 and later, JSON-RPC before.
    #[default]
    Auto,
    /// `/jsonrpc` with `execute_kw` (Odoo 16 to 19).
    JsonRpc,
    /// `/json/2/<model>/<method>` with a bearer API key (Odoo 19 and later).
    Json2,
}

/// Where the Odoo login and API key are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret, in this resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the login (user name) in the Secret. Default `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub login_key: Option<String>,
    /// Key of the API key in the Secret. Default `apiKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub api_key_key: Option<String>,
}

impl CredentialsSecretRef {
    pub fn login_key(&self) -> &str {
        self.login_key.as_deref().unwrap_or("login")
    }
    pub fn api_key_key(&self) -> &str {
        self.api_key_key.as_deref().unwrap_or("apiKey")
    }
}

/// Load limits toward one Odoo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained requests per second. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 10000.0))]
    pub requests_per_second: Option<f64>,
    /// Requests allowed in a burst above the sustained rate. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<u32>,
    /// Calls in flight at once. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_concurrent: Option<u32>,
    /// Budget of calls per minute on top of the rate (Odoo Online integrations are expected near 60). Unset: no budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub calls_per_minute: Option<u32>,
}

/// Retries of transient failures, with jittered exponential backoff.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.initialBackoffMillis) || !has(self.maxBackoffMillis) || self.maxBackoffMillis >= self.initialBackoffMillis").message("maxBackoffMillis must be at least initialBackoffMillis"))]
pub struct RetrySpec {
    /// Attempts per call, the first included. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: Option<u32>,
    /// First backoff, in milliseconds. Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub initial_backoff_millis: Option<u32>,
    /// Longest backoff, in milliseconds. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600000))]
    pub max_backoff_millis: Option<u32>,
    /// Total time one call may spend retrying, in seconds. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub budget_seconds: Option<u32>,
}

/// Odoo edition, which decides whether the Approvals app (`approval.request`) exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OdooEdition {
    Community,
    Enterprise,
}

/// Observed state of an `OdooConnection`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OdooConnectionStatus {
    /// Generation, conditions, last handled reconcile request.
    #[serde(flatten)]
    pub core: StatusCore,
    /// Server version reported by Odoo, for example `17.0+e`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Major version (16 to 19 supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_major_version: Option<u32>,
    /// `Community` or `Enterprise` (the Approvals app is there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<OdooEdition>,
    /// The authenticated user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// Protocol in use after `Auto` was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OdooProtocol>,
}
