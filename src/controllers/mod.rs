//! Reconcilers, one per kind, each with its own context around a shared core; leader election; the
//! operator's health, readiness and metrics endpoints.

pub mod approval;
pub mod connection;
pub mod cronjob;
pub mod driver;
pub mod edge;
pub mod events;
pub mod hook_token;
pub mod http;
pub mod kinds;
pub mod leadership;
pub mod metrics;
pub mod routes;
pub mod rule;
pub mod rule_scan;
pub mod scheduler;
pub mod shards;
pub mod supplier;
pub mod tasks;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, finalizer, watcher};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::api::{ApprovalPolicy, ExceptionRule, OdooConnection, SupplierConnector};
use crate::gateway::{Gateway, GatewayOptions};
use driver::{KindContext, Reconciler};
use kinds::PlanopsKind;
use metrics::Metrics;

/// Errors of a reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("resource has no namespace")]
    MissingNamespace,
    #[error("Odoo automation: {0}")]
    Automation(#[source] crate::automation::SyncError),
    #[error("approvals: {0}")]
    Approval(#[source] crate::approval::ApprovalError),
}

impl Error {
    /// A low-cardinality label for the error metric.
    /// The object we acted on was stale: a finalizer patch whose `test` guard
    /// failed (422) or a write that lost an optimistic-concurrency race (409).
    /// The watch is about to deliver the newer version, so retry soon and quietly.
    pub fn is_stale_object(&self) -> bool {
        let api_code = |e: &kube::Error| match e {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        };
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                    matches!(api_code(e), Some(409 | 422))
                }
                // A status write conditional on the version read (see
                // `driver::write_status`) that met a newer object.
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.is_stale_object()
                }
                _ => false,
            },
            Error::Kube(e) => api_code(e) == Some(409),
            Error::MissingNamespace | Error::Automation(_) | Error::Approval(_) => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::MissingNamespace => "missing_namespace",
            Error::Automation(_) => "automation",
            Error::Approval(_) => "approval",
        }
    }
}

/// Flags of every long-running PlanOps process (`planops operator`,
/// `planops gateway`), declared once so they cannot drift apart.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessArgs {
    /// Namespaces to watch (comma-separated). Empty: all namespaces.
    #[arg(
        long,
        env = "PLANOPS_WATCH_NAMESPACES",
        value_delimiter = ',',
        num_args = 0..
    )]
    pub watch_namespaces: Vec<String>,
    /// Address of the health, readiness and metrics endpoints and the webhook gateway.
    #[arg(long, env = "PLANOPS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Identity of this replica (in the Lease, in Events). Default: the pod name, else a random id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Requests per second PlanOps sends to the API server beyond its watches:
    /// a ceiling against a runaway loop, not the API server's protection
    /// (Priority and Fairness queues each client's requests there); see
    /// docs/operations.md, "Start-up at scale".
    #[arg(long, env = "PLANOPS_API_QPS", default_value_t = 100)]
    pub api_qps: u32,
    /// Burst of requests above the rate.
    #[arg(long, env = "PLANOPS_API_BURST", default_value_t = 200)]
    pub api_burst: u32,
}

impl ProcessArgs {
    /// One watch scope per watched namespace, or one for all (`None`).
    fn scopes(&self) -> Vec<Option<String>> {
        if self.watch_namespaces.is_empty() {
            vec![None]
        } else {
            self.watch_namespaces.iter().cloned().map(Some).collect()
        }
    }

    /// `--identity`, else `<prefix>-<random>`.
    fn identity_or(&self, prefix: &str) -> String {
        self.identity
            .clone()
            .unwrap_or_else(|| format!("{prefix}-{}", uuid::Uuid::new_v4().simple()))
    }
}

/// Command-line arguments of `planops operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Run leader election so that several replicas run one scheduler and status writer.
    #[arg(long, env = "PLANOPS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the coordination.k8s.io Lease.
    #[arg(long, env = "PLANOPS_LEASE_NAME", default_value = "planops-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a leader's claim stays valid without renewal; a standby takes over after it.
    #[arg(long, env = "PLANOPS_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Shards the OdooConnections (with the rules, supplier connectors and
    /// approval policies that use them) are spread over, one Lease each
    /// (`<lease-name>-<i>`), so that several replicas act at once. 1: one
    /// leader acts on everything, under `--lease-name` itself.
    #[arg(long, env = "PLANOPS_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// Reconciliations run at once per kind.
    #[arg(long, env = "PLANOPS_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Label this replica's own Pod (`--identity` in the Lease namespace) with
    /// `planops.io/gateway=active` while it leads, so that a Service selecting
    /// that label sends webhooks only to the replica that serves them.
    #[arg(long, env = "PLANOPS_LABEL_LEADER_POD", default_value_t = false, action = clap::ArgAction::Set)]
    pub label_leader_pod: bool,
    /// Image of the CronJobs of rules with `execution: CronJob` (they run
    /// `planops scan`): the operator's own image, which the chart passes.
    /// Unset: such rules report `Scheduled=False NoScanImage`.
    #[arg(long, env = "PLANOPS_IMAGE")]
    pub scan_image: Option<String>,
    /// ServiceAccount those CronJobs run as, in the rule's namespace (the
    /// chart creates it with exactly the rights `planops scan` needs).
    #[arg(
        long,
        env = "PLANOPS_SCAN_SERVICE_ACCOUNT",
        default_value = "planops-scan"
    )]
    pub scan_service_account: String,
}

