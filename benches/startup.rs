//! Start-up at scale: the operator as a real process on the real control
//! plane, against the Odoo simulator, started on a namespace full of
//! resources it has never seen (as on a first install, or after the objects
//! were restored from a backup).
//!
//! For N rules on one OdooConnection (`PLANOPS_BENCH_SIZES`, default 100,
//! 1,000 and 5,000) and for M connections with one rule each
//! (`PLANOPS_BENCH_CONNECTIONS`, default 100) it prints:
//! - the time from starting the process until every rule and connection is
//!   Ready at its current generation, as the API server serves them;
//! - the writes per object, counted by the API server itself
//!   (`apiserver_request_total` of its `/metrics`, every write verb, all
//!   resources but Leases, which the control plane renews on its own), split
//!   into writes to the objects (finalizers), to their status and Events;
//! - the operator's peak resident memory (`VmHWM`);
//! - the writes in the idle minute that follows (`PLANOPS_BENCH_IDLE_SECONDS`),
//!   which must be 0: nothing changed, so nothing is written.
//!
//! Every object comes up healthy, so the start-up must write no Event either.
//!
//! ```sh
//! cargo bench --bench startup
//! PLANOPS_BENCH_SIZES=100,1000 PLANOPS_BENCH_CONNECTIONS=0 PLANOPS_BENCH_RUNS=3 \
//!     cargo bench --bench startup
//! ```
//!
//! The operator runs with its default `--api-qps` and `--api-burst`, without
//! leader election (the Lease renewals would be idle writes by design). It
//! needs the control plane of the integration tests (`source DIR/env` after
//! `scripts/envtest.sh start DIR`, or it starts one of its own); nothing else
//! may write to that control plane during a run, since the API server's
//! counters are not per client. Run without `--bench` (as `cargo test
//! --all-targets` does) it is a smoke test of a few seconds: 20 rules and 2
//! connections, a 5-second idle window, and the same assertions.

#[path = "../tests/support/mod.rs"]
mod harness;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use harness::{OperatorOptions, OperatorProcess, TestCluster, condition, odoo, planops_api};
use kube::api::{ListParams, Patch, PatchParams};
use planops::sim::{DatasetParams, SimConfig, SimServer};
use serde_json::{Value, json};

/// The verbs of `apiserver_request_total` that change something.
const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Give up on a case that has not reached Ready in this long.
const READY_GUARD: Duration = Duration::from_secs(900);

/// Applies run this many at a time while the bench fills a namespace.
const APPLY_CONCURRENCY: usize = 32;

/// One case: `connections` OdooConnections with `rules_each` rules each.
#[derive(Clone, Copy)]
struct Case {
    connections: usize,
    rules_each: usize,
}

impl Case {
    fn objects(self) -> usize {
        self.connections * (1 + self.rules_each)
    }

    fn label(self) -> String {
        if self.connections == 1 {
            format!("{} rules, 1 connection", self.rules_each)
        } else {
            format!("{} connections, a rule each", self.connections)
        }
    }
}

/// What one run measured.
#[derive(Clone, Default)]
struct Figures {
    ready: Duration,
    /// Writes from operator start until the writes stopped, by `resource[/subresource] VERB`.
    writes: BTreeMap<String, u64>,
    peak_rss_kib: u64,
    idle_writes: BTreeMap<String, u64>,
}

impl Figures {
    fn total(writes: &BTreeMap<String, u64>) -> u64 {
        writes.values().sum()
    }

    /// Writes whose `resource[/subresource] VERB` key passes `filter`.
    fn matching(&self, filter: impl Fn(&str) -> bool) -> u64 {
        self.writes
            .iter()
            .filter(|(k, _)| filter(k))
            .map(|(_, n)| n)
            .sum()
    }
}

