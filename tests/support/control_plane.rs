//! The control plane the integration tests share (re-exported by `support`).
//!
//! Every test talks to a real control plane (etcd + kube-apiserver built by
//! `scripts/envtest.sh`). If `PLANOPS_TEST_KUBECONFIG` names a kubeconfig
//! (what `scripts/test.sh` does), that control plane is shared by all test
//! binaries; otherwise the first call to [`cluster`] in a test binary builds
//! the binaries if needed and starts a private control plane, which a watchdog
//! stops once the test binary exits.
//!
//! Isolation comes from one fresh namespace per test ([`TestCluster::namespace`]);
//! nothing is cleaned up, because namespaces never finish terminating without
//! kube-controller-manager and the whole etcd is thrown away at the end.
//!
//! Each `#[tokio::test]` has its own runtime, and hyper starts each pooled
//! connection's task on the runtime that opened it: a client shared between
//! tests loses its pooled connections when the test that opened them ends, and
//! the next test to reuse one fails with "runtime dropped the dispatch task".
//! So no client is shared: [`TestCluster::client`] builds one on the caller's
//! runtime, and it lives as long as the caller keeps it.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Output,
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::{
    api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::{Namespace, ServiceAccount},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    config::{AuthInfo, KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};
use serde::Deserialize;

/// Field manager used for everything the harness applies.
pub const FIELD_MANAGER: &str = "planops-tests";

/// Label put on every namespace the harness creates.
pub const NAMESPACE_LABEL: &str = "planops.dev/test-namespace";

/// Guard against a hung control plane, not a speed assertion.
const CRD_ESTABLISHED_GUARD: Duration = Duration::from_secs(300);

/// A running control plane and an admin client for it.
pub struct TestCluster {
    /// Kubeconfig of the admin user (token auth, group `system:masters`).
    pub kubeconfig: PathBuf,
    /// The admin `Config`, the base for impersonating and token clients.
    pub config: Config,
}

/// What kstatus (sigs.k8s.io/cli-utils) computes for one live object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KStatus {
    /// `Current`, `InProgress`, `Failed`, `Terminating`, `NotFound` or `Unknown`.
    pub status: String,
    pub message: String,
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
static CLUSTER: tokio::sync::OnceCell<TestCluster> = tokio::sync::OnceCell::const_new();
/// `(kubeconfig, CRD dir)` pairs already installed: a test with a control
/// plane of its own ([`OwnControlPlane`]) installs the CRDs there too.
static INSTALLED_CRD_DIRS: tokio::sync::Mutex<BTreeSet<(PathBuf, PathBuf)>> =
    tokio::sync::Mutex::const_new(BTreeSet::new());

fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-cluster")
            .enable_all()
            .build()
            .expect("building the harness runtime")
    })
}

/// A client built on the caller's runtime (see the module doc for why no client is shared).
fn client_for(config: Config) -> Client {
    Client::try_from(config).expect("building a kube client")
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn envtest_script() -> PathBuf {
    repo_root().join("scripts/envtest.sh")
}

/// The shared control plane of this test binary, started on first use.
pub async fn cluster() -> &'static TestCluster {
    CLUSTER
        .get_or_init(|| async {
            runtime()
                .spawn(TestCluster::connect())
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        })
        .await
}

/// Runs `scripts/envtest.sh ARGS`, panicking with its stderr on failure.
async fn envtest(args: &[&str]) -> String {
    let out = tokio::process::Command::new("bash")
        .arg(envtest_script())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running scripts/envtest.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/envtest.sh {args:?} failed ({}):\n{stderr}",
        out.status
    );
    eprint!("{stderr}");
    String::from_utf8(out.stdout)
        .expect("envtest.sh prints UTF-8")
        .trim()
        .to_owned()
}