/// OdooConnection stores, one per watched scope, so other kinds can look up
/// their connection without a request to the API server.
#[derive(Clone, Default)]
pub struct ConnectionIndex {
    stores: Vec<(Option<String>, Store<OdooConnection>)>,
}

impl ConnectionIndex {
    pub fn get(&self, key: &ObjectRef<OdooConnection>) -> Option<Arc<OdooConnection>> {
        self.stores
            .iter()
            .filter(|(scope, _)| scope.is_none() || scope.as_deref() == key.namespace.as_deref())
            .find_map(|(_, store)| store.get(key))
    }
}

/// What every controller shares, and all the shared reconcile flow
/// ([`driver`]) sees: the API client and its rate limit, the Event recorder,
/// the metrics and the OdooConnection index. Each kind's own state is in its
/// context ([`connection::ConnectionContext`], [`rule::RuleContext`],
/// [`supplier::SupplierContext`], [`approval::ApprovalContext`]).
pub struct Core {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Client-side rate limit on requests to the API server outside the watches.
    pub api_limiter: DefaultDirectRateLimiter,
    pub connections: ConnectionIndex,
    /// The terms during which this replica may act, one per shard; see
    /// [`leadership`] and [`shards`].
    pub terms: leadership::Terms,
}

impl Core {
    /// `api_rate`: requests per second and burst towards the Kubernetes API.
    fn new(
        client: Client,
        identity: &str,
        metrics: Arc<Metrics>,
        api_rate: (u32, u32),
        connections: ConnectionIndex,
        shards: u32,
    ) -> Core {
        let reporter = Reporter {
            controller: "planops".into(),
            instance: Some(identity.to_string()),
        };
        let (qps, burst) = api_rate;
        let quota = Quota::per_second(nonzero(qps)).allow_burst(nonzero(burst.max(qps)));
        Core {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            api_limiter: RateLimiter::direct(quota),
            connections,
            terms: leadership::Terms::new(shards),
        }
    }

    /// A stop switch for work on `obj` (a scan, a poll loop): stopped already,
    /// or when this replica no longer holds the object's shard.
    pub fn work_for<K: PlanopsKind>(&self, obj: &K) -> CancellationToken {
        self.terms.work(shards::shard_of(obj, self.terms.count()))
    }
}

/// The operator's four controllers, each with its context. What two of them
/// share is shared explicitly: the Odoo clients (written by the connection
/// controller, used by the others), the gateway, the approvals' reconcile
/// requests (a rule's gate asks for a policy's reconcile) and the rule
/// context (a supplier event re-evaluates rules).
struct Controllers {
    core: Arc<Core>,
    /// Its routes are registered by the controllers, so only the leader
    /// serves them (a standby answers 503).
    gateway: Gateway,
    connections: Arc<connection::ConnectionContext>,
    rules: Arc<rule::RuleContext>,
    suppliers: Arc<supplier::SupplierContext>,
    approvals: Arc<approval::ApprovalContext>,
}

impl Controllers {
    /// No longer leading (or shutting down): no scan may run on a standby, and
    /// its gateway sends senders to retry until another replica leads.
    fn stand_by(&self) {
        self.rules.scheduler.stop_all();
        self.suppliers.suppliers.stop_all();
        self.approvals.approvals.stop_all();
        self.rules.change_polls.stop_all();
        self.gateway.set_standby(true);
    }

