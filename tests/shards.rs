//! Two operator replicas sharing two shards (`--shards 2`), each shard one
//! OdooConnection on a simulator of its own with rules that write a chatter
//! note and an activity per product:
//!
//! - each replica holds one shard, and both scan at once;
//! - the replica holding a shard is SIGKILLed in the middle of a scan's
//!   writes: the other takes the shard over, and counting the records in the
//!   simulators shows every fingerprint written once, none missing.

mod support;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use planops::controllers::shards::{self, Shard};
use support::odoo;
use support::writes::*;
use support::*;

const LEASE_SECONDS: u64 = 6;
const SHARDS: u32 = 2;
const SUCCEEDED_SCANS: &str = r#"planops_scans_total{outcome="succeeded"}"#;

/// A replica of a two-shard operator in `ns`.
async fn sharded(cluster: &TestCluster, ns: &str, identity: &str) -> OperatorProcess {
    OperatorProcess::start_with_env(
        cluster,
        OperatorOptions {
            namespace: ns,
            identity,
            leader_election: true,
            lease_duration_seconds: LEASE_SECONDS,
            kubeconfig: None,
            label_leader_pod: false,
        },
        &[("PLANOPS_SHARDS", "2")],
    )
    .await
}

/// A connection name for each shard, in shard order: the namespace is random,
/// so the names are picked by the operator's own shard function.
fn one_name_per_shard(ns: &str) -> Vec<String> {
    (0..SHARDS)
        .map(|shard| {
            (0..1000)
                .map(|i| format!("odoo-{i}"))
                .find(|name| shards::shard_of_connection(ns, name, SHARDS) == shard)
                .expect("a name in every shard")
        })
        .collect()
}

/// The OdooConnection `name` to `server`, with its own credentials; waits until Ready.
async fn connect_as(cluster: &TestCluster, ns: &str, name: &str, server: &planops::sim::SimServer) {
    let secret = format!("{name}-credentials");
    apply(
        cluster,
        ns,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret},
            "stringData": {"login": "admin", "apiKey": server.db.admin_api_key()},
        }),
    )
    .await;
    apply(cluster, ns, &connection(name, &secret, &server.url)).await;
    wait_ready(cluster, ns, "OdooConnection", name, "True", "Connected").await;
}

/// [`noted_cost_rule`] on the connection `connection`.
async fn apply_rule(cluster: &TestCluster, ns: &str, name: &str, connection: &str, cron: &str) {
    let mut rule = noted_cost_rule(name, cron);
    rule["spec"]["connectionRef"]["name"] = serde_json::json!(connection);
    apply(cluster, ns, &rule).await;
}

