//! `planops gateway`: the webhook gateway as its own Deployment.
//!
//! Each replica serves the same `/hooks/...` routes as the operator's leader,
//! with the same authentication, limits and dedup, and passes every event it
//! accepts on to the leader ([`crate::gateway::forward`]), which checks it
//! again and is the only process that acts in Odoo. Replicas therefore scale
//! the edge (TLS, floods, signature checks, queueing Odoo hints through a
//! leader failover) without a second writer: "nothing done twice" stays the
//! leader's per-rule lock and the fingerprints in Odoo.
//!
//! Routes follow the resources through watches, never through status: a rule
//! gets its route when it asks for events, is neither suspended nor paused,
//! and the operator has created its token Secret; a connector when it has an
//! inbound webhook and is not suspended. Secret changes (a rotated supplier
//! secret, a token created) re-read the routes that name them. An edge writes
//! nothing to the API server.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use super::kinds::PlanopsKind;
use super::{ConnectionIndex, Core, Process, ProcessArgs, routes, scoped_api, scoped_api_secret};
use crate::api::common::is_paused;
use crate::api::{ApprovalPolicy, ExceptionRule, SupplierConnector};
use crate::automation;
use crate::gateway::forward::{ForwardOptions, Forwarder};
use crate::gateway::{EventHandler, Gateway, RouteConfig, RoutePath};

/// How often routes whose set-up failed (API error, missing Secret key) are tried again.
const RETRY_FAILED: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The leader's gateway, e.g. the chart's `http://<release>-leader:8080`.
    #[arg(long, env = "PLANOPS_FORWARD_TO")]
    pub forward_to: reqwest::Url,
    /// How long an Odoo hint is retried while no leader answers.
    #[arg(long, env = "PLANOPS_HINT_RETRY_SECONDS", default_value_t = 120)]
    pub hint_retry_seconds: u64,
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut forward = ForwardOptions::new(args.forward_to.clone());
    forward.hint_retry_budget = Duration::from_secs(args.hint_retry_seconds);
    let forwarder: Arc<dyn EventHandler> =
        Arc::new(Forwarder::new(forward).context("building the HTTP client of the hop")?);
    let Process {
        client,
        gateway,
        metrics,
        ready,
        shutdown,
        server,
    } = Process::start(&args.process, false).await?;
    let namespace = args.process.watch_namespaces.first();
    super::probe_kind::<ExceptionRule>(&client, namespace).await?;
    super::probe_kind::<SupplierConnector>(&client, namespace).await?;
    super::probe_kind::<ApprovalPolicy>(&client, namespace).await?;

    let identity = args.process.identity_or("planops-gateway");
    // An edge runs no controller: it reads routes' Secrets and serves them.
    let core = Arc::new(Core::new(
        client,
        &identity,
        metrics,
        (args.process.api_qps, args.process.api_burst),
        ConnectionIndex::default(),
        1,
    ));
    tracing::info!(upstream = %args.forward_to, "edge gateway: serving routes and forwarding to the leader");

    let scopes = args.process.scopes();
    let synced: Vec<Arc<AtomicBool>> = scopes
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let mut tasks = Vec::new();
    for (scope, synced_flag) in scopes.into_iter().zip(synced.iter().cloned()) {
        let sync = RouteSync {
            core: core.clone(),
            gateway: gateway.clone(),
            forwarder: forwarder.clone(),
        };
        tasks.push(tokio::spawn(sync.run(
            scope,
            synced_flag,
            ready.clone(),
            synced.clone(),
            shutdown.clone(),
        )));
    }
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "route sync task panicked");
        }
    }
    shutdown.cancel();
    server.await.ok();
    tracing::info!("stopped");
    Ok(())
}

/// A kind whose objects may have a route: what the edge needs to know of it.
trait Routed: PlanopsKind {
    fn route_path(&self) -> RoutePath;
    /// The route as the object and its Secrets say now; `Ok(None)` when it
    /// has none (yet: a token's creation re-syncs it through the Secret watch).
    fn route_config<'a>(
        &'a self,
        core: &'a Core,
    ) -> BoxFuture<'a, Result<Option<RouteConfig>, String>>;
}

impl Routed for ExceptionRule {
    fn route_path(&self) -> RoutePath {
        RoutePath::odoo(self.namespace().unwrap_or_default(), self.name_any())
    }

