//! Odoo automation as code: for an ExceptionRule's `triggers.events`, PlanOps
//! owns one `base.automation` and one `ir.actions.server` webhook action in
//! Odoo that call the gateway when a watched record changes.
//!
//! - [`sync`] makes Odoo match the desired [`AutomationSpec`]: creates what is
//!   missing, repairs what drifted (edited, archived or deleted in Odoo's UI)
//!   and reports each change. Both records carry external ids in module
//!   [`XMLID_MODULE`], created together with the record by Odoo's `load`, so
//!   retries and lost replies never create anything twice.
//! - [`remove`] deletes both records and their external ids.
//! - [`poll_changes`] is the Odoo 16 fallback (no webhook action there): the
//!   records of a model changed since a `write_date`.
//! - [`token`] keeps each rule's unguessable callback token in a Secret the
//!   rule owns; [`hook_path`] / [`hook_url`] say where Odoo calls.
//! - [`hint`] reads what a webhook names and, on Odoo 17 and 18 (which post
//!   before their commit), waits until that write can be read.

pub mod hint;
mod sync;
pub mod token;

pub use hint::{HintError, HintedRecord, Visibility, await_hinted_write, await_hinted_writes};
pub use sync::{
    AutomationKey, AutomationSpec, Change, Record, SyncError, SyncMode, SyncOutcome, Trigger,
    XMLID_MODULE, poll_changes, remove, sync,
};
pub use token::{TOKEN_KEY, approval_hook_secret_name, hook_secret_name};

/// Odoo major version from which the webhook server action exists.
pub const MIN_WEBHOOK_VERSION: u32 = 17;

/// Poll interval on Odoo 16 when `pollIntervalSeconds` is unset.
pub const DEFAULT_POLL_INTERVAL_SECONDS: u32 = 60;

/// Path of a rule's gateway route: `/hooks/odoo/<namespace>/<rule>`.
pub fn hook_path(namespace: &str, rule: &str) -> String {
    format!("/hooks/odoo/{namespace}/{rule}")
}

/// Path of an ApprovalPolicy's gateway route: `/hooks/approvals/<namespace>/<policy>`.
pub fn approval_hook_path(namespace: &str, policy: &str) -> String {
    format!("/hooks/approvals/{namespace}/{policy}")
}

/// The URL of an ApprovalPolicy's callback, as [`hook_url`] is a rule's.
pub fn approval_hook_url(
    callback_base_url: &str,
    namespace: &str,
    policy: &str,
    token: &str,
) -> String {
    format!(
        "{}{}?token={token}",
        callback_base_url.trim_end_matches('/'),
        approval_hook_path(namespace, policy)
    )
}

/// The URL Odoo's webhook action calls: the connection's `callbackBaseUrl`
/// (a trailing slash is tolerated), the rule's route and its token.
pub fn hook_url(callback_base_url: &str, namespace: &str, rule: &str, token: &str) -> String {
    format!(
        "{}{}?token={token}",
        callback_base_url.trim_end_matches('/'),
        hook_path(namespace, rule)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_url_joins_base_route_and_token() {
        assert_eq!(
            hook_url("https://planops.example.com/", "shop", "late-po", "t0k"),
            "https://planops.example.com/hooks/odoo/shop/late-po?token=t0k"
        );
        assert_eq!(
            hook_url("http://10.0.0.1:8081", "a", "b", "x"),
            "http://10.0.0.1:8081/hooks/odoo/a/b?token=x"
        );
    }
}
