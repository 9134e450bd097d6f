//! `planops scan`: one scan of one `ExceptionRule` against an Odoo database, with
//! its actions (the rule's `mode` decides whether they write). The CronJob execution
//! mode runs this command.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::actions::{self, ActionContext, StaticSecrets};
use crate::api::rule::RuleMode;
use crate::engine::RuleRef;
use crate::odoo::{OdooClient, OdooConfig, Secret};
use crate::scan::ScanMemory;

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
    /// YAML file with the ExceptionRule (other documents are ignored).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Name of the rule when the file holds several.
    #[arg(long)]
    pub rule: Option<String>,
    /// Namespace the rule belongs to (part of every fingerprint).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Odoo base URL.
    #[arg(long)]
    pub odoo_url: String,
    /// Odoo database.
    #[arg(long)]
    pub database: String,
    /// Odoo login.
    #[arg(long)]
    pub login: String,
    /// Environment variable holding the API key (never passed on the command line).
    #[arg(long)]
    pub api_key_env: String,
    /// Secrets for notify actions: `secret-name/key=ENV_VAR`, repeatable.
    #[arg(long = "secret-env")]
    pub secret_env: Vec<String>,
    /// Plan the writes but make none, whatever the rule's mode.
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
    /// Keep the demand history of done moves in this directory between runs, so
    /// the next scan reads only what changed (a CronJob mounts a volume here).
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

/// Runs one scan and prints the result.
pub async fn run(args: ScanArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let rules =
        super::demo::rules_in(&text).with_context(|| format!("parsing {}", args.file.display()))?;
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
    let api_key = std::env::var(&args.api_key_env)
        .with_context(|| format!("environment variable {} is not set", args.api_key_env))?;
    let secrets = secrets_from_env(&args.secret_env)?;
    let mut config = OdooConfig::new(
        &args.odoo_url,
        &args.database,
        &args.login,
        Secret::new(api_key),
    );
    config.timeout = Duration::from_secs(60);
    let client = OdooClient::connect(config)
        .await
        .context("connecting to Odoo")?;
    let name = rule.metadata.name.clone().unwrap_or_default();
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
        url: args.odoo_url.clone(),
        database: args.database.clone(),
    };
    let options = crate::scan::ScanOptions {
        history: cache.as_ref().map(|c| (c, &history_key)),
        focus: None,
    };
    let ctx = ActionContext {
        rule: rule_ref.clone(),
        spec: &rule.spec,
        today,
        secrets: &secrets,
    };
    let actions::RuleRun {
        outcome,
        plan,
        report,
        ..
    } = actions::scan_and_act(&client, &ctx, &ScanMemory::default(), options)
        .await
        .with_context(|| format!("scanning and acting on rule {name}"))?;
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
                "rule": name,
                "namespace": args.namespace,
                "mode": format!("{:?}", rule.spec.mode),
                "today": today.to_string(),
                "subjectsEvaluated": outcome.subjects_evaluated,
                "odooCalls": outcome.calls.requests,
                "durationMillis": outcome.duration.as_millis() as u64,
                "exceptions": outcome.exceptions,
                "writes": writes,
                "resolvedActivities": report.resolved,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Table => {
            print!(
                "{}",
                super::demo::exception_table(
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
                "created {}, already there {}, resolved {}",
                report.created(),
                report.existing(),
                report.resolved.len()
            );
        }
    }
    Ok(())
}
