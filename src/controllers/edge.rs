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
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::kinds::PlanopsKind;
use super::metrics::Metrics;
use super::{ConnectionIndex, Context, routes, scoped_api, scoped_api_secret};
use crate::api::{ExceptionRule, SupplierConnector};
use crate::automation;
use crate::gateway::forward::{ForwardOptions, Forwarder};
use crate::gateway::{EventHandler, Gateway, GatewayOptions, RouteConfig, RoutePath};

/// How often routes whose set-up failed (API error, missing Secret key) are tried again.
const RETRY_FAILED: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Namespaces whose routes to serve (comma-separated); empty: all.
    #[arg(
        long,
        env = "PLANOPS_WATCH_NAMESPACES",
        value_delimiter = ',',
        num_args = 0..
    )]
    pub watch_namespaces: Vec<String>,
    /// Address of /hooks/..., /healthz, /readyz and /metrics.
    #[arg(long, env = "PLANOPS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The leader's gateway, e.g. the chart's `http://<release>-leader:8080`.
    #[arg(long, env = "PLANOPS_FORWARD_TO")]
    pub forward_to: reqwest::Url,
    /// How long an Odoo hint is retried while no leader answers.
    #[arg(long, env = "PLANOPS_HINT_RETRY_SECONDS", default_value_t = 120)]
    pub hint_retry_seconds: u64,
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[arg(long, env = "PLANOPS_API_QPS", default_value_t = 20)]
    pub api_qps: u32,
    #[arg(long, env = "PLANOPS_API_BURST", default_value_t = 40)]
    pub api_burst: u32,
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (kubeconfig or in-cluster config)")?;
    let namespace = args.watch_namespaces.first();
    super::probe_kind::<ExceptionRule>(&client, namespace).await?;
    super::probe_kind::<SupplierConnector>(&client, namespace).await?;
    let mut forward = ForwardOptions::new(args.forward_to.clone());
    forward.hint_retry_budget = Duration::from_secs(args.hint_retry_seconds);
    let forwarder: Arc<dyn EventHandler> =
        Arc::new(Forwarder::new(forward).context("building the HTTP client of the hop")?);

    let gateway = Gateway::new(GatewayOptions::default());
    let mut metrics = Metrics::new();
    metrics.register_gateway(&gateway);
    let metrics = Arc::new(metrics);
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = CancellationToken::new();
    super::spawn_signal_handler(shutdown.clone());
    let server = super::http::serve(
        args.listen,
        metrics.clone(),
        ready.clone(),
        gateway.router(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("binding the HTTP endpoints on {}", args.listen))?;

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("planops-gateway-{}", uuid::Uuid::new_v4().simple()));
    let ctx = Arc::new(Context::new(
        client,
        &identity,
        metrics,
        (args.api_qps, args.api_burst),
        ConnectionIndex::default(),
        gateway,
        // An edge runs no scans and materialises nothing.
        Default::default(),
    ));
    tracing::info!(upstream = %args.forward_to, "edge gateway: serving routes and forwarding to the leader");

    let scopes: Vec<Option<String>> = if args.watch_namespaces.is_empty() {
        vec![None]
    } else {
        args.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let synced: Vec<Arc<AtomicBool>> = scopes
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let mut tasks = Vec::new();
    for (scope, synced_flag) in scopes.into_iter().zip(synced.iter().cloned()) {
        let sync = RouteSync {
            ctx: ctx.clone(),
            forwarder: forwarder.clone(),
            rules: HashMap::new(),
            connectors: HashMap::new(),
            failed: HashSet::new(),
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

/// One watched resource with a route.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Owner {
    Rule(ObjectRef<ExceptionRule>),
    Connector(ObjectRef<SupplierConnector>),
}

/// The routes of one scope, kept in step with the watches.
struct RouteSync {
    ctx: Arc<Context>,
    forwarder: Arc<dyn EventHandler>,
    rules: HashMap<ObjectRef<ExceptionRule>, Arc<ExceptionRule>>,
    connectors: HashMap<ObjectRef<SupplierConnector>, Arc<SupplierConnector>>,
    /// Set up last time with an error: tried again every [`RETRY_FAILED`].
    failed: HashSet<Owner>,
}

impl RouteSync {
    async fn run(
        mut self,
        scope: Option<String>,
        synced: Arc<AtomicBool>,
        ready: Arc<AtomicBool>,
        all_synced: Vec<Arc<AtomicBool>>,
        shutdown: CancellationToken,
    ) {
        let client = self.ctx.client.clone();
        let mut rules = watcher(
            scoped_api::<ExceptionRule>(&client, &scope),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut connectors = watcher(
            scoped_api::<SupplierConnector>(&client, &scope),
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
        let mut retry = tokio::time::interval(RETRY_FAILED);
        let (mut rules_done, mut connectors_done) = (false, false);
        // Objects listed since the last (re)list: what is not in it has gone.
        let mut listed_rules = HashSet::new();
        let mut listed_connectors = HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(event) = rules.next() => match event {
                    Ok(watcher::Event::Init) => listed_rules.clear(),
                    Ok(watcher::Event::InitApply(rule)) => {
                        listed_rules.insert(ObjectRef::from_obj(&rule));
                        self.apply_rule(rule).await;
                    }
                    Ok(watcher::Event::InitDone) => {
                        let gone: Vec<_> = self.rules.keys().filter(|r| !listed_rules.contains(*r)).cloned().collect();
                        for rule in gone {
                            self.remove(Owner::Rule(rule));
                        }
                        rules_done = true;
                    }
                    Ok(watcher::Event::Apply(rule)) => self.apply_rule(rule).await,
                    Ok(watcher::Event::Delete(rule)) => self.remove(Owner::Rule(ObjectRef::from_obj(&rule))),
                    Err(err) => tracing::warn!(error = %err, "watching ExceptionRules"),
                },
                Some(event) = connectors.next() => match event {
                    Ok(watcher::Event::Init) => listed_connectors.clear(),
                    Ok(watcher::Event::InitApply(connector)) => {
                        listed_connectors.insert(ObjectRef::from_obj(&connector));
                        self.apply_connector(connector).await;
                    }
                    Ok(watcher::Event::InitDone) => {
                        let gone: Vec<_> = self.connectors.keys().filter(|c| !listed_connectors.contains(*c)).cloned().collect();
                        for connector in gone {
                            self.remove(Owner::Connector(connector));
                        }
                        connectors_done = true;
                    }
                    Ok(watcher::Event::Apply(connector)) => self.apply_connector(connector).await,
                    Ok(watcher::Event::Delete(connector)) => self.remove(Owner::Connector(ObjectRef::from_obj(&connector))),
                    Err(err) => tracing::warn!(error = %err, "watching SupplierConnectors"),
                },
                Some(secret) = secrets.next() => match secret {
                    Ok(secret) => self.secret_changed(secret.namespace(), &secret.name_any()).await,
                    Err(err) => tracing::warn!(error = %err, "watching Secrets"),
                },
                _ = retry.tick() => self.retry_failed().await,
            }
            if rules_done
                && connectors_done
                && !synced.swap(true, Ordering::SeqCst)
                && all_synced.iter().all(|s| s.load(Ordering::SeqCst))
            {
                ready.store(true, Ordering::SeqCst);
                tracing::info!("watches synced; ready");
            }
        }
    }

    async fn apply_rule(&mut self, rule: ExceptionRule) {
        let reference = ObjectRef::from_obj(&rule);
        self.rules.insert(reference.clone(), Arc::new(rule));
        self.sync(Owner::Rule(reference)).await;
    }

    async fn apply_connector(&mut self, connector: SupplierConnector) {
        let reference = ObjectRef::from_obj(&connector);
        self.connectors
            .insert(reference.clone(), Arc::new(connector));
        self.sync(Owner::Connector(reference)).await;
    }

    fn remove(&mut self, owner: Owner) {
        self.failed.remove(&owner);
        let path = match &owner {
            Owner::Rule(r) => {
                self.rules.remove(r);
                RoutePath::odoo(r.namespace.clone().unwrap_or_default(), &r.name)
            }
            Owner::Connector(c) => {
                self.connectors.remove(c);
                RoutePath::supplier(c.namespace.clone().unwrap_or_default(), &c.name)
            }
        };
        if self.ctx.gateway.remove_route(&path) {
            tracing::info!(route = %path, "route removed");
        }
    }

    /// Re-reads every route that names the Secret.
    async fn secret_changed(&mut self, namespace: Option<String>, name: &str) {
        let mut owners = Vec::new();
        for (reference, rule) in &self.rules {
            if reference.namespace == namespace && rule.uses_secret(name) {
                owners.push(Owner::Rule(reference.clone()));
            }
        }
        for (reference, connector) in &self.connectors {
            if reference.namespace == namespace && connector.uses_secret(name) {
                owners.push(Owner::Connector(reference.clone()));
            }
        }
        for owner in owners {
            self.sync(owner).await;
        }
    }

    async fn retry_failed(&mut self) {
        let failed: Vec<Owner> = self.failed.drain().collect();
        for owner in failed {
            self.sync(owner).await;
        }
    }

    /// Serves, reconfigures or removes the owner's route as its spec and
    /// Secrets say now.
    async fn sync(&mut self, owner: Owner) {
        let (path, wanted) = match &owner {
            Owner::Rule(reference) => {
                let Some(rule) = self.rules.get(reference).cloned() else {
                    return;
                };
                let path = RoutePath::odoo(rule.namespace().unwrap_or_default(), rule.name_any());
                (path, self.rule_config(&rule).await)
            }
            Owner::Connector(reference) => {
                let Some(connector) = self.connectors.get(reference).cloned() else {
                    return;
                };
                let path = RoutePath::supplier(
                    connector.namespace().unwrap_or_default(),
                    connector.name_any(),
                );
                (path, self.connector_config(&connector).await)
            }
        };
        let config = match wanted {
            Ok(Some(config)) => config,
            Ok(None) => {
                self.failed.remove(&owner);
                if self.ctx.gateway.remove_route(&path) {
                    tracing::info!(route = %path, "route removed");
                }
                return;
            }
            Err(err) => {
                // Keep serving the route as it was: a Secret being rotated or an
                // API hiccup must not turn a working route into 404s.
                tracing::warn!(route = %path, error = %err, "cannot set up the route; retrying");
                self.failed.insert(owner);
                return;
            }
        };
        self.failed.remove(&owner);
        let existed = self.ctx.gateway.routes().contains(&path);
        match self
            .ctx
            .gateway
            .upsert_route(path.clone(), config, self.forwarder.clone())
        {
            Ok(()) if !existed => tracing::info!(route = %path, "route served"),
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(route = %path, error = %err, "invalid route configuration");
                self.ctx.gateway.remove_route(&path);
            }
        }
    }

    /// `Ok(None)`: the rule has no route (no events, suspended, paused, or no
    /// token yet; the token's creation re-syncs it through the Secret watch).
    async fn rule_config(&self, rule: &ExceptionRule) -> Result<Option<RouteConfig>, String> {
        if !routes::rule_wants_events(rule) {
            return Ok(None);
        }
        self.ctx.api_limiter.until_ready().await;
        let token = automation::existing_hook_token(&self.ctx.client, rule)
            .await
            .map_err(|e| e.to_string())?;
        Ok(token.map(routes::rule_route_config))
    }

    async fn connector_config(
        &self,
        connector: &SupplierConnector,
    ) -> Result<Option<RouteConfig>, String> {
        let Some(webhook) = &connector.spec.inbound.webhook else {
            return Ok(None);
        };
        if connector.spec.suspend == Some(true) {
            return Ok(None);
        }
        routes::supplier_route_config(&self.ctx, connector, webhook)
            .await
            .map(Some)
    }
}
