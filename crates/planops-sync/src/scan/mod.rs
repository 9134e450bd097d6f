//! One scan: read what a rule's detector needs from Odoo, run the engine, report.
//!
//! [`run_scan`] asks the detector for its [`InputNeeds`](planops_engine::InputNeeds),
//! fetches exactly those inputs with as few calls as the data allows (see [`fetch`]),
//! evaluates the rule and returns a [`ScanOutcome`] with the exceptions, the subjects
//! evaluated, the Odoo calls made and the wall time. Writing to Odoo is the job of
//! [`crate::actions`].

pub mod fetch;
pub mod focus;
pub mod history;
pub mod snapshot;

pub use focus::{Focus, FocusError};
pub use history::{HistoryCache, HistoryKey, HistoryStats};
pub use snapshot::SNAPSHOT_MAX_AGE;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::Date;

use odoo_client::{CallsSnapshot, OdooClient, OdooError};
use planops_api::rule::ExceptionRuleSpec;
use planops_engine::{ParamsError, PlanningException, RuleRef, SeverityThresholds};

/// Why a scan could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The rule's detector or severity parameters are invalid.
    #[error("invalid rule: {0}")]
    Params(#[from] ParamsError),
    /// A domain in the rule cannot be parsed.
    #[error("invalid domain in {field}: {message}")]
    Domain {
        /// Which spec field holds the domain.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A warehouse code of the scope does not exist in Odoo.
    #[error("scope.warehouses: no warehouse with code {0:?} in Odoo")]
    UnknownWarehouse(String),
    /// Odoo refused or failed a read.
    #[error("reading {what} from Odoo: {error}")]
    Odoo {
        /// What the scan was reading.
        what: &'static str,
        /// The client's error (already redacted). Kept out of the `source` chain
        /// because the message already carries it: chains would print it twice.
        error: OdooError,
    },
}

impl ScanError {
    pub(crate) fn odoo(what: &'static str) -> impl FnOnce(OdooError) -> ScanError {
        move |error| ScanError::Odoo { what, error }
    }
}

/// State a scan carries over from the previous scan of the same rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanMemory {
    /// `date_planned` of open purchase lines as last seen, by line id (supplier delay
    /// flags lines whose date moved later).
    pub purchase_dates: BTreeMap<i64, Date>,
}

/// What one scan found.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    /// Exceptions by descending priority.
    pub exceptions: Vec<PlanningException>,
    /// Product × warehouse pairs, purchase lines, sales lines or records evaluated.
    pub subjects_evaluated: u64,
    /// Odoo calls the scan's reads cost.
    pub calls: CallsSnapshot,
    /// Wall time of fetch and evaluation.
    pub duration: Duration,
    /// Memory to hand to the next scan of the rule.
    pub memory: ScanMemory,
    /// Whether the stock snapshot was read in full or brought up to date,
    /// when the detector reads stock.
    pub stock_snapshot: Option<snapshot::SnapshotStats>,
    /// The day the scan planned from.
    pub today: Date,
}

/// Optional parts of a scan; the default is a scan with no cache.
#[derive(Clone, Copy, Default)]
pub struct ScanOptions<'a> {
    /// Serve demand history from this cache, for this connection.
    pub history: Option<(&'a HistoryCache, &'a HistoryKey)>,
    /// Evaluate only these subjects (an event's), not the whole scope.
    pub focus: Option<&'a Focus>,
    /// Told how far a scan and its actions got.
    pub progress: Option<&'a dyn Progress>,
}

impl std::fmt::Debug for ScanOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanOptions")
            .field("history", &self.history)
            .field("focus", &self.focus)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// How far a run of a rule got, for someone waiting on it: against a slow Odoo
/// a scan and its writes can take minutes (`planops scan` prints these).
pub trait Progress: Send + Sync {
    fn step(&self, step: Step);
}

/// A step of [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reading what the detector needs from Odoo.
    Reading,
    /// The scan is done.
    Found { exceptions: usize, subjects: u64 },
    /// `done` of the `total` planned writes are settled (written, found, or not).
    Writing { done: usize, total: usize },
}

/// Scans `spec` (the rule `rule`) over Odoo as of `today`.
pub async fn run_scan(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    spec: &ExceptionRuleSpec,
    today: Date,
    memory: &ScanMemory,
) -> Result<ScanOutcome, ScanError> {
    run_scan_with(client, rule, spec, today, memory, ScanOptions::default()).await
}

/// [`run_scan`] with [`ScanOptions`] (a history cache, a focus).
pub async fn run_scan_with(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    spec: &ExceptionRuleSpec,
    today: Date,
    memory: &ScanMemory,
    options: ScanOptions<'_>,
) -> Result<ScanOutcome, ScanError> {
    let started = std::time::Instant::now();
    let before = client.calls_made();
    let kind = spec.validate_params()?;
    let mut plan = fetch::FetchPlan::for_rule(spec, kind, today)?;
    if let Some(focus) = options.focus {
        plan.narrow_to(focus);
    }
    let fetched = fetch::fetch_with(client, &plan, memory, options.history).await?;
    let subjects_evaluated = fetched.subjects();
    let thresholds = spec.severity.clone().unwrap_or_default();
    let exceptions = evaluate(rule, spec, &thresholds, &fetched.input)?;
    let calls = client.calls_made().since(&before);
    let duration = started.elapsed();
    tracing::info!(
        namespace = rule.namespace,
        rule = rule.rule,
        detector = kind.as_str(),
        subjects = subjects_evaluated,
        exceptions = exceptions.len(),
        odoo_calls = calls.requests,
        millis = duration.as_millis() as u64,
        "scan finished"
    );
    Ok(ScanOutcome {
        exceptions,
        subjects_evaluated,
        calls,
        duration,
        memory: fetched.memory,
        stock_snapshot: fetched.stock_snapshot,
        today,
    })
}

fn evaluate(
    rule: &RuleRef<'_>,
    spec: &ExceptionRuleSpec,
    thresholds: &SeverityThresholds,
    input: &planops_engine::PlanningInput,
) -> Result<Vec<PlanningException>, ScanError> {
    Ok(planops_engine::evaluate(
        rule,
        &spec.detector,
        thresholds,
        input,
    )?)
}

impl ScanOutcome {
    /// The `n` highest-priority exceptions, as `status.topExceptions` lists them.
    pub fn top_exceptions(&self, n: usize) -> Vec<planops_api::rule::ExceptionSummary> {
        self.exceptions
            .iter()
            .take(n)
            .map(|e| planops_api::rule::ExceptionSummary {
                fingerprint: e.fingerprint.clone(),
                subject: e.subject.label.clone(),
                severity: e.severity,
                priority: e.priority,
                summary: e.summary.clone(),
            })
            .collect()
    }
}
