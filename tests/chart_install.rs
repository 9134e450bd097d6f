//! The Helm chart installed with `helm install` on a control plane that runs
//! kube-controller-manager, in a namespace that enforces the `restricted` Pod
//! Security Standard: the Deployments' ReplicaSets and an `execution: CronJob`
//! rule's Jobs create Pods that admission accepts (they stay Pending: there is
//! no scheduler or kubelet), each of the chart's ServiceAccounts may do what it
//! needs and not what it does not, `helm upgrade` rolls the Deployment, and
//! `helm uninstall` treats the CRDs as `crds.keep` says.
//!
//! What the operator itself does with the chart's RBAC is in tests/rbac.rs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::*;

const RELEASE: &str = "planops";
/// The chart's kinds, by plural.
const KINDS: [&str; 4] = [
    "odooconnections",
    "exceptionrules",
    "supplierconnectors",
    "approvalpolicies",
];
/// Selects the operator's Pods and ReplicaSets (`planops.selectorLabels`).
const OPERATOR_PODS: &str =
    "app.kubernetes.io/instance=planops,app.kubernetes.io/component=operator";
const GATEWAY_PODS: &str = "app.kubernetes.io/instance=planops,app.kubernetes.io/component=gateway";
/// A CronJob fires only at its next minute; a guard against a hung
/// controller, not a speed assertion.
const CRON_GUARD: Duration = Duration::from_secs(180);

fn chart_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/planops")
        .display()
        .to_string()
}

/// Runs the envtest helm as admin, with its own config and cache directories
/// in `home`; panics with its output unless it succeeds. Returns stderr,
/// where the API server's warnings (Pod Security among them) appear.
async fn helm(cluster: &TestCluster, home: &Path, args: &[&str]) -> String {
    let bin = envtest_bin().await.join("helm");
    let out = tokio::process::Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "helm {args:?} failed ({}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A fresh namespace that enforces (and warns about) the `restricted` Pod
/// Security Standard.
async fn restricted_namespace(cluster: &TestCluster) -> String {
    let ns = cluster.namespace("chart").await;
    let labels = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
    }}});
    Api::<Namespace>::all(cluster.client())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap_or_else(|e| panic!("labelling namespace {ns}: {e}"));
    ns
}

async fn pods(cluster: &TestCluster, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(cluster.client(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|e| panic!("listing Pods {selector} in {ns}: {e}"))
        .items
}

/// Waits for `count` Pods matching `selector`, each created by a controller
/// of `owner_kind` and still Pending (nothing schedules them).
async fn wait_pods(
    cluster: &TestCluster,
    ns: &str,
    selector: &str,
    owner_kind: &str,
    count: usize,
) -> Vec<Pod> {
    let found = eventually_within(&format!("{count} Pods {selector}"), CRON_GUARD, || async {
        let found = pods(cluster, ns, selector).await;
        (found.len() == count).then_some(found)
    })
    .await;
    for pod in &found {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let owner = pod
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.controller == Some(true)));
        assert_eq!(
            owner.map(|o| o.kind.as_str()),
            Some(owner_kind),
            "Pod {name} is created by a {owner_kind}"
        );
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        assert_eq!(phase, Some("Pending"), "Pod {name}: no kubelet runs it");
    }
    found
}

/// No controller was refused a Pod (a Pod Security violation, a missing
/// ServiceAccount, a quota) in `ns`.
async fn assert_no_failed_creates(cluster: &TestCluster, ns: &str) {
    let failed: Vec<String> = kube_events(cluster, ns)
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "FailedCreate")
        .map(|(_, message)| message)
        .collect();
    assert!(
        failed.is_empty(),
        "FailedCreate events in {ns}: {failed:#?}"
    );
}

fn no_pod_security_warnings(helm_stderr: &str, what: &str) {
    assert!(
        !helm_stderr.contains("PodSecurity"),
        "{what}: the API server warned about Pod Security:\n{helm_stderr}"
    );
}

