//! `planops scan`: one scan of one `ExceptionRule` against an Odoo database, with
//! its actions (the rule's `mode` decides whether they write): a rule in the
//! cluster (`planops scan <namespace>/<rule>`, what the CronJob of `execution:
//! CronJob` runs) or in a file (`-f`, with the Odoo connection on the command line).
//!
//! It prints its progress on stderr (reading, exceptions found, writes settled),
//! and exits with status [`EXIT_UNSETTLED`] when the run completed but left writes
//! failed or unknown, 1 when it could not run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use futures::future::BoxFuture;
use kube::ResourceExt as _;

use crate::actions::{Acted, ActionReport, StaticSecrets, WriteOutcome};
use crate::api::common::SCAN_FIELD_MANAGER;
use crate::api::rule::ExceptionRuleSpec;
use crate::api::rule::RuleMode;
use crate::api::{ApprovalPolicy, ExceptionRule, OdooConnection, OdooConnectionSpec};
use crate::approval::gate::{GateReport, PolicySource};
use crate::engine::RuleRef;
use crate::odoo::{OdooClient, Secret};
use crate::run::RuleRun;
use crate::scan::{Progress, ScanMemory, ScanOptions, Step};

/// Exit status of a run that completed but left writes failed or unknown (1 is
/// a run that could not complete). The next run settles them.
pub const EXIT_UNSETTLED: u8 = 2;

/// A run that completed with writes left to the next one; `planops scan` exits
/// with [`EXIT_UNSETTLED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{failed} writes failed and {unknown} are unknown; the next scan retries them")]
pub struct UnsettledWrites {
    pub failed: usize,
    pub unknown: usize,
}

impl UnsettledWrites {
    /// The writes `report` left undone, if any.
    pub fn of(report: &ActionReport) -> Option<UnsettledWrites> {
        let (failed, unknown) = (report.failed(), report.unknown());
        (failed + unknown > 0).then_some(UnsettledWrites { failed, unknown })
    }
}

/// Progress lines on stderr, so that someone waiting on a slow Odoo sees the
/// run is alive; stdout keeps the result alone (`--output json`).
struct StderrProgress {
    rule: String,
    last_write_line: Mutex<Option<Instant>>,
}

impl StderrProgress {
    fn new(namespace: &str, name: &str) -> StderrProgress {
        StderrProgress {
            rule: format!("{namespace}/{name}"),
            last_write_line: Mutex::new(None),
        }
    }
}