    fn new(core: Arc<Core>, gateway: Gateway, cronjobs: cronjob::CronJobSettings) -> Controllers {
        let odoo = Arc::new(connection::OdooClients::default());
        let approvals = Arc::new(approval::Approvals::default());
        let rules = Arc::new(rule::RuleContext {
            core: core.clone(),
            odoo: odoo.clone(),
            gateway: gateway.clone(),
            scheduler: scheduler::Scheduler::default(),
            rule_locks: events::RuleLocks::default(),
            change_polls: routes::ChangePolls::default(),
            history: crate::scan::HistoryCache::from_env(),
            cronjobs,
            approvals: approvals.clone(),
        });
        Controllers {
            connections: Arc::new(connection::ConnectionContext {
                core: core.clone(),
                odoo: odoo.clone(),
            }),
            suppliers: Arc::new(supplier::SupplierContext {
                core: core.clone(),
                odoo: odoo.clone(),
                gateway: gateway.clone(),
                suppliers: supplier::Suppliers::default(),
                rules: rules.clone(),
            }),
            approvals: Arc::new(approval::ApprovalContext {
                core: core.clone(),
                odoo,
                gateway: gateway.clone(),
                approvals,
            }),
            rules,
            core,
            gateway,
        }
    }
}

/// What every long-running PlanOps process starts with: an API client, the
/// gateway and metrics on the HTTP listener, and the shutdown switch.
struct Process {
    client: Client,
    gateway: Gateway,
    metrics: Arc<Metrics>,
    /// Set once the process's watches have synced (`/readyz`).
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Process {
    /// `standby`: the gateway answers 503 until told otherwise.
    async fn start(args: &ProcessArgs, standby: bool) -> anyhow::Result<Process> {
        use anyhow::Context as _;
        let client = Client::try_default()
            .await
            .context("connecting to the Kubernetes API (kubeconfig or in-cluster config)")?;
        let gateway = Gateway::new(GatewayOptions::default());
        gateway.set_standby(standby);
        let mut metrics = Metrics::new();
        metrics.register_gateway(&gateway);
        let metrics = Arc::new(metrics);
        let ready = Arc::new(AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        let server = http::serve(
            args.listen,
            metrics.clone(),
            ready.clone(),
            gateway.router(),
            shutdown.clone(),
        )
        .await
        .with_context(|| format!("binding the HTTP endpoints on {}", args.listen))?;
        Ok(Process {
            client,
            gateway,
            metrics,
            ready,
            shutdown,
            server,
        })
    }
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    // With leader election the gateway waits for the lease like the controllers.
    let Process {
        client,
        gateway,
        metrics,
        ready,
        shutdown,
        server,
    } = Process::start(&args.process, args.leader_election).await?;
    check_crds_installed(&client, &args.process.watch_namespaces).await?;
    let scopes = args.process.scopes();
    let connections = start_connection_reflectors(&client, &scopes, shutdown.clone());
    {
        let ready = ready.clone();
        let stores: Vec<_> = connections.stores.iter().map(|(_, s)| s.clone()).collect();
        tokio::spawn(async move {
            for store in stores {
                if store.wait_until_ready().await.is_err() {
                    return;
                }
            }
            ready.store(true, Ordering::SeqCst);
            tracing::info!("watches synced; ready");
        });
    }

    let identity = args.process.identity_or("planops");
    let core = Arc::new(Core::new(
        client.clone(),
        &identity,
        metrics.clone(),
        (args.process.api_qps, args.process.api_burst),
        connections,
        if args.leader_election { args.shards } else { 1 },
    ));
    let controllers = Arc::new(Controllers::new(
        core,
        gateway,
        cronjob::CronJobSettings {
            image: args.scan_image.clone().filter(|i| !i.is_empty()),
            service_account: args.scan_service_account.clone(),
            outbound: crate::outbound::policy().clone(),
        },
    ));

    let gateway_pod = GatewayPod::from_args(&client, &args);
    // A restarted container may find its Pod still labelled from before the crash.
    gateway_pod.set(false).await;
    if args.leader_election && args.shards > 1 {
        leadership::run_sharded(
            &args,
            &identity,
            controllers,
            scopes,
            &gateway_pod,
            shutdown.clone(),
        )
        .await?;
    } else if args.leader_election {
        leadership::run_with_leader_election(
            &args,
            &identity,
            controllers,
            scopes,
            &gateway_pod,
            shutdown.clone(),
        )
        .await?;
    } else {
        metrics.leader.set(1);
        gateway_pod.set(true).await;
        controllers.core.terms.begin_all(&shutdown);
        run_controllers(
            controllers,
            scopes,
            args.concurrency,
            shutdown.child_token(),
        )
        .await;
    }
    gateway_pod.set(false).await;
    shutdown.cancel();
    server.await.ok();
    tracing::info!("stopped");
    Ok(())
}

/// Label a leading replica puts on its own Pod: the chart's gateway Service
/// selects it, so webhooks reach the one replica that has routes.
pub const GATEWAY_POD_LABEL: &str = "planops.io/gateway";

/// This replica's Pod, when `--label-leader-pod` is on.
struct GatewayPod {
    pod: Option<(Api<Pod>, String)>,
}

impl GatewayPod {
    fn from_args(client: &Client, args: &OperatorArgs) -> GatewayPod {
        if !args.label_leader_pod {
            return GatewayPod { pod: None };
        }
        let Some(name) = args.process.identity.clone() else {
            tracing::warn!(
                "--label-leader-pod needs the Pod's name in --identity (POD_NAME); not labelling"
            );
            return GatewayPod { pod: None };
        };
        GatewayPod {
            pod: Some((Api::namespaced(client.clone(), &args.lease_namespace), name)),
        }
    }

    /// Adds or removes the label. A failure is logged: the gateway itself
    /// still answers correctly (a standby says 503), only routing suffers.
    async fn set(&self, serving: bool) {
        let Some((api, name)) = &self.pod else {
            return;
        };
        let value = if serving {
            serde_json::json!("active")
        } else {
            serde_json::Value::Null
        };
        let patch = serde_json::json!({"metadata": {"labels": {GATEWAY_POD_LABEL: value}}});
        for attempt in 1..=3 {
            match api
                .patch(
                    name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => return,
                Err(err) if attempt == 3 => {
                    tracing::warn!(pod = name, serving, error = %err, "could not label this Pod for the gateway Service");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500 * attempt)).await,
            }
        }
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN)
}

async fn check_crds_installed(client: &Client, namespaces: &[String]) -> anyhow::Result<()> {
    let namespace = namespaces.first();
    probe_kind::<OdooConnection>(client, namespace).await?;
    probe_kind::<ExceptionRule>(client, namespace).await?;
    probe_kind::<SupplierConnector>(client, namespace).await?;
    probe_kind::<ApprovalPolicy>(client, namespace).await
}

/// Fails with what to do when `K` cannot be listed: the CRD is missing or RBAC forbids it.
async fn probe_kind<K: PlanopsKind>(
    client: &Client,
    namespace: Option<&String>,
) -> anyhow::Result<()> {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list_metadata(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot list {}: {e}. Are the CRDs installed (`kubectl apply -f crds/`) and does the RBAC allow it?",
                K::KIND
            )
        })?;
    Ok(())
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        shutdown.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
}