/// `kubectl auth can-i`'s question, asked by impersonating `user`.
/// `resource` is written as kubectl writes it: `resource[.group][/subresource]`.
async fn can(
    cluster: &TestCluster,
    user: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let (resource_group, subresource) = match resource.split_once('/') {
        Some((rg, sub)) => (rg, Some(sub.to_owned())),
        None => (resource, None),
    };
    let (resource_name, group) = resource_group
        .split_once('.')
        .unwrap_or((resource_group, ""));
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource_name.to_owned()),
                subresource,
                namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
                name: (!name.is_empty()).then(|| name.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(cluster.client_as(user, &[]))
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SelfSubjectAccessReview as {user}: {e}"))
        .status
        .is_some_and(|s| s.allowed)
}

/// One access question and the answer the chart means to give.
struct Expect<'a> {
    service_account: &'a str,
    allowed: bool,
    verb: &'a str,
    resource: &'a str,
    namespace: &'a str,
    name: &'a str,
}

fn allow<'a>(sa: &'a str, verb: &'a str, resource: &'a str, ns: &'a str) -> Expect<'a> {
    Expect {
        service_account: sa,
        allowed: true,
        verb,
        resource,
        namespace: ns,
        name: "",
    }
}

fn deny<'a>(sa: &'a str, verb: &'a str, resource: &'a str, ns: &'a str) -> Expect<'a> {
    Expect {
        allowed: false,
        ..allow(sa, verb, resource, ns)
    }
}

fn named<'a>(mut expect: Expect<'a>, name: &'a str) -> Expect<'a> {
    expect.name = name;
    expect
}

