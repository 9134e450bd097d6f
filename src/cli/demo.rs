//! `planops demo`: the example rules against the built-in Odoo simulator.
//!
//! Starts the simulator in-process with the default seeded data set, connects the
//! real client over HTTP, runs every `ExceptionRule` of `examples/` (embedded in the
//! binary, so it works from any directory) and prints what each found, what it wrote
//! (or, in DryRun, would write) and how many Odoo calls it cost.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

use crate::actions::{self, ActionContext, NoSecrets, WriteOutcome};
use crate::api::rule::ExceptionRule;
use crate::engine::RuleRef;
use crate::odoo::{OdooClient, OdooConfig, RateLimitConfig, RetryConfig, Secret};
use crate::scan::{self, ScanMemory};
use crate::sim::{SimConfig, SimServer};

/// The example manifests, by path.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "seasonal-replenishment/stockout-seasonal.yaml",
        include_str!("../../examples/seasonal-replenishment/stockout-seasonal.yaml"),
    ),
    (
        "seasonal-replenishment/demand-spike.yaml",
        include_str!("../../examples/seasonal-replenishment/demand-spike.yaml"),
    ),
    (
        "multi-warehouse-rebalancing/service-level-risk.yaml",
        include_str!("../../examples/multi-warehouse-rebalancing/service-level-risk.yaml"),
    ),
    (
        "multi-warehouse-rebalancing/low-free-stock.yaml",
        include_str!("../../examples/multi-warehouse-rebalancing/low-free-stock.yaml"),
    ),
    (
        "supplier-delays/supplier-delay.yaml",
        include_str!("../../examples/supplier-delays/supplier-delay.yaml"),
    ),
    (
        "supplier-delays/orders-at-risk.yaml",
        include_str!("../../examples/supplier-delays/orders-at-risk.yaml"),
    ),
];

/// Arguments of `planops demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seed of the simulator's data set.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Exceptions listed per rule.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// The ExceptionRules of a multi-document YAML stream.
pub fn rules_in(yaml: &str) -> anyhow::Result<Vec<ExceptionRule>> {
    super::objects_in(yaml, "ExceptionRule")
}

/// The in-process simulator and a client connected to it over HTTP.
pub struct LocalSim {
    pub server: SimServer,
    pub client: OdooClient,
    /// The simulator's "today", which its data set is built around.
    pub today: jiff::civil::Date,
}

/// Starts the simulator with the default data set of `seed` on a free port and
/// connects the real client to it (shared by `demo` and `plan --sim`).
pub async fn start_simulator(seed: u64) -> anyhow::Result<LocalSim> {
    let mut config = SimConfig::default();
    config.dataset.seed = seed;
    let today = config.today;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = SimServer::start(config, addr)
        .await
        .context("starting the Odoo simulator")?;
    let mut odoo = OdooConfig::new(
        &server.url,
        server.db.name(),
        "admin",
        Secret::new(server.db.admin_api_key()),
    );
    odoo.timeout = Duration::from_secs(60);
    odoo.retry = RetryConfig::default();
    // The simulator runs in this process: Odoo.sh-style throttling would only slow
    // the demo down.
    odoo.rate_limit = RateLimitConfig {
        rps: 10_000.0,
        burst: 10_000,
        max_concurrent: 8,
        calls_per_minute: None,
    };
    let client = OdooClient::connect(odoo)
        .await
        .context("connecting to the simulator")?;
    Ok(LocalSim {
        server,
        client,
        today,
    })
}

/// Runs the demo and prints its report on stdout.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let LocalSim {
        server,
        client,
        today,
    } = start_simulator(args.seed).await?;
    println!(
        "Odoo simulator on {} (database {}), today {today}",
        server.url,
        server.db.name()
    );

    for (path, text) in EXAMPLES {
        for rule in rules_in(text).with_context(|| format!("examples/{path}"))? {
            let name = rule.metadata.name.clone().unwrap_or_default();
            let rule_ref = RuleRef {
                namespace: "demo",
                rule: &name,
            };
            println!("\n== {name} ({path}, {:?})", rule.spec.mode);
            // One rule failing (say, a warehouse code the data set lacks) must not
            // hide what the others find.
            if let Err(error) = demo_rule(&client, &rule, &rule_ref, today, args.top).await {
                println!("error: {}", crate::errors::chain(error.as_ref()));
            }
        }
    }
    server.shutdown().await;
    Ok(())
}