impl Progress for StderrProgress {
    fn step(&self, step: Step) {
        let rule = &self.rule;
        match step {
            Step::Reading => eprintln!("scan {rule}: reading Odoo"),
            Step::Found {
                exceptions,
                subjects,
            } => eprintln!("scan {rule}: {exceptions} exceptions found in {subjects} subjects"),
            Step::Writing { done, total } => {
                // Writes can settle many times a second: the first and last
                // lines always, the ones between at most once a second.
                let mut last = self
                    .last_write_line
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if done == 0 || done == total || due {
                    *last = Some(Instant::now());
                    eprintln!("scan {rule}: writing {done}/{total}");
                }
            }
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
}

/// Arguments of `planops scan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// The ExceptionRule in the cluster, as `<namespace>/<rule>`: its
    /// OdooConnection and Secrets are read from the cluster (kubeconfig or
    /// in-cluster config) and the result is written to the rule's
    /// `status.lastScan`. What the CronJob of `execution: CronJob` runs.
    #[arg(value_name = "NAMESPACE/RULE", conflicts_with_all = ["file", "odoo_url", "database", "login", "api_key_env", "secret_env"])]
    pub target: Option<String>,
    /// YAML file with the ExceptionRule (other documents are ignored).
    #[arg(short = 'f', long = "file", required_unless_present = "target")]
    pub file: Option<PathBuf>,
    /// Name of the rule when the file holds several.
    #[arg(long)]
    pub rule: Option<String>,
    /// Namespace the rule of `-f` belongs to (part of every fingerprint).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Odoo base URL (with `-f`).
    #[arg(long, required_unless_present = "target")]
    pub odoo_url: Option<String>,
    /// Odoo database (with `-f`).
    #[arg(long, required_unless_present = "target")]
    pub database: Option<String>,
    /// Odoo login (with `-f`).
    #[arg(long, required_unless_present = "target")]
    pub login: Option<String>,
    /// Environment variable holding the API key (with `-f`; never passed on the command line).
    #[arg(long, required_unless_present = "target")]
    pub api_key_env: Option<String>,
    /// Secrets for notify actions (with `-f`): `secret-name/key=ENV_VAR`, repeatable.
    #[arg(long = "secret-env")]
    pub secret_env: Vec<String>,
    /// Plan the writes but make none, whatever the rule's mode; with
    /// `<namespace>/<rule>` the status is not written either.
    #[arg(long)]
    pub dry_run: bool,
    /// table or json.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// Exceptions listed in the table.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Plan as of this day (YYYY-MM-DD) instead of today, to replay a scan.
    #[arg(long)]
    pub today: Option<jiff::civil::Date>,
    /// Keep the demand history of done moves and the stock snapshot in this
    /// directory between runs, so the next scan reads only what changed.
    #[arg(long, env = "PLANOPS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

fn secrets_from_env(specs: &[String]) -> anyhow::Result<StaticSecrets> {
    let mut map = HashMap::new();
    for spec in specs {
        let Some((reference, var)) = spec.split_once('=') else {
            bail!("--secret-env {spec:?}: expected secret-name/key=ENV_VAR");
        };
        let value =
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        map.insert(reference.to_string(), Secret::new(value));
    }
    Ok(StaticSecrets(map))
}

/// Runs one scan and prints the result. Fails with [`UnsettledWrites`] when the
/// run completed but left writes failed or unknown.
pub async fn run(args: ScanArgs) -> anyhow::Result<()> {
    if let Some(target) = &args.target {
        return match run_in_cluster(target, &args).await? {
            Some(unsettled) => Err(unsettled.into()),
            None => Ok(()),
        };
    }
    let (Some(file), Some(odoo_url), Some(database), Some(login), Some(api_key_env)) = (
        &args.file,
        &args.odoo_url,
        &args.database,
        &args.login,
        &args.api_key_env,
    ) else {
        bail!(
            "give <namespace>/<rule>, or -f with --odoo-url, --database, --login and --api-key-env"
        );
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rules = super::objects_in::<ExceptionRule>(&text, "ExceptionRule")
        .with_context(|| format!("parsing {}", file.display()))?;
    let mut rule = match &args.rule {
        Some(name) => rules
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .with_context(|| format!("no ExceptionRule named {name} in the file"))?,
        None => rules
            .into_iter()
            .next()
            .context("the file holds no ExceptionRule")?,
    };
    if args.dry_run {
        rule.spec.mode = RuleMode::DryRun;
    }
    let api_key = std::env::var(api_key_env)
        .with_context(|| format!("environment variable {api_key_env} is not set"))?;
    let secrets = secrets_from_env(&args.secret_env)?;
    let connection = connection_spec(&text, &rule, odoo_url, database)
        .with_context(|| format!("parsing {}", file.display()))?;
    let config = crate::controllers::connection::client_config(&connection, login, &api_key);
    let client = OdooClient::connect(config)
        .await
        .context("connecting to Odoo")?;
    let name = rule.metadata.name.clone().unwrap_or_default();
    let progress = StderrProgress::new(&args.namespace, &name);
    let rule_ref = RuleRef {
        namespace: &args.namespace,
        rule: &name,
    };
    let today = args.today.unwrap_or_else(|| jiff::Zoned::now().date());
    let cache = args
        .cache_dir
        .as_ref()
        .map(crate::scan::HistoryCache::persistent);
    let history_key = crate::scan::HistoryKey {
        connection: format!("{}/{}", args.namespace, rule.spec.connection_ref.name),
        url: odoo_url.clone(),
        database: database.clone(),
    };
    let options = crate::scan::ScanOptions {
        history: cache.as_ref().map(|c| (c, &history_key)),
        progress: Some(&progress),
        ..Default::default()
    };
    let policies = FilePolicies(
        super::objects_in::<ApprovalPolicy>(&text, "ApprovalPolicy")
            .with_context(|| format!("parsing {}", file.display()))?,
    );
    let finished = RuleRun {
        client: &client,
        rule: rule_ref,
        spec: &rule.spec,
        today,
        memory: &ScanMemory::default(),
        secrets: &secrets,
        options,
        policies: &policies,
    }
    .execute()
    .await
    .with_context(|| format!("scanning and acting on rule {name}"))?;
    print_run(
        &args,
        &args.namespace,
        &name,
        &rule.spec,
        today,
        &finished.acted,
        &finished.gate,
    )?;
    match UnsettledWrites::of(&finished.acted.report) {
        Some(unsettled) => Err(unsettled.into()),
        None => Ok(()),
    }
}

/// The connection the client is built from, as the operator builds it (timeout,
/// protocol, rate limit, retries): the file's OdooConnection that the rule names,
/// else one with the operator's defaults. The flags give URL and database.
fn connection_spec(
    text: &str,
    rule: &ExceptionRule,
    url: &str,
    database: &str,
) -> anyhow::Result<OdooConnectionSpec> {
    let named = &rule.spec.connection_ref.name;
    let mut spec = super::objects_in::<OdooConnection>(text, "OdooConnection")?
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(named.as_str()))
        .map(|c| c.spec)
        .unwrap_or_else(|| OdooConnectionSpec {
            url: String::new(),
            database: String::new(),
            protocol: Default::default(),
            // Credentials come from --login and --api-key-env.
            credentials_secret_ref: crate::api::connection::CredentialsSecretRef {
                name: String::new(),
                login_key: None,
                api_key_key: None,
            },
            rate_limit: None,
            timeout_seconds: None,
            retry: None,
            callback_base_url: None,
            probe_interval_seconds: None,
            suspend: None,
            deletion_policy: None,
        });
    spec.url = url.to_string();
    spec.database = database.to_string();
    Ok(spec)
}

/// The ApprovalPolicies of the scanned file: they govern the run's drafts as
/// they would in the cluster.
struct FilePolicies(Vec<ApprovalPolicy>);

impl PolicySource for FilePolicies {
    fn governing<'a>(
        &'a self,
        _: &'a RuleRef<'a>,
        spec: &'a ExceptionRuleSpec,
    ) -> BoxFuture<'a, Result<Vec<ApprovalPolicy>, String>> {
        let governing = self
            .0
            .iter()
            .filter(|p| crate::controllers::approval::may_govern(p, spec))
            .cloned()
            .collect();
        Box::pin(async move { Ok(governing) })
    }
}

