//! Turns a scan's exceptions into Odoo writes, exactly once per fingerprint.
//!
//! [`plan`] is pure: from the rule's actions and the exceptions it lists the writes
//! ([`ActionPlan`], printable). [`execute`] carries a plan out against Odoo, keyed by
//! the fingerprint that every record it writes carries:
//!
//! | action | record | key |
//! |---|---|---|
//! | `activity` | `mail.activity` on the subject's record | fingerprint in `note` |
//! | `proposePurchase` | draft `purchase.order` + one line | `origin` = fingerprint |
//! | `chatterNote` | `message_post` on the subject's record | fingerprint in the body |
//! | `notify` | Standard Webhooks POST | `webhook-id` = fingerprint |
//!
//! Before writing, one read per action finds what earlier scans already wrote for
//! this rule. New records are created in one batched `create`; when its reply is
//! lost ("committed, reply dropped") the records are looked up again by their key
//! and only the missing ones are created, so a retry never duplicates. A write that
//! fails, or whose reply is lost and cannot be confirmed by that look-up, is reported
//! as [`WriteOutcome::Failed`] or [`WriteOutcome::Unknown`] and the other writes go
//! on; the next scan looks before it writes, so it settles both without a duplicate.
//! Only an error every call would meet (credentials, configuration) stops the run.
//! Activities of
//! the rule whose exception no longer shows are marked done with a note
//! (`action_feedback`). An activity marked done is not re-raised for
//! `snoozeDays` (default 7): Odoo's "done" message on the record, which quotes the
//! activity's note and so its fingerprint, says when, on every version. `DryRun` plans and writes nothing.

pub mod webhook;

use odoo_client::values::html_escape;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::managed::{Note, PostError, Posted, post_note};
use crate::scan::{Progress, Step};
use odoo_client::{Call, OdooClient, OdooError, Record, RecordExt, Secret};
use planops_api::common::SecretKeyRef;
use planops_api::rule::{ActionSpec, Assignee, ExceptionRuleSpec, RuleMode};
use planops_engine::inputs::add_days;
use planops_engine::{ExceptionNumbers, PlanningException, RuleRef, Severity, SubjectKind};

/// Why actions could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionError {
    /// Odoo refused or failed a call.
    #[error("{what}: {error}")]
    Odoo {
        /// What was being done.
        what: &'static str,
        /// The client's error (already redacted). Kept out of the `source` chain
        /// because the message already carries it: chains would print it twice.
        error: OdooError,
    },
}

impl ActionError {
    /// Whether every other write of the run would meet this error too, so that
    /// the run stops; any other error fails the writes of one action only.
    pub fn fails_every_call(&self) -> bool {
        match self {
            ActionError::Odoo { error, .. } => error.fails_every_call(),
        }
    }
}

fn odoo_err(what: &'static str) -> impl FnOnce(OdooError) -> ActionError {
    move |error| ActionError::Odoo { what, error }
}

/// Where notification URLs and signing secrets come from (Kubernetes Secrets in the
/// operator, environment variables on the command line).
pub trait SecretSource: Send + Sync {
    /// The value of `key` in Secret `name`, if available.
    fn get(&self, reference: &SecretKeyRef) -> Option<Secret>;
}

/// A source without secrets: notify actions report that they cannot send.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn get(&self, _: &SecretKeyRef) -> Option<Secret> {
        None
    }
}

/// Secrets held in memory, by `name/key`.
#[derive(Default)]
pub struct StaticSecrets(pub HashMap<String, Secret>);

impl SecretSource for StaticSecrets {
    fn get(&self, r: &SecretKeyRef) -> Option<Secret> {
        self.0.get(&format!("{}/{}", r.name, r.key)).cloned()
    }
}

/// The kind of write an action makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    /// A `mail.activity`.
    Activity,
    /// A draft RFQ.
    PurchaseDraft,
    /// A chatter message.
    ChatterNote,
    /// A webhook POST.
    Notify,
    /// Marking cleared exceptions' activities done.
    Resolve,
}

impl fmt::Display for WriteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteKind::Activity => "activity",
            WriteKind::PurchaseDraft => "draft RFQ",
            WriteKind::ChatterNote => "chatter note",
            WriteKind::Notify => "notify",
            WriteKind::Resolve => "resolve",
        })
    }
}

/// One write the actions would make.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWrite {
    /// Index of the action in `spec.actions`.
    pub action: usize,
    /// What kind of write.
    pub kind: WriteKind,
    /// Fingerprint of the exception (empty for `Resolve`).
    pub fingerprint: String,
    /// Subject label.
    pub subject: String,
    /// What would be written, in words.
    pub detail: String,
}

/// The writes of one scan, before they happen.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionPlan {
    /// `Enforce` or `DryRun`.
    pub mode: RuleMode,
    /// The writes, in action order then exception priority.
    pub writes: Vec<PlannedWrite>,
    /// Whether activities of cleared exceptions are resolved after the writes.
    pub resolves_cleared: bool,
}

impl fmt::Display for ActionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.mode {
            RuleMode::Enforce => "will write",
            RuleMode::DryRun => "would write (DryRun: nothing is written)",
        };
        writeln!(f, "{} writes {verb}", self.writes.len())?;
        for w in &self.writes {
            writeln!(
                f,
                "  {:<12} {:<40} {}",
                w.kind.to_string(),
                w.subject,
                w.detail
            )?;
        }
        if self.resolves_cleared {
            writeln!(
                f,
                "  then: mark this rule's activities whose exception cleared as done"
            )?;
        }
        Ok(())
    }
}

/// Whether `severity` is at or above `min`.
fn at_least(severity: Severity, min: Severity) -> bool {
    // Severities are declared most severe first.
    severity <= min
}

fn deadline_days(spec_days: Option<u32>, severity: Severity) -> u32 {
    match (spec_days, severity) {
        (Some(d), _) => d,
        (None, Severity::Critical) => 0,
        (None, _) => 1,
    }
}

/// Suggested quantity and vendor of a stockout exception, if it has both.
fn purchase_suggestion(e: &PlanningException) -> Option<(f64, i64)> {
    match &e.numbers {
        ExceptionNumbers::ProjectedStockout(n) if n.suggested_order_qty > 0.0 => {
            n.supplier_id.map(|s| (n.suggested_order_qty, s))
        }
        _ => None,
    }
}

/// The writes `spec`'s actions call for on `exceptions` (pure).
pub fn plan(spec: &ExceptionRuleSpec, exceptions: &[PlanningException], today: Date) -> ActionPlan {
    let mut writes = Vec::new();
    for (index, action) in spec.actions.iter().enumerate() {
        for e in exceptions {
            if let Some(w) = plan_one(index, action, e, today) {
                writes.push(w);
            }
        }
    }
    ActionPlan {
        mode: spec.mode,
        writes,
        resolves_cleared: spec.actions.iter().any(|a| a.activity.is_some()),
    }
}

fn plan_one(
    index: usize,
    action: &ActionSpec,
    e: &PlanningException,
    today: Date,
) -> Option<PlannedWrite> {
    let write = |kind, detail: String| PlannedWrite {
        action: index,
        kind,
        fingerprint: e.fingerprint.clone(),
        subject: e.subject.label.clone(),
        detail,
    };
    if let Some(a) = &action.activity {
        if !at_least(e.severity, a.min_severity.unwrap_or(Severity::Low)) {
            return None;
        }
        let due = add_days(today, i64::from(deadline_days(a.deadline_days, e.severity)));
        return Some(write(
            WriteKind::Activity,
            format!(
                "{} for {} due {due}: {}",
                a.activity_type.as_deref().unwrap_or("To-Do"),
                assignee_label(&a.assignee),
                e.summary
            ),
        ));
    }
    if let Some(p) = &action.propose_purchase {
        if !at_least(e.severity, p.min_severity.unwrap_or(Severity::High)) {
            return None;
        }
        let (qty, vendor) = purchase_suggestion(e)?;
        return Some(write(
            WriteKind::PurchaseDraft,
            format!("draft RFQ to vendor #{vendor} for {qty} units"),
        ));
    }
    if let Some(c) = &action.chatter_note {
        if !at_least(e.severity, c.min_severity.unwrap_or(Severity::Low)) {
            return None;
        }
        return Some(write(
            WriteKind::ChatterNote,
            format!("note: {}", e.summary),
        ));
    }
    if let Some(n) = &action.notify {
        if !at_least(e.severity, n.min_severity.unwrap_or(Severity::Medium)) {
            return None;
        }
        return Some(write(
            WriteKind::Notify,
            format!(
                "POST to secret {}/{} ({})",
                n.url_secret_ref.name,
                n.url_secret_ref.key,
                if n.signing_secret_ref.is_some() {
                    "signed"
                } else {
                    "unsigned"
                }
            ),
        ));
    }
    None
}

