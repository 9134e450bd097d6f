//! Event-driven re-evaluation of one `ExceptionRule` over the records an event names.
//!
//! The gateway hands over "records `ids` of `model` changed" (an Odoo automation
//! callback, or a supplier event's affected products); this runs the rule's scan and
//! actions focused on the products those records touch (see
//! [`crate::scan::focus`]). It acts exactly as a scheduled scan would for those
//! subjects (same fingerprints, so nothing is written twice) but never resolves
//! anything: what a focused scan did not look at has not cleared. Status stays the
//! scheduled scan's; events are visible in metrics and logs.
//!
//! Two things keep it at Odoo's pace. The scan reads over the stock snapshot
//! the rule's scans keep for the connection (the event's products and what
//! was written since, four calls with one warehouse touched; see
//! [`crate::scan::snapshot`]), falling back to a plain focused read when there
//! is none. And events of one rule that arrive while it runs wait together:
//! the first to get the rule's lock evaluates all of them in one run, the
//! others take its result, so a burst costs a few runs, not one per change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use jiff::Timestamp;
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

use super::rule::RuleContext;
use super::scheduler::{load_memory, read_secrets, save_memory};
use crate::actions::{Acted, RunError};
use crate::api::ExceptionRule;
use crate::automation::{HintedRecord, Visibility, await_hinted_writes};
use crate::engine::RuleRef;
use crate::run::RuleRun;
use crate::scan::focus::MAX_FOCUS_RECORDS;
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
    /// The run that took this event along with others failed.
    #[error("{0}")]
    Batch(String),
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
/// around "read what exists, create what is missing"; and the events of each
/// rule waiting for it.
#[derive(Default)]
pub struct RuleLocks {
    locks: Mutex<HashMap<RuleKey, Arc<tokio::sync::Mutex<()>>>>,
    waiting: Mutex<HashMap<RuleKey, Arc<Batch>>>,
    hints: Mutex<HashMap<RuleKey, HintQueue>>,
}

/// Odoo hints of one rule not taken by a round yet, by record, with the
/// latest `write_date` hinted.
#[derive(Default)]
struct HintQueue {
    waiting: BTreeMap<(String, i64), Option<jiff::civil::DateTime>>,
    /// A task is draining the queue.
    draining: bool,
}

/// Events of one rule gathered while they wait for its lock.
#[derive(Default)]
struct Batch {
    focus: Mutex<Focus>,
    /// Set by the run that evaluated the batch; a run that never finished
    /// (cancelled) leaves it empty, and the next member runs it again.
    done: OnceLock<Result<Arc<Acted>, String>>,
}

impl Batch {
    fn focus(&self) -> Focus {
        self.focus
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
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
        let key = (namespace.to_string(), rule.to_string());
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
    }

    /// Adds `focus` to the batch of `namespace/rule` that waits for the lock,
    /// or to a new one when there is none or it is full.
    fn join(&self, namespace: &str, rule: &str, focus: &Focus) -> Arc<Batch> {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let batch = waiting
            .entry((namespace.to_string(), rule.to_string()))
            .or_default();
        let full = {
            let gathered = batch.focus.lock().unwrap_or_else(|p| p.into_inner());
            gathered.products.len() + gathered.records.len() + focus.products.len()
                > MAX_FOCUS_RECORDS
        };
        if full {
            *batch = Arc::default();
        }
        let mut guard = batch.focus.lock().unwrap_or_else(|p| p.into_inner());
        let gathered = &mut *guard;
        for (into, from) in [
            (&mut gathered.products, &focus.products),
            (&mut gathered.records, &focus.records),
        ] {
            into.extend(from);
            into.sort_unstable();
            into.dedup();
        }
        drop(guard);
        batch.clone()
    }

    /// Queues `hint` for `namespace/rule`; whether no task drains the rule's
    /// hints (the caller then starts one).
    fn push_hint(&self, namespace: &str, rule: &str, hint: HintedRecord) -> bool {
        let mut hints = self
            .hints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let queue = hints
            .entry((namespace.to_string(), rule.to_string()))
            .or_default();
        // A record hinted twice is read once, after its later write.
        let written = queue
            .waiting
            .entry((hint.model, hint.id))
            .or_insert(hint.written);
        *written = (*written).max(hint.written);
        !std::mem::replace(&mut queue.draining, true)
    }

    /// Marks `key`'s queue as drained by nobody.
    fn stop_draining(&self, key: &RuleKey) {
        let mut hints = self
            .hints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(queue) = hints.get_mut(key) {
            queue.draining = false;
        }
    }

