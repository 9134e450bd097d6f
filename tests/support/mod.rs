//! The one harness of the integration tests (`mod support;` in each test file):
//! the control plane ([`control_plane`]), the operator as a process, the chart's
//! RBAC, manifests, and Odoo helpers ([`odoo`]).
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::Value;

pub mod control_plane;
pub mod odoo;
pub mod suppliers;
pub mod writes;

pub use control_plane::*;

/// The control plane with the CRDs installed, and a fresh namespace named
/// after `prefix` for one test.
pub async fn setup(prefix: &str) -> (&'static TestCluster, String) {
    let cluster = cluster().await;
    let ns = setup_on(cluster, prefix).await;
    (cluster, ns)
}

/// [`setup`] on a given control plane (e.g. an [`OwnControlPlane`]).
pub async fn setup_on(cluster: &TestCluster, prefix: &str) -> String {
    cluster
        .install_crds(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    cluster.namespace(prefix).await
}

/// What the test operators may reach besides public addresses
/// (`--allow-outbound`): the loopback servers of the tests.
pub const TEST_ALLOW_OUTBOUND: &str = "127.0.0.0/8";

/// The image the test operators are told they run (`PLANOPS_IMAGE`).
pub const TEST_IMAGE: &str = "ghcr.io/planops/planops:test";

/// `fullnameOverride` of the chart renders: the operator's ServiceAccount name.
pub const CHART_FULLNAME: &str = "planops";

const KUBE_VERSION: &str = "1.37.2";

/// `helm template` of the chart into `namespace`, keeping only the identity
/// and RBAC objects (the Deployment cannot run here: there is no kubelet).
pub async fn chart_rbac(namespace: &str, extra: &[&str]) -> Vec<Value> {
    let helm = envtest_bin().await.join("helm");
    let mut args = vec![
        "template".to_owned(),
        "planops".to_owned(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("charts/planops")
            .display()
            .to_string(),
        format!("--namespace={namespace}"),
        format!("--kube-version={KUBE_VERSION}"),
        format!("--set=fullnameOverride={CHART_FULLNAME}"),
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

/// Applies the rendered objects with kubectl, as a user of the chart would;
/// returns the temporary directory it used.
pub async fn apply_rendered(cluster: &TestCluster, objects: &[Value]) -> PathBuf {
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

/// A kubeconfig in `dir` that authenticates as the ServiceAccount
/// `namespace/service_account` by a real token.
pub async fn service_account_kubeconfig(
    cluster: &TestCluster,
    namespace: &str,
    service_account: &str,
    dir: &Path,
) -> PathBuf {
    let token = cluster
        .service_account_token(namespace, service_account)
        .await;
    let admin = std::fs::read_to_string(&cluster.kubeconfig).expect("reading the kubeconfig");
    let mut config: Value = serde_yaml_ng::from_str(&admin).expect("kubeconfig is YAML");
    config["users"] = serde_json::json!([{"name": service_account, "user": {"token": token}}]);
    config["contexts"][0]["context"]["user"] = serde_json::json!(service_account);
    let path = dir.join(format!("kubeconfig-{service_account}"));
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("kubeconfig serialises"),
    )
    .expect("writing the ServiceAccount kubeconfig");
    path
}

/// Generous guard against a hung operator; not a speed assertion.
pub const SETTLE: Duration = Duration::from_secs(90);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

/// A `planops operator` (or `planops gateway`) process, killed when dropped.
pub struct OperatorProcess {
    pub child: tokio::process::Child,
    pub port: u16,
    pub identity: String,
}

pub struct OperatorOptions<'a> {
    pub namespace: &'a str,
    pub identity: &'a str,
    pub leader_election: bool,
    pub lease_duration_seconds: u64,
    pub kubeconfig: Option<&'a Path>,
    /// `--label-leader-pod`: the Pod named `identity` in `namespace` must exist.
    pub label_leader_pod: bool,
}

impl OperatorProcess {
    pub async fn start(cluster: &TestCluster, opts: OperatorOptions<'_>) -> OperatorProcess {
        Self::start_with_env(cluster, opts, &[]).await
    }

    /// [`OperatorProcess::start`] with extra environment variables.
    pub async fn start_with_env(
        cluster: &TestCluster,
        opts: OperatorOptions<'_>,
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        Self::start_on(cluster, opts, free_port(), env).await
    }

    /// On `port`: a restarted operator keeps the address its clients know.
    pub async fn start_on(
        cluster: &TestCluster,
        opts: OperatorOptions<'_>,
        port: u16,
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        let kubeconfig = opts.kubeconfig.unwrap_or(&cluster.kubeconfig);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_planops"))
            .arg("operator")
            .arg(format!("--watch-namespaces={}", opts.namespace))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--leader-election={}", opts.leader_election))
            .arg(format!("--lease-namespace={}", opts.namespace))
            .arg(format!(
                "--lease-duration-seconds={}",
                opts.lease_duration_seconds
            ))
            .arg(format!("--identity={}", opts.identity))
            .arg(format!("--label-leader-pod={}", opts.label_leader_pod))
            // Poll and notify tests serve on loopback, which the operator
            // refuses by default.
            .arg(format!("--allow-outbound={TEST_ALLOW_OUTBOUND}"))
            .env("KUBECONFIG", kubeconfig)
            // The image of the CronJobs of `execution: CronJob` rules (no
            // kubelet here runs them; tests run their command themselves).
            .env("PLANOPS_IMAGE", TEST_IMAGE)
            .env("RUST_LOG", "info,planops=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting planops operator");
        OperatorProcess {
            child,
            port,
            identity: opts.identity.to_string(),
        }
    }

    pub async fn simple(cluster: &TestCluster, namespace: &str) -> OperatorProcess {
        Self::simple_on(cluster, namespace, free_port()).await
    }

    /// [`Self::simple`] on `port`.
    pub async fn simple_on(cluster: &TestCluster, namespace: &str, port: u16) -> OperatorProcess {
        Self::start_on(
            cluster,
            OperatorOptions {
                namespace,
                identity: "solo",
                leader_election: false,
                lease_duration_seconds: 15,
                kubeconfig: None,
                label_leader_pod: false,
            },
            port,
            &[],
        )
        .await
    }

    /// `planops gateway` (the edge Deployment's process) for `namespace`,
    /// forwarding to the operator listening on `upstream_port`.
    pub async fn edge(
        cluster: &TestCluster,
        namespace: &str,
        upstream_port: u16,
    ) -> OperatorProcess {
        let port = free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_planops"))
            .arg("gateway")
            .arg(format!("--watch-namespaces={namespace}"))
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--forward-to=http://127.0.0.1:{upstream_port}"))
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info,planops=debug")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting planops gateway");
        OperatorProcess {
            child,
            port,
            identity: format!("edge-{port}"),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory (`VmRSS` of /proc/<pid>/status), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Open file descriptors (entries of /proc/<pid>/fd): sockets included.
    pub fn open_fds(&self) -> Option<usize> {
        Some(
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()?))
                .ok()?
                .count(),
        )
    }

    /// Whether the process is still running (it has not exited, or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `planops_leader` from `/metrics`: whether this replica says it leads.
    pub async fn leads(&self) -> Option<bool> {
        let (_, body) = self.get("/metrics").await?;
        let line = body.lines().find(|l| l.starts_with("planops_leader "))?;
        Some(line.ends_with(" 1"))
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.unwrap_or_default()))
    }

    /// The value of one series on `/metrics`, e.g.
    /// `planops_scans_total{outcome="replaced"}` (0 when absent).
    pub async fn counter(&self, series: &str) -> u64 {
        let (_, body) = self.get("/metrics").await.unwrap_or_default();
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }
}