async fn demo_rule(
    client: &OdooClient,
    rule: &ExceptionRule,
    rule_ref: &RuleRef<'_>,
    today: jiff::civil::Date,
    top: usize,
) -> anyhow::Result<()> {
    let name = rule_ref.rule;
    let outcome = scan::run_scan(client, rule_ref, &rule.spec, today, &ScanMemory::default())
        .await
        .with_context(|| format!("scanning rule {name}"))?;
    print!(
        "{}",
        super::table::exception_table(&outcome.exceptions, top, outcome.subjects_evaluated)
    );
    println!(
        "scan: {} Odoo calls, {} ms",
        outcome.calls.requests,
        outcome.duration.as_millis()
    );
    let before_actions = client.calls_made();
    let plan = actions::plan(&rule.spec, &outcome.exceptions, today);
    let ctx = ActionContext {
        rule: rule_ref.clone(),
        spec: &rule.spec,
        today,
        secrets: &NoSecrets,
    };
    let report = actions::execute(client, &ctx, &plan, &outcome.exceptions)
        .await
        .with_context(|| format!("acting on rule {name}"))?;
    let action_calls = client.calls_made().since(&before_actions).requests;
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for (w, o) in &report.results {
        let key = match o {
            WriteOutcome::Created(_) => format!("{} created", w.kind),
            WriteOutcome::Existing(_) => format!("{} already there", w.kind),
            WriteOutcome::Snoozed => format!("{} snoozed", w.kind),
            WriteOutcome::Skipped(r) => format!("{} skipped ({r})", w.kind),
            WriteOutcome::Failed(r) => format!("{} failed ({r})", w.kind),
            WriteOutcome::Unknown(r) => format!("{} unknown ({r})", w.kind),
        };
        *tally.entry(key).or_default() += 1;
    }
    println!(
        "actions: {} planned writes, {} Odoo calls",
        plan.writes.len(),
        action_calls
    );
    for (what, n) in tally {
        println!("  {n:>4} × {what}");
    }
    for (w, o) in report.results.iter().take(top.min(5)) {
        let what = match o {
            WriteOutcome::Created(id) if *id > 0 => format!("created #{id}"),
            WriteOutcome::Created(_) => "sent".to_string(),
            WriteOutcome::Existing(id) => format!("already there (#{id})"),
            WriteOutcome::Snoozed => "snoozed".to_string(),
            WriteOutcome::Skipped(r) | WriteOutcome::Failed(r) | WriteOutcome::Unknown(r) => {
                r.clone()
            }
        };
        let detail: String = w.detail.chars().take(90).collect();
        println!("    {} → {what}: {detail}", w.kind);
    }
    if !report.resolved.is_empty() {
        println!("  {:>4} × activity resolved", report.resolved.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_example_parses_and_rules_are_found() {
        let mut names = Vec::new();
        for (path, text) in EXAMPLES {
            let rules = rules_in(text).unwrap_or_else(|e| panic!("{path}: {e:#}"));
            for rule in rules {
                rule.spec.detector.validate().unwrap();
                names.push(rule.metadata.name.unwrap_or_default());
            }
        }
        assert_eq!(
            names,
            [
                "seasonal-stockout",
                "demand-spike",
                "service-level-risk",
                "low-free-stock",
                "supplier-delay",
                "orders-at-risk"
            ]
        );
    }

    #[test]
    fn non_rule_documents_are_skipped() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n---\napiVersion: planops.io/v1alpha1\nkind: OdooConnection\nmetadata:\n  name: odoo\nspec: {}\n";
        assert!(rules_in(yaml).unwrap().is_empty());
    }
}