    /// The hints waiting for `namespace/rule`; `None`, and the drainer stops,
    /// when there are none.
    fn take_hints(&self, namespace: &str, rule: &str) -> Option<Vec<HintedRecord>> {
        let mut hints = self
            .hints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (namespace.to_string(), rule.to_string());
        let queue = hints.get_mut(&key)?;
        if queue.waiting.is_empty() {
            hints.remove(&key);
            return None;
        }
        let waiting = std::mem::take(&mut queue.waiting);
        Some(
            waiting
                .into_iter()
                .map(|((model, id), written)| HintedRecord { model, id, written })
                .collect(),
        )
    }

    /// Stops `batch` from taking more events: it is about to run, and an
    /// event joining now could miss its reads.
    fn close(&self, namespace: &str, rule: &str, batch: &Arc<Batch>) {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (namespace.to_string(), rule.to_string());
        if waiting
            .get(&key)
            .is_some_and(|open| Arc::ptr_eq(open, batch))
        {
            waiting.remove(&key);
        }
    }
}

/// What one focused evaluation did.
#[derive(Debug)]
pub struct FocusedRun {
    /// The event's own subjects.
    pub focus: Focus,
    /// The run that evaluated them, with the other events it took along;
    /// `None` when the focus was empty and nothing was scanned.
    pub run: Option<Arc<Acted>>,
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
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let batch = ctx.rule_locks.join(&namespace, &name, &focus);
    let lock = ctx.rule_locks.of(&namespace, &name);
    let _acting = lock.lock().await;
    if let Some(done) = batch.done.get() {
        let run = done.clone().map_err(EventError::Batch)?;
        return Ok(FocusedRun {
            focus,
            run: Some(run),
            elapsed: started.elapsed(),
        });
    }
    ctx.rule_locks.close(&namespace, &name, &batch);
    let result = reevaluate_focus(ctx, &client, rule, batch.focus(), started)
        .await
        .map(Arc::new);
    let _ = batch.done.set(match &result {
        Ok(run) => Ok(run.clone()),
        Err(err) => Err(err.to_string()),
    });
    Ok(FocusedRun {
        focus,
        run: Some(result?),
        elapsed: started.elapsed(),
    })
}

/// Takes in the record an Odoo webhook names for `rule`. Hints of one rule
/// are evaluated by one task at a time, which takes every hint waiting when it
/// starts a round: a burst of changes costs a few rounds, each about a dozen
/// Odoo calls, whatever the number of changes. Runs after the gateway answered
/// Odoo, never inside the request; a failed round is logged, and the next
/// scheduled scan covers what it missed.
pub fn queue_hint(ctx: &Arc<RuleContext>, rule: &Arc<ExceptionRule>, hint: HintedRecord) {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    if ctx.rule_locks.push_hint(&namespace, &name, hint) {
        // Work of the rule's shard's term: a replica that stops holding it
        // stops acting on what it was told while it held it.
        let term = ctx.core.work_for(rule.as_ref());
        tokio::spawn(drain_hints(ctx.clone(), rule.clone(), term));
    }
}

/// Evaluates `rule`'s waiting hints, round after round, until none is left
/// or `term` ends.
async fn drain_hints(ctx: Arc<RuleContext>, rule: Arc<ExceptionRule>, term: CancellationToken) {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let mut draining = Draining {
        locks: &ctx.rule_locks,
        key: (namespace.clone(), name.clone()),
        done: false,
    };
    let rounds = async {
        while let Some(hints) = ctx.rule_locks.take_hints(&namespace, &name) {
            let count = hints.len();
            if let Err(err) = reevaluate_hints(&ctx, &rule, hints).await {
                tracing::warn!(
                    namespace = %namespace,
                    rule = %name,
                    hints = count,
                    error = %err,
                    "re-evaluating after Odoo hints failed; the next scan covers them"
                );
            }
        }
    };
    tokio::select! {
        () = rounds => draining.done = true,
        () = term.cancelled() => {}
    }
}

/// Lets the next hint of a rule start a drainer when this one stops early
/// (its term ended, or it panicked): the queue would wait forever otherwise.
struct Draining<'a> {
    locks: &'a RuleLocks,
    key: RuleKey,
    /// The drainer found the queue empty (and removed it) itself.
    done: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.locks.stop_draining(&self.key);
        }
    }
}