fn assignee_label(a: &Assignee) -> String {
    match (&a.user, &a.group) {
        (Some(u), _) => format!("user {u}"),
        (None, Some(g)) => format!("group {g}"),
        (None, None) => "nobody".into(),
    }
}

/// What became of one planned write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// Written now (record id; 0 for a webhook).
    Created(i64),
    /// Found from an earlier scan; nothing written.
    Existing(i64),
    /// A planner closed the exception's activity recently.
    Snoozed,
    /// Not written, with the reason (DryRun, missing user, missing secret, ...).
    Skipped(String),
    /// Not written, with the reason: Odoo refused it, or failed it before it
    /// could apply it, or it was never tried because what it depends on could
    /// not be read. The next scan retries.
    Failed(String),
    /// Perhaps written, with the reason: the reply was lost and looking the
    /// record up by its key failed too. The next scan looks it up before
    /// writing, so it is settled without a duplicate.
    Unknown(String),
}

impl WriteOutcome {
    /// The reason of a write left to the next scan.
    fn unsettled(&self) -> Option<&str> {
        match self {
            WriteOutcome::Failed(reason) | WriteOutcome::Unknown(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The outcome of [`execute`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionReport {
    /// Each planned write with its outcome, in plan order.
    pub results: Vec<(PlannedWrite, WriteOutcome)>,
    /// Activities marked done because their exception cleared.
    pub resolved: Vec<i64>,
    /// Why marking cleared exceptions' activities done failed (counted as one
    /// failed write); the next full scan tries again.
    pub resolve_failed: Option<String>,
}

impl ActionReport {
    /// Writes that created something.
    pub fn created(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, WriteOutcome::Created(_)))
            .count()
    }
    /// Writes found already done.
    pub fn existing(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, WriteOutcome::Existing(_)))
            .count()
    }
    /// Writes that were not made, marking cleared activities done included.
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, WriteOutcome::Failed(_)))
            .count()
            + usize::from(self.resolve_failed.is_some())
    }
    /// Writes that may or may not have been made.
    pub fn unknown(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, WriteOutcome::Unknown(_)))
            .count()
    }
    /// The failed and unknown counts with the first reason, for a status or a
    /// summary line; `None` when every write was settled.
    pub fn unsettled(&self) -> Option<String> {
        let (failed, unknown) = (self.failed(), self.unknown());
        if failed + unknown == 0 {
            return None;
        }
        let first = self
            .results
            .iter()
            .find_map(|(w, o)| {
                o.unsettled()
                    .map(|reason| format!("{} for {}: {reason}", w.kind, w.subject))
            })
            .or_else(|| {
                self.resolve_failed
                    .as_ref()
                    .map(|reason| format!("{}: {reason}", WriteKind::Resolve))
            })
            .unwrap_or_default();
        Some(format!(
            "{failed} writes failed and {unknown} are unknown; the next scan retries them. First: {first}"
        ))
    }
    /// Fingerprints that got their first record in Odoo from this run.
    pub fn opened(&self) -> HashSet<&str> {
        self.results
            .iter()
            .filter(|(w, o)| w.kind != WriteKind::Notify && matches!(o, WriteOutcome::Created(_)))
            .map(|(w, _)| w.fingerprint.as_str())
            .collect()
    }
}

/// Everything [`execute`] needs besides the plan.
pub struct ActionContext<'a> {
    /// The rule.
    pub rule: RuleRef<'a>,
    /// Its spec.
    pub spec: &'a ExceptionRuleSpec,
    /// The day of the scan.
    pub today: Date,
    /// Notification URLs and signing secrets.
    pub secrets: &'a dyn SecretSource,
}

/// Text that marks every record written for a rule, so one search finds them all.
pub fn rule_marker(rule: &RuleRef<'_>) -> String {
    format!("planops-rule {}/{}", rule.namespace, rule.rule)
}

/// The fingerprints (`planops:` + 32 hex digits) found in `text`.
pub fn fingerprints_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("planops:") {
        let candidate = &rest[at..];
        let hex = &candidate["planops:".len()..];
        let digits = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
        if digits == 32 {
            out.push(candidate[..8 + 32].to_string());
        }
        rest = &candidate["planops:".len()..];
    }
    out
}

/// Carries out `plan`. In `DryRun` nothing is written and every write is reported
/// as skipped.
///
/// An error of one action (a read it needs, a write Odoo refuses or that cannot be
/// confirmed) becomes the outcome of that action's writes and the others go on;
/// only an error that every call would meet ([`ActionError::fails_every_call`])
/// is returned.
pub async fn execute(
    client: &OdooClient,
    ctx: &ActionContext<'_>,
    plan: &ActionPlan,
    exceptions: &[PlanningException],
) -> Result<ActionReport, ActionError> {
    execute_with(client, ctx, plan, exceptions, None).await
}