/// Builds the binaries (a no-op when cached) and starts a private control
/// plane that is stopped and deleted once this process is gone; its state
/// directory and kubeconfig. `extra`: more `envtest.sh start` flags.
async fn start_private_control_plane(extra: &[&str]) -> (String, PathBuf) {
    envtest(&["build"]).await;
    let dir = tempfile::Builder::new()
        .prefix("planops-envtest-")
        .tempdir()
        .expect("creating a temp dir")
        .keep();
    let dir = dir.to_str().expect("temp dir path is UTF-8").to_owned();
    let pid = std::process::id().to_string();
    let mut args = vec!["start", &dir, "--watch", &pid, "--ephemeral"];
    args.extend_from_slice(extra);
    let kubeconfig = PathBuf::from(envtest(&args).await);
    (dir, kubeconfig)
}

/// A control plane of one test's own, for tests that stop and restart
/// kube-apiserver and etcd: doing that to the shared one would break every
/// test running beside it. Stopped and deleted when dropped (and by the
/// watchdog if the test binary dies first).
pub struct OwnControlPlane {
    dir: String,
    pub cluster: TestCluster,
}

impl OwnControlPlane {
    pub async fn start() -> OwnControlPlane {
        Self::start_with(&[]).await
    }

    /// With kube-controller-manager (`envtest.sh start --controllers`):
    /// Deployments, ReplicaSets, CronJobs and Jobs get their Pods (admitted,
    /// then Pending: there is no scheduler or kubelet), namespaces get their
    /// `default` ServiceAccount and the garbage collector follows owners.
    pub async fn start_with_controllers() -> OwnControlPlane {
        Self::start_with(&["--controllers"]).await
    }

    async fn start_with(extra: &[&str]) -> OwnControlPlane {
        let (dir, kubeconfig) = start_private_control_plane(extra).await;
        OwnControlPlane {
            dir,
            cluster: TestCluster::from_kubeconfig(kubeconfig).await,
        }
    }

    /// Stops kube-apiserver and etcd, keeping etcd's data; `kill`: SIGKILL,
    /// as a crash or an OOM kill would, instead of SIGTERM.
    pub async fn down(&self, kill: bool) {
        let mut args = vec!["down", self.dir.as_str()];
        if kill {
            args.push("--kill");
        }
        envtest(&args).await;
    }

    /// Starts them again on the same ports, with the same data and certificates.
    pub async fn up(&self) {
        envtest(&["up", &self.dir]).await;
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        // Synchronous: Drop cannot await, and the runtime may be shutting down.
        let _ = std::process::Command::new("bash")
            .arg(envtest_script())
            .args(["stop", &self.dir])
            .stdin(std::process::Stdio::null())
            .status();
    }
}

