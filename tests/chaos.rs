//! Chaos on the real control plane: the operator as real processes, the Odoo
//! simulator over HTTP, and something breaking at the worst moment. Each test
//! then counts, in the simulator, what PlanOps wrote: every expected record
//! exactly once, none missing, none twice.
//!
//! - The leader SIGKILLed half-way through a scan's writes: the standby takes
//!   the Lease and finishes the scan without writing anything twice.
//! - The leader cut off from the API server (but not from Odoo): it stops
//!   acting on its own clock before its Lease expires, so the standby that
//!   takes the Lease never scans beside it, and nothing is written twice.
//! - The leader SIGKILLed in the middle of a burst of signed supplier events:
//!   the sender retries what was not acknowledged, as a real sender does, and
//!   each event is applied once.
//! - kube-apiserver and etcd SIGKILLed and restarted (on a control plane of the
//!   test's own) while the operator scans: it stays up, its watches resume,
//!   it writes status again, and the scans' effects are not duplicated.
//! - Odoo (the simulator's listener) down for a minute mid-scan and back: the
//!   connection reports the outage, and the scans after it complete the writes.
//! - The webhook gateway under bursts of ten times its rate limit: the excess
//!   is answered 429 with no effect, what is accepted is applied once, and the
//!   operator's memory does not grow from one burst to the next.
//!
//! Assertions are counts and states, never durations: on a shared 2-core
//! machine only the guards against a hang ([`SETTLE`]) depend on time.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use support::odoo;
use support::suppliers::{
    EventEffects, SIGNING_SECRET, acme_orders, apply_acme_connector, try_deliver,
};
use support::writes::*;
use support::*;

/// Short, so a standby takes over soon after the leader dies.
const LEASE_SECONDS: u64 = 6;

/// An operator replica with leader election in `ns`, reaching the API server
/// through `kubeconfig` (the cluster's own when `None`).
async fn elected(
    cluster: &TestCluster,
    ns: &str,
    identity: &str,
    kubeconfig: Option<&std::path::Path>,
) -> OperatorProcess {
    OperatorProcess::start(
        cluster,
        OperatorOptions {
            namespace: ns,
            identity,
            leader_election: true,
            lease_duration_seconds: LEASE_SECONDS,
            kubeconfig,
            label_leader_pod: false,
        },
    )
    .await
}

/// Two operator replicas with leader election in `ns`; the leader first.
async fn two_replicas(cluster: &TestCluster, ns: &str) -> (OperatorProcess, OperatorProcess) {
    let a = elected(cluster, ns, "replica-a", None).await;
    let b = elected(cluster, ns, "replica-b", None).await;
    let holder = eventually("a lease holder", || lease_holder(cluster, ns)).await;
    if holder == a.identity { (a, b) } else { (b, a) }
}