/// [`execute`], telling `progress` how many writes are settled.
pub async fn execute_with(
    client: &OdooClient,
    ctx: &ActionContext<'_>,
    plan: &ActionPlan,
    exceptions: &[PlanningException],
    progress: Option<&dyn Progress>,
) -> Result<ActionReport, ActionError> {
    let mut report = ActionReport::default();
    if plan.mode == RuleMode::DryRun {
        report.results = plan
            .writes
            .iter()
            .map(|w| (w.clone(), WriteOutcome::Skipped("DryRun".into())))
            .collect();
        return Ok(report);
    }
    let mut tally = Tally::new(progress, plan.writes.len());
    let by_fp: HashMap<&str, &PlanningException> = exceptions
        .iter()
        .map(|e| (e.fingerprint.as_str(), e))
        .collect();
    // Draft RFQs and notifications need no target record: a failed read here
    // fails only the activities and notes.
    let targets = match resolve_targets(client, exceptions).await {
        Err(err) if err.fails_every_call() => return Err(err),
        targets => targets,
    };
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; plan.writes.len()];
    // Group the writes by action so each action costs one lookup and one batch.
    let mut by_action: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, w) in plan.writes.iter().enumerate() {
        by_action.entry(w.action).or_default().push(i);
    }
    let mut open_activities: Option<Vec<(i64, String)>> = None;
    // Notifications go last: they announce what the other actions opened.
    let mut order: Vec<(&usize, &Vec<usize>)> = by_action.iter().collect();
    order.sort_by_key(|(i, _)| {
        ctx.spec
            .actions
            .get(**i)
            .is_some_and(|a| a.notify.is_some())
    });
    for (action_index, write_indexes) in order {
        let Some(action) = ctx.spec.actions.get(*action_index) else {
            continue;
        };
        let writes: Vec<(&PlannedWrite, &PlanningException)> = write_indexes
            .iter()
            .filter_map(|&i| {
                let w = &plan.writes[i];
                by_fp.get(w.fingerprint.as_str()).map(|e| (w, *e))
            })
            .collect();
        let settled_before = tally.done;
        let attempt: Result<Vec<WriteOutcome>, ActionError> = async {
            if let Some(a) = &action.activity {
                let targets = targets.as_ref().map_err(ActionError::clone)?;
                let (results, open) = activities(client, ctx, a, &writes, targets).await?;
                open_activities.get_or_insert_with(Vec::new).extend(open);
                Ok(results)
            } else if action.propose_purchase.is_some() {
                purchases(client, &writes).await
            } else if action.chatter_note.is_some() {
                let targets = targets.as_ref().map_err(ActionError::clone)?;
                chatter_notes(client, ctx, &writes, targets, &mut tally).await
            } else if let Some(n) = &action.notify {
                let opened: HashSet<String> = outcomes
                    .iter()
                    .zip(&plan.writes)
                    .filter(|(o, w)| {
                        w.kind != WriteKind::Notify && matches!(o, Some(WriteOutcome::Created(_)))
                    })
                    .map(|(_, w)| w.fingerprint.clone())
                    .collect();
                let only_new = ctx.spec.actions.iter().any(|a| a.notify.is_none());
                Ok(notify(ctx, n, &writes, only_new.then_some(&opened)).await)
            } else {
                Ok(Vec::new())
            }
        }
        .await;
        let results = match attempt {
            Ok(results) => results,
            Err(err) if err.fails_every_call() => return Err(err),
            Err(err) => {
                // Every error that reaches here came before the action wrote
                // anything: its writes are failed, not unknown.
                tracing::warn!(
                    namespace = ctx.rule.namespace,
                    rule = ctx.rule.rule,
                    action = action_index,
                    error = %err,
                    "an action's writes could not be made; the next scan retries them"
                );
                let reason = format!("{err}; the next scan retries");
                vec![WriteOutcome::Failed(reason); write_indexes.len()]
            }
        };
        for (&i, outcome) in write_indexes.iter().zip(results) {
            outcomes[i] = Some(outcome);
        }
        tally.settle(settled_before + write_indexes.len());
    }
    if plan.resolves_cleared {
        match resolve_cleared(client, ctx, exceptions, open_activities).await {
            Ok(resolved) => report.resolved = resolved,
            Err(err) if err.fails_every_call() => return Err(err),
            Err(err) => {
                tracing::warn!(
                    namespace = ctx.rule.namespace,
                    rule = ctx.rule.rule,
                    error = %err,
                    "could not mark cleared exceptions' activities done; the next full scan retries"
                );
                report.resolve_failed = Some(format!("{err}; the next full scan retries"));
            }
        }
    }
    report.results = plan
        .writes
        .iter()
        .cloned()
        .zip(outcomes)
        .map(|(w, o)| (w, o.unwrap_or(WriteOutcome::Skipped("no handler".into()))))
        .collect();
    Ok(report)
}

/// Counts settled writes for a [`Progress`], telling it only of changes.
struct Tally<'a> {
    progress: Option<&'a dyn Progress>,
    done: usize,
    total: usize,
}