/// Polls `check` until it returns `Some`, panicking with `what` after `SETTLE`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, SETTLE, check).await
}

/// [`eventually`] with another guard, for waits that include a clock of
/// their own (a CronJob fires only on its next minute).
pub async fn eventually_within<T, F, Fut>(what: &str, guard: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < guard, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Who holds the operator's Lease (`planops-leader`) in `namespace`, if anyone.
pub async fn lease_holder(cluster: &TestCluster, namespace: &str) -> Option<String> {
    lease_holder_of(cluster, namespace, "planops-leader").await
}

/// Who holds the Lease `name` in `namespace` (a shard's: `planops-leader-<i>`).
pub async fn lease_holder_of(cluster: &TestCluster, namespace: &str, name: &str) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client(), namespace);
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// An RFC 3339 timestamp of a status field.
pub fn timestamp(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}

/// The rule's object once its lastScan is a succeeded scan scheduled after `after`.
pub async fn wait_scan_after(
    cluster: &TestCluster,
    ns: &str,
    name: &str,
    after: Option<jiff::Timestamp>,
) -> Value {
    eventually(&format!("a scan of {name} after {after:?}"), || async {
        let obj = get(cluster, ns, "ExceptionRule", name).await?;
        let last = obj["status"]["lastScan"].clone();
        let scheduled = timestamp(&last["scheduledTime"])?;
        let newer = after.is_none_or(|a| scheduled > a);
        (newer && last["outcome"] == "Succeeded").then_some(obj)
    })
    .await
}