/// The shards `replica` says it holds (`planops_shard_held`).
async fn holdings(replica: &OperatorProcess) -> Vec<Shard> {
    let mut held = Vec::new();
    for shard in 0..SHARDS {
        if replica
            .counter(&format!(r#"planops_shard_held{{shard="{shard}"}}"#))
            .await
            == 1
        {
            held.push(shard);
        }
    }
    held
}

#[tokio::test]
async fn two_replicas_scan_a_shard_each_and_one_takes_over_the_other_after_sigkill() {
    let (cluster, ns) = setup("shards").await;
    let servers = [sim(30).await, sim(30).await];
    let clients = [
        odoo::connect(&servers[0]).await,
        odoo::connect(&servers[1]).await,
    ];
    let subjects = [
        priced_products(&clients[0]).await,
        priced_products(&clients[1]).await,
    ];
    let names = one_name_per_shard(&ns);
    let mut replicas = vec![
        sharded(cluster, &ns, "replica-a").await,
        sharded(cluster, &ns, "replica-b").await,
    ];
    for (name, server) in names.iter().zip(&servers) {
        connect_as(cluster, &ns, name, server).await;
    }

    // Each replica holds one shard, and the Leases say the same.
    let split = eventually("each replica to hold one shard", || async {
        let a = holdings(&replicas[0]).await;
        let b = holdings(&replicas[1]).await;
        (a.len() == 1 && b.len() == 1 && a != b).then(|| [a[0], b[0]])
    })
    .await;
    for (replica, shard) in replicas.iter().zip(split) {
        let lease = shards::lease_name("planops-leader", shard, SHARDS);
        let holder = eventually("the shard Lease to name its holder", || {
            lease_holder_of(cluster, &ns, &lease)
        })
        .await;
        assert_eq!(holder, replica.identity, "{lease}");
    }

    // Both scan at once: each replica's own scans of its own shard's rule.
    for (shard, name) in names.iter().enumerate() {
        apply_rule(
            cluster,
            &ns,
            &format!("steady-{shard}"),
            name,
            "*/3 * * * * *",
        )
        .await;
    }
    let before = [
        replicas[0].counter(SUCCEEDED_SCANS).await,
        replicas[1].counter(SUCCEEDED_SCANS).await,
    ];
    let grown = eventually("both replicas to scan", || async {
        let now = [
            replicas[0].counter(SUCCEEDED_SCANS).await,
            replicas[1].counter(SUCCEEDED_SCANS).await,
        ];
        (now[0] >= before[0] + 2 && now[1] >= before[1] + 2).then_some(now)
    })
    .await;
    eprintln!("succeeded scans per replica: {before:?} -> {grown:?}");

    // The replica holding shard 1 is killed half-way through a scan's writes
    // to shard 1's Odoo; answers 150 ms late stretch the writes to seconds.
    let victim = split
        .iter()
        .position(|s| *s == 1)
        .expect("someone holds shard 1");
    slow(&servers[1], 150);
    apply_rule(cluster, &ns, "bulk", &names[1], "*/5 * * * * *").await;
    let at_kill = mid_write(&clients[1], &ns, "bulk", subjects[1]).await;
    let mut killed = replicas.remove(victim);
    let survivor = &replicas[0];
    killed.child.start_kill().expect("SIGKILL the replica");
    let _ = killed.child.wait().await;
    let killed_at = Instant::now();
    let killed_ts = Timestamp::now();
    eprintln!(
        "{} killed with {at_kill} of {} notes written",
        killed.identity, subjects[1]
    );

    let lease = shards::lease_name("planops-leader", 1, SHARDS);
    eventually("the survivor to take shard 1's Lease", || async {
        lease_holder_of(cluster, &ns, &lease)
            .await
            .filter(|h| *h == survivor.identity)
    })
    .await;
    eventually("the survivor to act on both shards", || async {
        (holdings(survivor).await == vec![0, 1]).then_some(())
    })
    .await;
    let takeover = killed_at.elapsed();
    eprintln!("shard 1 taken over after {takeover:?} (lease duration {LEASE_SECONDS}s)");
    // A guard against a hang, not a timing target.
    assert!(takeover < Duration::from_secs(LEASE_SECONDS * 5));

    // The survivor's first complete scan of the interrupted rule, and one more.
    let obj = wait_scan_after(cluster, &ns, "bulk", Some(killed_ts)).await;
    let first = timestamp(&obj["status"]["lastScan"]["scheduledTime"]);
    slow(&servers[1], 0);
    wait_scan_after(cluster, &ns, "bulk", first).await;
    for (shard, name) in ["steady-0", "steady-1"].iter().enumerate() {
        wait_scan_after(cluster, &ns, name, Some(Timestamp::now())).await;
        Written::read(&clients[shard], &ns, name)
            .await
            .assert_once(subjects[shard], name);
    }
    Written::read(&clients[1], &ns, "bulk")
        .await
        .assert_once(subjects[1], "bulk, after the takeover");
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_replica_stopped_with_sigterm_hands_its_shards_over_and_leaves() {
    let (cluster, ns) = setup("shards-sigterm").await;
    let mut replicas = vec![
        sharded(cluster, &ns, "replica-a").await,
        sharded(cluster, &ns, "replica-b").await,
    ];
    eventually("each replica to hold one shard", || async {
        let a = holdings(&replicas[0]).await;
        let b = holdings(&replicas[1]).await;
        (a.len() == 1 && b.len() == 1 && a != b).then_some(())
    })
    .await;

    let mut leaving = replicas.remove(0);
    let staying = &replicas[0];
    let pid = leaving.child.id().expect("the replica is running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success());
    let exit = leaving.child.wait().await.expect("waiting for the replica");
    assert!(exit.success(), "SIGTERM is a clean shutdown, got {exit}");

    // Released, not expired: the Leases name no holder or the one staying.
    for shard in 0..SHARDS {
        let lease = shards::lease_name("planops-leader", shard, SHARDS);
        let holder = lease_holder_of(cluster, &ns, &lease).await;
        assert_ne!(holder.as_deref(), Some("replica-a"), "{lease} released");
    }
    let member = lease_holder_of(cluster, &ns, "planops-leader-member-replica-a").await;
    assert_eq!(member, None, "the membership Lease is deleted");
    let stopped = Instant::now();
    eventually("the staying replica to hold both shards", || async {
        (holdings(staying).await == vec![0, 1]).then_some(())
    })
    .await;
    eprintln!(
        "both shards held {:?} after the other replica exited",
        stopped.elapsed()
    );
}
