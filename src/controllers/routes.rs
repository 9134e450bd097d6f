//! What inbound events do: the gateway routes of `ExceptionRule`s (Odoo
//! automation callbacks) and `SupplierConnector`s (supplier webhooks), and the
//! Odoo 16 `write_date` poll loops that stand in for the webhook action there.
//!
//! The reconcilers register and remove the routes (see `rule.rs` and
//! `supplier.rs`); they run on the leader only, so only the leader's gateway
//! has routes and a standby answers 503. Every reconcile registers the route
//! again with the current object and secrets: the gateway keeps its counters
//! and dedup memory across that, and a rotated secret applies at once because
//! the controllers watch the Secrets they name.
//!
//! Handlers hold a `Weak` context: the context owns the gateway, which owns
//! the handlers.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Core;
use super::events::{self, FocusedRun};
use super::rule::RuleContext;
use super::scheduler::read_secrets;
use super::supplier::SupplierContext;
use super::tasks::{ObjectTasks, Stoppable};
use crate::actions::SecretSource;
use crate::api::common::{SecretKeyRef, is_paused};
use crate::api::supplier::WebhookInbound;
use crate::api::{ExceptionRule, SupplierConnector};
use crate::automation::{self, HintedRecord};
use crate::gateway::{
    DEFAULT_HMAC_HEADER, EventHandler, Gateway, HandlerError, HandlerOutcome, InboundEvent,
    RouteAuth, RouteConfig, RouteKind, RoutePath,
};
use crate::odoo::Secret;
use crate::odoo::domain::Domain;
use crate::scan::focus::MAX_FOCUS_RECORDS;
use crate::supplier::{self, Delivery, SupplierRuntime};

/// `maxBodyBytes` of a supplier route when the spec leaves it out.
pub const DEFAULT_SUPPLIER_MAX_BODY_BYTES: usize = 1024 * 1024;
/// `rateLimitPerSecond` of a supplier route when the spec leaves it out.
pub const DEFAULT_SUPPLIER_RATE_PER_SECOND: u32 = 50;

/// Serves `/hooks/odoo/<ns>/<rule>` with the rule's token, for the rule as it is now.
pub fn upsert_rule_route(
    ctx: &Arc<RuleContext>,
    rule: &Arc<ExceptionRule>,
    token: Secret,
) -> Result<(), String> {
    let path = RoutePath::odoo(rule.namespace().unwrap_or_default(), rule.name_any());
    let config = odoo_callback_route_config(token);
    let handler = OdooHintHandler {
        ctx: Arc::downgrade(ctx),
        rule: rule.clone(),
    };
    ctx.gateway
        .upsert_route_in_term(
            path,
            config,
            Arc::new(handler),
            Some(ctx.core.work_for(rule.as_ref())),
        )
        .map_err(|e| e.to_string())
}

/// How an Odoo callback route (`/hooks/odoo/<ns>/<rule>`,
/// `/hooks/approvals/<ns>/<policy>`) checks requests: Odoo's webhook action
/// cannot sign, so the owner's unguessable token rides in the query.
pub fn odoo_callback_route_config(token: Secret) -> RouteConfig {
    RouteConfig::new(
        RouteKind::OdooHint,
        RouteAuth::QueryToken {
            tokens: vec![token],
        },
    )
}

/// Whether a rule acts on events at all: it asks for them and is neither
/// suspended nor paused. (On Odoo 16, or without a callback URL, the leader
/// serves no route even so; what reaches it there is refused upstream.)
pub fn rule_wants_events(rule: &ExceptionRule) -> bool {
    rule.spec.triggers.events.is_some()
        && rule.spec.suspend != Some(true)
        && !is_paused(rule.metadata.annotations.as_ref())
}

/// Stops serving the rule's route and its Odoo 16 poll loop.
pub fn remove_rule_route(ctx: &RuleContext, namespace: &str, rule: &str) {
    ctx.gateway.remove_route(&RoutePath::odoo(namespace, rule));
    ctx.change_polls.stop(namespace, rule);
}

/// An Odoo automation callback for one rule: queues the record it names for
/// re-evaluation (see [`events::queue_hint`]).
struct OdooHintHandler {
    ctx: Weak<RuleContext>,
    rule: Arc<ExceptionRule>,
}