pub fn planops_api(cluster: &TestCluster, namespace: &str, kind: &str) -> Api<DynamicObject> {
    planops_api_for(cluster.client(), namespace, kind)
}

/// [`planops_api`] for any client, for example one authenticated as a ServiceAccount.
pub fn planops_api_for(client: kube::Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("planops.io", "v1alpha1", kind);
    let plural = match kind {
        "OdooConnection" => "odooconnections",
        "ExceptionRule" => "exceptionrules",
        "SupplierConnector" => "supplierconnectors",
        "ApprovalPolicy" => "approvalpolicies",
        other => panic!("unknown kind {other}"),
    };
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client, namespace, &ar)
}

/// Server-side applies a manifest (YAML or JSON value) as the test's field manager.
pub async fn apply(cluster: &TestCluster, namespace: &str, manifest: &Value) {
    let kind = manifest["kind"].as_str().expect("kind");
    let name = manifest["metadata"]["name"].as_str().expect("name");
    if kind == "Secret" {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(cluster.client(), namespace);
        api.patch(
            name,
            &PatchParams::apply("planops-tests").force(),
            &Patch::Apply(manifest),
        )
        .await
        .unwrap_or_else(|e| panic!("applying Secret {name}: {e}"));
        return;
    }
    planops_api(cluster, namespace, kind)
        .patch(
            name,
            &PatchParams::apply("planops-tests").force(),
            &Patch::Apply(manifest),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

pub async fn get(cluster: &TestCluster, namespace: &str, kind: &str, name: &str) -> Option<Value> {
    planops_api(cluster, namespace, kind)
        .get_opt(name)
        .await
        .expect("reading object")
        .map(|o| serde_json::to_value(o).expect("object to JSON"))
}

/// `(status, reason)` of a condition, if present.
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Waits until the object's Ready condition has `status` and `reason`, at the
/// current generation. On timeout the panic shows the last status seen.
pub async fn wait_ready(
    cluster: &TestCluster,
    namespace: &str,
    kind: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    loop {
        if let Some(obj) = get(cluster, namespace, kind, name).await {
            let observed = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
            if let Some((s, r)) = condition(&obj, "Ready")
                && observed
                && s == status
                && r == reason
            {
                return obj;
            }
            last = obj;
        }
        assert!(
            start.elapsed() < SETTLE,
            "timed out waiting for {kind} {name} Ready={status}/{reason}; last seen: generation {} status {}",
            last["metadata"]["generation"],
            last["status"]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The Secret `odoo-credentials` (admin and the simulator's API key) and the
/// OdooConnection `odoo` to `server`, with Odoo calling back to `callback`
/// when given; waits until the connection is Ready.
pub async fn connect_odoo_with(
    cluster: &TestCluster,
    namespace: &str,
    server: &planops::sim::SimServer,
    callback: Option<&str>,
) {
    apply(
        cluster,
        namespace,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "odoo-credentials"},
            "stringData": {"login": "admin", "apiKey": server.db.admin_api_key()},
        }),
    )
    .await;
    let mut conn = connection("odoo", "odoo-credentials", &server.url);
    if let Some(callback) = callback {
        conn["spec"]["callbackBaseUrl"] = serde_json::json!(callback);
    }
    apply(cluster, namespace, &conn).await;
    wait_ready(
        cluster,
        namespace,
        "OdooConnection",
        "odoo",
        "True",
        "Connected",
    )
    .await;
}

/// [`connect_odoo_with`] without a callback URL.
pub async fn connect_odoo(
    cluster: &TestCluster,
    namespace: &str,
    server: &planops::sim::SimServer,
) {
    connect_odoo_with(cluster, namespace, server, None).await;
}

pub fn credentials_secret(name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"login": "admin", "apiKey": "test-api-key"},
    })
}

