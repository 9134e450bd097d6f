//! `planops plan`: what applying these manifests would change, before they are
//! applied. For each `ExceptionRule`: when it runs (the next scheduled times in
//! its time zone), the records it would own in Odoo (automation for event
//! triggers) and in the cluster (a CronJob), the actions it takes, and with
//! `--evaluate` the exceptions it would raise right now and the writes that
//! would follow, computed with a scan and the action planning forced to
//! `DryRun`: nothing is written to Odoo.
//!
//! The manifests are validated first (`planops validate`); a plan of invalid
//! manifests would describe something the cluster refuses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::validate::{self, Resource, Severity};
use crate::actions;
use crate::api::rule::{ActionSpec, ExceptionRule, Execution, RecordOperation, RuleMode};
use crate::api::{ApprovalPolicy, OdooConnection};
use crate::engine::RuleRef;
use crate::odoo::{OdooClient, OdooConfig, Secret};
use crate::scan::{self, ScanMemory};
use crate::schedule::Schedule;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Arguments of `planops plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Manifest file or directory (recursive, *.yaml and *.yml). Repeatable.
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<PathBuf>,
    /// Namespace of documents that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Plan only the rules of this OdooConnection, by name or by its spec.url. Repeatable.
    #[arg(long = "connection")]
    pub connections: Vec<String>,
    /// Number of upcoming scheduled runs to list per rule.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// List runs after this instant (RFC 3339) instead of now.
    #[arg(long)]
    pub now: Option<jiff::Timestamp>,
    /// Also scan Odoo now and show the exceptions and writes each rule would make (DryRun).
    #[arg(long)]
    pub evaluate: bool,
    /// Odoo base URL for --evaluate. Default: the selected connection's spec.url.
    #[arg(long)]
    pub odoo_url: Option<String>,
    /// Odoo database for --evaluate. Default: the selected connection's spec.database.
    #[arg(long = "db")]
    pub database: Option<String>,
    /// Odoo login for --evaluate.
    #[arg(long)]
    pub login: Option<String>,
    /// File holding the API key for --evaluate (keys never go on the command line).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Evaluate against the built-in Odoo simulator (as `planops demo`) instead.
    #[arg(long, conflicts_with_all = ["odoo_url", "database", "login", "api_key_file"])]
    pub sim: bool,
    /// Seed of the simulator's data set.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Plan as of this day (YYYY-MM-DD). Default: today (the simulator's with --sim).
    #[arg(long)]
    pub today: Option<jiff::civil::Date>,
    /// Exceptions listed per rule.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// text or json.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// What `plan` found for one rule.
#[derive(Debug, Clone)]
struct RulePlan {
    namespace: String,
    rule: ExceptionRule,
    connection: Option<OdooConnection>,
    doc: Value,
}

/// Runs `planops plan`.
pub async fn run(args: PlanArgs) -> anyhow::Result<()> {
    let (report, resources) = validate::validate_paths(&args.files, &args.namespace)?;
    for p in report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
    {
        eprintln!("{p}");
    }
    if report.errors > 0 {
        for p in report
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
        {
            println!("{p}");
        }
        println!("{}", report.summary());
        bail!("the manifests are invalid (see `planops validate`); nothing to plan");
    }
    let connections: BTreeMap<(String, String), OdooConnection> = resources
        .iter()
        .filter_map(|(ns, r)| match r {
            Resource::Connection(c) => {
                Some(((ns.clone(), c.metadata.name.clone()?), (**c).clone()))
            }
            _ => None,
        })
        .collect();
    let policies: Vec<(String, ApprovalPolicy)> = resources
        .iter()
        .filter_map(|(ns, r)| match r {
            Resource::Approval(p) => Some((ns.clone(), (**p).clone())),
            _ => None,
        })
        .collect();
    let mut plans = Vec::new();
    for (namespace, resource) in &resources {
        let Resource::Rule(rule) = resource else {
            continue;
        };
        let connection = connections
            .get(&(namespace.clone(), rule.spec.connection_ref.name.clone()))
            .cloned();
        if !args.connections.is_empty()
            && !args.connections.iter().any(|c| {
                *c == rule.spec.connection_ref.name
                    || connection.as_ref().is_some_and(|conn| conn.spec.url == *c)
            })
        {
            continue;
        }
        plans.push(RulePlan {
            namespace: namespace.clone(),
            rule: (**rule).clone(),
            connection,
            doc: Value::Null,
        });
    }
    let now = args.now.unwrap_or_else(jiff::Timestamp::now);
    for plan in &mut plans {
        plan.doc = describe(plan, &policies, now, args.runs);
    }

    let mut evaluations: Vec<Value> = Vec::new();
    if args.evaluate && !plans.is_empty() {
        evaluations = evaluate(&args, &plans).await?;
    }

    match args.output {
        Output::Json => {
            let rules: Vec<Value> = plans
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut doc = p.doc.clone();
                    if let Some(e) = evaluations.get(i) {
                        let mut e = e.clone();
                        if let Some(map) = e.as_object_mut() {
                            map.remove("text");
                        }
                        doc["evaluation"] = e;
                    }
                    doc
                })
                .collect();
            let doc = json!({
                "rules": rules,
                "resources": report.resources,
                "warnings": report.warnings,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            for (i, p) in plans.iter().enumerate() {
                print!("{}", text_of(&p.doc));
                if let Some(e) = evaluations.get(i) {
                    print!("{}", e["text"].as_str().unwrap_or_default());
                }
                println!();
            }
            println!(
                "{} rules planned from {} PlanOps resources{}",
                plans.len(),
                report.resources,
                if args.evaluate {
                    "; evaluated in DryRun: nothing was written to Odoo"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

fn operations(ops: &[RecordOperation]) -> &'static str {
    let create = ops.is_empty() || ops.contains(&RecordOperation::Create);
    let write = ops.is_empty() || ops.contains(&RecordOperation::Write);
    match (create, write) {
        (true, true) => "on_create_or_write",
        (true, false) => "on_create",
        _ => "on_write",
    }
}

fn action_text(
    index: usize,
    action: &ActionSpec,
    namespace: &str,
    policies: &[(String, ApprovalPolicy)],
) -> String {
    let sev = |s: Option<crate::engine::exception::Severity>, default: &str| {
        s.map(|s| format!("{s:?}"))
            .unwrap_or_else(|| default.to_string())
    };
    if let Some(a) = &action.activity {
        let who = a
            .assignee
            .user
            .as_ref()
            .map(|u| format!("user {u}"))
            .or_else(|| a.assignee.group.as_ref().map(|g| format!("group {g}")))
            .unwrap_or_default();
        return format!(
            "[{index}] activity {:?} for {who}, due in {} day(s), severity >= {}",
            a.activity_type.as_deref().unwrap_or("To-Do"),
            a.deadline_days
                .map(|d| d.to_string())
                .unwrap_or_else(|| "1 (0 if Critical)".into()),
            sev(a.min_severity, "Low")
        );
    }
    if let Some(p) = &action.propose_purchase {
        let gate = match &p.approval_policy_ref {
            Some(r) => format!("gated by ApprovalPolicy {}", r.name),
            None => {
                let governing: Vec<&str> = policies
                    .iter()
                    .filter(|(ns, pol)| {
                        ns == namespace
                            && pol.spec.governs
                                == crate::api::approval::GovernedAction::EmergencyPurchase
                    })
                    .filter_map(|(_, pol)| pol.metadata.name.as_deref())
                    .collect();
                if governing.is_empty() {
                    "no EmergencyPurchase ApprovalPolicy among the manifests".to_string()
                } else {
                    format!("gated by the best match of {}", governing.join(", "))
                }
            }
        };
        return format!(
            "[{index}] draft RFQ to the main vendor for the suggested quantity, severity >= {}, {gate}",
            sev(p.min_severity, "High")
        );
    }
    if let Some(n) = &action.notify {
        return format!(
            "[{index}] notify the URL in Secret {}/{}{}, severity >= {}",
            n.url_secret_ref.name,
            n.url_secret_ref.key,
            if n.signing_secret_ref.is_some() {
                ", signed (Standard Webhooks)"
            } else {
                ", unsigned"
            },
            sev(n.min_severity, "Medium")
        );
    }
    if let Some(c) = &action.chatter_note {
        return format!(
            "[{index}] chatter note on the record, severity >= {}",
            sev(c.min_severity, "Low")
        );
    }
    format!("[{index}] (no action kind set)")
}

/// The plan of one rule as JSON (the text output renders the same document).
fn describe(
    plan: &RulePlan,
    policies: &[(String, ApprovalPolicy)],
    now: jiff::Timestamp,
    runs: usize,
) -> Value {
    let rule = &plan.rule;
    let spec = &rule.spec;
    let name = rule.metadata.name.clone().unwrap_or_default();
    let detector = spec
        .detector
        .kind()
        .map(|k| k.as_str().to_string())
        .unwrap_or_default();
    let suspended = spec.suspend.unwrap_or(false);
    let schedule = spec.triggers.schedule.as_ref().map(|s| {
        let mut doc = json!({
            "cron": s.cron,
            "timeZone": s.time_zone.as_deref().unwrap_or("UTC"),
        });
        match Schedule::parse(s) {
            Ok(parsed) => {
                let key = format!("{}/{name}", plan.namespace);
                let mut after = now;
                let mut next = Vec::new();
                for _ in 0..runs {
                    let Some(run) = parsed.next_run(after, &key) else {
                        break;
                    };
                    let local = run.fire_at.to_zoned(parsed.time_zone().clone());
                    next.push(local.strftime("%Y-%m-%d %H:%M:%S %Z (%:z)").to_string());
                    after = run.scheduled;
                }
                doc["nextRuns"] = json!(next);
                doc["suspended"] = json!(suspended || parsed.suspended());
                doc["concurrencyPolicy"] = json!(format!("{:?}", parsed.concurrency_policy()));
                if let Some(jitter) = s.jitter_seconds.filter(|j| *j > 0) {
                    doc["jitterSeconds"] = json!(jitter);
                }
            }
            Err(e) => doc["error"] = json!(e.to_string()),
        }
        doc
    });
    let callback = plan
        .connection
        .as_ref()
        .and_then(|c| c.spec.callback_base_url.clone());
    let mut odoo_records = Vec::new();
    let events = spec.triggers.events.as_ref().map(|e| {
        let route = crate::automation::hook_path(&plan.namespace, &name);
        let url = match &callback {
            Some(base) => format!("{}{route}", base.trim_end_matches('/')),
            None => format!(
                "<callbackBaseUrl of OdooConnection {}>{route}",
                spec.connection_ref.name
            ),
        };
        odoo_records.push(json!({
            "model": "base.automation",
            "what": format!(
                "automation rule on {} ({}){}{}",
                e.model,
                operations(&e.operations),
                if e.watched_fields.is_empty() {
                    String::new()
                } else {
                    format!(", watching {}", e.watched_fields.join(", "))
                },
                e.filter_domain
                    .as_ref()
                    .map(|d| format!(", filter {d}"))
                    .unwrap_or_default()
            ),
        }));
        odoo_records.push(json!({
            "model": "ir.actions.server",
            "what": format!("webhook action posting the changed record to {url}"),
        }));
        json!({
            "model": e.model,
            "trigger": operations(&e.operations),
            "watchedFields": e.watched_fields,
            "filterDomain": e.filter_domain,
            "webhookUrl": url,
            "odoo16PollSeconds": e.poll_interval_seconds.unwrap_or(60),
        })
    });
    let mut cluster_records = Vec::new();
    if spec.execution == Execution::CronJob {
        cluster_records.push(json!({
            "kind": "CronJob",
            "name": crate::controllers::cronjob::cronjob_name(&name),
            "what": format!(
                "batch/v1 CronJob owned by the rule, running `planops scan {}/{name}` on {}",
                plan.namespace,
                spec.triggers.schedule.as_ref().map(|s| s.cron.as_str()).unwrap_or("-")
            ),
        }));
    }
    let actions: Vec<String> = spec
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| action_text(i, a, &plan.namespace, policies))
        .collect();
    json!({
        "namespace": plan.namespace,
        "name": name,
        "connection": spec.connection_ref.name,
        "connectionInManifests": plan.connection.is_some(),
        "detector": detector,
        "mode": format!("{:?}", spec.mode),
        "execution": format!("{:?}", spec.execution),
        "suspended": suspended,
        "schedule": schedule,
        "events": events,
        "odooRecords": odoo_records,
        "clusterRecords": cluster_records,
        "actions": actions,
    })
}

fn text_of(doc: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ExceptionRule {}/{}: {} on connection {}{}, mode {}, execution {}{}",
        s(&doc["namespace"]),
        s(&doc["name"]),
        s(&doc["detector"]),
        s(&doc["connection"]),
        if doc["connectionInManifests"] == json!(true) {
            ""
        } else {
            " (not among the manifests)"
        },
        s(&doc["mode"]),
        s(&doc["execution"]),
        if doc["suspended"] == json!(true) {
            " — SUSPENDED: nothing runs"
        } else {
            ""
        }
    );
    match doc["schedule"].as_object() {
        Some(schedule) => {
            let _ = writeln!(
                out,
                "  schedule: {:?} in {}{}",
                s(&schedule["cron"]),
                s(&schedule["timeZone"]),
                schedule
                    .get("jitterSeconds")
                    .map(|j| format!(", up to {j}s jitter"))
                    .unwrap_or_default()
            );
            if let Some(err) = schedule.get("error") {
                let _ = writeln!(out, "    error: {}", s(err));
            }
            for run in schedule
                .get("nextRuns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(out, "    next: {}", s(run));
            }
        }
        None => {
            let _ = writeln!(out, "  schedule: none (event triggers only)");
        }
    }
    for record in doc["odooRecords"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  owns in Odoo: {} — {}",
            s(&record["model"]),
            s(&record["what"])
        );
    }
    for record in doc["clusterRecords"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  owns in the cluster: {}", s(&record["what"]));
    }
    let actions = doc["actions"].as_array().cloned().unwrap_or_default();
    if actions.is_empty() {
        let _ = writeln!(
            out,
            "  actions: none (exceptions are reported in status only)"
        );
    }
    for action in actions {
        let _ = writeln!(out, "  action {}", s(&action));
    }
    out
}

#[cfg(feature = "simulator")]
use super::demo::LocalSim;
/// Without the simulator `--sim` fails before one could start.
#[cfg(not(feature = "simulator"))]
type LocalSim = std::convert::Infallible;

/// Connects to the Odoo `--evaluate` names.
async fn connect(
    args: &PlanArgs,
    plans: &[RulePlan],
) -> anyhow::Result<(OdooClient, Option<LocalSim>, jiff::civil::Date)> {
    if args.sim {
        #[cfg(feature = "simulator")]
        {
            let sim = super::demo::start_simulator(args.seed).await?;
            let today = args.today.unwrap_or(sim.today);
            let client = sim.client.clone();
            return Ok((client, Some(sim), today));
        }
        #[cfg(not(feature = "simulator"))]
        bail!(
            "--sim needs the built-in simulator, which this build leaves out (feature `simulator`)"
        );
    }
    // Without explicit flags, the one connection the rules share supplies the
    // URL and database.
    let mut specs: Vec<&OdooConnection> =
        plans.iter().filter_map(|p| p.connection.as_ref()).collect();
    specs.dedup_by(|a, b| a.spec.url == b.spec.url && a.spec.database == b.spec.database);
    let single = if specs.len() == 1 {
        specs.first()
    } else {
        None
    };
    let url = match (&args.odoo_url, single) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => c.spec.url.clone(),
        (None, None) => bail!(
            "--evaluate needs --odoo-url (or --sim): the rules do not share one OdooConnection among the manifests"
        ),
    };
    let database = match (&args.database, single) {
        (Some(db), _) => db.clone(),
        (None, Some(c)) => c.spec.database.clone(),
        (None, None) => bail!("--evaluate needs --db (or --sim)"),
    };
    let login = args
        .login
        .clone()
        .context("--evaluate needs --login (or --sim)")?;
    let key_file = args
        .api_key_file
        .as_ref()
        .context("--evaluate needs --api-key-file (or --sim)")?;
    let api_key = std::fs::read_to_string(key_file)
        .with_context(|| format!("reading {}", key_file.display()))?
        .trim()
        .to_string();
    let mut config = OdooConfig::new(&url, &database, &login, Secret::new(api_key));
    config.timeout = Duration::from_secs(60);
    let client = OdooClient::connect(config)
        .await
        .with_context(|| format!("connecting to Odoo at {url}"))?;
    let today = args.today.unwrap_or_else(|| jiff::Zoned::now().date());
    Ok((client, None, today))
}

/// Scans each rule and plans its actions in DryRun: reads only.
async fn evaluate(args: &PlanArgs, plans: &[RulePlan]) -> anyhow::Result<Vec<Value>> {
    let (client, sim, today) = connect(args, plans).await?;
    let mut out = Vec::new();
    for plan in plans {
        let name = plan.rule.metadata.name.clone().unwrap_or_default();
        let rule_ref = RuleRef {
            namespace: &plan.namespace,
            rule: &name,
        };
        let mut spec = plan.rule.spec.clone();
        // A plan never writes, whatever the rule's mode says.
        spec.mode = RuleMode::DryRun;
        let mut text = String::new();
        let doc =
            match scan::run_scan(&client, &rule_ref, &spec, today, &ScanMemory::default()).await {
                Ok(outcome) => {
                    let actions = actions::plan(&spec, &outcome.exceptions, today);
                    text.push_str("  now (DryRun): ");
                    text.push_str(&super::table::exception_table(
                        &outcome.exceptions,
                        args.top,
                        outcome.subjects_evaluated,
                    ));
                    let _ = writeln!(
                        text,
                        "  scan cost {} Odoo calls, {} ms",
                        outcome.calls.requests,
                        outcome.duration.as_millis()
                    );
                    for line in actions.to_string().lines() {
                        let _ = writeln!(text, "  {line}");
                    }
                    let writes: Vec<Value> = actions
                        .writes
                        .iter()
                        .map(|w| {
                            json!({
                                "action": w.action,
                                "kind": w.kind.to_string(),
                                "fingerprint": w.fingerprint,
                                "subject": w.subject,
                                "detail": w.detail,
                            })
                        })
                        .collect();
                    json!({
                        "today": today.to_string(),
                        "subjectsEvaluated": outcome.subjects_evaluated,
                        "odooCalls": outcome.calls.requests,
                        "exceptions": outcome.exceptions,
                        "writes": writes,
                        "resolvesCleared": actions.resolves_cleared,
                    })
                }
                Err(e) => {
                    let _ = writeln!(text, "  now: cannot evaluate: {e}");
                    json!({ "today": today.to_string(), "error": e.to_string() })
                }
            };
        let mut doc = doc;
        doc["text"] = json!(text);
        out.push(doc);
    }
    #[cfg(feature = "simulator")]
    if let Some(sim) = sim {
        sim.server.shutdown().await;
    }
    #[cfg(not(feature = "simulator"))]
    if let Some(never) = sim {
        match never {}
    }
    Ok(out)
}
