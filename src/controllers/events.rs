//! Event-driven re-evaluation of one `ExceptionRule` over the records an event names.
//!
//! The gateway hands over "records `ids` of `model` changed" (an Odoo automation
//! callback, or a supplier event's affected products); this runs the rule's scan and
//! actions focused on the products those records touch (see
//! [`crate::scan::focus`]). It acts exactly as a scheduled scan would for those
//! subjects (same fingerprints, so nothing is written twice) but never resolves
//! anything: what a focused scan did not look at has not cleared. Status stays the
//! scheduled scan's; events are visible in metrics and logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jiff::Timestamp;
use kube::ResourceExt;

use super::rule::RuleContext;
use super::scheduler::{load_memory, read_secrets, save_memory};
use crate::actions::{Acted, RunError};
use crate::api::ExceptionRule;
use crate::automation::{HintedRecord, Visibility, await_hinted_write};
use crate::engine::RuleRef;
use crate::run::RuleRun;
use crate::scan::{Focus, FocusError, ScanOptions};

/// Why an event could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The rule's connection has no connected client (yet).
    #[error("OdooConnection {0} has no connected client")]
    NotConnected(String),
    /// The event's records cannot be narrowed to the rule's subjects.
    #[error("narrowing the event to products: {0}")]
    Focus(#[from] FocusError),
    /// Reading or saving operator state in Kubernetes failed.
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    /// Looking for the hinted write in Odoo failed.
    #[error("waiting for the hinted write to be committed: {0}")]
    Hint(#[source] crate::odoo::OdooError),
    /// The scan or its actions failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl EventError {
    /// Whether retrying later may succeed (Odoo or the API server was unavailable),
    /// as opposed to an event this rule can never evaluate.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            EventError::Focus(FocusError::UnrelatedModel { .. } | FocusError::TooMany { .. })
        )
    }
}

/// One async lock per rule, taken by its scans and its event re-evaluations
/// around "read what exists, create what is missing".
#[derive(Default)]
pub struct RuleLocks {
    locks: Mutex<HashMap<RuleKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// `(namespace, name)` of a rule.
pub(super) type RuleKey = (String, String);

impl RuleLocks {
    /// The lock of `namespace/rule`.
    pub fn of(&self, namespace: &str, rule: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((namespace.to_string(), rule.to_string()))
            .or_default()
            .clone()
    }

    /// Forgets a deleted rule's lock (a holder keeps its own clone).
    pub fn forget(&self, namespace: &str, rule: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&(namespace.to_string(), rule.to_string()));
    }
}

/// What one focused evaluation did.
#[derive(Debug)]
pub struct FocusedRun {
    pub focus: Focus,
    /// `None` when the focus was empty and nothing was scanned.
    pub run: Option<Acted>,
    pub elapsed: std::time::Duration,
}

/// Re-evaluates `rule` for `ids` of `model`.
pub async fn reevaluate(
    ctx: &Arc<RuleContext>,
    rule: &ExceptionRule,
    model: &str,
    ids: &[i64],
) -> Result<FocusedRun, EventError> {
    let started = Instant::now();
    let namespace = rule.namespace().unwrap_or_default();
    let connection = &rule.spec.connection_ref.name;
    let client = ctx
        .odoo
        .get(&namespace, connection)
        .ok_or_else(|| EventError::NotConnected(format!("{namespace}/{connection}")))?;
    let detector = rule
        .spec
        .detector
        .validate()
        .map_err(|e| RunError::Scan(e.into()))?;
    let threshold_model = rule
        .spec
        .detector
        .field_threshold
        .as_ref()
        .map(|p| p.model.as_str());
    let focus =
        crate::scan::focus::focus_for(&client, detector, threshold_model, model, ids).await?;
    if focus.is_empty() {
        return Ok(FocusedRun {
            focus,
            run: None,
            elapsed: started.elapsed(),
        });
    }
    reevaluate_focus(ctx, &client, rule, focus, started).await
}

