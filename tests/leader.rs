//! Two operator replicas: exactly one holds the Lease, reconciles and labels
//! its Pod for the gateway Service; when it is killed, the other takes over
//! (and the label with it); on SIGTERM the leader exits cleanly and releases
//! the Lease.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use support::*;

const LEASE_SECONDS: u64 = 6;

/// Pod objects named like the replicas (nothing runs them: there is no
/// kubelet), for the replicas to label.
async fn pods(cluster: &support::TestCluster, ns: &str, names: &[&str]) {
    cluster.create_service_account(ns, "default").await;
    let api: Api<Pod> = Api::namespaced(cluster.client(), ns);
    for name in names {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "operator", "image": "planops:test"}]},
        }))
        .expect("a Pod");
        api.create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("creating Pod {name}: {e}"));
    }
}

/// The replicas whose Pod carries the gateway label, sorted.
async fn labelled(cluster: &support::TestCluster, ns: &str) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let mut names: Vec<String> = api
        .list(&kube::api::ListParams::default().labels("planops.io/gateway=active"))
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn one_replica_leads_and_a_standby_takes_over_after_sigkill() {
    let cluster = support::cluster().await;
    cluster
        .install_crds(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cluster.namespace("leader").await;
    let odoo = support::odoo().await;
    apply(cluster, &ns, &odoo.secret("odoo-credentials")).await;
    apply(
        cluster,
        &ns,
        &connection("odoo", "odoo-credentials", &odoo.url),
    )
    .await;

    pods(cluster, &ns, &["replica-a", "replica-b"]).await;
    let start = |identity: &'static str| {
        let ns = ns.clone();
        async move {
            OperatorProcess::start(
                cluster,
                OperatorOptions {
                    namespace: &ns,
                    identity,
                    leader_election: true,
                    lease_duration_seconds: LEASE_SECONDS,
                    kubeconfig: None,
                    label_leader_pod: true,
                },
            )
            .await
        }
    };
    let mut replicas = Vec::new();
    for identity in ["replica-a", "replica-b"] {
        replicas.push(start(identity).await);
    }
    let first = eventually("a lease holder", || lease_holder(cluster, &ns)).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;

    // Exactly one replica believes it leads.
    let flags = eventually("both replicas report leadership", || async {
        let a = replicas[0].leads().await?;
        let b = replicas[1].leads().await?;
        (a != b).then_some((a, b))
    })
    .await;
    let leader_index = if flags.0 { 0 } else { 1 };
    assert_eq!(replicas[leader_index].identity, first);
    // Only the leader's Pod is behind the gateway Service.
    eventually("the leader's Pod labelled, and only it", || async {
        (labelled(cluster, &ns).await == vec![first.clone()]).then_some(())
    })
    .await;

    let mut leader = replicas.remove(leader_index);
    leader.child.start_kill().expect("SIGKILL the leader");
    let _ = leader.child.wait().await;
    let killed_at = Instant::now();
    let standby = &replicas[0];

    let second = eventually("the standby to take the lease", || async {
        lease_holder(cluster, &ns).await.filter(|h| *h != first)
    })
    .await;
    let takeover = killed_at.elapsed();
    eprintln!("takeover after {takeover:?} (lease duration {LEASE_SECONDS}s)");
    assert_eq!(second, standby.identity);
    eventually("the new leader's Pod labelled", || async {
        labelled(cluster, &ns).await.contains(&second).then_some(())
    })
    .await;
    // The killed replica could not unlabel its Pod; restarted in the same Pod,
    // it does so before anything else.
    let first_identity: &'static str = if first == "replica-a" {
        "replica-a"
    } else {
        "replica-b"
    };
    let _restarted = start(first_identity).await;
    eventually(
        "only the leader's Pod labelled after the restart",
        || async { (labelled(cluster, &ns).await == vec![second.clone()]).then_some(()) },
    )
    .await;
    // A generous guard, not a timing assertion: the lease must have expired and been claimed.
    assert!(takeover < Duration::from_secs(LEASE_SECONDS * 5));

    // The new leader reconciles.
    apply(cluster, &ns, &spike_rule("after-failover", "odoo")).await;
    wait_ready(
        cluster,
        &ns,
        "ExceptionRule",
        "after-failover",
        "True",
        "Reconciled",
    )
    .await;
    assert_eq!(standby.leads().await, Some(true));
}

#[tokio::test]
async fn sigterm_stops_the_leader_cleanly_and_releases_the_lease() {
    let cluster = support::cluster().await;
    cluster
        .install_crds(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cluster.namespace("sigterm").await;
    let start = |identity| {
        let ns = ns.clone();
        async move {
            OperatorProcess::start(
                cluster,
                OperatorOptions {
                    namespace: &ns,
                    identity,
                    leader_election: true,
                    lease_duration_seconds: LEASE_SECONDS,
                    kubeconfig: None,
                    label_leader_pod: false,
                },
            )
            .await
        }
    };
    let mut leader = start("first").await;
    eventually("the first replica to lead", || async {
        lease_holder(cluster, &ns).await.filter(|h| h == "first")
    })
    .await;
    let standby = start("second").await;
    eventually("the standby to be up", || async {
        standby.leads().await.filter(|leads| !leads)
    })
    .await;

    let pid = leader.child.id().expect("the leader is running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success());
    let exit = leader.child.wait().await.expect("waiting for the leader");
    assert!(exit.success(), "SIGTERM is a clean shutdown, got {exit}");

    // The leader gives the Lease up on its way out rather than letting it expire.
    let left = lease_holder(cluster, &ns).await;
    assert_ne!(left.as_deref(), Some("first"), "the Lease was released");
    eventually("the standby to take the released lease", || async {
        lease_holder(cluster, &ns).await.filter(|h| h == "second")
    })
    .await;
    // The Lease names the new holder a moment before that process has started
    // leading and says so on its gauge.
    eventually("the standby to report that it leads", || async {
        standby.leads().await.filter(|leads| *leads)
    })
    .await;
}