impl<'a> Tally<'a> {
    fn new(progress: Option<&'a dyn Progress>, total: usize) -> Tally<'a> {
        // A scan that found nothing to write has no writing phase to announce.
        if let Some(p) = progress.filter(|_| total > 0) {
            p.step(Step::Writing { done: 0, total });
        }
        Tally {
            progress,
            done: 0,
            total,
        }
    }

    fn settle(&mut self, done: usize) {
        let done = done.min(self.total);
        if done == self.done {
            return;
        }
        self.done = done;
        if let Some(p) = self.progress {
            p.step(Step::Writing {
                done,
                total: self.total,
            });
        }
    }
}

/// Marks done the rule's open activities whose exception no longer shows; the
/// ids marked. `open` is what the activity actions already read, if any ran.
async fn resolve_cleared(
    client: &OdooClient,
    ctx: &ActionContext<'_>,
    exceptions: &[PlanningException],
    open: Option<Vec<(i64, String)>>,
) -> Result<Vec<i64>, ActionError> {
    let current: HashSet<&str> = exceptions.iter().map(|e| e.fingerprint.as_str()).collect();
    let open = match open {
        Some(open) => open,
        None => existing_activities(client, &ctx.rule, false)
            .await?
            .into_iter()
            .map(|a| (a.id, a.fingerprint))
            .collect(),
    };
    let stale: Vec<i64> = open
        .into_iter()
        .filter(|(_, fp)| !current.contains(fp.as_str()))
        .map(|(id, _)| id)
        .collect();
    if stale.is_empty() {
        return Ok(stale);
    }
    let feedback = format!(
        "Resolved by PlanOps on {}: the exception no longer shows in a full scan of rule {}/{}.",
        ctx.today, ctx.rule.namespace, ctx.rule.rule
    );
    client
        .call(
            Call::new("mail.activity", "action_feedback")
                .ids(stale.clone())
                .kwarg("feedback", feedback)
                // Marking done twice is harmless: done activities are gone.
                .idempotent(true),
        )
        .await
        .map_err(odoo_err("resolving cleared activities"))?;
    Ok(stale)
}

/// The Odoo record each exception's activity or note goes on.
#[derive(Debug, Clone, Default)]
struct Targets {
    by_fp: HashMap<String, (String, i64)>,
    model_ids: HashMap<String, i64>,
}

async fn resolve_targets(
    client: &OdooClient,
    exceptions: &[PlanningException],
) -> Result<Targets, ActionError> {
    let mut targets = Targets::default();
    let mut purchase_lines: Vec<i64> = Vec::new();
    let mut sale_lines: Vec<i64> = Vec::new();
    for e in exceptions {
        let id = e.subject.ids.first().copied().unwrap_or_default();
        match e.subject.kind {
            SubjectKind::PurchaseLine => purchase_lines.push(id),
            SubjectKind::SaleLine => sale_lines.push(id),
            SubjectKind::Supplier => {
                targets
                    .by_fp
                    .insert(e.fingerprint.clone(), ("res.partner".into(), id));
            }
            SubjectKind::ProductWarehouse => {
                targets
                    .by_fp
                    .insert(e.fingerprint.clone(), ("product.product".into(), id));
            }
            SubjectKind::Record => {
                targets
                    .by_fp
                    .insert(e.fingerprint.clone(), (e.subject.model.to_string(), id));
            }
        }
    }
    // Purchase and sales lines are not mail threads: their order carries the activity.
    for (line_model, order_model, ids) in [
        ("purchase.order.line", "purchase.order", &purchase_lines),
        ("sale.order.line", "sale.order", &sale_lines),
    ] {
        if ids.is_empty() {
            continue;
        }
        let rows = client
            .read(line_model, ids, &["id", "order_id"])
            .await
            .map_err(odoo_err("reading the orders of flagged lines"))?;
        let mut order_of: HashMap<i64, i64> = HashMap::new();
        for row in &rows {
            if let (Ok(id), Ok(Some(order))) = (row.id(), row.many2one("order_id")) {
                order_of.insert(id, order.id);
            }
        }
        for e in exceptions {
            let line = e.subject.ids.first().copied().unwrap_or_default();
            if e.subject.model == line_model
                && let Some(&order) = order_of.get(&line)
            {
                targets
                    .by_fp
                    .insert(e.fingerprint.clone(), (order_model.into(), order));
            }
        }
    }
    let mut models: Vec<&str> = targets.by_fp.values().map(|(m, _)| m.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    if !models.is_empty() {
        let rows = client
            .search_read(
                "ir.model",
                &json!([["model", "in", models]]),
                &["id", "model"],
                &Default::default(),
            )
            .await
            .map_err(odoo_err("resolving ir.model ids"))?;
        for row in &rows {
            if let (Ok(id), Ok(Some(model))) = (row.id(), row.str_field("model")) {
                targets.model_ids.insert(model.to_string(), id);
            }
        }
    }
    Ok(targets)
}

/// An activity PlanOps wrote earlier for this rule.
#[derive(Debug, Clone)]
struct KnownActivity {
    id: i64,
    fingerprint: String,
    active: bool,
    date_done: Option<Date>,
}

async fn existing_activities(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    include_done: bool,
) -> Result<Vec<KnownActivity>, ActionError> {
    let reader = if include_done {
        let mut context = Map::new();
        context.insert("active_test".into(), json!(false));
        client.with_context(context)
    } else {
        client.clone()
    };
    // Odoo 16 deletes done activities; 17+ archives them with their done date.
    let fields: &[&str] = if client.info().version.major >= 17 {
        &["id", "note", "active", "date_done"]
    } else {
        &["id", "note"]
    };
    let rows = reader
        .search_read_all(
            "mail.activity",
            &json!([["note", "ilike", rule_marker(rule)]]),
            fields,
            &Default::default(),
        )
        .await
        .map_err(odoo_err("reading this rule's activities"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let note = row.str_field("note").ok().flatten().unwrap_or_default();
        let Some(fingerprint) = fingerprints_in(note).into_iter().next() else {
            continue;
        };
        out.push(KnownActivity {
            id: row
                .id()
                .map_err(odoo_err("reading this rule's activities"))?,
            fingerprint,
            active: row.get("active").and_then(Value::as_bool).unwrap_or(true),
            date_done: row.date("date_done").ok().flatten(),
        });
    }
    Ok(out)
}

/// The day each of this rule's activities was last marked done since `since`,
/// by fingerprint. Odoo posts "… done" with the original note (which carries
/// the fingerprint) on the record whatever becomes of the activity: deleted on
/// 16, and on 17+ unless its type keeps done activities (then it is archived
/// with `date_done`, which [`existing_activities`] reads).
async fn done_since(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    since: Date,
) -> Result<HashMap<String, Date>, ActionError> {
    let what = "reading when this rule's activities were done";
    let rows = client
        .search_read_all(
            "mail.message",
            &json!([
                ["body", "ilike", rule_marker(rule)],
                ["mail_activity_type_id", "!=", false],
                ["date", ">=", format!("{since} 00:00:00")]
            ]),
            &["body", "date"],
            &Default::default(),
        )
        .await
        .map_err(odoo_err(what))?;
    let mut done: HashMap<String, Date> = HashMap::new();
    for row in &rows {
        let Some(when) = row.datetime("date").map_err(odoo_err(what))? else {
            continue;
        };
        let day = when.to_zoned(jiff::tz::TimeZone::UTC).date();
        let body = row.str_field("body").ok().flatten().unwrap_or_default();
        for fingerprint in fingerprints_in(body) {
            let entry = done.entry(fingerprint).or_insert(day);
            *entry = (*entry).max(day);
        }
    }
    Ok(done)
}

fn marked_html(ctx: &ActionContext<'_>, e: &PlanningException) -> String {
    format!(
        "<p>{}</p><p>{}</p><p><small>{} · {}</small></p>",
        html_escape(&e.summary),
        html_escape(&e.narrative),
        e.fingerprint,
        rule_marker(&ctx.rule)
    )
}

async fn activities(
    client: &OdooClient,
    ctx: &ActionContext<'_>,
    spec: &planops_api::rule::ActivityAction,
    writes: &[(&PlannedWrite, &PlanningException)],
    targets: &Targets,
) -> Result<(Vec<WriteOutcome>, Vec<(i64, String)>), ActionError> {
    let known = existing_activities(client, &ctx.rule, true).await?;
    let open: Vec<(i64, String)> = known
        .iter()
        .filter(|a| a.active)
        .map(|a| (a.id, a.fingerprint.clone()))
        .collect();
    let snooze_since = add_days(ctx.today, -i64::from(ctx.spec.snooze_days.unwrap_or(7)));
    let done = done_since(client, &ctx.rule, snooze_since).await?;
    let type_name = spec.activity_type.as_deref().unwrap_or("To-Do");
    let activity_type = find_activity_type(client, type_name).await?;
    let members = assignee_users(client, &spec.assignee).await?;

    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; writes.len()];
    let mut to_create: Vec<(usize, String, Map<String, Value>)> = Vec::new();
    for (i, (_, e)) in writes.iter().enumerate() {
        let mine: Vec<&KnownActivity> = known
            .iter()
            .filter(|a| a.fingerprint == e.fingerprint)
            .collect();
        if let Some(a) = mine.iter().find(|a| a.active) {
            outcomes[i] = Some(WriteOutcome::Existing(a.id));
            continue;
        }
        let done_lately = mine
            .iter()
            .any(|a| a.date_done.is_some_and(|d| d >= snooze_since))
            || done.get(&e.fingerprint).is_some_and(|d| *d >= snooze_since);
        if done_lately {
            outcomes[i] = Some(WriteOutcome::Snoozed);
            continue;
        }
        let Some((model, res_id)) = targets.by_fp.get(&e.fingerprint) else {
            outcomes[i] = Some(WriteOutcome::Skipped("no Odoo record to attach to".into()));
            continue;
        };
        let Some(&model_id) = targets.model_ids.get(model) else {
            outcomes[i] = Some(WriteOutcome::Skipped(format!("model {model} not in Odoo")));
            continue;
        };
        let Some(user) = pick_member(&members, &e.fingerprint) else {
            outcomes[i] = Some(WriteOutcome::Skipped(format!(
                "no active Odoo user for {}",
                assignee_label(&spec.assignee)
            )));
            continue;
        };
        let due = add_days(
            ctx.today,
            i64::from(deadline_days(spec.deadline_days, e.severity)),
        );
        let mut vals = Map::new();
        vals.insert("res_model_id".into(), json!(model_id));
        vals.insert("res_id".into(), json!(res_id));
        vals.insert("user_id".into(), json!(user));
        vals.insert("date_deadline".into(), json!(due.to_string()));
        vals.insert(
            "summary".into(),
            json!(format!("{:?}: {}", e.severity, e.subject.label)),
        );
        vals.insert("note".into(), json!(marked_html(ctx, e)));
        if let Some(t) = activity_type {
            vals.insert("activity_type_id".into(), json!(t));
        }
        to_create.push((i, e.fingerprint.clone(), vals));
    }
    let created = create_once(
        client,
        "mail.activity",
        to_create
            .iter()
            .map(|(_, fp, v)| (fp.clone(), v.clone()))
            .collect(),
        |client, fps| {
            let client = client.clone();
            let marker = rule_marker(&ctx.rule);
            async move {
                let rows = client
                    .search_read_all(
                        "mail.activity",
                        &json!([["note", "ilike", marker]]),
                        &["id", "note"],
                        &Default::default(),
                    )
                    .await?;
                Ok(found_by_fingerprint(&rows, "note", &fps))
            }
        },
    )
    .await;
    for (i, fp, _) in &to_create {
        outcomes[*i] = Some(created.outcome(fp));
    }
    let mut open = open;
    open.extend(created.ids.iter().map(|(fp, &id)| (id, fp.clone())));
    Ok((
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(WriteOutcome::Skipped("filtered".into())))
            .collect(),
        open,
    ))
}

fn found_by_fingerprint(rows: &[Record], field: &str, wanted: &[String]) -> HashMap<String, i64> {
    let wanted: HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut out = HashMap::new();
    for row in rows {
        let text = row.str_field(field).ok().flatten().unwrap_or_default();
        let Ok(id) = row.id() else { continue };
        for fp in fingerprints_in(text) {
            if wanted.contains(fp.as_str()) {
                out.entry(fp).or_insert(id);
            }
        }
    }
    out
}

/// What [`create_once`] did with each key.
#[derive(Debug, Default)]
struct Creations {
    /// Keys whose record exists now (created by this call or found after a lost reply).
    ids: HashMap<String, i64>,
    /// Keys not created (refused, or failed before Odoo applied them), with the
    /// reason; the next scan tries them again.
    failed: HashMap<String, String>,
    /// Keys whose create may have landed but could not be confirmed, with the
    /// reason; the next scan's look-up settles them.
    unknown: HashMap<String, String>,
}

impl Creations {
    /// The outcome of `key`: created, failed or unknown with its reason.
    fn outcome(&self, key: &str) -> WriteOutcome {
        if let Some(&id) = self.ids.get(key) {
            return WriteOutcome::Created(id);
        }
        if let Some(reason) = self.unknown.get(key) {
            return WriteOutcome::Unknown(reason.clone());
        }
        WriteOutcome::Failed(
            self.failed
                .get(key)
                .cloned()
                .unwrap_or_else(|| "not created; the next scan retries".into()),
        )
    }