/// Prints one run as a table or JSON.
#[allow(clippy::too_many_arguments)]
fn print_run(
    args: &ScanArgs,
    namespace: &str,
    name: &str,
    spec: &crate::api::ExceptionRuleSpec,
    today: jiff::civil::Date,
    acted: &Acted,
    gate: &GateReport,
) -> anyhow::Result<()> {
    let Acted {
        outcome,
        plan,
        report,
        ..
    } = acted;
    match args.output {
        Output::Json => {
            let writes: Vec<_> = report
                .results
                .iter()
                .map(|(w, o)| {
                    json!({
                        "kind": w.kind.to_string(),
                        "fingerprint": w.fingerprint,
                        "subject": w.subject,
                        "detail": w.detail,
                        "outcome": format!("{o:?}"),
                    })
                })
                .collect();
            let doc = json!({
                "summary": {
                    "created": report.created(),
                    "existing": report.existing(),
                    "failed": report.failed(),
                    "unknown": report.unknown(),
                    "resolved": report.resolved.len(),
                },
                "rule": name,
                "namespace": namespace,
                "mode": format!("{:?}", spec.mode),
                "today": today.to_string(),
                "subjectsEvaluated": outcome.subjects_evaluated,
                "odooCalls": outcome.calls.requests,
                "durationMillis": outcome.duration.as_millis() as u64,
                "exceptions": outcome.exceptions,
                "writes": writes,
                "resolvedActivities": report.resolved,
                "approvals": gate.requested.iter().map(|r| json!({
                    "policy": r.policy.name_any(),
                    "fingerprint": r.fingerprint,
                    "rfq": r.rfq_name,
                    "created": r.created,
                })).collect::<Vec<_>>(),
                "approvalError": gate.error.as_ref().map(|e| e.to_string()),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Table => {
            print!(
                "{}",
                super::table::exception_table(
                    &outcome.exceptions,
                    args.top,
                    outcome.subjects_evaluated
                )
            );
            println!(
                "scan: {} Odoo calls, {} ms",
                outcome.calls.requests,
                outcome.duration.as_millis()
            );
            print!("{plan}");
            println!(
                "created {}, already there {}, failed {}, unknown {}, resolved {}",
                report.created(),
                report.existing(),
                report.failed(),
                report.unknown(),
                report.resolved.len()
            );
            for (w, o) in &report.results {
                let (what, reason) = match o {
                    WriteOutcome::Failed(reason) => ("failed", reason),
                    WriteOutcome::Unknown(reason) => ("unknown", reason),
                    _ => continue,
                };
                println!("  {what}: {} for {}: {reason}", w.kind, w.subject);
            }
            if let Some(reason) = &report.resolve_failed {
                println!("  failed: resolving cleared activities: {reason}");
            }
            for r in &gate.requested {
                println!(
                    "approval: {} waits for ApprovalPolicy {} ({})",
                    r.rfq_name,
                    r.policy.name_any(),
                    r.explanation
                );
            }
            if let Some(err) = &gate.error {
                println!("approval gate failed, the drafts stay drafts: {err}");
            }
        }
    }
    Ok(())
}

/// Why `planops scan <namespace>/<rule>` could not scan. Names the object and
/// field at fault; never carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum ClusterScanError {
    #[error("{0:?} is not <namespace>/<rule>")]
    Target(String),
    #[error("connecting to the Kubernetes API (kubeconfig or in-cluster config): {0}")]
    Connect(#[source] kube::Error),
    #[error("ExceptionRule {namespace}/{name} not found")]
    RuleNotFound { namespace: String, name: String },
    #[error(
        "ExceptionRule {namespace}/{rule}: spec.connectionRef.name: OdooConnection {namespace}/{connection} not found"
    )]
    ConnectionNotFound {
        namespace: String,
        rule: String,
        connection: String,
    },
    #[error(
        "OdooConnection {namespace}/{connection}: spec.credentialsSecretRef.name: Secret {namespace}/{secret} not found"
    )]
    SecretNotFound {
        namespace: String,
        connection: String,
        secret: String,
    },
    #[error(
        "OdooConnection {namespace}/{connection}: Secret {namespace}/{secret} has no key {key:?}"
    )]
    SecretKeyMissing {
        namespace: String,
        connection: String,
        secret: String,
        key: String,
    },
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("connecting to Odoo at {url}: {source}")]
    Odoo {
        url: String,
        #[source]
        source: crate::odoo::OdooError,
    },
    #[error("scan of ExceptionRule {namespace}/{name} failed: {message}")]
    ScanFailed {
        namespace: String,
        name: String,
        message: String,
    },
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterScanError {
    let what = what.into();
    move |source| ClusterScanError::Kube { what, source }
}