    fn route_config<'a>(
        &'a self,
        core: &'a Core,
    ) -> BoxFuture<'a, Result<Option<RouteConfig>, String>> {
        Box::pin(async move {
            if !routes::rule_wants_events(self) {
                return Ok(None);
            }
            let secret = automation::hook_secret_name(&self.name_any());
            callback_config(core, self, &secret).await
        })
    }
}

impl Routed for ApprovalPolicy {
    fn route_path(&self) -> RoutePath {
        RoutePath::approval(self.namespace().unwrap_or_default(), self.name_any())
    }

    fn route_config<'a>(
        &'a self,
        core: &'a Core,
    ) -> BoxFuture<'a, Result<Option<RouteConfig>, String>> {
        Box::pin(async move {
            if self.suspended() || is_paused(self.metadata.annotations.as_ref()) {
                return Ok(None);
            }
            let secret = automation::approval_hook_secret_name(&self.name_any());
            callback_config(core, self, &secret).await
        })
    }
}

impl Routed for SupplierConnector {
    fn route_path(&self) -> RoutePath {
        RoutePath::supplier(self.namespace().unwrap_or_default(), self.name_any())
    }

    fn route_config<'a>(
        &'a self,
        core: &'a Core,
    ) -> BoxFuture<'a, Result<Option<RouteConfig>, String>> {
        Box::pin(async move {
            let Some(webhook) = &self.spec.inbound.webhook else {
                return Ok(None);
            };
            if self.suspended() {
                return Ok(None);
            }
            routes::supplier_route_config(core, self, webhook)
                .await
                .map(Some)
        })
    }
}

/// An Odoo callback route, once the operator has made the owner's token.
async fn callback_config<K: PlanopsKind>(
    core: &Core,
    owner: &K,
    secret: &str,
) -> Result<Option<RouteConfig>, String> {
    core.api_limiter.until_ready().await;
    let token = super::hook_token::existing_token(&core.client, owner, secret)
        .await
        .map_err(|e| e.to_string())?;
    Ok(token.map(routes::odoo_callback_route_config))
}

/// The objects of one kind in one scope, and their routes.
struct Watched<K: Routed> {
    objects: HashMap<ObjectRef<K>, Arc<K>>,
    /// Objects listed since the last (re)list: what is not in it has gone.
    listed: HashSet<ObjectRef<K>>,
    /// Set up last time with an error: tried again every [`RETRY_FAILED`].
    failed: HashSet<ObjectRef<K>>,
    synced: bool,
}

impl<K: Routed> Watched<K> {
    fn new() -> Watched<K> {
        Watched {
            objects: HashMap::new(),
            listed: HashSet::new(),
            failed: HashSet::new(),
            synced: false,
        }
    }

    async fn on_event(
        &mut self,
        sync: &RouteSync,
        event: Result<watcher::Event<K>, watcher::Error>,
    ) {
        match event {
            Ok(watcher::Event::Init) => self.listed.clear(),
            Ok(watcher::Event::InitApply(obj)) => {
                self.listed.insert(ObjectRef::from_obj(&obj));
                self.apply(sync, obj).await;
            }
            Ok(watcher::Event::InitDone) => {
                let gone: Vec<_> = self
                    .objects
                    .keys()
                    .filter(|r| !self.listed.contains(*r))
                    .cloned()
                    .collect();
                for reference in gone {
                    self.remove(sync, &reference);
                }
                self.synced = true;
            }
            Ok(watcher::Event::Apply(obj)) => self.apply(sync, obj).await,
            Ok(watcher::Event::Delete(obj)) => self.remove(sync, &ObjectRef::from_obj(&obj)),
            Err(err) => tracing::warn!(kind = K::KIND, error = %err, "watch failed; retrying"),
        }
    }

    async fn apply(&mut self, sync: &RouteSync, obj: K) {
        let reference = ObjectRef::from_obj(&obj);
        self.objects.insert(reference.clone(), Arc::new(obj));
        self.sync(sync, reference).await;
    }

    fn remove(&mut self, sync: &RouteSync, reference: &ObjectRef<K>) {
        self.failed.remove(reference);
        if let Some(obj) = self.objects.remove(reference) {
            sync.remove_route(&obj.route_path());
        }
    }