fn env_list(name: &str) -> Option<Vec<usize>> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .filter(|n| *n > 0)
            .collect(),
    )
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn main() {
    let full = support::full_run();
    let sizes = env_list("PLANOPS_BENCH_SIZES").unwrap_or_else(|| {
        if full {
            vec![100, 1_000, 5_000]
        } else {
            vec![20]
        }
    });
    let connections = env_list("PLANOPS_BENCH_CONNECTIONS")
        .unwrap_or_else(|| if full { vec![100] } else { vec![2] });
    let runs = env_number("PLANOPS_BENCH_RUNS").unwrap_or(1).max(1) as usize;
    let idle = Duration::from_secs(env_number("PLANOPS_BENCH_IDLE_SECONDS").unwrap_or(if full {
        60
    } else {
        5
    }));
    let mut cases: Vec<Case> = sizes
        .into_iter()
        .map(|rules_each| Case {
            connections: 1,
            rules_each,
        })
        .collect();
    cases.extend(connections.into_iter().map(|connections| Case {
        connections,
        rules_each: 1,
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(cases, runs, idle));
}

async fn bench(cases: Vec<Case>, runs: usize, idle: Duration) {
    let cluster = harness::cluster().await;
    let server = odoo::start_sim(SimConfig {
        dataset: DatasetParams {
            products: 20,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    })
    .await;
    println!(
        "\nStart-up at scale: operator defaults (--api-qps/--api-burst), idle window {} s",
        idle.as_secs()
    );
    println!(
        "{:<30} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "case",
        "run",
        "ready s",
        "writes",
        "w/obj",
        "objects",
        "status",
        "events",
        "peak MiB",
        "idle"
    );
    let mut failures = Vec::new();
    for case in cases {
        let mut measured = Vec::with_capacity(runs);
        for run in 1..=runs {
            let figures = run_case(cluster, &server, case, idle).await;
            print_row(case, &run.to_string(), &figures);
            // Every object comes up healthy: its status says so, an Event
            // would only add a write.
            let events = figures.matching(|k| k.starts_with("events"));
            if events != 0 {
                failures.push(format!("{}: {events} Events at start-up", case.label()));
            }
            if Figures::total(&figures.idle_writes) != 0 {
                failures.push(format!(
                    "{}: writes in the idle window: {:?}",
                    case.label(),
                    figures.idle_writes
                ));
            }
            measured.push(figures);
        }
        if runs > 1 {
            print_row(case, "med", &median(&measured));
        }
        eprintln!(
            "startup: {}: writes by resource and verb (last run): {:?}",
            case.label(),
            measured.last().map(|f| &f.writes)
        );
    }
    server.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn print_row(case: Case, run: &str, f: &Figures) {
    let objects = case.objects() as f64;
    let per_object = |n: u64| n as f64 / objects;
    println!(
        "{:<30} {:>4} {:>8.1} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>6}",
        case.label(),
        run,
        f.ready.as_secs_f64(),
        Figures::total(&f.writes),
        per_object(Figures::total(&f.writes)),
        // Writes to the objects themselves: finalizers.
        per_object(f.matching(|k| {
            (k.starts_with("exceptionrules ") || k.starts_with("odooconnections "))
                && !k.contains("/status")
        })),
        per_object(f.matching(|k| k.contains("/status"))),
        per_object(f.matching(|k| k.starts_with("events"))),
        f.peak_rss_kib as f64 / 1024.0,
        Figures::total(&f.idle_writes),
    );
}

/// Median of each figure on its own (the writes and idle writes of the median run by time).
fn median(all: &[Figures]) -> Figures {
    let mut by_time: Vec<&Figures> = all.iter().collect();
    by_time.sort_by_key(|f| f.ready);
    let mut peaks: Vec<u64> = all.iter().map(|f| f.peak_rss_kib).collect();
    peaks.sort_unstable();
    let middle = by_time[by_time.len() / 2];
    Figures {
        ready: middle.ready,
        writes: middle.writes.clone(),
        peak_rss_kib: peaks[peaks.len() / 2],
        idle_writes: middle.idle_writes.clone(),
    }
}

async fn run_case(
    cluster: &TestCluster,
    server: &SimServer,
    case: Case,
    idle: Duration,
) -> Figures {
    let ns = harness::setup_on(cluster, "startup").await;
    fill(cluster, &ns, server, case).await;

    let before = api_writes(cluster).await;
    let started = Instant::now();
    let mut operator = OperatorProcess::start_with_env(
        cluster,
        OperatorOptions {
            namespace: &ns,
            identity: "startup",
            leader_election: false,
            lease_duration_seconds: 15,
            kubeconfig: None,
            label_leader_pod: false,
        },
        // The figures are the point; a debug line per reconcile would cost
        // the operator more than the work measured.
        &[("RUST_LOG", "warn")],
    )
    .await;

    let ready = loop {
        assert!(operator.is_running(), "the operator exited during start-up");
        let pending = not_ready(cluster, &ns).await;
        if pending == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < READY_GUARD,
            "{}: {pending} objects still not Ready after {READY_GUARD:?}",
            case.label()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Events and the last status writes may trail the last Ready: the
    // start-up is over when the writes stop.
    let mut last = api_writes(cluster).await;
    let mut quiet = 0;
    let settle_started = Instant::now();
    while quiet < 3 && settle_started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = api_writes(cluster).await;
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    let writes = difference(&before, &last);

    tokio::time::sleep(idle).await;
    let after_idle = api_writes(cluster).await;
    assert!(operator.is_running(), "the operator exited while idle");
    let peak_rss_kib = peak_rss_kib(&operator).unwrap_or_default();
    // Still Ready: an idle window without writes because the operator died
    // or stopped reconciling would prove nothing.
    assert_eq!(
        not_ready(cluster, &ns).await,
        0,
        "objects fell out of Ready"
    );
    Figures {
        ready,
        writes,
        peak_rss_kib,
        idle_writes: difference(&last, &after_idle),
    }
}

/// The credentials Secret, `case.connections` OdooConnections to `server` and
/// `case.rules_each` rules on each, applied before the operator starts.
async fn fill(cluster: &TestCluster, ns: &str, server: &SimServer, case: Case) {
    let client = cluster.client();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "odoo-credentials"},
        "stringData": {"login": "admin", "apiKey": server.db.admin_api_key()},
    });
    secrets
        .patch(
            "odoo-credentials",
            &PatchParams::apply(harness::FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("applying the credentials Secret");
    let mut objects = Vec::with_capacity(case.objects());
    for c in 0..case.connections {
        let connection = format!("odoo-{c}");
        objects.push(harness::connection(
            &connection,
            "odoo-credentials",
            &server.url,
        ));
        for r in 0..case.rules_each {
            objects.push(rule(&format!("rule-{c}-{r}"), &connection));
        }
    }
    let connections = planops_api(cluster, ns, "OdooConnection");
    let rules = planops_api(cluster, ns, "ExceptionRule");
    futures::stream::iter(objects)
        .map(|object| {
            let api = if object["kind"] == "OdooConnection" {
                connections.clone()
            } else {
                rules.clone()
            };
            async move {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                api.patch(
                    name,
                    &PatchParams::apply(harness::FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
                .unwrap_or_else(|e| panic!("applying {name}: {e}"));
            }
        })
        .buffer_unordered(APPLY_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// A scheduled rule whose schedule does not fire during a run (early on New
/// Year's Day), so the figures are the start-up's alone.
fn rule(name: &str, connection: &str) -> Value {
    let mut rule = harness::spike_rule(name, connection);
    rule["spec"]["triggers"]["schedule"] = json!({"cron": "0 3 1 1 *", "timeZone": "UTC"});
    rule
}

/// Rules and connections of `ns` not (yet) Ready=True at their generation.
async fn not_ready(cluster: &TestCluster, ns: &str) -> usize {
    let mut pending = 0;
    for kind in ["OdooConnection", "ExceptionRule"] {
        let list = planops_api(cluster, ns, kind)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing {kind}: {e}"));
        pending += list
            .items
            .iter()
            .filter(|obj| {
                let obj = serde_json::to_value(obj).unwrap_or_default();
                let observed = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
                !(observed && condition(&obj, "Ready").is_some_and(|(status, _)| status == "True"))
            })
            .count();
    }
    pending
}

/// The API server's count of writes so far, by `resource[/subresource] VERB`,
/// Leases left out (the control plane renews its own every few seconds).
async fn api_writes(cluster: &TestCluster) -> BTreeMap<String, u64> {
    let out = cluster.kubectl(&["get", "--raw", "/metrics"]).await;
    assert!(
        out.status.success(),
        "reading the API server's metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8_lossy(&out.stdout);
    let mut writes = BTreeMap::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"'))
                .unwrap_or_default()
        };
        let (verb, resource, subresource) =
            (label("verb"), label("resource"), label("subresource"));
        if !WRITE_VERBS.contains(&verb) || resource == "leases" {
            continue;
        }
        let key = if subresource.is_empty() {
            format!("{resource} {verb}")
        } else {
            format!("{resource}/{subresource} {verb}")
        };
        let count = value.trim().parse::<f64>().unwrap_or_default() as u64;
        *writes.entry(key).or_insert(0) += count;
    }
    writes
}

fn difference(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The largest resident set the operator had (`VmHWM`), in KiB.
fn peak_rss_kib(operator: &OperatorProcess) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", operator.pid()?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