fn scoped_api<K: PlanopsKind>(client: &Client, scope: &Option<String>) -> Api<K> {
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn start_connection_reflectors(
    client: &Client,
    scopes: &[Option<String>],
    shutdown: CancellationToken,
) -> ConnectionIndex {
    let mut index = ConnectionIndex::default();
    for scope in scopes {
        let (reader, writer) = reflector::store();
        let stream = watcher(
            scoped_api::<OdooConnection>(client, scope),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .for_each(|_| futures::future::ready(()));
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stream => {},
                _ = shutdown.cancelled() => {},
            }
        });
        index.stores.push((scope.clone(), reader));
    }
    index
}

/// Runs the four controllers for every scope until `term` ends.
async fn run_controllers(
    controllers: Arc<Controllers>,
    scopes: Vec<Option<String>>,
    concurrency: u16,
    term: CancellationToken,
) {
    let shutdown = term;
    let Controllers {
        gateway,
        connections,
        rules,
        suppliers,
        approvals,
        ..
    } = controllers.as_ref();
    gateway.set_standby(false);
    let mut tasks = Vec::new();
    for scope in scopes {
        // A finished scan asks for a reconcile of its rule through this channel,
        // so the reconciler (the one status writer) records the result.
        let finished = rules.scheduler.start(scope.clone());
        let finished = futures::stream::unfold(finished, |mut rx| async move {
            rx.recv().await.map(|r| (r, rx))
        });
        tasks.push(tokio::spawn(run_kind::<OdooConnection>(
            connections.clone(),
            scope.clone(),
            concurrency,
            shutdown.clone(),
            futures::stream::empty(),
        )));
        tasks.push(tokio::spawn(run_kind::<ExceptionRule>(
            rules.clone(),
            scope.clone(),
            concurrency,
            shutdown.clone(),
            finished,
        )));
        let supplier_events = futures::stream::unfold(
            suppliers.suppliers.start(scope.clone()),
            |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
        );
        tasks.push(tokio::spawn(run_kind::<SupplierConnector>(
            suppliers.clone(),
            scope.clone(),
            concurrency,
            shutdown.clone(),
            supplier_events,
        )));
        // The gate and the gateway ask for a policy's reconcile when a request
        // opened or changed, so decisions are handled without waiting for the poll.
        let approval_requests = futures::stream::unfold(
            approvals.approvals.start(scope.clone()),
            |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
        );
        tasks.push(tokio::spawn(run_kind::<ApprovalPolicy>(
            approvals.clone(),
            scope.clone(),
            concurrency,
            shutdown.clone(),
            approval_requests,
        )));
    }
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "controller task panicked");
        }
    }
    controllers.stand_by();
}

