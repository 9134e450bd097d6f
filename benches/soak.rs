//! Soak: the operator as a real process on the real control plane, against
//! the Odoo simulator, under a long mixed load, with its resident memory and
//! open file descriptors printed every minute. Flat lines are the pass mark;
//! the summary gives first, last and largest figures and the slope.
//!
//! The load, all the time:
//! - signed supplier webhooks, two a second: new delays on ten orders, replays
//!   (the same delivery again, and the same event under a new delivery id),
//!   forged signatures and events for an order that does not exist;
//! - once a minute a burst of three times the route's rate limit (429s);
//! - two scheduled rules: `pricey` (every 20 s; an activity and a chatter note
//!   per product over a price) whose exceptions open and resolve as the soak
//!   moves prices every minute, and `spike` (every minute; demand spikes over
//!   the data set's sales history).
//!
//! ```sh
//! cargo bench --bench soak                            # 60 minutes
//! PLANOPS_SOAK_MINUTES=20 cargo bench --bench soak    # any length
//! ```
//!
//! It needs the control plane of the integration tests (`source DIR/env` after
//! `scripts/envtest.sh start DIR`, or it starts one of its own). Run without
//! `--bench` (as `cargo test --all-targets` does) it is a 20-second smoke test
//! sampling every 5 seconds, unless `PLANOPS_SOAK_MINUTES` is set.

#[path = "../tests/support/mod.rs"]
mod harness;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::odoo::{self, product};
use harness::suppliers::{SIGNING_SECRET, acme_orders, apply_acme_connector, try_deliver};
use harness::{OperatorOptions, OperatorProcess, apply, connect_odoo, connection, wait_ready};
use planops::odoo::OdooClient;
use planops::sim::{DatasetParams, SimConfig};
use serde_json::{Value, json};

/// The supplier route's limit; the minute's burst is three times it.
const RATE: u32 = 10;
/// Products of the `pricey` rule; four move across its threshold each minute.
const PRICED: usize = 40;
const MOVED_PER_MINUTE: usize = 4;
/// `pricey` flags a product whose cost is above this.
const THRESHOLD: f64 = 20.0;

/// What the sender did, by the answer it got.
#[derive(Default)]
struct Sent {
    sent: AtomicU64,
    /// 200 for a new event.
    accepted: AtomicU64,
    /// 200 for an event already applied (replays).
    duplicate: AtomicU64,
    /// 401 (forged) and 422 (no such order), as intended.
    refused: AtomicU64,
    /// 429 of the bursts.
    limited: AtomicU64,
    /// Anything else: no answer, 5xx, or a 4xx that was not meant.
    unexpected: AtomicU64,
}