/// `planops scan <namespace>/<rule>`: the rule, its connection and Secrets
/// from the cluster; the scan and actions the operator's scheduler runs; the
/// result in the rule's `status.lastScan` (and a `ScanFailed` Event when it
/// failed), written as field manager `planops-scan`.
async fn run_in_cluster(
    target: &str,
    args: &ScanArgs,
) -> Result<Option<UnsettledWrites>, ClusterScanError> {
    use crate::controllers::rule_scan::{self, ScanReport};
    let (namespace, name) = target
        .split_once('/')
        .filter(|(ns, rule)| !ns.is_empty() && !rule.is_empty() && !rule.contains('/'))
        .ok_or_else(|| ClusterScanError::Target(target.to_string()))?;
    let client = kube::Client::try_default()
        .await
        .map_err(ClusterScanError::Connect)?;
    let rules: kube::Api<ExceptionRule> = kube::Api::namespaced(client.clone(), namespace);
    let mut rule = rules
        .get_opt(name)
        .await
        .map_err(kube_error(format!("reading ExceptionRule {target}")))?
        .ok_or_else(|| ClusterScanError::RuleNotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    if args.dry_run {
        rule.spec.mode = RuleMode::DryRun;
    }
    let today = args.today.unwrap_or_else(|| {
        jiff::Timestamp::now()
            .to_zoned(rule_scan::rule_time_zone(&rule))
            .date()
    });
    let started = jiff::Timestamp::now();
    let clock = std::time::Instant::now();
    let result = scan_in_cluster(&client, &rule, today, args).await;
    let duration = clock.elapsed();
    let (mut report, failure) = match &result {
        Ok(scanned) => (scanned.report.clone(), None),
        Err(ScanStop { error, calls }) => (
            ScanReport::failed(error.to_string(), *calls),
            Some(error.to_string()),
        ),
    };
    report.stamp(started, None, duration);
    // --dry-run is a look from someone's terminal: it changes nothing anywhere.
    if !args.dry_run {
        write_last_scan(&rules, &rule, &report).await?;
        if let Some(message) = &failure {
            publish_failure(&client, &rule, message).await;
        }
    }
    match result {
        Ok(scanned) => print_run(
            args,
            namespace,
            name,
            &rule.spec,
            today,
            &scanned.run,
            &scanned.gate,
        )
        .map(|()| UnsettledWrites::of(&scanned.run.report))
        .map_err(|e| ClusterScanError::ScanFailed {
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: format!("printing the result: {e}"),
        }),
        Err(ScanStop { error, .. }) => Err(match error {
            ScanStep::Cluster(e) => e,
            ScanStep::Scan(message) => ClusterScanError::ScanFailed {
                namespace: namespace.to_string(),
                name: name.to_string(),
                message,
            },
        }),
    }
}

/// Where a cluster scan stopped, and the Odoo calls made until then.
struct ScanStop {
    error: ScanStep,
    calls: u64,
}

enum ScanStep {
    /// Reading the rule's dependencies from the cluster.
    Cluster(ClusterScanError),
    /// The scan or its actions.
    Scan(String),
}

impl std::fmt::Display for ScanStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanStep::Cluster(e) => write!(f, "{e}"),
            ScanStep::Scan(message) => f.write_str(message),
        }
    }
}

