//! The operator runs with exactly the RBAC that the Helm chart renders, as the
//! chart's ServiceAccount (a real token, not impersonation of a superuser),
//! and the API server refuses it what the chart does not grant.

mod support;

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::*;

/// The chart's ServiceAccount name (`planops.fullname`, pinned by `fullnameOverride`).
const SERVICE_ACCOUNT: &str = support::CHART_FULLNAME;

/// Starts the operator as the ServiceAccount and drives a connection and a
/// rule to Ready, which needs every verb the operator uses: watch and patch
/// the kinds, their status and finalizers, read Secrets, emit Events and hold
/// the Lease.
async fn operator_works_with(cluster: &support::TestCluster, ns: &str, kubeconfig: &Path) {
    let odoo = odoo().await;
    // The Pod the operator labels as the gateway's (nothing runs it: no kubelet).
    cluster.create_service_account(ns, "default").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "chart-rbac"},
        "spec": {"containers": [{"name": "operator", "image": "planops:test"}]},
    }))
    .expect("a Pod");
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    pods.create(&kube::api::PostParams::default(), &pod)
        .await
        .expect("creating the operator's Pod");
    let operator = OperatorProcess::start(
        cluster,
        OperatorOptions {
            namespace: ns,
            identity: "chart-rbac",
            leader_election: true,
            lease_duration_seconds: 15,
            kubeconfig: Some(kubeconfig),
            label_leader_pod: true,
        },
    )
    .await;
    apply(cluster, ns, &odoo.secret("odoo-credentials")).await;
    apply(
        cluster,
        ns,
        &connection("odoo", "odoo-credentials", &odoo.url),
    )
    .await;
    apply(cluster, ns, &spike_rule("spikes", "odoo")).await;
    wait_ready(cluster, ns, "OdooConnection", "odoo", "True", "Connected").await;
    let rule = wait_ready(cluster, ns, "ExceptionRule", "spikes", "True", "Reconciled").await;
    assert!(
        rule["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "planops.io/cleanup")),
        "the finalizer was added: {}",
        rule["metadata"]
    );

    let lease: Api<Lease> = Api::namespaced(cluster.client(), ns);
    let holder = lease
        .get("planops-leader")
        .await
        .expect("the operator created its Lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(operator.identity.as_str()));
    eventually(
        "the leader's Pod labelled for the gateway Service",
        || async {
            let pod = pods.get("chart-rbac").await.ok()?;
            (pod.metadata.labels?.get("planops.io/gateway")? == "active").then_some(())
        },
    )
    .await;

    // A healthy first verdict is not an Event (the status says it); a rule
    // naming a connection that does not exist is a Warning the role must allow.
    apply(cluster, ns, &spike_rule("orphan", "no-such-connection")).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), ns);
    let reported = eventually("a Warning Event from the operator", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let warnings = list
            .items
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("orphan"))
            .count();
        (warnings > 0).then_some(warnings)
    })
    .await;
    assert!(reported > 0);
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn operator_runs_with_the_tenant_mode_rbac_and_nothing_more() {
    let (cluster, ns) = setup("rbac-tenant").await;
    let other = cluster.namespace("rbac-other").await;
    let objects = chart_rbac(&ns, &[&format!("--set=watchNamespaces={{{ns}}}")]).await;
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding"),
        "tenant mode grants nothing cluster-wide"
    );
    let dir = apply_rendered(cluster, &objects).await;
    let kubeconfig = service_account_kubeconfig(cluster, &ns, SERVICE_ACCOUNT, &dir).await;

    operator_works_with(cluster, &ns, &kubeconfig).await;

    let as_operator = cluster.service_account_client(&ns, SERVICE_ACCOUNT).await;
    forbidden(
        Api::<Secret>::namespaced(as_operator.clone(), &other)
            .list(&ListParams::default())
            .await,
        "reading Secrets outside the watched namespaces",
    );
    forbidden(
        Api::<Secret>::all(as_operator.clone())
            .list(&ListParams::default())
            .await,
        "listing Secrets cluster-wide",
    );
    // Creating is granted (an ExceptionRule's hook token Secret); changing
    // an existing Secret, such as the Odoo credentials, is not.
    forbidden(
        Api::<Secret>::namespaced(as_operator.clone(), &ns)
            .patch(
                "odoo-credentials",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"stringData": {"apiKey": "x"}})),
            )
            .await,
        "changing Secrets",
    );
    forbidden(
        Api::<ConfigMap>::namespaced(as_operator.clone(), &ns)
            .list(&ListParams::default())
            .await,
        "reading ConfigMaps",
    );
    forbidden(
        Api::<Deployment>::namespaced(as_operator.clone(), &ns)
            .list(&ListParams::default())
            .await,
        "reading Deployments",
    );
    forbidden(
        planops_api_for(as_operator, &other, "ExceptionRule")
            .list(&ListParams::default())
            .await,
        "reading rules outside the watched namespaces",
    );
}

#[tokio::test]
async fn operator_runs_with_the_cluster_mode_rbac_and_nothing_more() {
    let (cluster, ns) = setup("rbac-cluster").await;
    let objects = chart_rbac(&ns, &[]).await;
    assert!(
        objects.iter().any(|o| o["kind"] == "ClusterRole"),
        "cluster mode uses a ClusterRole"
    );
    let dir = apply_rendered(cluster, &objects).await;
    let kubeconfig = service_account_kubeconfig(cluster, &ns, SERVICE_ACCOUNT, &dir).await;

    operator_works_with(cluster, &ns, &kubeconfig).await;

    let as_operator = cluster.service_account_client(&ns, SERVICE_ACCOUNT).await;
    forbidden(
        Api::<Secret>::namespaced(as_operator.clone(), &ns)
            .delete("odoo-credentials", &Default::default())
            .await,
        "deleting Secrets",
    );
    forbidden(
        Api::<ClusterRole>::all(as_operator.clone())
            .list(&ListParams::default())
            .await,
        "reading RBAC",
    );
    forbidden(
        Api::<Deployment>::all(as_operator.clone())
            .list(&ListParams::default())
            .await,
        "reading Deployments",
    );
    forbidden(
        planops_api_for(as_operator, &ns, "ExceptionRule")
            .delete("spikes", &Default::default())
            .await,
        "deleting users' rules",
    );
}