pub fn connection(name: &str, secret: &str, url: &str) -> Value {
    serde_json::json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "OdooConnection",
        "metadata": {"name": name},
        "spec": {
            "url": url,
            "database": "planops",
            "credentialsSecretRef": {"name": secret},
            "probeIntervalSeconds": 10,
        },
    })
}

pub fn spike_rule(name: &str, connection: &str) -> Value {
    serde_json::json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": name},
        "spec": {
            "connectionRef": {"name": connection},
            "detector": {"demandSpike": {"recentDays": 14, "baselineDays": 91}},
            "triggers": {"schedule": {"cron": "0 6 * * *", "timeZone": "Europe/Brussels"}},
            "actions": [{"activity": {"assignee": {"user": "admin"}}}],
        },
    })
}

/// The Odoo simulator shared by one test binary.
pub struct TestOdoo {
    pub url: String,
    pub api_key: String,
    pub server: planops::sim::SimServer,
}

impl TestOdoo {
    /// A Secret holding the admin login and the simulator's API key.
    pub fn secret(&self, name: &str) -> Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"login": "admin", "apiKey": self.api_key},
        })
    }
}

static SIM_RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
static ODOO: tokio::sync::OnceCell<TestOdoo> = tokio::sync::OnceCell::const_new();

/// Starts (once per test binary) a small simulated Odoo on its own runtime, so
/// it outlives the runtime of the test that happened to start it.
pub async fn odoo() -> &'static TestOdoo {
    ODOO.get_or_init(|| async {
        let runtime = SIM_RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("test-odoo")
                .enable_all()
                .build()
                .expect("building the simulator runtime")
        });
        runtime
            .spawn(async {
                let config = planops::sim::SimConfig {
                    dataset: planops::sim::DatasetParams {
                        products: 40,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let server = planops::sim::SimServer::start(
                    config,
                    "127.0.0.1:0".parse().expect("loopback address"),
                )
                .await
                .expect("starting the Odoo simulator");
                TestOdoo {
                    url: server.url.clone(),
                    api_key: server.db.admin_api_key(),
                    server,
                }
            })
            .await
            .expect("simulator task")
    })
    .await
}

/// `(reason, message)` of every Kubernetes Event in `namespace`.
pub async fn kube_events(cluster: &TestCluster, namespace: &str) -> Vec<(String, String)> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(cluster.client(), namespace);
    api.list(&Default::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// The message of the first Event with `reason` in `namespace`, waiting for one.
pub async fn wait_kube_event(cluster: &TestCluster, namespace: &str, reason: &str) -> String {
    eventually(&format!("a {reason} event"), || async {
        kube_events(cluster, namespace)
            .await
            .into_iter()
            .find(|(r, _)| r == reason)
            .map(|(_, m)| m)
    })
    .await
}

/// `planops scan <ns>/<rule>`, the CronJob's command, run as whoever `kubeconfig` names.
pub async fn planops_scan(kubeconfig: &std::path::Path, target: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_planops"))
        .args(["scan", target, "--output", "json"])
        .env("KUBECONFIG", kubeconfig)
        // What the operator puts in its CronJobs' environment.
        .env("PLANOPS_ALLOW_OUTBOUND", TEST_ALLOW_OUTBOUND)
        .env_remove("PLANOPS_CACHE_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running planops scan")
}

/// A rule that flags every product with a cost (the data set gives them all one)
/// and gives each an activity.
pub fn cost_rule(name: &str, schedule: Value) -> Value {
    serde_json::json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": name},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "detector": {"fieldThreshold": {
                "model": "product.product",
                "domain": "[('standard_price', '>', 0)]",
                "field": "standard_price",
                "comparison": "Gt",
                "value": 0,
            }},
            "triggers": {"schedule": schedule},
            "actions": [{"activity": {"assignee": {"user": "admin"}}}],
        },
    })
}