impl From<ClusterScanError> for ScanStop {
    fn from(error: ClusterScanError) -> ScanStop {
        ScanStop {
            error: ScanStep::Cluster(error),
            calls: 0,
        }
    }
}

async fn scan_in_cluster(
    client: &kube::Client,
    rule: &ExceptionRule,
    today: jiff::civil::Date,
    args: &ScanArgs,
) -> Result<crate::controllers::rule_scan::Scanned, ScanStop> {
    use crate::controllers::approval::ListedPolicies;
    use crate::controllers::connection::{client_config, credentials_in};
    use crate::controllers::rule_scan;
    use k8s_openapi::api::core::v1::Secret as KubeSecret;
    use kube::ResourceExt;

    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let connection_name = &rule.spec.connection_ref.name;
    let connection = kube::Api::<OdooConnection>::namespaced(client.clone(), &namespace)
        .get_opt(connection_name)
        .await
        .map_err(kube_error(format!(
            "reading OdooConnection {namespace}/{connection_name}"
        )))?
        .ok_or_else(|| ClusterScanError::ConnectionNotFound {
            namespace: namespace.clone(),
            rule: name.clone(),
            connection: connection_name.clone(),
        })?;
    let creds = &connection.spec.credentials_secret_ref;
    let secret = kube::Api::<KubeSecret>::namespaced(client.clone(), &namespace)
        .get_opt(&creds.name)
        .await
        .map_err(kube_error(format!(
            "reading Secret {namespace}/{}",
            creds.name
        )))?
        .ok_or_else(|| ClusterScanError::SecretNotFound {
            namespace: namespace.clone(),
            connection: connection_name.clone(),
            secret: creds.name.clone(),
        })?;
    let (login, api_key) =
        credentials_in(&secret, creds).map_err(|key| ClusterScanError::SecretKeyMissing {
            namespace: namespace.clone(),
            connection: connection_name.clone(),
            secret: creds.name.clone(),
            key: key.to_string(),
        })?;
    let odoo = OdooClient::connect(client_config(&connection.spec, &login, &api_key))
        .await
        .map_err(|source| ClusterScanError::Odoo {
            url: connection.spec.url.clone(),
            source,
        })?;
    let memory = rule_scan::read_memory(client, &namespace, &name)
        .await
        .map_err(kube_error("reading the scan memory"))?;
    let secrets = rule_scan::secret_values(client, None, rule, &namespace)
        .await
        .map_err(kube_error("reading notify secrets"))?;
    let cache = args
        .cache_dir
        .as_ref()
        .map(crate::scan::HistoryCache::persistent);
    let key = rule_scan::history_key(&namespace, &connection);
    let progress = StderrProgress::new(&namespace, &name);
    let scanned = rule_scan::scan_rule(
        &odoo,
        rule,
        today,
        &memory,
        &secrets,
        ScanOptions {
            history: cache.as_ref().map(|c| (c, &key)),
            progress: Some(&progress),
            ..Default::default()
        },
        &ListedPolicies {
            client,
            limiter: None,
        },
    )
    .await
    .map_err(|failure| ScanStop {
        error: ScanStep::Scan(failure.message),
        calls: failure.calls,
    })?;
    if !args.dry_run {
        poke_policies(client, &namespace, &scanned.gate).await;
    }
    if !args.dry_run && scanned.run.outcome.memory != memory {
        rule_scan::write_memory(client, rule, &scanned.run.outcome.memory)
            .await
            .map_err(kube_error("saving the scan memory"))?;
    }
    Ok(scanned)
}

