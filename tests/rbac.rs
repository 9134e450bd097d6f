//! The operator runs with exactly the RBAC that the Helm chart renders, as the
//! chart's ServiceAccount (a real token, not impersonation of a superuser),
//! and the API server refuses it what the chart does not grant.

mod common;
mod support;

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use support::*;

const KUBE_VERSION: &str = "1.37.2";
/// The chart's ServiceAccount name (`planops.fullname`, pinned by `fullnameOverride`).
const SERVICE_ACCOUNT: &str = "planops";

async fn setup(prefix: &str) -> (&'static common::TestCluster, String) {
    let cluster = common::cluster().await;
    cluster
        .install_crds(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cluster.namespace(prefix).await;
    (cluster, ns)
}

/// `helm template` of the chart into `namespace`, keeping only the identity
/// and RBAC objects (the Deployment cannot run here: there is no kubelet).
async fn chart_rbac(namespace: &str, extra: &[&str]) -> Vec<Value> {
    let helm = common::envtest_bin().await.join("helm");
    let mut args = vec![
        "template".to_owned(),
        "planops".to_owned(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("charts/planops")
            .display()
            .to_string(),
        format!("--namespace={namespace}"),
        format!("--kube-version={KUBE_VERSION}"),
        format!("--set=fullnameOverride={SERVICE_ACCOUNT}"),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let out = tokio::process::Command::new(&helm)
        .args(&args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", helm.display()));
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).expect("helm prints UTF-8");
    let wanted = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    rendered
        .split("\n---")
        .filter_map(|doc| serde_yaml_ng::from_str::<Value>(doc).ok())
        .filter(|doc| doc["kind"].as_str().is_some_and(|k| wanted.contains(&k)))
        .collect()
}

/// Applies the rendered objects with kubectl, as a user of the chart would.
async fn apply_rendered(cluster: &common::TestCluster, objects: &[Value]) -> PathBuf {
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    let file = dir.join("rbac.yaml");
    let yaml: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).expect("rendered object re-serialises"))
        .collect();
    std::fs::write(&file, yaml.join("---\n")).expect("writing the rendered RBAC");
    let out = cluster
        .kubectl(&["apply", "-f", &file.display().to_string()])
        .await;
    assert!(
        out.status.success(),
        "kubectl apply of the chart's RBAC failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A kubeconfig that authenticates as the chart's ServiceAccount by token.
async fn service_account_kubeconfig(
    cluster: &common::TestCluster,
    namespace: &str,
    dir: &Path,
) -> PathBuf {
    let token = cluster
        .service_account_token(namespace, SERVICE_ACCOUNT)
        .await;
    let admin = std::fs::read_to_string(&cluster.kubeconfig).expect("reading the kubeconfig");
    let mut config: Value = serde_yaml_ng::from_str(&admin).expect("kubeconfig is YAML");
    config["users"] = json!([{"name": "operator", "user": {"token": token}}]);
    config["contexts"][0]["context"]["user"] = json!("operator");
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("kubeconfig serialises"),
    )
    .expect("writing the ServiceAccount kubeconfig");
    path
}

/// Starts the operator as the ServiceAccount and drives a connection and a
/// rule to Ready, which needs every verb the operator uses: watch and patch
/// the kinds, their status and finalizers, read Secrets, emit Events and hold
/// the Lease.
async fn operator_works_with(cluster: &common::TestCluster, ns: &str, kubeconfig: &Path) {
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

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), ns);
    let reported = eventually("an Event from the operator", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        (!list.items.is_empty()).then_some(list.items.len())
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
    let kubeconfig = service_account_kubeconfig(cluster, &ns, &dir).await;

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
    let kubeconfig = service_account_kubeconfig(cluster, &ns, &dir).await;

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