    /// Re-reads every route that uses the Secret.
    async fn secret_changed(&mut self, sync: &RouteSync, namespace: &Option<String>, name: &str) {
        let concerned: Vec<_> = self
            .objects
            .iter()
            .filter(|(r, obj)| &r.namespace == namespace && obj.uses_secret(name))
            .map(|(r, _)| r.clone())
            .collect();
        for reference in concerned {
            self.sync(sync, reference).await;
        }
    }

    async fn retry_failed(&mut self, sync: &RouteSync) {
        let failed: Vec<_> = self.failed.drain().collect();
        for reference in failed {
            self.sync(sync, reference).await;
        }
    }

    /// Serves, reconfigures or removes the object's route.
    async fn sync(&mut self, sync: &RouteSync, reference: ObjectRef<K>) {
        let Some(obj) = self.objects.get(&reference).cloned() else {
            return;
        };
        let path = obj.route_path();
        match obj.route_config(&sync.core).await {
            Ok(Some(config)) => {
                self.failed.remove(&reference);
                sync.serve(path, config);
            }
            Ok(None) => {
                self.failed.remove(&reference);
                sync.remove_route(&path);
            }
            Err(err) => {
                // Keep serving the route as it was: a Secret being rotated or an
                // API hiccup must not turn a working route into 404s.
                tracing::warn!(route = %path, error = %err, "cannot set up the route; retrying");
                self.failed.insert(reference);
            }
        }
    }
}

/// The routes of one scope, kept in step with the watches.
struct RouteSync {
    core: Arc<Core>,
    gateway: Gateway,
    forwarder: Arc<dyn EventHandler>,
}

impl RouteSync {
    async fn run(
        self,
        scope: Option<String>,
        synced: Arc<AtomicBool>,
        ready: Arc<AtomicBool>,
        all_synced: Vec<Arc<AtomicBool>>,
        shutdown: CancellationToken,
    ) {
        let client = self.core.client.clone();
        let mut rule_events = watcher(
            scoped_api::<ExceptionRule>(&client, &scope),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut connector_events = watcher(
            scoped_api::<SupplierConnector>(&client, &scope),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut policy_events = watcher(
            scoped_api::<ApprovalPolicy>(&client, &scope),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut secrets = watcher(
            scoped_api_secret(&client, &scope),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects()
        .boxed();
        let mut rules = Watched::<ExceptionRule>::new();
        let mut connectors = Watched::<SupplierConnector>::new();
        let mut policies = Watched::<ApprovalPolicy>::new();
        let mut retry = tokio::time::interval(RETRY_FAILED);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(event) = rule_events.next() => rules.on_event(&self, event).await,
                Some(event) = connector_events.next() => connectors.on_event(&self, event).await,
                Some(event) = policy_events.next() => policies.on_event(&self, event).await,
                Some(secret) = secrets.next() => match secret {
                    Ok(secret) => {
                        let (namespace, name) = (secret.namespace(), secret.name_any());
                        rules.secret_changed(&self, &namespace, &name).await;
                        connectors.secret_changed(&self, &namespace, &name).await;
                        policies.secret_changed(&self, &namespace, &name).await;
                    }
                    Err(err) => tracing::warn!(error = %err, "watching Secrets"),
                },
                _ = retry.tick() => {
                    rules.retry_failed(&self).await;
                    connectors.retry_failed(&self).await;
                    policies.retry_failed(&self).await;
                }
            }
            if rules.synced
                && connectors.synced
                && policies.synced
                && !synced.swap(true, Ordering::SeqCst)
                && all_synced.iter().all(|s| s.load(Ordering::SeqCst))
            {
                ready.store(true, Ordering::SeqCst);
                tracing::info!("watches synced; ready");
            }
        }
    }

    fn serve(&self, path: RoutePath, config: RouteConfig) {
        let existed = self.gateway.routes().contains(&path);
        match self
            .gateway
            .upsert_route(path.clone(), config, self.forwarder.clone())
        {
            Ok(()) if !existed => tracing::info!(route = %path, "route served"),
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(route = %path, error = %err, "invalid route configuration");
                self.remove_route(&path);
            }
        }
    }

    fn remove_route(&self, path: &RoutePath) {
        if self.gateway.remove_route(path) {
            tracing::info!(route = %path, "route removed");
        }
    }
}