    /// Records `pending` as not confirmed: unknown when an attempt may have
    /// committed them, failed otherwise.
    fn unconfirmed(
        &mut self,
        pending: Vec<(String, Map<String, Value>)>,
        maybe_committed: bool,
        reason: &str,
    ) {
        let into = if maybe_committed {
            &mut self.unknown
        } else {
            &mut self.failed
        };
        for (key, _) in pending {
            into.insert(key, reason.to_string());
        }
    }
}

/// Creates the records of `items` (key, values) in one batched `create`.
///
/// When the reply is lost or ambiguous, `lookup` finds which keys exist and only
/// the rest are created again. When Odoo refuses the batch, each record is tried
/// on its own: a refusal can come from one record, or from the records together
/// (Odoo 17 and 18 refuse two activities on one record for a user who does not
/// follow it yet, since both try to subscribe the same follower). Nothing here
/// aborts the scan: what stays uncreated is reported per key.
async fn create_once<F, Fut>(
    client: &OdooClient,
    model: &'static str,
    items: Vec<(String, Map<String, Value>)>,
    lookup: F,
) -> Creations
where
    F: Fn(&OdooClient, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<HashMap<String, i64>, OdooError>>,
{
    let mut out = Creations::default();
    let refused = create_batch(client, model, items, &lookup, &mut out).await;
    if refused.len() == 1 {
        if let Some((key, _, reason)) = refused.into_iter().next() {
            out.failed.insert(key, reason);
        }
        return out;
    }
    for (key, vals, _) in refused {
        let again = create_batch(client, model, vec![(key, vals)], &lookup, &mut out).await;
        for (key, _, reason) in again {
            out.failed.insert(key, reason);
        }
    }
    out
}

/// One batched create with the lost-reply repair of [`create_once`]. Returns the
/// items Odoo refused outright, with the reason; transient failures that outlast
/// the attempts are recorded in `out.failed`, or in `out.unknown` when an attempt
/// may have committed and no look-up could tell.
async fn create_batch<F, Fut>(
    client: &OdooClient,
    model: &'static str,
    items: Vec<(String, Map<String, Value>)>,
    lookup: &F,
    out: &mut Creations,
) -> Vec<(String, Map<String, Value>, String)>
where
    F: Fn(&OdooClient, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<HashMap<String, i64>, OdooError>>,
{
    let mut pending = items;
    let mut last_error = String::new();
    let mut maybe_committed = false;
    for attempt in 0..4 {
        if pending.is_empty() {
            return Vec::new();
        }
        if attempt > 0 {
            let keys: Vec<String> = pending.iter().map(|(key, _)| key.clone()).collect();
            match lookup(client, keys).await {
                Ok(found) => pending.retain(|(key, _)| match found.get(key) {
                    Some(&id) => {
                        out.ids.insert(key.clone(), id);
                        false
                    }
                    None => true,
                }),
                Err(e) => {
                    // Creating again without knowing could duplicate: leave these
                    // to the next scan, which looks before it writes.
                    let reason = format!(
                        "{model}: could not confirm a create after a lost reply: {e}; the next scan looks again"
                    );
                    tracing::warn!(model, error = %e, "look-up after a lost reply failed");
                    out.unconfirmed(pending, maybe_committed, &reason);
                    return Vec::new();
                }
            }
            if pending.is_empty() {
                return Vec::new();
            }
        }
        let vals: Vec<Map<String, Value>> = pending.iter().map(|(_, v)| v.clone()).collect();
        match client.create(model, vals).await {
            Ok(ids) => {
                for ((key, _), id) in pending.drain(..).zip(ids) {
                    out.ids.insert(key, id);
                }
                return Vec::new();
            }
            Err(e) if e.may_have_committed() => {
                tracing::warn!(model, error = %e, "create reply lost; looking the records up before retrying");
                maybe_committed = true;
                last_error = e.to_string();
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(model, error = %e, "create failed before Odoo ran it; retrying");
                last_error = e.to_string();
            }
            Err(e) => {
                tracing::warn!(model, records = pending.len(), error = %e, "Odoo refused a create");
                let reason = format!("Odoo refused to create {model}: {e}");
                return pending
                    .into_iter()
                    .map(|(key, vals)| (key, vals, reason.clone()))
                    .collect();
            }
        }
    }
    // Attempts ran out on transient errors: a last look tells what landed.
    if !pending.is_empty() {
        let keys: Vec<String> = pending.iter().map(|(key, _)| key.clone()).collect();
        match lookup(client, keys).await {
            Ok(found) => {
                for (key, _) in pending {
                    match found.get(&key) {
                        Some(&id) => {
                            out.ids.insert(key, id);
                        }
                        None => {
                            out.failed.insert(
                                key,
                                format!("{model}: {last_error}; the next scan retries"),
                            );
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(model, error = %e, "look-up after the last failed create failed");
                let reason = format!(
                    "{model}: {last_error}, and the look-up that would confirm it failed: {e}; the next scan looks again"
                );
                out.unconfirmed(pending, maybe_committed, &reason);
            }
        }
    }
    Vec::new()
}

async fn find_activity_type(client: &OdooClient, name: &str) -> Result<Option<i64>, ActionError> {
    let rows = client
        .search_read(
            "mail.activity.type",
            &json!([["name", "=", name]]),
            &["id"],
            &odoo_client::SearchOptions::limit(1),
        )
        .await
        .map_err(odoo_err("finding the activity type"))?;
    Ok(rows.first().and_then(|r| r.id().ok()))
}

/// Active user ids of the assignee: the user, or the group's members.
async fn assignee_users(client: &OdooClient, a: &Assignee) -> Result<Vec<i64>, ActionError> {
    if let Some(login) = &a.user {
        let rows = client
            .search_read(
                "res.users",
                &json!([["login", "=", login]]),
                &["id"],
                &odoo_client::SearchOptions::limit(1),
            )
            .await
            .map_err(odoo_err("finding the assignee"))?;
        return Ok(rows.iter().filter_map(|r| r.id().ok()).collect());
    }
    let Some(group) = &a.group else {
        return Ok(Vec::new());
    };
    odoo_client::users::group_member_ids(client, group)
        .await
        .map_err(odoo_err("reading the assignee group"))
}

/// Members of a group take turns: the fingerprint picks one, so the same exception
/// always goes to the same person and exceptions spread evenly.
fn pick_member(members: &[i64], fingerprint: &str) -> Option<i64> {
    if members.is_empty() {
        return None;
    }
    let hex = fingerprint.strip_prefix("planops:").unwrap_or(fingerprint);
    let n = u64::from_str_radix(hex.get(..12).unwrap_or("0"), 16).unwrap_or(0);
    members.get((n % members.len() as u64) as usize).copied()
}

/// What an RFQ line needs to know of its product and of the warehouse that is short.
#[derive(Debug, Default)]
struct PurchaseFacts {
    /// Product id -> (unit of measure id, its rounding).
    units: HashMap<i64, (i64, f64)>,
    /// Warehouse id -> its receipts operation type.
    receipt_types: HashMap<i64, i64>,
}

/// Reads the products' units and the warehouses' receipt types in two calls.
async fn purchase_facts(
    client: &OdooClient,
    products: Vec<i64>,
    warehouses: Vec<i64>,
) -> Result<PurchaseFacts, OdooError> {
    let mut facts = PurchaseFacts::default();
    let rows = client
        .read("product.product", &products, &["id", "uom_id"])
        .await?;
    let mut unit_of: Vec<(i64, i64)> = Vec::new();
    for row in &rows {
        if let (Ok(id), Ok(Some(uom))) = (row.id(), row.many2one("uom_id")) {
            unit_of.push((id, uom.id));
        }
    }
    let mut uom_ids: Vec<i64> = unit_of.iter().map(|(_, u)| *u).collect();
    uom_ids.sort_unstable();
    uom_ids.dedup();
    let rounding: HashMap<i64, f64> = client
        .read("uom.uom", &uom_ids, &["id", "rounding"])
        .await?
        .iter()
        .filter_map(|r| Some((r.id().ok()?, r.number("rounding").ok()?)))
        .collect();
    for (product, uom) in unit_of {
        let r = rounding.get(&uom).copied().unwrap_or(0.0);
        facts.units.insert(product, (uom, r));
    }
    if !warehouses.is_empty() {
        for row in client
            .read("stock.warehouse", &warehouses, &["id", "in_type_id"])
            .await?
        {
            if let (Ok(id), Ok(Some(t))) = (row.id(), row.many2one("in_type_id")) {
                facts.receipt_types.insert(id, t.id);
            }
        }
    }
    Ok(facts)
}

/// Draft RFQs a buyer can confirm as they are: the vendor, the short warehouse's
/// receipt type, one line in the product's own unit (the unit the scan counts in),
/// the quantity rounded up to that unit, and the price and expected date left to
/// Odoo, which fills them from the vendor's price list and lead time.
async fn purchases(
    client: &OdooClient,
    writes: &[(&PlannedWrite, &PlanningException)],
) -> Result<Vec<WriteOutcome>, ActionError> {
    let fps: Vec<String> = writes.iter().map(|(w, _)| w.fingerprint.clone()).collect();
    let existing = orders_by_origin(client, fps.clone())
        .await
        .map_err(odoo_err("reading earlier RFQs"))?;
    let wanted: Vec<(&PlannedWrite, &PlanningException, f64, i64)> = writes
        .iter()
        .filter_map(|(w, e)| purchase_suggestion(e).map(|(qty, vendor)| (*w, *e, qty, vendor)))
        .collect();
    // Lines go in a second step keyed by their order, so a lost reply on either
    // step is repaired by the next scan without a duplicate.
    let existing_ids: Vec<i64> = existing.values().copied().collect();
    let with_lines: HashSet<i64> = if existing_ids.is_empty() {
        HashSet::new()
    } else {
        client
            .search_read_all(
                "purchase.order.line",
                &json!([["order_id", "in", existing_ids]]),
                &["id", "order_id"],
                &Default::default(),
            )
            .await
            .map_err(odoo_err("reading RFQ lines"))?
            .iter()
            .filter_map(|r| r.many2one("order_id").ok().flatten().map(|o| o.id))
            .collect()
    };
    // An RFQ with its line is done: only the others need the products' units
    // and the warehouses' receipt types, so a steady scan reads neither.
    let unfinished: Vec<&(&PlannedWrite, &PlanningException, f64, i64)> = wanted
        .iter()
        .filter(|(w, _, _, _)| {
            existing
                .get(&w.fingerprint)
                .is_none_or(|order| !with_lines.contains(order))
        })
        .collect();
    let products: Vec<i64> = unfinished
        .iter()
        .filter_map(|(_, e, _, _)| e.subject.ids.first().copied())
        .collect();
    let warehouses: Vec<i64> = unfinished
        .iter()
        .filter(|(_, e, _, _)| e.subject.kind == SubjectKind::ProductWarehouse)
        .filter_map(|(_, e, _, _)| e.subject.ids.get(1).copied())
        .collect();
    let facts = if unfinished.is_empty() {
        PurchaseFacts::default()
    } else {
        purchase_facts(client, products, warehouses)
            .await
            .map_err(odoo_err("reading the units and receipt types of RFQ lines"))?
    };
    let version = client.info().version.major;
    let mut to_create = Vec::new();
    let mut lines_wanted: HashMap<String, Map<String, Value>> = HashMap::new();
    for (w, e, qty, vendor) in &wanted {
        let product = e.subject.ids.first().copied().unwrap_or_default();
        let mut line = Map::new();
        line.insert("product_id".into(), json!(product));
        line.insert("name".into(), json!(e.subject.label));
        let unit_field = if version >= 19 {
            "product_uom_id"
        } else {
            "product_uom"
        };
        let qty = match facts.units.get(&product) {
            Some(&(uom, rounding)) => {
                line.insert(unit_field.into(), json!(uom));
                planops_engine::stockout::round_up_to_uom(*qty, rounding)
            }
            None => *qty,
        };
        line.insert("product_qty".into(), json!(qty));
        lines_wanted.insert(w.fingerprint.clone(), line);
        if existing.contains_key(&w.fingerprint) {
            continue;
        }
        let mut vals = Map::new();
        vals.insert("partner_id".into(), json!(vendor));
        vals.insert("origin".into(), json!(w.fingerprint));
        let notes_field = if version >= 19 { "note" } else { "notes" };
        vals.insert(
            notes_field.into(),
            json!(format!("<p>{}</p>", html_escape(&e.summary))),
        );
        if e.subject.kind == SubjectKind::ProductWarehouse
            && let Some(receipts) = e
                .subject
                .ids
                .get(1)
                .and_then(|wh| facts.receipt_types.get(wh))
        {
            vals.insert("picking_type_id".into(), json!(receipts));
        }
        to_create.push((w.fingerprint.clone(), vals));
    }
    let created = create_once(client, "purchase.order", to_create, |client, fps| {
        let client = client.clone();
        async move { orders_by_origin(&client, fps).await }
    })
    .await;
    // Orders this run created (or found after a lost reply) have no line yet:
    // lines are only written after their order.
    let mut all_orders: HashMap<String, i64> = existing.clone();
    all_orders.extend(created.ids.iter().map(|(k, v)| (k.clone(), *v)));
    let mut line_items = Vec::new();
    let mut line_orders = Vec::new();
    for (fp, &order) in &all_orders {
        if with_lines.contains(&order) {
            continue;
        }
        if let Some(line) = lines_wanted.get(fp) {
            let mut vals = line.clone();
            vals.insert("order_id".into(), json!(order));
            line_orders.push(order);
            line_items.push((format!("order:{order}"), vals));
        }
    }
    let lines = create_once(client, "purchase.order.line", line_items, |client, _| {
        let client = client.clone();
        let orders = line_orders.clone();
        async move {
            let rows = client
                .search_read_all(
                    "purchase.order.line",
                    &json!([["order_id", "in", orders]]),
                    &["id", "order_id"],
                    &Default::default(),
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let o = r.many2one("order_id").ok().flatten()?;
                    Some((format!("order:{}", o.id), r.id().ok()?))
                })
                .collect())
        }
    })
    .await;
    Ok(writes
        .iter()
        .map(|(w, _)| {
            if !lines_wanted.contains_key(&w.fingerprint) {
                return WriteOutcome::Skipped("no suggestion".into());
            }
            let order = match (
                existing.get(&w.fingerprint),
                created.outcome(&w.fingerprint),
            ) {
                (Some(&id), _) => Ok(WriteOutcome::Existing(id)),
                (None, created @ WriteOutcome::Created(_)) => Ok(created),
                (None, failed) => Err(failed),
            };
            match order {
                Ok(outcome) => {
                    let order_id = match outcome {
                        WriteOutcome::Existing(id) | WriteOutcome::Created(id) => id,
                        _ => 0,
                    };
                    let line = format!("order:{order_id}");
                    if let Some(reason) = lines.failed.get(&line) {
                        WriteOutcome::Failed(format!("RFQ {order_id} has no line yet: {reason}"))
                    } else if let Some(reason) = lines.unknown.get(&line) {
                        WriteOutcome::Unknown(format!(
                            "RFQ {order_id} may have no line yet: {reason}"
                        ))
                    } else {
                        outcome
                    }
                }
                Err(failed) => failed,
            }
        })
        .collect())
}

async fn orders_by_origin(
    client: &OdooClient,
    fps: Vec<String>,
) -> Result<HashMap<String, i64>, OdooError> {
    if fps.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .search_read_all(
            "purchase.order",
            &json!([["origin", "in", fps]]),
            &["id", "origin"],
            &Default::default(),
        )
        .await?;
    Ok(found_by_fingerprint(&rows, "origin", &fps))
}

async fn chatter_notes(
    client: &OdooClient,
    ctx: &ActionContext<'_>,
    writes: &[(&PlannedWrite, &PlanningException)],
    targets: &Targets,
    tally: &mut Tally<'_>,
) -> Result<Vec<WriteOutcome>, ActionError> {
    let marker = rule_marker(&ctx.rule);
    let fps: Vec<String> = writes.iter().map(|(w, _)| w.fingerprint.clone()).collect();
    let find = |fps: Vec<String>| {
        let client = client.clone();
        let marker = marker.clone();
        async move {
            let rows = client
                .search_read_all(
                    "mail.message",
                    &json!([["body", "ilike", marker]]),
                    &["id", "body"],
                    &Default::default(),
                )
                .await?;
            Ok::<_, OdooError>(found_by_fingerprint(&rows, "body", &fps))
        }
    };
    let posted = find(fps)
        .await
        .map_err(odoo_err("reading earlier chatter notes"))?;
    let mut outcomes = Vec::with_capacity(writes.len());
    // A refusal (no chatter on the model, missing rights) would refuse every note
    // alike: report it on each write without repeating the call, and let the rule's
    // other actions go on.
    let mut refused: Option<String> = None;
    let settled_before = tally.done;
    for (w, e) in writes {
        // One post per note: against a slow Odoo these are what takes long.
        tally.settle(settled_before + outcomes.len());
        if let Some(&id) = posted.get(&w.fingerprint) {
            outcomes.push(WriteOutcome::Existing(id));
            continue;
        }
        if let Some(reason) = &refused {
            outcomes.push(WriteOutcome::Failed(reason.clone()));
            continue;
        }
        let Some((model, res_id)) = targets.by_fp.get(&w.fingerprint) else {
            outcomes.push(WriteOutcome::Skipped("no Odoo record to post on".into()));
            continue;
        };
        let note = Note {
            model,
            res_id: *res_id,
            html: marked_html(ctx, e),
            attachment_ids: Vec::new(),
        };
        let fingerprint = w.fingerprint.clone();
        let posted = post_note(client, &note, || async {
            find(vec![fingerprint.clone()])
                .await
                .map(|found| found.get(&fingerprint).copied())
        })
        .await;
        match posted {
            Ok(Posted { id: Some(id), .. }) => outcomes.push(WriteOutcome::Created(id)),
            Ok(Posted { id: None, .. }) => outcomes.push(WriteOutcome::Failed(
                "message_post answered no message id".into(),
            )),
            Err(PostError::Lookup(err) | PostError::Post(err)) if err.fails_every_call() => {
                return Err(odoo_err("posting chatter notes")(err));
            }
            // Posting again now could duplicate the note; the next scan's look-up
            // tells whether it is there.
            Err(PostError::Lookup(err)) => outcomes.push(WriteOutcome::Unknown(format!(
                "the reply to message_post was lost and looking the note up failed: {err}; the next scan looks again"
            ))),
            Err(PostError::Post(err)) if err.is_transient() => outcomes.push(WriteOutcome::Failed(
                format!("{err}; the next scan retries"),
            )),
            Err(PostError::Post(err)) => {
                let reason = format!("Odoo refused message_post: {err}");
                tracing::warn!(model = %model, error = %err, "chatter notes refused");
                outcomes.push(WriteOutcome::Failed(reason.clone()));
                refused = Some(reason);
            }
        }
    }
    Ok(outcomes)
}

/// The JSON body of a notification.
pub fn notification_body(ctx: &ActionContext<'_>, e: &PlanningException) -> Value {
    json!({
        "type": "planops.exception.opened",
        "timestamp": jiff::Timestamp::now().to_string(),
        "data": {
            "namespace": ctx.rule.namespace,
            "rule": ctx.rule.rule,
            "fingerprint": e.fingerprint,
            "detector": e.detector.as_str(),
            "subject": e.subject,
            "severity": e.severity,
            "priority": e.priority,
            "summary": e.summary,
            "numbers": e.numbers,
        }
    })
}

async fn notify(
    ctx: &ActionContext<'_>,
    spec: &planops_api::rule::NotifyAction,
    writes: &[(&PlannedWrite, &PlanningException)],
    only: Option<&HashSet<String>>,
) -> Vec<WriteOutcome> {
    let Some(url) = ctx.secrets.get(&spec.url_secret_ref) else {
        let reason = format!(
            "URL secret {}/{} not available",
            spec.url_secret_ref.name, spec.url_secret_ref.key
        );
        return writes
            .iter()
            .map(|_| WriteOutcome::Skipped(reason.clone()))
            .collect();
    };
    let signing = spec.signing_secret_ref.as_ref().map(|r| ctx.secrets.get(r));
    let destination = webhook::check_destination(&url);
    let http = match webhook::client() {
        Ok(c) => c,
        Err(e) => {
            return writes
                .iter()
                .map(|_| WriteOutcome::Failed(format!("HTTP client: {e}")))
                .collect();
        }
    };
    let mut out = Vec::with_capacity(writes.len());
    for (w, e) in writes {
        if only.is_some_and(|set| !set.contains(&w.fingerprint)) {
            out.push(WriteOutcome::Skipped(
                "already notified when it opened".into(),
            ));
            continue;
        }
        if let Err(refused) = &destination {
            out.push(WriteOutcome::Failed(refused.clone()));
            continue;
        }
        let body = match serde_json::to_vec(&notification_body(ctx, e)) {
            Ok(b) => b,
            Err(err) => {
                out.push(WriteOutcome::Failed(format!("encoding: {err}")));
                continue;
            }
        };
        // The id is stable per exception, so receivers dedupe repeated sends.
        let id = w.fingerprint.replace(':', "_");
        let timestamp = jiff::Timestamp::now().as_second();
        let mut request = http
            .post(url.expose())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        match &signing {
            Some(Some(secret)) => match webhook::sign(secret, &id, timestamp, &body) {
                Ok(h) => request = request.header("webhook-signature", h.signature),
                Err(err) => {
                    out.push(WriteOutcome::Failed(err.to_string()));
                    continue;
                }
            },
            Some(None) => {
                out.push(WriteOutcome::Skipped("signing secret not available".into()));
                continue;
            }
            None => {}
        }
        out.push(match request.body(body).send().await {
            Ok(resp) if resp.status().is_success() => WriteOutcome::Created(0),
            // The URL is a credential: report the status only.
            Ok(resp) => WriteOutcome::Failed(format!("receiver answered {}", resp.status())),
            Err(err) => WriteOutcome::Failed(webhook::delivery_error(err)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_and_its_actions_map_to_status() {
        let today = jiff::civil::date(2025, 3, 1);
        let mut input = planops_engine::PlanningInput::new(today);
        for (product_id, on_hand) in [(1, -5.0), (2, -9.0)] {
            input.items.push(planops_engine::inputs::StockItem {
                product_id,
                warehouse_id: 1,
                on_hand,
                ..Default::default()
            });
        }
        let spec = planops_engine::params::DetectorSpec {
            projected_stockout: Some(planops_engine::params::ProjectedStockoutParams::default()),
            ..Default::default()
        };
        let rule = planops_engine::RuleRef {
            namespace: "ns",
            rule: "r",
        };
        let exceptions = planops_engine::evaluate(
            &rule,
            &spec,
            &planops_engine::SeverityThresholds::default(),
            &input,
        )
        .unwrap();
        let outcome = crate::scan::ScanOutcome {
            exceptions,
            subjects_evaluated: 2,
            calls: odoo_client::CallsSnapshot {
                requests: 7,
                ..Default::default()
            },
            duration: std::time::Duration::from_millis(42),
            memory: crate::scan::ScanMemory::default(),
            stock_snapshot: None,
            today,
        };
        let acted = Acted {
            outcome,
            plan: ActionPlan {
                mode: RuleMode::Enforce,
                writes: Vec::new(),
                resolves_cleared: true,
            },
            report: ActionReport {
                resolved: vec![11],
                resolve_failed: Some("Odoo down".into()),
                ..Default::default()
            },
            action_calls: 3,
        };
        let start: jiff::Timestamp = "2025-03-01T06:00:00Z".parse().unwrap();
        let status = acted.last_scan(start);
        assert_eq!(status.odoo_calls, 10);
        assert_eq!(status.exceptions_open, 2);
        assert_eq!(status.exceptions_resolved, 1);
        assert_eq!(status.duration_millis, 42);
        assert_eq!(status.start_time, "2025-03-01T06:00:00Z");
        assert_eq!((status.writes_failed, status.writes_unknown), (1, 0));
        assert_eq!(
            status.outcome,
            Some(planops_api::rule::ScanOutcome::Succeeded)
        );
        assert!(
            status
                .message
                .as_deref()
                .is_some_and(|m| m.contains("Odoo down")),
            "{status:?}"
        );
        let outcome = acted.outcome;
        let top = outcome.top_exceptions(1);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].fingerprint, outcome.exceptions[0].fingerprint);
        assert!(top[0].priority >= outcome.exceptions[1].priority);
    }

    #[test]
    fn failed_and_unknown_writes_are_counted_with_the_first_reason() {
        let write = |subject: &str| PlannedWrite {
            action: 0,
            kind: WriteKind::ChatterNote,
            fingerprint: String::new(),
            subject: subject.into(),
            detail: String::new(),
        };
        let mut report = ActionReport {
            results: vec![
                (write("A"), WriteOutcome::Created(1)),
                (write("B"), WriteOutcome::Existing(2)),
                (write("C"), WriteOutcome::Unknown("reply lost".into())),
                (write("D"), WriteOutcome::Failed("refused".into())),
                (write("E"), WriteOutcome::Skipped("DryRun".into())),
            ],
            ..Default::default()
        };
        assert_eq!(
            (
                report.created(),
                report.existing(),
                report.failed(),
                report.unknown()
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            report.unsettled().as_deref(),
            Some(
                "1 writes failed and 1 are unknown; the next scan retries them. First: chatter note for C: reply lost"
            )
        );
        report.resolve_failed = Some("Odoo down".into());
        assert_eq!(report.failed(), 2);
        report.results.truncate(2);
        assert!(
            report
                .unsettled()
                .unwrap()
                .ends_with("First: resolve: Odoo down")
        );
        report.resolve_failed = None;
        assert_eq!(report.unsettled(), None);
    }

    #[test]
    fn a_create_that_may_have_committed_is_unknown_until_looked_up() {
        let mut creations = Creations::default();
        let items = |keys: &[&str]| keys.iter().map(|k| (k.to_string(), Map::new())).collect();
        creations.unconfirmed(items(&["lost"]), true, "reply lost");
        creations.unconfirmed(items(&["refused"]), false, "503");
        creations.ids.insert("made".into(), 7);
        assert_eq!(creations.outcome("made"), WriteOutcome::Created(7));
        assert_eq!(
            creations.outcome("lost"),
            WriteOutcome::Unknown("reply lost".into())
        );
        assert_eq!(
            creations.outcome("refused"),
            WriteOutcome::Failed("503".into())
        );
        assert!(matches!(
            creations.outcome("other"),
            WriteOutcome::Failed(_)
        ));
    }

    #[test]
    fn fingerprints_are_found_in_text() {
        let fp = "planops:0123456789abcdef0123456789abcdef";
        let text = format!("<p>x</p><small>{fp} · planops-rule ns/r</small> planops:12");
        assert_eq!(fingerprints_in(&text), vec![fp.to_string()]);
        assert!(fingerprints_in("planops:xyz").is_empty());
    }

    #[test]
    fn severity_floor_and_deadlines() {
        assert!(at_least(Severity::Critical, Severity::High));
        assert!(at_least(Severity::High, Severity::High));
        assert!(!at_least(Severity::Medium, Severity::High));
        assert_eq!(deadline_days(None, Severity::Critical), 0);
        assert_eq!(deadline_days(None, Severity::Low), 1);
        assert_eq!(deadline_days(Some(3), Severity::Critical), 3);
    }

    #[test]
    fn group_members_take_turns_deterministically() {
        let members = [4, 9, 12];
        let a = pick_member(&members, "planops:000000000000aaaaaaaaaaaaaaaaaaaa");
        let b = pick_member(&members, "planops:000000000001aaaaaaaaaaaaaaaaaaaa");
        let c = pick_member(&members, "planops:000000000002aaaaaaaaaaaaaaaaaaaa");
        assert_eq!((a, b, c), (Some(4), Some(9), Some(12)));
        assert_eq!(pick_member(&[], "planops:00"), None);
    }
}

/// One evaluation of a rule end to end: its scan and the actions it led to.
#[derive(Debug)]
pub struct Acted {
    /// What the scan found.
    pub outcome: crate::scan::ScanOutcome,
    /// The writes planned from it.
    pub plan: ActionPlan,
    /// What became of them.
    pub report: ActionReport,
    /// Odoo calls the actions made (the scan's own are in `outcome.calls`).
    pub action_calls: u64,
}

impl Acted {
    /// The rule's `status.lastScan` after this scan and its actions.
    pub fn last_scan(&self, start_time: jiff::Timestamp) -> planops_api::rule::LastScan {
        let scan = &self.outcome;
        planops_api::rule::LastScan {
            start_time: start_time.to_string(),
            scheduled_time: None,
            duration_millis: scan.duration.as_millis() as u64,
            subjects_evaluated: scan.subjects_evaluated,
            exceptions_open: scan.exceptions.len() as u64,
            exceptions_opened: self.report.opened().len() as u64,
            exceptions_resolved: self.report.resolved.len() as u64,
            odoo_calls: scan.calls.requests + self.action_calls,
            writes_failed: self.report.failed() as u64,
            writes_unknown: self.report.unknown() as u64,
            // The scan itself succeeded; the counts say what it left undone.
            outcome: Some(planops_api::rule::ScanOutcome::Succeeded),
            message: self.report.unsettled(),
        }
    }
}

/// Why [`scan_and_act`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scan failed; nothing was written.
    #[error("scan: {0}")]
    Scan(#[from] crate::scan::ScanError),
    /// The scan completed; acting on it met an error every write would meet.
    #[error("actions: {0}")]
    Actions(#[from] ActionError),
}

/// Scans the rule of `ctx`, then plans and executes its actions: the one sequence
/// the operator's scheduler and `planops scan` share, so they cannot drift apart.
pub async fn scan_and_act(
    client: &OdooClient,
    ctx: &ActionContext<'_>,
    memory: &crate::scan::ScanMemory,
    options: crate::scan::ScanOptions<'_>,
) -> Result<Acted, RunError> {
    if let Some(p) = options.progress {
        p.step(Step::Reading);
    }
    let outcome =
        crate::scan::run_scan_with(client, &ctx.rule, ctx.spec, ctx.today, memory, options).await?;
    if let Some(p) = options.progress {
        p.step(Step::Found {
            exceptions: outcome.exceptions.len(),
            subjects: outcome.subjects_evaluated,
        });
    }
    let mut plan = plan(ctx.spec, &outcome.exceptions, ctx.today);
    if options.focus.is_some() {
        // A focused scan sees a few subjects; everything else it did not see must not
        // read as cleared. Resolution is the full scan's job.
        plan.resolves_cleared = false;
    }
    let before = client.calls_made();
    let report = execute_with(client, ctx, &plan, &outcome.exceptions, options.progress).await?;
    let action_calls = client.calls_made().since(&before).requests;
    Ok(Acted {
        outcome,
        plan,
        report,
        action_calls,
    })
}