/// One controller: the kind itself, the Secrets it names, and (for kinds that
/// use one) its OdooConnection, so that a change to either reconciles it
/// without a restart.
fn run_kind<K: Reconciler>(
    ctx: Arc<K::Context>,
    scope: Option<String>,
    concurrency: u16,
    shutdown: CancellationToken,
    triggers: impl futures::Stream<Item = ObjectRef<K>> + Send + 'static,
) -> impl Future<Output = ()> + Send {
    let client = ctx.core().client.clone();
    let controller = Controller::new(scoped_api::<K>(&client, &scope), watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .reconcile_on(triggers);
    let controller = K::watch_owned(controller, &client, &scope);
    let store = controller.store();

    let secret_store = store.clone();
    let secrets = watcher(
        scoped_api_secret(&client, &scope),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let controller = controller.watches_stream(secrets, move |secret| {
        let namespace = secret.namespace();
        let name = secret.name_any();
        secret_store
            .state()
            .into_iter()
            .filter(|obj| obj.namespace() == namespace && obj.uses_secret(&name))
            .map(|obj| ObjectRef::from_obj(&*obj))
            .collect::<Vec<_>>()
    });

    // A shard this replica took up (or gave up) has its objects reconciled:
    // to act on them, or to drop what ran for them (see `reconcile_held`).
    let shard_store = store.clone();
    let shard_count = ctx.core().terms.count();
    let shard_changes = futures::stream::unfold(ctx.core().terms.changes(), |mut rx| async move {
        match rx.recv().await {
            Ok(shard) => Some((Some(shard), rx)),
            // Missed changes: reconcile every object rather than guess.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
    .flat_map(move |changed| {
        let objects: Vec<_> = shard_store
            .state()
            .into_iter()
            .filter(|obj| changed.is_none_or(|s| shards::shard_of(&**obj, shard_count) == s))
            .map(|obj| ObjectRef::from_obj(&*obj))
            .collect();
        futures::stream::iter(objects)
    });
    let controller = controller.reconcile_on(shard_changes);

    let connection_store = store.clone();
    let controller = controller.watches(
        scoped_api::<OdooConnection>(&client, &scope),
        watcher::Config::default(),
        move |connection| {
            let namespace = connection.namespace();
            let name = connection.name_any();
            connection_store
                .state()
                .into_iter()
                .filter(|obj| {
                    obj.namespace() == namespace && obj.connection_name() == Some(name.as_str())
                })
                .map(|obj| ObjectRef::from_obj(&*obj))
                .collect::<Vec<_>>()
        },
    );

    async move {
        controller
            .graceful_shutdown_on(async move { shutdown.cancelled().await })
            .run(reconcile_held::<K>, driver::error_policy::<K>, ctx)
            .for_each(|result| {
                if let Err(err) = result {
                    tracing::debug!(kind = K::KIND, error = %err, "controller event");
                }
                futures::future::ready(())
            })
            .await;
    }
}

/// Reconciles `obj` only while this replica holds its shard, and stops a
/// reconcile in flight when the shard's term ends, so that nothing (status,
/// finalizer, Odoo) is written for an object another replica may hold. An
/// object of another replica's shard has whatever this replica ran for it
/// dropped: schedules, routes and series from when it held the shard.
async fn reconcile_held<K: Reconciler>(
    obj: Arc<K>,
    ctx: Arc<K::Context>,
) -> Result<kube::runtime::controller::Action, Error> {
    let term = ctx.core().work_for(&*obj);
    if term.is_cancelled() {
        K::forget(&obj, &ctx);
        ctx.core().metrics.forget(
            K::KIND,
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
        );
        return Ok(kube::runtime::controller::Action::await_change());
    }
    tokio::select! {
        biased;
        _ = term.cancelled() => Ok(kube::runtime::controller::Action::await_change()),
        result = driver::reconcile::<K>(obj, ctx.clone()) => result,
    }
}

/// Secrets are watched as metadata only: the operator needs to know that a
/// referenced Secret changed, never to cache its data.
fn scoped_api_secret(client: &Client, scope: &Option<String>) -> Api<PartialObjectMeta<Secret>> {
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