/// Asks the operator to poll at once the policies this run opened requests
/// under, through the on-demand reconcile annotation: in process the gate pokes
/// the policy's controller directly; a Job can only do it through the API.
/// Failing is logged only: the policy's periodic resync finds the request.
async fn poke_policies(client: &kube::Client, namespace: &str, gate: &GateReport) {
    let mut poked = std::collections::BTreeSet::new();
    let api: kube::Api<ApprovalPolicy> = kube::Api::namespaced(client.clone(), namespace);
    for requested in gate.requested.iter().filter(|r| r.created) {
        let name = requested.policy.name_any();
        if !poked.insert(name.clone()) {
            continue;
        }
        let patch = json!({"metadata": {"annotations": {
            crate::api::common::RECONCILE_REQUESTED_ANNOTATION: jiff::Timestamp::now().to_string(),
        }}});
        if let Err(err) = api
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(namespace, policy = %name, error = %err, "could not ask the operator to poll the policy now; its resync will");
        }
    }
}

/// Writes `lastScan` (and, after a successful scan, `topExceptions`) as field
/// manager `planops-scan`, unless the status already says exactly that.
async fn write_last_scan(
    rules: &kube::Api<ExceptionRule>,
    rule: &ExceptionRule,
    report: &crate::controllers::rule_scan::ScanReport,
) -> Result<(), ClusterScanError> {
    use kube::ResourceExt;
    let previous = rule.status.clone().unwrap_or_default();
    // A failed scan keeps the last good list, as in the operator.
    let top = match report.error {
        None => report.top.clone(),
        Some(_) => previous.top_exceptions.clone(),
    };
    if previous.last_scan.as_ref() == Some(&report.last_scan) && previous.top_exceptions == top {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": <ExceptionRule as kube::Resource>::api_version(&()),
        "kind": <ExceptionRule as kube::Resource>::kind(&()),
        "status": {"lastScan": report.last_scan, "topExceptions": top},
    });
    rules
        .patch_status(
            &rule.name_any(),
            &kube::api::PatchParams::apply(SCAN_FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await
        .map_err(kube_error(format!(
            "writing the status of ExceptionRule {}/{}",
            rule.namespace().unwrap_or_default(),
            rule.name_any()
        )))?;
    Ok(())
}

/// A Warning Event `ScanFailed` on the rule, like the operator's. An Event
/// is a courtesy: failing to send it is logged only.
async fn publish_failure(client: &kube::Client, rule: &ExceptionRule, message: &str) {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let reporter = Reporter {
        controller: SCAN_FIELD_MANAGER.into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let note = crate::controllers::driver::truncate(&format!("scan failed: {message}"), 1024);
    let event = Event {
        type_: EventType::Warning,
        reason: crate::api::common::reasons::SCAN_FAILED.into(),
        note: Some(note),
        action: "Scan".into(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &rule.object_ref(&())).await {
        tracing::warn!(error = %err, "could not publish the ScanFailed event");
    }
}