/// Re-evaluates `rule` for the records Odoo webhooks named, once Odoo holds
/// the writes they report: 17 and 18 post before they commit, so a re-read
/// made at once could see the old values and miss the exception.
async fn reevaluate_hints(
    ctx: &Arc<RuleContext>,
    rule: &ExceptionRule,
    hints: Vec<HintedRecord>,
) -> Result<(), EventError> {
    let namespace = rule.namespace().unwrap_or_default();
    let connection = &rule.spec.connection_ref.name;
    let client = ctx
        .odoo
        .get(&namespace, connection)
        .ok_or_else(|| EventError::NotConnected(format!("{namespace}/{connection}")))?;
    let mut by_model: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for hint in &hints {
        by_model.entry(&hint.model).or_default().push(hint.id);
    }
    for (model, ids) in by_model {
        match await_hinted_writes(&client, model, &hints)
            .await
            .map_err(EventError::Hint)?
        {
            Visibility::GaveUp => tracing::info!(
                namespace = %namespace,
                rule = %rule.name_any(),
                model,
                "a hinted write is still not readable; evaluating what Odoo holds"
            ),
            Visibility::Visible { retries } if retries > 0 => tracing::debug!(
                model,
                records = ids.len(),
                retries,
                "hinted writes readable after Odoo's commit"
            ),
            _ => {}
        }
        for chunk in ids.chunks(MAX_FOCUS_RECORDS) {
            reevaluate(ctx, rule, model, chunk).await?;
        }
    }
    Ok(())
}

/// Re-evaluates `rule` for `products` (a supplier event's).
pub async fn reevaluate_products(
    ctx: &Arc<RuleContext>,
    rule: &ExceptionRule,
    products: Vec<i64>,
) -> Result<FocusedRun, EventError> {
    reevaluate(ctx, rule, "product.product", &products).await
}

/// One run of `rule` over `focus`, under the rule's lock.
async fn reevaluate_focus(
    ctx: &Arc<RuleContext>,
    client: &crate::odoo::OdooClient,
    rule: &ExceptionRule,
    focus: Focus,
    started: Instant,
) -> Result<Acted, EventError> {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    // The connection's cache: the stock snapshot and demand history its
    // scans keep, which the focused scan reads over.
    let history_key = super::rule_scan::connection_history_key(
        &ctx.core.connections,
        &namespace,
        &rule.spec.connection_ref.name,
    );
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
            history: history_key.as_ref().map(|k| (&ctx.history, k)),
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
        scan_calls = run.outcome.calls.requests,
        odoo_calls = run.outcome.calls.requests + run.action_calls,
        over_snapshot = run.outcome.stock_snapshot.is_some_and(|s| !s.rebuilt),
        millis = started.elapsed().as_millis() as u64,
        "event re-evaluated"
    );
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(id: i64, written: Option<&str>) -> HintedRecord {
        HintedRecord {
            model: "sale.order".into(),
            id,
            written: written.map(|w| w.parse().expect("a datetime")),
        }
    }

    fn products(ids: &[i64]) -> Focus {
        Focus {
            products: ids.to_vec(),
            ..Focus::default()
        }
    }

    #[test]
    fn hints_of_a_rule_are_drained_by_one_task_and_a_record_is_read_once() {
        let locks = RuleLocks::default();
        assert!(locks.push_hint("ns", "r", hint(1, Some("2026-01-01T10:00:00"))));
        assert!(!locks.push_hint("ns", "r", hint(1, Some("2026-01-01T10:00:05"))));
        assert!(!locks.push_hint("ns", "r", hint(2, None)));
        assert!(
            locks.push_hint("ns", "other", hint(1, None)),
            "another rule has its own drainer"
        );
        assert_eq!(
            locks.take_hints("ns", "r"),
            Some(vec![hint(1, Some("2026-01-01T10:00:05")), hint(2, None)])
        );
        // While a round runs, new hints wait for the next one.
        assert!(!locks.push_hint("ns", "r", hint(3, None)));
        assert_eq!(locks.take_hints("ns", "r"), Some(vec![hint(3, None)]));
        assert_eq!(locks.take_hints("ns", "r"), None);
        assert!(
            locks.push_hint("ns", "r", hint(4, None)),
            "an emptied queue starts a drainer again"
        );
        // A drainer stopped early lets the next hint start another.
        locks.stop_draining(&("ns".to_string(), "r".to_string()));
        assert!(locks.push_hint("ns", "r", hint(5, None)));
    }

    #[test]
    fn events_waiting_for_the_lock_join_one_batch_until_it_runs() {
        let locks = RuleLocks::default();
        let first = locks.join("ns", "r", &products(&[3, 1]));
        let second = locks.join("ns", "r", &products(&[1, 2]));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.focus().products, vec![1, 2, 3]);
        locks.close("ns", "r", &first);
        let later = locks.join("ns", "r", &products(&[5]));
        assert!(
            !Arc::ptr_eq(&first, &later),
            "a running batch takes no more"
        );
        assert_eq!(first.focus().products, vec![1, 2, 3]);
        let bulk: Vec<i64> = (10..10 + MAX_FOCUS_RECORDS as i64).collect();
        let full = locks.join("ns", "r", &products(&bulk));
        assert!(
            !Arc::ptr_eq(&later, &full),
            "a batch stays within the focus limit"
        );
        assert_eq!(later.focus().products, vec![5]);
    }
}