impl EventHandler for OdooHintHandler {
    fn handle(&self, event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>> {
        Box::pin(async move {
            let ctx = self
                .ctx
                .upgrade()
                .ok_or_else(|| HandlerError::transient("the operator is stopping"))?;
            let watched = self
                .rule
                .spec
                .triggers
                .events
                .as_ref()
                .map(|e| e.model.as_str());
            let hint = HintedRecord::from_payload(&event.payload, watched)
                .map_err(|e| HandlerError::rejected(e.to_string()))?;
            let detail = json!({"queued": {"model": hint.model, "id": hint.id}});
            events::queue_hint(&ctx, &self.rule, hint);
            Ok(HandlerOutcome { detail })
        })
    }
}

fn run_detail(run: &FocusedRun) -> Value {
    json!({
        "products": run.focus.products.len(),
        "exceptions": run.run.as_ref().map_or(0, |r| r.outcome.exceptions.len()),
        "opened": run.run.as_ref().map_or(0, |r| r.report.opened().len()),
    })
}

/// Serves `/hooks/suppliers/<ns>/<connector>` with the auth the spec names,
/// handling events with `runtime`.
pub async fn upsert_supplier_route(
    ctx: &Arc<SupplierContext>,
    connector: &Arc<SupplierConnector>,
    webhook: &WebhookInbound,
    runtime: SupplierRuntime,
) -> Result<(), String> {
    let config = supplier_route_config(&ctx.core, connector, webhook).await?;
    let handler = SupplierHandler {
        ctx: Arc::downgrade(ctx),
        connector: connector.clone(),
        runtime,
    };
    ctx.gateway
        .upsert_route_in_term(
            RoutePath::supplier(
                connector.namespace().unwrap_or_default(),
                connector.name_any(),
            ),
            config,
            Arc::new(handler),
            Some(ctx.core.work_for(connector.as_ref())),
        )
        .map_err(|e| format!("spec.inbound.webhook: {e}"))
}

/// How the connector's route checks and limits requests, with the secrets the
/// spec names read now.
pub async fn supplier_route_config(
    core: &Core,
    connector: &SupplierConnector,
    webhook: &WebhookInbound,
) -> Result<RouteConfig, String> {
    let namespace = connector.namespace().unwrap_or_default();
    let secrets = read_secrets(core, connector, &namespace)
        .await
        .map_err(|e| format!("reading the webhook secrets: {e}"))?;
    let value = |r: &SecretKeyRef| {
        secrets
            .get(r)
            // A trailing newline from `kubectl create secret --from-file` is not part of the key.
            .map(|s| Secret::new(s.expose().trim()))
            .ok_or_else(|| format!("Secret {namespace}/{} has no key {:?}", r.name, r.key))
    };
    let auth = &webhook.auth;
    let auth = if let Some(sw) = &auth.standard_webhooks {
        RouteAuth::StandardWebhooks {
            secrets: sw.secret_refs.iter().map(value).collect::<Result<_, _>>()?,
        }
    } else if let Some(hmac) = &auth.hmac_sha256 {
        RouteAuth::HmacSha256 {
            secrets: vec![value(&hmac.secret_ref)?],
            header: hmac
                .header
                .clone()
                .unwrap_or_else(|| DEFAULT_HMAC_HEADER.to_string()),
            prefix: hmac.prefix.clone().unwrap_or_default(),
            timestamp_header: hmac.timestamp_header.clone(),
        }
    } else if let Some(bearer) = &auth.bearer {
        RouteAuth::Bearer {
            tokens: vec![value(&bearer.secret_ref)?],
        }
    } else {
        return Err("spec.inbound.webhook.auth: set exactly one scheme".into());
    };
    let mut config = RouteConfig::new(RouteKind::Supplier, auth);
    if let Some(seconds) = webhook.timestamp_tolerance_seconds {
        config.timestamp_tolerance = Duration::from_secs(u64::from(seconds));
    }
    config.max_body_bytes = webhook
        .max_body_bytes
        .map_or(DEFAULT_SUPPLIER_MAX_BODY_BYTES, |b| b as usize);
    config.rate_per_second = std::num::NonZeroU32::new(
        webhook
            .rate_limit_per_second
            .unwrap_or(DEFAULT_SUPPLIER_RATE_PER_SECOND),
    );
    config.event_id_path = connector.spec.mapping.event_id.clone();
    Ok(config)
}

/// Stops serving the connector's route.
pub fn remove_supplier_route(gateway: &Gateway, namespace: &str, connector: &str) {
    gateway.remove_route(&RoutePath::supplier(namespace, connector));
}

/// A supplier delivery: applied in Odoo before the answer (the sender's retries
/// are the delivery guarantee), then the rules the connector names are
/// re-evaluated for the products it touched.
struct SupplierHandler {
    ctx: Weak<SupplierContext>,
    connector: Arc<SupplierConnector>,
    runtime: SupplierRuntime,
}

impl EventHandler for SupplierHandler {
    fn handle(&self, event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>> {
        Box::pin(async move {
            let ctx = self
                .ctx
                .upgrade()
                .ok_or_else(|| HandlerError::transient("the operator is stopping"))?;
            let namespace = self.connector.namespace().unwrap_or_default();
            let connection = &self.connector.spec.connection_ref.name;
            let client = ctx.odoo.get(&namespace, connection).ok_or_else(|| {
                HandlerError::transient(format!(
                    "OdooConnection {namespace}/{connection} has no connected client"
                ))
            })?;
            let delivery = Delivery {
                payload: &event.payload,
                raw: &event.raw_body,
                delivery_id: event.delivery_id.as_deref(),
            };
            let result = supplier::handle_event(&client, &self.runtime, delivery).await;
            ctx.suppliers
                .record(&ObjectRef::from_obj(self.connector.as_ref()), &result);
            let handled = match result {
                Ok(handled) => handled,
                Err(err) if err.is_rejected() => {
                    return Err(HandlerError::rejected(err.to_string()));
                }
                Err(err) => return Err(HandlerError::transient(err.to_string())),
            };
            let applied = &handled.applied;
            // A duplicate changed nothing, so no rule has anything new to see.
            let reevaluated = if applied.duplicate {
                Vec::new()
            } else {
                reevaluate_named_rules(&ctx.rules, &self.connector, &applied.product_ids).await
            };
            Ok(HandlerOutcome {
                detail: json!({
                    "purchaseOrder": applied.purchase_order_name,
                    "linesUpdated": applied.lines_updated,
                    "duplicate": applied.duplicate,
                    "rules": reevaluated,
                }),
            })
        })
    }
}

/// Runs `spec.effects.reevaluateRules` for `products`. The supplier's effect
/// is already in Odoo, so a failure here is logged, not returned: the rule's
/// next scheduled scan sees the same data.
pub(super) async fn reevaluate_named_rules(
    ctx: &Arc<RuleContext>,
    connector: &SupplierConnector,
    products: &[i64],
) -> Vec<Value> {
    let rules = connector
        .spec
        .effects
        .as_ref()
        .map(|e| e.reevaluate_rules.as_slice())
        .unwrap_or_default();
    if rules.is_empty() || products.is_empty() {
        return Vec::new();
    }
    let namespace = connector.namespace().unwrap_or_default();
    let api: Api<ExceptionRule> = Api::namespaced(ctx.core.client.clone(), &namespace);
    let mut done = Vec::new();
    for reference in rules {
        ctx.core.api_limiter.until_ready().await;
        let rule = match api.get_opt(&reference.name).await {
            Ok(Some(rule)) => rule,
            Ok(None) => {
                tracing::warn!(namespace, connector = %connector.name_any(), rule = reference.name, "spec.effects.reevaluateRules names a missing ExceptionRule");
                continue;
            }
            Err(err) => {
                tracing::warn!(namespace, rule = reference.name, error = %err, "cannot read the ExceptionRule to re-evaluate");
                continue;
            }
        };
        if rule.spec.suspend == Some(true) {
            continue;
        }
        match events::reevaluate_products(ctx, &rule, products.to_vec()).await {
            Ok(run) => {
                let mut detail = run_detail(&run);
                detail["rule"] = json!(reference.name);
                done.push(detail);
            }
            Err(err) => {
                tracing::warn!(namespace, rule = reference.name, error = %err, "re-evaluating after a supplier event failed; the next scan covers it");
            }
        }
    }
    done
}

/// Odoo 16 has no webhook action: each rule with `triggers.events` polls its
/// model on `write_date` instead and re-evaluates what changed.
#[derive(Default)]
pub struct ChangePolls {
    loops: ObjectTasks<PollLoop>,
}

/// The generation a poll loop runs for, and its stop switch.
struct PollLoop {
    generation: Option<i64>,
    token: CancellationToken,
}

impl Stoppable for PollLoop {
    fn stop(&mut self) {
        self.token.cancel();
    }
}

/// How far back each poll looks past the newest `write_date` seen: Odoo keeps
/// seconds, and a transaction can commit after a later one.
const POLL_OVERLAP: SignedDuration = SignedDuration::from_secs(2);

impl ChangePolls {
    /// Makes sure `rule`'s poll loop runs for its current generation.
    pub fn ensure(&self, ctx: &Arc<RuleContext>, rule: &Arc<ExceptionRule>, every: Duration) {
        let generation = rule.metadata.generation;
        self.loops.ensure(
            &rule.namespace().unwrap_or_default(),
            &rule.name_any(),
            |running| running.generation == generation && !running.token.is_cancelled(),
            || {
                let token = ctx.core.work_for(rule.as_ref());
                tokio::spawn(change_poll_loop(
                    Arc::downgrade(ctx),
                    rule.clone(),
                    every,
                    token.clone(),
                ));
                PollLoop { generation, token }
            },
        );
    }