/// Re-evaluates `rule` for the record an Odoo webhook names, once Odoo
/// holds the write it reports: 17 and 18 post before they commit, so a
/// re-read made at once could see the old values and miss the exception.
/// Runs after the gateway answered Odoo, never inside the request.
pub async fn reevaluate_hint(
    ctx: &Arc<RuleContext>,
    rule: &ExceptionRule,
    hint: &HintedRecord,
) -> Result<FocusedRun, EventError> {
    let namespace = rule.namespace().unwrap_or_default();
    let connection = &rule.spec.connection_ref.name;
    let client = ctx
        .odoo
        .get(&namespace, connection)
        .ok_or_else(|| EventError::NotConnected(format!("{namespace}/{connection}")))?;
    match await_hinted_write(&client, hint)
        .await
        .map_err(EventError::Hint)?
    {
        Visibility::GaveUp => tracing::info!(
            namespace = %namespace,
            rule = %rule.name_any(),
            model = %hint.model,
            id = hint.id,
            "the hinted write is still not readable; evaluating what Odoo holds"
        ),
        Visibility::Visible { retries } if retries > 0 => tracing::debug!(
            model = %hint.model,
            id = hint.id,
            retries,
            "hinted write readable after Odoo's commit"
        ),
        _ => {}
    }
    reevaluate(ctx, rule, &hint.model, &[hint.id]).await
}

/// Re-evaluates `rule` for `products` (a supplier event's).
pub async fn reevaluate_products(
    ctx: &Arc<RuleContext>,
    rule: &ExceptionRule,
    products: Vec<i64>,
) -> Result<FocusedRun, EventError> {
    reevaluate(ctx, rule, "product.product", &products).await
}

async fn reevaluate_focus(
    ctx: &Arc<RuleContext>,
    client: &crate::odoo::OdooClient,
    rule: &ExceptionRule,
    focus: Focus,
    started: Instant,
) -> Result<FocusedRun, EventError> {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let lock = ctx.rule_locks.of(&namespace, &name);
    let _acting = lock.lock().await;
    let memory = load_memory(ctx, &namespace, &name)
        .await
        .map_err(|source| EventError::Kube {
            what: "reading the scan memory",
            source,
        })?;
    let secrets = read_secrets(&ctx.core, rule, &namespace)
        .await
        .map_err(|source| EventError::Kube {
            what: "reading notify secrets",
            source,
        })?;
    let time_zone = super::rule_scan::rule_time_zone(rule);
    let finished = RuleRun {
        client,
        rule: RuleRef {
            namespace: &namespace,
            rule: &name,
        },
        spec: &rule.spec,
        today: Timestamp::now().to_zoned(time_zone).date(),
        memory: &memory,
        secrets: &secrets,
        options: ScanOptions {
            focus: Some(&focus),
            ..Default::default()
        },
        policies: &super::approval::ListedPolicies {
            client: &ctx.core.client,
            limiter: Some(&ctx.core.api_limiter),
        },
    }
    .execute()
    .await?;
    super::approval::publish_gate(ctx, rule, &finished.gate).await;
    let run = finished.acted;
    // The focused scan saw a few purchase lines; the memory of all others stands.
    let mut merged = memory.clone();
    merged.purchase_dates.extend(
        run.outcome
            .memory
            .purchase_dates
            .iter()
            .map(|(k, v)| (*k, *v)),
    );
    if merged != memory {
        save_memory(ctx, rule, &merged)
            .await
            .map_err(|source| EventError::Kube {
                what: "saving the scan memory",
                source,
            })?;
    }
    tracing::info!(
        namespace = %namespace,
        rule = %name,
        products = focus.products.len(),
        records = focus.records.len(),
        exceptions = run.outcome.exceptions.len(),
        opened = run.report.opened().len(),
        odoo_calls = run.outcome.calls.requests + run.action_calls,
        millis = started.elapsed().as_millis() as u64,
        "event re-evaluated"
    );
    Ok(FocusedRun {
        focus,
        run: Some(run),
        elapsed: started.elapsed(),
    })
}