/// SIGKILLs the leader and waits until the standby holds the Lease.
async fn kill_leader(cluster: &TestCluster, ns: &str, mut leader: OperatorProcess, standby: &str) {
    leader.child.start_kill().expect("SIGKILL the leader");
    let _ = leader.child.wait().await;
    eventually("the standby to take the Lease", || async {
        lease_holder(cluster, ns)
            .await
            .filter(|h| h == standby)
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn leader_killed_mid_scan_the_standby_finishes_the_writes_once() {
    let (cluster, ns) = setup("chaos-scan").await;
    let server = sim(40).await;
    let client = odoo::connect(&server).await;
    let subjects = priced_products(&client).await;
    let (leader, standby) = two_replicas(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;

    // Each call answered 150 ms late: the notes take seconds to write.
    slow(&server, 150);
    apply(cluster, &ns, &noted_cost_rule("bulk", "*/5 * * * * *")).await;
    let at_kill = mid_write(&client, &ns, "bulk", subjects).await;
    let killed_at = Timestamp::now();
    kill_leader(cluster, &ns, leader, &standby.identity).await;
    eprintln!("leader killed with {at_kill} of {subjects} notes written");

    // The standby's first complete scan, and one more to show it stays settled.
    let obj = wait_scan_after(cluster, &ns, "bulk", Some(killed_at)).await;
    let first = timestamp(&obj["status"]["lastScan"]["scheduledTime"]);
    slow(&server, 0);
    let obj = wait_scan_after(cluster, &ns, "bulk", first).await;
    Written::read(&client, &ns, "bulk")
        .await
        .assert_once(subjects, "after the failover");
    let last = &obj["status"]["lastScan"];
    assert_eq!(last["exceptionsOpen"], json!(subjects), "{last}");
    assert_eq!(last["exceptionsOpened"], 0, "{last}");
    assert_eq!(standby.leads().await, Some(true));
    server.shutdown().await;
}

/// A supplier delay of event `n` for one of `orders`, moving its line to a date of its own.
fn delay_event(n: usize, reference: &str) -> String {
    let eta = planops::engine::inputs::add_days(jiff::Zoned::now().date(), 10 + n as i64);
    json!({"id": format!("evt-{n}"), "type": "order.delayed", "po": reference,
           "lines": [{"sku": "E2E-S1", "eta": eta.to_string()}]})
    .to_string()
}

/// Delivers event `n` until a replica accepts it, trying every port in turn
/// as a Service in front of the replicas would, with the same delivery id and
/// a fresh timestamp each time (Standard Webhooks retries). Returns the last
/// answer and how many attempts it took.
async fn deliver_until_accepted(ports: &[u16], ns: &str, n: usize, body: &str) -> (Value, usize) {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        for &port in ports {
            attempts += 1;
            let now = Timestamp::now().as_second();
            match try_deliver(port, ns, &format!("msg-{n}"), now, SIGNING_SECRET, body).await {
                Ok((200, answer)) => return (answer, attempts),
                // No answer, a standby, a route not registered yet by a new
                // leader, or the event still running elsewhere: retry later.
                Err(_) | Ok((404 | 409 | 429 | 500..=599, _)) => {}
                Ok((status, answer)) => panic!("event {n}: {status} {answer}"),
            }
        }
        assert!(
            started.elapsed() < SETTLE * 2,
            "event {n} never accepted after {attempts} attempts"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn leader_killed_mid_burst_of_supplier_events_each_event_is_applied_once() {
    const EVENTS: usize = 40;
    let (cluster, ns) = setup("chaos-burst").await;
    let server = sim(5).await;
    let client = odoo::connect(&server).await;
    let orders = acme_orders(&client, 4).await;
    let (leader, standby) = two_replicas(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    apply_acme_connector(cluster, &ns, &[], None).await;

    // An event is a handful of Odoo calls; 40 ms each keeps several in flight
    // when the leader dies.
    slow(&server, 40);
    let bodies: Vec<String> = (0..EVENTS)
        .map(|n| delay_event(n, &orders[n % orders.len()].reference))
        .collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sender = {
        let (acked, bodies, ns, port) = (acked.clone(), bodies.clone(), ns.clone(), leader.port);
        tokio::spawn(async move {
            futures::stream::iter(0..EVENTS)
                .for_each_concurrent(8, |n| {
                    let (acked, body, ns) = (acked.clone(), bodies[n].clone(), ns.clone());
                    async move {
                        let now = Timestamp::now().as_second();
                        let id = format!("msg-{n}");
                        if let Ok((200, _)) =
                            try_deliver(port, &ns, &id, now, SIGNING_SECRET, &body).await
                        {
                            acked.lock().expect("acked").insert(n);
                        }
                    }
                })
                .await;
        })
    };
    eventually("a quarter of the events acknowledged", || async {
        (acked.lock().expect("acked").len() >= EVENTS / 4).then_some(())
    })
    .await;
    kill_leader(cluster, &ns, leader, &standby.identity).await;
    sender.await.expect("the first pass of the sender");
    let unacked: Vec<usize> = (0..EVENTS)
        .filter(|n| !acked.lock().expect("acked").contains(n))
        .collect();
    assert!(
        !unacked.is_empty(),
        "every event was acknowledged before the kill: the kill did not land mid-burst"
    );

    // What the killed leader had started on without answering: the resend
    // must complete these without doing their first part again.
    let effects = EventEffects::read(&client).await;
    let left: Vec<(u64, u64)> = unacked
        .iter()
        .map(|n| effects.of(&ns, &format!("evt-{n}")))
        .collect();
    let half_done = left.iter().filter(|e| **e == (0, 1)).count();
    let done_unanswered = left.iter().filter(|e| **e == (1, 1)).count();

    // The sender retries what it has no 2xx for; the standby now leads.
    let ports = [standby.port];
    let resent: Vec<Value> = futures::stream::iter(unacked.iter().copied())
        .map(|n| {
            let (ns, body) = (ns.clone(), bodies[n].clone());
            async move { deliver_until_accepted(&ports, &ns, n, &body).await.0 }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let duplicates = resent
        .iter()
        .filter(|a| a["duplicate"] == true || a["detail"]["duplicate"] == true)
        .count();
    eprintln!(
        "{} of {EVENTS} acknowledged before the kill; {} resent: the killed leader had left \
         {half_done} half done (attachment, no note) and {done_unanswered} done without \
         answering; {duplicates} resends were answered as duplicates",
        EVENTS - unacked.len(),
        unacked.len()
    );

    let effects = EventEffects::read(&client).await;
    for n in 0..EVENTS {
        let found = effects.of(&ns, &format!("evt-{n}"));
        assert_eq!(found, (1, 1), "event {n}: (notes, attachments)");
    }
    assert_eq!(
        effects.attachments(),
        EVENTS as u64,
        "no attachment but the events'"
    );
    server.shutdown().await;
}

/// A TCP relay to the API server that can be cut, as a network partition
/// would: while cut, nothing passes either way and connections hang (no
/// reset); once healed, the hung connections close and new ones pass.
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(cluster: &TestCluster) -> Relay {
        let upstream = cluster
            .config
            .cluster_url
            .authority()
            .expect("the API server URL has a host and port")
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the relay");
        let port = listener.local_addr().expect("relay address").port();
        let (cut, _) = tokio::sync::watch::channel(false);
        let partition = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut partition = partition.subscribe();
                let upstream = upstream.clone();
                let cut_already = *partition.borrow();
                let mut healed = partition.clone();
                tokio::spawn(async move {
                    let relay = async {
                        if cut_already {
                            // Accepted but never passed on: the hold below has it.
                            std::future::pending::<()>().await;
                        }
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    };
                    tokio::select! {
                        _ = relay => {}
                        _ = async { partition.wait_for(|cut| *cut).await.is_ok() } => {
                            // Hold the connection, silent, until the partition heals.
                            let _ = async { healed.wait_for(|cut| !*cut).await.is_ok() }.await;
                        }
                    }
                });
            }
        });
        Relay { port, cut }
    }

    /// A kubeconfig in `dir` like the cluster's, through this relay.
    fn kubeconfig(&self, cluster: &TestCluster, dir: &std::path::Path) -> std::path::PathBuf {
        let admin = std::fs::read_to_string(&cluster.kubeconfig).expect("reading the kubeconfig");
        let mut config: Value = serde_yaml_ng::from_str(&admin).expect("kubeconfig is YAML");
        config["clusters"][0]["cluster"]["server"] =
            json!(format!("https://127.0.0.1:{}", self.port));
        let path = dir.join("kubeconfig-relayed");
        std::fs::write(
            &path,
            serde_yaml_ng::to_string(&config).expect("kubeconfig serialises"),
        )
        .expect("writing the relayed kubeconfig");
        path
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn heal(&self) {
        self.cut.send_replace(false);
    }
}

const SUCCEEDED_SCANS: &str = r#"planops_scans_total{outcome="succeeded"}"#;

#[tokio::test]
async fn leader_cut_off_from_the_api_server_stops_acting_before_the_standby_takes_over() {
    let (cluster, ns) = setup("chaos-partition").await;
    let server = sim(20).await;
    let client = odoo::connect(&server).await;
    let subjects = priced_products(&client).await;
    let relay = Relay::start(cluster).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let relayed = relay.kubeconfig(cluster, dir.path());
    // The leader reaches the API server only through the relay; it starts
    // first and holds the Lease before the standby exists.
    let leader = elected(cluster, &ns, "replica-a", Some(&relayed)).await;
    eventually("replica-a to hold the Lease", || async {
        lease_holder(cluster, &ns)
            .await
            .filter(|h| h == "replica-a")
    })
    .await;
    let standby = elected(cluster, &ns, "replica-b", None).await;
    connect_odoo(cluster, &ns, &server).await;
    apply(cluster, &ns, &noted_cost_rule("steady", "*/2 * * * * *")).await;
    wait_scan_after(cluster, &ns, "steady", None).await;
    Written::read(&client, &ns, "steady")
        .await
        .assert_once(subjects, "before the partition");

    relay.cut();
    // Odoo is still reachable: new exceptions appear for whoever scans.
    let fresh = 5;
    for n in 0..fresh {
        odoo::product(&client, &format!("PARTITION-{n}"), 7.0, None).await;
    }
    // Sampled until the standby holds the Lease: when did the cut-off leader
    // stop saying it leads, and how many scans had it run by then.
    let mut stepped_down: Option<u64> = None;
    let started = Instant::now();
    loop {
        if stepped_down.is_none() && leader.leads().await == Some(false) {
            stepped_down = Some(leader.counter(SUCCEEDED_SCANS).await);
        }
        if lease_holder(cluster, &ns).await.as_deref() == Some("replica-b") {
            break;
        }
        assert!(
            started.elapsed() < SETTLE,
            "the standby did not take the Lease of a cut-off leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scans_at_step_down =
        stepped_down.expect("the standby took the Lease while the cut-off leader still led");

    // The standby scans the new exceptions once; the old leader scans no more.
    let took_over = Timestamp::now();
    let obj = wait_scan_after(cluster, &ns, "steady", Some(took_over)).await;
    let first = timestamp(&obj["status"]["lastScan"]["scheduledTime"]);
    wait_scan_after(cluster, &ns, "steady", first).await;
    assert_eq!(
        leader.counter(SUCCEEDED_SCANS).await,
        scans_at_step_down,
        "the cut-off leader scanned after it stepped down"
    );
    assert_eq!(leader.leads().await, Some(false));
    assert_eq!(standby.leads().await, Some(true));
    Written::read(&client, &ns, "steady")
        .await
        .assert_once(subjects + fresh, "after the takeover");

    // Healed: the old leader learns the Lease is taken and stays a standby.
    relay.heal();
    let healed = Timestamp::now();
    let obj = wait_scan_after(cluster, &ns, "steady", Some(healed)).await;
    let first = timestamp(&obj["status"]["lastScan"]["scheduledTime"]);
    wait_scan_after(cluster, &ns, "steady", first).await;
    assert_eq!(leader.leads().await, Some(false));
    assert_eq!(
        leader.counter(SUCCEEDED_SCANS).await,
        scans_at_step_down,
        "the old leader scanned after the partition healed"
    );
    assert_eq!(
        lease_holder(cluster, &ns).await.as_deref(),
        Some("replica-b")
    );
    Written::read(&client, &ns, "steady")
        .await
        .assert_once(subjects + fresh, "after the partition healed");
    server.shutdown().await;
}

#[tokio::test]
async fn apiserver_and_etcd_killed_and_restarted_the_operator_recovers_and_writes_once() {
    let own = OwnControlPlane::start().await;
    let cluster = &own.cluster;
    let ns = setup_on(cluster, "chaos-apiserver").await;
    let server = sim(20).await;
    let client = odoo::connect(&server).await;
    let subjects = priced_products(&client).await;
    let mut operator = elected(cluster, &ns, "solo", None).await;
    connect_odoo(cluster, &ns, &server).await;
    apply(cluster, &ns, &noted_cost_rule("steady", "*/3 * * * * *")).await;
    wait_scan_after(cluster, &ns, "steady", None).await;

    // Under load: scans every 3 s, each call 30 ms late, when both die at once.
    slow(&server, 30);
    own.down(true).await;
    // Longer than the Lease, so the leader's claim has expired meanwhile.
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 4)).await;
    assert!(
        operator.is_running(),
        "the operator exited while the API server was down"
    );
    own.up().await;
    let back = Timestamp::now();

    // Status is written again, for a scan after the restart.
    wait_scan_after(cluster, &ns, "steady", Some(back)).await;
    // Watches resumed: a rule created now is seen, reconciled and scanned.
    apply(cluster, &ns, &noted_cost_rule("after", "*/3 * * * * *")).await;
    wait_scan_after(cluster, &ns, "after", None).await;
    assert!(
        operator.is_running(),
        "the operator exited after the restart"
    );
    assert_eq!(operator.leads().await, Some(true));
    assert_eq!(lease_holder(cluster, &ns).await.as_deref(), Some("solo"));

    slow(&server, 0);
    for rule in ["steady", "after"] {
        Written::read(&client, &ns, rule)
            .await
            .assert_once(subjects, &format!("rule {rule}"));
    }
    server.shutdown().await;
}

/// How long Odoo is away.
const ODOO_OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn odoo_down_for_a_minute_mid_scan_is_reported_and_the_writes_complete_once() {
    let (cluster, ns) = setup("chaos-odoo").await;
    let mut server = sim(30).await;
    let client = odoo::connect(&server).await;
    let subjects = priced_products(&client).await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;

    slow(&server, 150);
    apply(cluster, &ns, &noted_cost_rule("outage", "*/5 * * * * *")).await;
    let before = mid_write(&client, &ns, "outage", subjects).await;
    // The listener goes away: connections are refused, as when Odoo's pod is gone.
    server.stop().await;
    let stopped = Instant::now();
    let obj = wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo",
        "False",
        "Unreachable",
    )
    .await;
    assert_eq!(
        condition(&obj, "Connected"),
        Some(("False".into(), "Unreachable".into()))
    );
    let rule = eventually("the rule not ready during the outage", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "outage").await?;
        (condition(&obj, "Ready")?.0 == "False").then_some(obj)
    })
    .await;
    eprintln!(
        "during the outage, after {before} of {subjects} notes: rule Ready={:?}",
        condition(&rule, "Ready")
    );
    if let Some(left) = ODOO_OUTAGE.checked_sub(stopped.elapsed()) {
        tokio::time::sleep(left).await;
    }

    server.restart().await.expect("restarting the simulator");
    let back = Timestamp::now();
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
    let obj = wait_scan_after(cluster, &ns, "outage", Some(back)).await;
    slow(&server, 0);
    let last = &obj["status"]["lastScan"];
    assert_eq!(last["exceptionsOpen"], json!(subjects), "{last}");
    assert!(
        last["writesFailed"].is_null() && last["writesUnknown"].is_null(),
        "{last}"
    );
    Written::read(&client, &ns, "outage")
        .await
        .assert_once(subjects, "after the outage");
    server.shutdown().await;
}

/// The route's limit in the test: deliveries per second.
const RATE: usize = 20;
/// Deliveries per burst: ten times the limit, all at once.
const BURST: usize = 10 * RATE;
/// How much the operator's resident memory may grow from the first burst to
/// the fifth: 800 deliveries lie between the two readings, so a leak of about
/// 10 KiB per delivery (a body, a task or a connection buffer never freed)
/// exceeds it, while the allocator's own drift (2 MiB measured) does not.
/// Slower leaks are the soak benchmark's to find (benches/soak.rs).
const RSS_GROWTH_BOUND_KIB: u64 = 8 * 1024;

#[tokio::test]
async fn gateway_bursts_at_ten_times_the_rate_limit_get_429_and_memory_stays_flat() {
    let (cluster, ns) = setup("chaos-429").await;
    let server = sim(5).await;
    let client = odoo::connect(&server).await;
    let order = acme_orders(&client, 1).await.remove(0);
    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    // The connection's own limit (10 calls/s by default) would make each
    // burst's accepted events queue for seconds; this test is about the gateway.
    let mut fast = connection("odoo", "odoo-credentials", &server.url);
    fast["spec"]["rateLimit"] = json!({"requestsPerSecond": 200, "burst": 200});
    apply(cluster, &ns, &fast).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
    apply_acme_connector(cluster, &ns, &[], Some(RATE as u32)).await;

    let mut rss = Vec::new();
    let (mut accepted_total, mut limited_total) = (0, 0);
    for burst in 1..=5 {
        // The limiter's bucket holds one second's worth: each burst finds it full.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let answers: Vec<(usize, u16)> = futures::stream::iter(0..BURST)
            .map(|i| {
                let n = burst * 1000 + i;
                let (ns, body) = (ns.clone(), delay_event(n, &order.reference));
                async move {
                    let now = Timestamp::now().as_second();
                    let answer = try_deliver(
                        operator.port,
                        &ns,
                        &format!("msg-{n}"),
                        now,
                        SIGNING_SECRET,
                        &body,
                    )
                    .await;
                    (n, answer.map(|(status, _)| status).unwrap_or(0))
                }
            })
            .buffer_unordered(BURST)
            .collect()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let accepted: BTreeSet<usize> = answers
            .iter()
            .filter(|(_, s)| *s == 200)
            .map(|(n, _)| *n)
            .collect();
        let limited = answers.iter().filter(|(_, s)| *s == 429).count();
        let other: Vec<_> = answers
            .iter()
            .filter(|(_, s)| ![200, 429].contains(s))
            .collect();
        assert!(
            other.is_empty(),
            "burst {burst}: answers other than 200/429: {other:?}"
        );
        // The limiter's bound: its bucket (RATE) plus what refills while the burst lasts.
        assert!(
            accepted.len() as f64 <= RATE as f64 * (1.0 + seconds.ceil()),
            "burst {burst}: {} accepted in {seconds:.1} s at {RATE}/s",
            accepted.len()
        );
        assert!(limited > 0, "burst {burst}: nothing was rate limited");
        limited_total += limited;

        // Every accepted delivery was applied, once; no refused one was.
        let effects = EventEffects::read(&client).await;
        for (n, status) in &answers {
            let expected = if *status == 200 { (1, 1) } else { (0, 0) };
            let found = effects.of(&ns, &format!("evt-{n}"));
            assert_eq!(
                found, expected,
                "burst {burst}, event {n} answered {status}"
            );
        }
        accepted_total += accepted.len();
        let kib = operator.rss_kib().expect("the operator's VmRSS");
        eprintln!(
            "burst {burst}: {} accepted, {limited} answered 429 in {seconds:.2} s; \
             operator RSS {kib} KiB, {} fds",
            accepted.len(),
            operator.open_fds().unwrap_or_default()
        );
        rss.push(kib);
    }
    eprintln!("{limited_total} of {} deliveries answered 429", 5 * BURST);
    // The operator counted the same: what it refused, and what it applied.
    let route = format!("kind=\"suppliers\",namespace=\"{ns}\",name=\"acme\"");
    let metrics = operator.get("/metrics").await.expect("metrics").1;
    let sample = |name: &str, label: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(&route) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as usize)
    };
    assert_eq!(
        sample(
            "planops_gateway_events_rejected_total{",
            "reason=\"rate_limited\""
        ),
        Some(limited_total),
        "the operator's count of refused deliveries"
    );
    assert_eq!(
        sample("planops_gateway_events_accepted_total{", ""),
        Some(accepted_total)
    );
    let (first, last) = (rss[0], rss[rss.len() - 1]);
    assert!(
        last <= first + RSS_GROWTH_BOUND_KIB,
        "the operator's RSS grew from {first} KiB after burst 1 to {last} KiB after burst 5: {rss:?}"
    );
    server.shutdown().await;
}