    pub fn stop(&self, namespace: &str, rule: &str) {
        self.loops.forget(namespace, rule);
    }

    /// Stops every loop; a rule that still polls when this replica leads again
    /// gets a new one from [`ChangePolls::ensure`].
    pub fn stop_all(&self) {
        self.loops.stop_all();
    }
}

async fn change_poll_loop(
    ctx: Weak<RuleContext>,
    rule: Arc<ExceptionRule>,
    every: Duration,
    token: CancellationToken,
) {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let Some(events) = rule.spec.triggers.events.clone() else {
        return;
    };
    let domain = match events.filter_domain.as_deref().map(Domain::parse) {
        None => Domain::default(),
        Some(Ok(domain)) => domain,
        Some(Err(err)) => {
            tracing::warn!(namespace, rule = name, error = %err, "spec.triggers.events.filterDomain does not parse; not polling");
            return;
        }
    };
    // Changes from before the loop started are the scheduled scan's.
    let mut since = Timestamp::now();
    let mut seen_at_since: HashSet<i64> = HashSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = token.cancelled() => return,
        }
        let Some(ctx) = ctx.upgrade() else { return };
        let Some(client) = ctx.odoo.get(&namespace, &rule.spec.connection_ref.name) else {
            continue;
        };
        let changes = tokio::select! {
            changes = automation::poll_changes(&client, &events.model, &domain, Some(since - POLL_OVERLAP)) => changes,
            _ = token.cancelled() => return,
        };
        let changes = match changes {
            Ok(changes) => changes,
            Err(err) => {
                tracing::warn!(namespace, rule = name, error = %err, "polling for changes failed; retrying next interval");
                continue;
            }
        };
        let newest = changes.iter().map(|&(_, at)| at).max();
        let ids: Vec<i64> = changes
            .iter()
            .filter(|&&(id, at)| at > since || !seen_at_since.contains(&id))
            .map(|&(id, _)| id)
            .collect();
        if let Some(newest) = newest
            && newest >= since
        {
            if newest > since {
                seen_at_since.clear();
            }
            since = newest;
            seen_at_since.extend(
                changes
                    .iter()
                    .filter(|&&(_, at)| at == newest)
                    .map(|&(id, _)| id),
            );
        }
        for chunk in ids.chunks(MAX_FOCUS_RECORDS) {
            if let Err(err) = events::reevaluate(&ctx, &rule, &events.model, chunk).await {
                tracing::warn!(namespace, rule = name, error = %err, "re-evaluating polled changes failed; the next scan covers them");
            }
        }
    }
}