/// Per ServiceAccount of the default install (cluster-wide mode, gateway
/// Deployment on), what it needs and what it must not get. The operator's own
/// work under these permissions is tests/rbac.rs; this adds the other two
/// ServiceAccounts and the powers nobody in the chart should have.
async fn check_rbac(cluster: &TestCluster, ns: &str, other: &str) {
    let operator = CHART_FULLNAME;
    let gateway = &format!("{CHART_FULLNAME}-gateway");
    let scan = "planops-scan";
    let crd = "customresourcedefinitions.apiextensions.k8s.io";
    let mut expectations = vec![
        // The operator: the kinds everywhere, CronJobs, its Lease and its Pod.
        allow(operator, "watch", "exceptionrules.planops.io", ""),
        allow(operator, "patch", "exceptionrules.planops.io/status", other),
        allow(
            operator,
            "update",
            "odooconnections.planops.io/finalizers",
            other,
        ),
        allow(operator, "create", "cronjobs.batch", other),
        allow(operator, "create", "events.events.k8s.io", other),
        allow(operator, "create", "leases.coordination.k8s.io", ns),
        named(
            allow(operator, "update", "leases.coordination.k8s.io", ns),
            "planops-leader",
        ),
        allow(operator, "patch", "pods", ns),
        named(
            deny(operator, "update", "leases.coordination.k8s.io", ns),
            "someone-elses-lease",
        ),
        deny(operator, "create", "leases.coordination.k8s.io", other),
        deny(operator, "patch", "pods", other),
        deny(operator, "create", "pods", ns),
        deny(operator, "create", "jobs.batch", ns),
        deny(operator, "delete", "exceptionrules.planops.io", ns),
        deny(operator, "update", "secrets", ns),
        deny(operator, "create", "serviceaccounts", ns),
        named(
            deny(operator, "create", "serviceaccounts/token", ns),
            "planops-scan",
        ),
        deny(
            operator,
            "create",
            "rolebindings.rbac.authorization.k8s.io",
            ns,
        ),
        deny(
            operator,
            "bind",
            "clusterroles.rbac.authorization.k8s.io",
            "",
        ),
        deny(operator, "impersonate", "serviceaccounts", ns),
        // The scan pods: one rule, its connection and Secrets by name, the
        // rule's status and memory, in their own namespace only.
        named(
            allow(scan, "get", "exceptionrules.planops.io", ns),
            "nightly",
        ),
        allow(scan, "get", "odooconnections.planops.io", ns),
        allow(scan, "patch", "exceptionrules.planops.io/status", ns),
        allow(scan, "list", "approvalpolicies.planops.io", ns),
        allow(scan, "get", "secrets", ns),
        allow(scan, "create", "configmaps", ns),
        allow(scan, "patch", "configmaps", ns),
        allow(scan, "create", "events.events.k8s.io", ns),
        deny(scan, "list", "secrets", ns),
        deny(scan, "watch", "secrets", ns),
        deny(scan, "get", "secrets", other),
        deny(scan, "get", "exceptionrules.planops.io", other),
        deny(scan, "list", "exceptionrules.planops.io", ""),
        deny(scan, "patch", "exceptionrules.planops.io", ns),
        deny(scan, "patch", "odooconnections.planops.io/status", ns),
        deny(scan, "delete", "configmaps", ns),
        deny(scan, "create", "cronjobs.batch", ns),
        deny(scan, "create", "pods", ns),
        // The gateway reads routes and their Secrets and writes nothing.
        allow(gateway, "watch", "exceptionrules.planops.io", ""),
        allow(gateway, "list", "supplierconnectors.planops.io", ""),
        allow(gateway, "watch", "secrets", ""),
        deny(gateway, "patch", "exceptionrules.planops.io", ns),
        deny(gateway, "patch", "exceptionrules.planops.io/status", ns),
        deny(gateway, "create", "secrets", ns),
        deny(gateway, "create", "events.events.k8s.io", ns),
        deny(gateway, "create", "leases.coordination.k8s.io", ns),
        deny(gateway, "patch", "pods", ns),
        // The namespace's default ServiceAccount gets nothing from the chart.
        deny("default", "get", "secrets", ns),
        deny("default", "get", "exceptionrules.planops.io", ns),
    ];
    // Nobody in the chart may change or delete the CRDs (and with them
    // every user's resources).
    for sa in [operator, gateway.as_str(), scan] {
        for verb in ["delete", "update", "patch"] {
            expectations.push(named(deny(sa, verb, crd, ""), "exceptionrules.planops.io"));
        }
        expectations.push(deny(sa, "create", crd, ""));
    }

    let mut wrong = Vec::new();
    for e in &expectations {
        let user = format!("system:serviceaccount:{ns}:{}", e.service_account);
        let got = can(cluster, &user, e.verb, e.resource, e.namespace, e.name).await;
        if got != e.allowed {
            wrong.push(format!(
                "{} {} {} in {:?} (name {:?}): allowed={got}, want {}",
                e.service_account, e.verb, e.resource, e.namespace, e.name, e.allowed
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "RBAC answers the chart did not mean: {wrong:#?}"
    );
}

fn crd_name(plural: &str) -> String {
    format!("{plural}.planops.io")
}

async fn crd(cluster: &TestCluster, plural: &str) -> Option<CustomResourceDefinition> {
    Api::<CustomResourceDefinition>::all(cluster.client())
        .get_opt(&crd_name(plural))
        .await
        .unwrap_or_else(|e| panic!("reading CRD {plural}: {e}"))
}

fn resource_policy(crd: &CustomResourceDefinition) -> Option<String> {
    crd.metadata
        .annotations
        .as_ref()?
        .get("helm.sh/resource-policy")
        .cloned()
}

/// The ReplicaSets of the operator's Deployment, by name.
async fn operator_replica_sets(cluster: &TestCluster, ns: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(cluster.client(), ns)
        .list(&ListParams::default().labels(OPERATOR_PODS))
        .await
        .unwrap_or_else(|e| panic!("listing ReplicaSets in {ns}: {e}"))
        .items
}

fn name_of<K: kube::Resource>(object: &K) -> String {
    object.meta().name.clone().unwrap_or_default()
}

/// Phase 1: `helm install` into a restricted namespace; the Deployments'
/// Pods are admitted. Returns the operator Pod's name.
async fn install(cluster: &TestCluster, home: &Path, ns: &str) -> String {
    // The namespace really enforces the standard: a Pod without the
    // restricted settings is refused at admission.
    let careless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "careless"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("a Pod");
    match Api::<Pod>::namespaced(cluster.client(), ns)
        .create(&PostParams::default(), &careless)
        .await
    {
        Err(kube::Error::Api(status)) if status.message.contains("violates PodSecurity") => {}
        other => panic!(
            "a Pod without security settings in {ns}: expected a PodSecurity refusal, got {other:?}"
        ),
    }

    let chart = chart_dir();
    let stderr = helm(
        cluster,
        home,
        &[
            "install",
            RELEASE,
            &chart,
            "--namespace",
            ns,
            &format!("--set=fullnameOverride={CHART_FULLNAME}"),
            "--set=gateway.deployment.enabled=true",
        ],
    )
    .await;
    no_pod_security_warnings(&stderr, "helm install");
    for plural in KINDS {
        let crd = crd(cluster, plural)
            .await
            .unwrap_or_else(|| panic!("helm install created no CRD {plural}"));
        assert_eq!(resource_policy(&crd).as_deref(), Some("keep"), "{plural}");
    }

    let operator = wait_pods(cluster, ns, OPERATOR_PODS, "ReplicaSet", 1).await;
    let gateway = wait_pods(cluster, ns, GATEWAY_PODS, "ReplicaSet", 2).await;
    for (pods, service_account) in [
        (&operator, CHART_FULLNAME.to_owned()),
        (&gateway, format!("{CHART_FULLNAME}-gateway")),
    ] {
        for pod in pods {
            let spec = pod.spec.as_ref().expect("a Pod has a spec");
            assert_eq!(spec.service_account_name.as_ref(), Some(&service_account));
        }
    }
    assert_no_failed_creates(cluster, ns).await;
    name_of(&operator[0])
}

/// Phase 2: the operator, as the chart's ServiceAccount and as the Pending
/// operator Pod, turns an `execution: CronJob` rule into a CronJob whose Job
/// gets an admitted Pod running as the scan ServiceAccount.
async fn cronjob_scan(
    cluster: &TestCluster,
    ns: &str,
    operator_pod: &str,
    kubeconfig: &Path,
) -> OperatorProcess {
    let operator = OperatorProcess::start(
        cluster,
        OperatorOptions {
            namespace: ns,
            identity: operator_pod,
            leader_election: true,
            lease_duration_seconds: 15,
            kubeconfig: Some(kubeconfig),
            label_leader_pod: true,
        },
    )
    .await;
    connect_odoo(cluster, ns, &odoo().await.server).await;
    let mut rule = cost_rule(
        "nightly",
        json!({"cron": "* * * * *", "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid"}),
    );
    rule["spec"]["execution"] = json!("CronJob");
    apply(cluster, ns, &rule).await;

    let cronjobs: Api<CronJob> = Api::namespaced(cluster.client(), ns);
    eventually("the rule's CronJob", || async {
        cronjobs
            .get_opt("planops-scan-nightly")
            .await
            .ok()
            .flatten()
    })
    .await;
    let job = eventually_within("a Job from the CronJob", CRON_GUARD, || async {
        Api::<Job>::namespaced(cluster.client(), ns)
            .list(&ListParams::default().labels("planops.io/rule=nightly"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let owner = job
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .expect("the Job has an owner");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "planops-scan-nightly")
    );
    let job_pods = wait_pods(
        cluster,
        ns,
        &format!("batch.kubernetes.io/job-name={}", name_of(&job)),
        "Job",
        1,
    )
    .await;
    let spec = job_pods[0].spec.as_ref().expect("a Pod has a spec");
    assert_eq!(spec.service_account_name.as_deref(), Some("planops-scan"));
    assert_eq!(spec.containers[0].image.as_deref(), Some(TEST_IMAGE));

    // The leader labels its own Pod, the one the ReplicaSet created.
    eventually("the operator Pod labelled as the gateway's", || async {
        let pod = Api::<Pod>::namespaced(cluster.client(), ns)
            .get(operator_pod)
            .await
            .ok()?;
        (pod.metadata.labels?.get("planops.io/gateway")? == "active").then_some(())
    })
    .await;
    assert_no_failed_creates(cluster, ns).await;
    operator
}

/// Phase 4: `helm upgrade` with a changed value gives the operator's
/// Deployment a new ReplicaSet with an admitted Pod. The old one stays:
/// nothing makes the new Pod Ready, and the chart's rollout never goes below
/// the desired count.
async fn upgrade(cluster: &TestCluster, home: &Path, ns: &str) {
    let before: Vec<String> = operator_replica_sets(cluster, ns)
        .await
        .iter()
        .map(name_of)
        .collect();
    assert_eq!(before.len(), 1, "one ReplicaSet before the upgrade");
    let chart = chart_dir();
    let stderr = helm(
        cluster,
        home,
        &[
            "upgrade",
            RELEASE,
            &chart,
            "--namespace",
            ns,
            "--reuse-values",
            "--set=logging.level=debug",
        ],
    )
    .await;
    no_pod_security_warnings(&stderr, "helm upgrade");
    let new = eventually("a new ReplicaSet for the upgrade", || async {
        operator_replica_sets(cluster, ns)
            .await
            .into_iter()
            .find(|rs| !before.contains(&name_of(rs)))
    })
    .await;
    let template_env = new
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers[0].env.clone())
        .unwrap_or_default();
    assert!(
        template_env
            .iter()
            .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug")),
        "the new ReplicaSet carries the new value: {template_env:?}"
    );
    let hash = new
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .expect("a Deployment's ReplicaSet has a pod-template-hash")
        .clone();
    wait_pods(
        cluster,
        ns,
        &format!("{OPERATOR_PODS},pod-template-hash={hash}"),
        "ReplicaSet",
        1,
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), ns);
    // The Deployment's status follows its ReplicaSets' a moment later.
    eventually("the Deployment counting the new Pod as updated", || async {
        let status = deployments.get(CHART_FULLNAME).await.ok()?.status?;
        (status.updated_replicas == Some(1)).then_some(())
    })
    .await;
    assert!(
        operator_replica_sets(cluster, ns)
            .await
            .iter()
            .any(|rs| before.contains(&name_of(rs))),
        "the old ReplicaSet stays while the new Pod is not Ready"
    );
    assert_no_failed_creates(cluster, ns).await;
}

/// Phase 5: `helm uninstall` with `crds.keep=true` (the default) removes the
/// workloads (the garbage collector takes their ReplicaSets and Pods) and
/// leaves the CRDs and the users' resources.
async fn uninstall_keeping_crds(cluster: &TestCluster, home: &Path, ns: &str) {
    helm(cluster, home, &["uninstall", RELEASE, "--namespace", ns]).await;
    eventually("the release's Pods garbage-collected", || async {
        let left = pods(cluster, ns, "app.kubernetes.io/instance=planops").await;
        left.is_empty().then_some(())
    })
    .await;
    assert!(
        Api::<Deployment>::namespaced(cluster.client(), ns)
            .get_opt(CHART_FULLNAME)
            .await
            .expect("reading Deployments")
            .is_none()
    );
    for plural in KINDS {
        let crd = crd(cluster, plural)
            .await
            .unwrap_or_else(|| panic!("CRD {plural} removed by helm uninstall with crds.keep"));
        assert!(
            crd.metadata.deletion_timestamp.is_none(),
            "CRD {plural} is being deleted"
        );
    }
    for (kind, name) in [("OdooConnection", "odoo"), ("ExceptionRule", "nightly")] {
        let obj = get(cluster, ns, kind, name)
            .await
            .unwrap_or_else(|| panic!("{kind} {name} gone after helm uninstall"));
        assert!(
            obj["metadata"]["deletionTimestamp"].is_null(),
            "{kind} {name}"
        );
    }
}

/// Phase 6: installed again with `crds.keep=false` (the kept CRDs are
/// adopted by the new release), `helm uninstall` deletes the CRDs. A kind whose resources carry
/// no finalizer goes at once, with its resources; a resource that still has
/// the operator's finalizer holds its CRD in Terminating, because the
/// operator and its RBAC went first. Removing the finalizer lets it go.
async fn uninstall_deleting_crds(cluster: &TestCluster, home: &Path, ns: &str) {
    let chart = chart_dir();
    helm(
        cluster,
        home,
        &[
            "install",
            RELEASE,
            &chart,
            "--namespace",
            ns,
            &format!("--set=fullnameOverride={CHART_FULLNAME}"),
            "--set=crds.keep=false",
        ],
    )
    .await;
    // The adopted CRDs keep the annotation the first release put on them;
    // helm uninstall goes by the manifest of this release, which has none.
    // No operator runs now, so nothing puts a finalizer on this one.
    apply(
        cluster,
        ns,
        &json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ApprovalPolicy",
            "metadata": {"name": "unattended"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "governs": "AllocationChange",
                "backend": "Activity",
                "levels": [{"name": "director", "users": ["admin"]}],
            },
        }),
    )
    .await;
    helm(cluster, home, &["uninstall", RELEASE, "--namespace", ns]).await;

    eventually("CRDs without finalized resources deleted", || async {
        for plural in ["approvalpolicies", "supplierconnectors"] {
            if crd(cluster, plural).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    for (plural, kind, name) in [
        ("exceptionrules", "ExceptionRule", "nightly"),
        ("odooconnections", "OdooConnection", "odoo"),
    ] {
        let crd = eventually(&format!("CRD {plural} terminating"), || async {
            crd(cluster, plural)
                .await
                .filter(|c| c.metadata.deletion_timestamp.is_some())
        })
        .await;
        assert!(
            crd.metadata.finalizers.is_some_and(|f| !f.is_empty()),
            "CRD {plural} waits for its resources"
        );
        let obj = eventually(&format!("{kind} {name} being deleted"), || async {
            get(cluster, ns, kind, name)
                .await
                .filter(|o| !o["metadata"]["deletionTimestamp"].is_null())
        })
        .await;
        assert!(
            obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "planops.io/cleanup")),
            "{kind} {name} keeps the operator's finalizer: {}",
            obj["metadata"]
        );
        planops_api(cluster, ns, kind)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap_or_else(|e| panic!("removing the finalizer of {kind} {name}: {e}"));
    }
    eventually("every CRD deleted", || async {
        for plural in KINDS {
            if crd(cluster, plural).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test]
async fn chart_installs_runs_upgrades_and_uninstalls_under_restricted_pod_security() {
    let own = OwnControlPlane::start_with_controllers().await;
    let cluster = &own.cluster;
    let ns = restricted_namespace(cluster).await;
    let other = cluster.namespace("chart-other").await;
    let home: PathBuf = tempfile::tempdir().expect("temporary directory").keep();

    let operator_pod = install(cluster, &home, &ns).await;
    let kubeconfig = service_account_kubeconfig(cluster, &ns, CHART_FULLNAME, &home).await;
    let operator = cronjob_scan(cluster, &ns, &operator_pod, &kubeconfig).await;
    check_rbac(cluster, &ns, &other).await;
    upgrade(cluster, &home, &ns).await;
    // The operator's token dies with its ServiceAccount at uninstall.
    drop(operator);
    uninstall_keeping_crds(cluster, &home, &ns).await;
    uninstall_deleting_crds(cluster, &home, &ns).await;
}