impl Sent {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn record(&self, answer: Result<(u16, Value), reqwest::Error>, expected_refusal: bool) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let counter = match answer {
            Ok((200, a)) if a["duplicate"] == true || a["detail"]["duplicate"] == true => {
                &self.duplicate
            }
            Ok((200, _)) => &self.accepted,
            Ok((401 | 422, _)) if expected_refusal => &self.refused,
            Ok((429, _)) => &self.limited,
            _ => &self.unexpected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Sample {
    minute: f64,
    rss_kib: u64,
    fds: usize,
}

fn env_number(name: &str) -> Option<f64> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() {
    let minutes = env_number("PLANOPS_SOAK_MINUTES");
    let smoke = minutes.is_none() && !support::full_run();
    let run_for = if smoke {
        Duration::from_secs(20)
    } else {
        Duration::from_secs_f64(minutes.unwrap_or(60.0) * 60.0)
    };
    let sample_every = Duration::from_secs_f64(
        env_number("PLANOPS_SOAK_SAMPLE_SECONDS").unwrap_or(if smoke { 5.0 } else { 60.0 }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(soak(run_for, sample_every, smoke));
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if var == 0.0 {
        return 0.0;
    }
    points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / var
}

/// Sum of the samples of a metric family in a Prometheus text page.
fn metric_sum(page: &str, family: &str) -> u64 {
    page.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn soak(run_for: Duration, sample_every: Duration, smoke: bool) {
    let (cluster, ns) = harness::setup("soak").await;
    let server = odoo::start_sim(SimConfig {
        dataset: DatasetParams {
            seed: 3,
            products: 200,
            warehouses: 1,
            history_days: 120,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    })
    .await;
    let client = odoo::connect(&server).await;
    let orders = acme_orders(&client, 10).await;
    let mut priced = Vec::with_capacity(PRICED);
    for n in 0..PRICED {
        priced.push(product(&client, &format!("SOAK-{n}"), 5.0, None).await);
    }

    let mut operator = OperatorProcess::start_with_env(
        cluster,
        OperatorOptions {
            namespace: &ns,
            identity: "soak",
            leader_election: true,
            lease_duration_seconds: 15,
            kubeconfig: None,
            label_leader_pod: false,
        },
        // The figures are the point; the operator's debug log is not.
        &[("RUST_LOG", "warn")],
    )
    .await;
    connect_odoo(cluster, &ns, &server).await;
    // Room for the load: two events a second are some 16 Odoo calls a second,
    // above the connection's default limit of 10.
    let mut conn = connection("odoo", "odoo-credentials", &server.url);
    conn["spec"]["rateLimit"] = json!({"requestsPerSecond": 50, "burst": 50});
    apply(cluster, &ns, &conn).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
    apply_acme_connector(cluster, &ns, &[], Some(RATE)).await;
    apply(cluster, &ns, &rules()[0]).await;
    apply(cluster, &ns, &rules()[1]).await;

    let sent = Arc::new(Sent::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let references: Vec<String> = orders.iter().map(|o| o.reference.clone()).collect();
    let sender = tokio::spawn(send_events(
        operator.port,
        ns.clone(),
        references,
        sent.clone(),
        stop.clone(),
    ));
    let mover = tokio::spawn(move_prices(client.clone(), priced, stop.clone()));

    println!(
        "soak: {:.1} min, a sample every {} s; operator pid {}",
        run_for.as_secs_f64() / 60.0,
        sample_every.as_secs(),
        operator.pid().unwrap_or_default()
    );
    println!(
        "{:>7} {:>9} {:>5} {:>7} {:>8} {:>9} {:>7} {:>7} {:>10} {:>6}",
        "minute",
        "RSS MiB",
        "fds",
        "sent",
        "accepted",
        "duplicate",
        "refused",
        "429",
        "unexpected",
        "scans"
    );
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut ticker = tokio::time::interval(sample_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    while started.elapsed() < run_for {
        ticker.tick().await;
        assert!(operator.is_running(), "the operator exited during the soak");
        let page = operator
            .get("/metrics")
            .await
            .map(|p| p.1)
            .unwrap_or_default();
        let sample = Sample {
            minute: started.elapsed().as_secs_f64() / 60.0,
            rss_kib: operator.rss_kib().unwrap_or_default(),
            fds: operator.open_fds().unwrap_or_default(),
        };
        println!(
            "{:>7.1} {:>9.1} {:>5} {:>7} {:>8} {:>9} {:>7} {:>7} {:>10} {:>6}",
            sample.minute,
            sample.rss_kib as f64 / 1024.0,
            sample.fds,
            Sent::get(&sent.sent),
            Sent::get(&sent.accepted),
            Sent::get(&sent.duplicate),
            Sent::get(&sent.refused),
            Sent::get(&sent.limited),
            Sent::get(&sent.unexpected),
            metric_sum(&page, "planops_scans_total"),
        );
        samples.push(sample);
    }
    stop.cancel();
    let _ = sender.await;
    let _ = mover.await;
    let page = operator
        .get("/metrics")
        .await
        .map(|p| p.1)
        .unwrap_or_default();
    summary(&samples, &sent, metric_sum(&page, "planops_scans_total"));
    if smoke {
        // What a smoke run can vouch for: the load ran and was served.
        assert!(operator.is_running(), "the operator exited");
        assert!(Sent::get(&sent.accepted) > 0, "no event accepted");
        assert!(Sent::get(&sent.refused) > 0, "no forgery refused");
        assert!(metric_sum(&page, "planops_scans_total") > 0, "no scan ran");
    }
    server.shutdown().await;
}

fn summary(samples: &[Sample], sent: &Sent, scans: u64) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        println!("soak: no sample taken");
        return;
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let max = samples.iter().map(|s| s.rss_kib).max().unwrap_or_default();
    let (fd_min, fd_max) = (
        samples.iter().map(|s| s.fds).min().unwrap_or_default(),
        samples.iter().map(|s| s.fds).max().unwrap_or_default(),
    );
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.minute, s.rss_kib as f64))
        .collect();
    // The first minutes hold the warm-up (connections, caches, allocator
    // arenas); the second half shows whether growth goes on.
    let second_half = &points[points.len() / 2..];
    println!(
        "soak summary: {:.1} min; RSS first {:.1} MiB, last {:.1} MiB, max {:.1} MiB; \
         slope {:+.1} KiB/min overall, {:+.1} KiB/min over the second half; \
         open fds {fd_min}..{fd_max}",
        last.minute,
        mib(first.rss_kib),
        mib(last.rss_kib),
        mib(max),
        slope(&points),
        slope(second_half),
    );
    println!(
        "soak summary: {} deliveries: {} accepted, {} duplicates, {} refused as intended, \
         {} answered 429, {} unexpected; {scans} scans",
        Sent::get(&sent.sent),
        Sent::get(&sent.accepted),
        Sent::get(&sent.duplicate),
        Sent::get(&sent.refused),
        Sent::get(&sent.limited),
        Sent::get(&sent.unexpected),
    );
}

/// `pricey`: an activity and a note per `SOAK-` product above [`THRESHOLD`],
/// every 20 s; `spike`: demand spikes over the data set, every minute.
fn rules() -> [Value; 2] {
    [
        json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
            "metadata": {"name": "pricey"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "detector": {"fieldThreshold": {
                    "model": "product.product",
                    "domain": "[('default_code', '=like', 'SOAK-%')]",
                    "field": "standard_price",
                    "comparison": "Gt",
                    "value": THRESHOLD,
                }},
                "triggers": {"schedule": {"cron": "*/20 * * * * *"}},
                "actions": [
                    {"activity": {"assignee": {"user": "admin"}}},
                    {"chatterNote": {}},
                ],
            },
        }),
        json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
            "metadata": {"name": "spike"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "detector": {"demandSpike": {"recentDays": 14, "baselineDays": 91}},
                "triggers": {"schedule": {"cron": "0 * * * * *"}},
                "actions": [{"activity": {"assignee": {"user": "admin"}}}],
            },
        }),
    ]
}

/// Two deliveries a second, of every kind a supplier (or an attacker) sends,
/// and a burst over the rate limit once a minute, until `stop`.
async fn send_events(
    port: u16,
    ns: String,
    orders: Vec<String>,
    sent: Arc<Sent>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let today = jiff::Zoned::now().date();
    let event = |n: u64| {
        let eta = planops::engine::inputs::add_days(today, 10 + (n % 50) as i64);
        let po = &orders[(n as usize) % orders.len()];
        json!({"id": format!("soak-{n}"), "type": "order.delayed", "po": po,
               "lines": [{"sku": "E2E-S1", "eta": eta.to_string()}]})
        .to_string()
    };
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        n += 1;
        let now = jiff::Timestamp::now().as_second();
        let (id, body, secret, refusal) = match n % 20 {
            // A forgery: signed with another secret.
            7 => (
                format!("m-{n}"),
                event(n),
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                true,
            ),
            // An order the supplier does not have.
            13 => (
                format!("m-{n}"),
                event(n).replace("ACME-", "NOPE-"),
                SIGNING_SECRET,
                true,
            ),
            // The previous event again, same delivery: the gateway remembers it.
            3 | 11 => (format!("m-{}", n - 1), event(n - 1), SIGNING_SECRET, false),
            // The previous event under a new delivery id: Odoo remembers it.
            17 => (format!("m-{n}"), event(n - 1), SIGNING_SECRET, false),
            _ => (format!("m-{n}"), event(n), SIGNING_SECRET, false),
        };
        sent.record(
            try_deliver(port, &ns, &id, now, secret, &body).await,
            refusal,
        );
        if n.is_multiple_of(120) {
            // Once a minute: three times the route's limit, all at once.
            let burst = (0..3 * RATE as u64).map(|k| {
                let (ns, id) = (ns.clone(), format!("burst-{n}-{k}"));
                let body = event(1_000_000 + n * 100 + k);
                async move { try_deliver(port, &ns, &id, now, SIGNING_SECRET, &body).await }
            });
            for answer in futures::future::join_all(burst).await {
                sent.record(answer, false);
            }
        }
    }
}

/// Every minute, `MOVED_PER_MINUTE` products rise above the threshold and
/// those raised the minute before fall back, so `pricey` opens and resolves
/// exceptions all along.
async fn move_prices(
    client: OdooClient,
    priced: Vec<i64>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    let mut minute = 0usize;
    let mut raised: Vec<i64> = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let next: Vec<i64> = (0..MOVED_PER_MINUTE)
            .map(|k| priced[(minute * MOVED_PER_MINUTE + k) % priced.len()])
            .collect();
        for (ids, price) in [(&raised, 5.0), (&next, 50.0)] {
            if ids.is_empty() {
                continue;
            }
            let vals = odoo::obj(json!({"standard_price": price}));
            if let Err(err) = client.write("product.product", ids, vals).await {
                eprintln!("soak: moving prices: {err}");
            }
        }
        raised = next;
        minute += 1;
    }
}