impl TestCluster {
    async fn connect() -> TestCluster {
        let kubeconfig = match std::env::var_os("PLANOPS_TEST_KUBECONFIG") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => {
                eprintln!(
                    "PLANOPS_TEST_KUBECONFIG not set: starting a control plane for this test binary"
                );
                start_private_control_plane(&[]).await.1
            }
        };
        TestCluster::from_kubeconfig(kubeconfig).await
    }

    async fn from_kubeconfig(kubeconfig: PathBuf) -> TestCluster {
        let file = Kubeconfig::read_from(&kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
        let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("loading {}: {e}", kubeconfig.display()));
        TestCluster { kubeconfig, config }
    }

    /// An admin client (token auth, group `system:masters`) on the caller's runtime.
    pub fn client(&self) -> Client {
        client_for(self.config.clone())
    }

    /// Creates a fresh namespace named `<prefix>-<random>` and returns its name.
    pub async fn namespace(&self, prefix: &str) -> String {
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(50)
            .collect();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{}-{}", prefix.trim_matches('-'), &suffix[..8]);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// Server-side applies every CustomResourceDefinition in the `*.yaml` /
    /// `*.yml` files of `dir` (multi-document files allowed) and waits until
    /// each is Established. Runs once per directory per process.
    pub async fn install_crds(&self, dir: impl AsRef<Path>) {
        let dir = dir
            .as_ref()
            .canonicalize()
            .unwrap_or_else(|e| panic!("CRD dir {}: {e}", dir.as_ref().display()));
        let key = (self.kubeconfig.clone(), dir.clone());
        let mut installed = INSTALLED_CRD_DIRS.lock().await;
        if installed.contains(&key) {
            return;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("reading a dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            self.apply_crds_yaml(&text, &file.display().to_string())
                .await;
        }
        installed.insert(key);
    }

    /// Server-side applies the CRDs in one YAML text (e.g. written inline in a
    /// test) and waits until they are Established. `origin` names it in panics.
    pub async fn apply_crds_yaml(&self, yaml: &str, origin: &str) {
        let api = Api::<CustomResourceDefinition>::all(self.client());
        for document in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value = serde_yaml_ng::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"));
            if value.is_null() {
                continue; // empty document, e.g. a trailing `---`
            }
            let crd: CustomResourceDefinition = serde_yaml_ng::from_value(value)
                .unwrap_or_else(|e| panic!("{origin}: not a CustomResourceDefinition: {e}"));
            let name = crd
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| panic!("{origin}: CRD without metadata.name"));
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("{origin}: applying CRD {name}: {e}"));
            tokio::time::timeout(
                CRD_ESTABLISHED_GUARD,
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| {
                panic!("CRD {name} not Established after {CRD_ESTABLISHED_GUARD:?}")
            })
            .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
        }
    }

    /// Runs the machine's `kubectl` as admin against this control plane.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("running kubectl")
    }

    /// What kstatus computes for a live object. `gvk` is `group/version/Kind`
    /// (`v1/ConfigMap` for the core group); `namespace` is "" when
    /// cluster-scoped. A missing object gives status `NotFound`.
    pub async fn kstatus(&self, gvk: &str, namespace: &str, name: &str) -> KStatus {
        let bin = envtest_bin().await.join("kstatus");
        assert!(
            bin.exists(),
            "{} missing; run scripts/envtest.sh build",
            bin.display()
        );
        let ns = if namespace.is_empty() { "-" } else { namespace };
        let out = tokio::process::Command::new(&bin)
            .env("KUBECONFIG", &self.kubeconfig)
            .args([gvk, ns, name])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("running kstatus");
        assert!(
            out.status.success(),
            "kstatus {gvk} {ns} {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "kstatus printed {:?}: {e}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The admin identity impersonating `user` (with `groups`, if any). For a
    /// ServiceAccount use `system:serviceaccount:<ns>:<name>`; the API server
    /// then adds its ServiceAccount groups itself.
    pub fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups =
            (!groups.is_empty()).then(|| groups.iter().map(|g| (*g).to_owned()).collect());
        client_for(config)
    }

    /// Creates (or keeps) the ServiceAccount `namespace/name`.
    pub async fn create_service_account(&self, namespace: &str, name: &str) {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        Api::<ServiceAccount>::namespaced(self.client(), namespace)
            .patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&sa))
            .await
            .unwrap_or_else(|e| panic!("creating ServiceAccount {namespace}/{name}: {e}"));
    }

    /// A bound token for an existing ServiceAccount (TokenRequest API; works
    /// without kube-controller-manager).
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: None, // the API server's own audience
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        Api::<ServiceAccount>::namespaced(self.client(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name}: {e}"))
            .status
            .and_then(|status| status.token)
            .unwrap_or_else(|| panic!("TokenRequest for {namespace}/{name} returned no token"))
    }

    /// A client authenticating with `token` instead of the admin token.
    pub fn client_with_token(&self, token: &str) -> Client {
        let mut config = self.config.clone();
        // AuthInfo's token is a secrecy::SecretString; going through serde
        // avoids depending on secrecy just for this.
        config.auth_info =
            serde_json::from_value::<AuthInfo>(serde_json::json!({ "token": token }))
                .expect("an AuthInfo with only a token");
        client_for(config)
    }

    /// A client authenticated as the ServiceAccount `namespace/name` by a real
    /// token (so authentication, not only authorization, is exercised).
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Client {
        let token = self.service_account_token(namespace, name).await;
        self.client_with_token(&token)
    }
}

/// Directory of the envtest binaries (`PLANOPS_ENVTEST_BIN` or the script's).
pub async fn envtest_bin() -> PathBuf {
    static BIN: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BIN.get_or_init(|| async {
        match std::env::var_os("PLANOPS_ENVTEST_BIN") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(envtest(&["bin"]).await),
        }
    })
    .await
    .clone()
}
