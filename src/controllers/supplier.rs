//! SupplierConnector reconciler, and the poll loops it runs.
//!
//! Each reconcile resolves the supplier (`status.partnerId`), refreshes the
//! measured lead time (hourly, written only when it changes), publishes the
//! webhook route path, and makes sure the connector's poll loop runs with the
//! current spec. Poll loops live in [`Suppliers`]: they keep the cursor and
//! the event counts in memory and ask the controller for a reconcile after
//! each page that changed something, so the reconciler stays the one status
//! writer and the status is written once per page, not per event. Controllers
//! run on the leader only, so only the leader polls; losing the lease stops
//! every loop.
//!
//! After a restart the cursor and the counts come back from the status. A
//! page applied but not yet recorded there (the operator died in between) is
//! fetched again; its events are found in Odoo by fingerprint and counted as
//! duplicates, so nothing is applied twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connection::OdooClients;
use super::driver::{
    DEFAULT_RESYNC, DEPENDENCY_RECHECK, KindContext, ReconcileRequests, Reconciler, settle,
};
use super::routes;
use super::rule::RuleContext;
use super::tasks::{ObjectTasks, Stoppable};
use super::validate::{FieldError, check_json_path};
use super::{Core, Error};
use crate::api::SupplierConnector;
use crate::api::common::{
    ConditionSet, ConditionStatus, SecretKeyRef, condition_types as ct, reasons,
};
use crate::api::supplier::{EventCounts, LeadTimeStats, SupplierConnectorStatus, SupplierSelector};
use crate::gateway::Gateway;
use crate::odoo::{OdooClient, OdooError, SearchOptions, Secret};
use crate::supplier::poll::{self, PollAuth, PollConfig};
use crate::supplier::{EventError, Handled, SupplierRuntime, leadtime};

/// Reasons specific to this kind.
pub mod supplier_reasons {
    /// `spec.supplier` names no `res.partner`.
    pub const SUPPLIER_NOT_FOUND: &str = "SupplierNotFound";
    /// `spec.supplier` names several partners.
    pub const SUPPLIER_AMBIGUOUS: &str = "SupplierAmbiguous";
    /// Odoo could not be asked (no connected client, transient failure).
    pub const ODOO_UNAVAILABLE: &str = "OdooUnavailable";
    /// Inbound paths are active.
    pub const ACTIVE: &str = "Active";
    /// Polling started; the first poll has not finished.
    pub const POLL_PENDING: &str = "PollPending";
    /// The last poll failed; it is retried with backoff.
    pub const POLL_FAILED: &str = "PollFailed";
}
use supplier_reasons as sr;

/// How often lead-time statistics and the partner are looked up again.
pub const LEAD_TIME_REFRESH: Duration = Duration::from_secs(3600);
/// Default `effects.leadTimeWindowDays`.
pub const DEFAULT_WINDOW_DAYS: u32 = 180;

/// Gateway path of a connector's webhook route.
pub fn route_path(namespace: &str, name: &str) -> String {
    format!("/hooks/suppliers/{namespace}/{name}")
}

struct LeadCache {
    partner: i64,
    window: u32,
    at: Instant,
    stats: Option<LeadTimeStats>,
}

struct PollTask {
    /// What the running loop was started with; a change restarts it.
    signature: String,
    token: CancellationToken,
}

#[derive(Default)]
struct State {
    /// Counts, cursor and last event time were read from the status.
    loaded: bool,
    counts: EventCounts,
    cursor: Option<String>,
    last_event_time: Option<String>,
    partner: Option<(SupplierSelector, i64, Instant)>,
    lead: Option<LeadCache>,
    poll: Option<PollTask>,
    /// Outcome of the last finished poll: `None` before the first.
    last_poll: Option<Result<(), String>>,
}

impl Stoppable for State {
    /// Stops the poll loop; counts, cursor and caches stay.
    fn stop(&mut self) {
        if let Some(task) = self.poll.take() {
            task.token.cancel();
        }
    }
}

/// Poll loops, event counts and caches of every SupplierConnector.
#[derive(Default)]
pub struct Suppliers {
    connectors: ObjectTasks<State>,
    /// A poll page or a webhook delivery asks for a reconcile, which writes the counts.
    requests: ReconcileRequests<SupplierConnector>,
}

impl Suppliers {
    /// Called when the controllers start: the stream of connectors to
    /// reconcile because their poll loop (or the gateway) changed something.
    pub fn start(
        &self,
        scope: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<SupplierConnector>> {
        self.requests.start(scope)
    }

    /// Called when the controllers stop (shutdown, lost lease): stops every
    /// poll loop; counts and cursor are read from the status again when this
    /// replica leads next, as another leader may have moved them.
    pub fn stop_all(&self) {
        self.requests.stop_all();
        self.connectors.for_each(|state| {
            state.stop();
            state.loaded = false;
        });
    }

    fn stop(&self, namespace: &str, name: &str) {
        self.connectors.stop(namespace, name);
    }

    fn forget(&self, namespace: &str, name: &str) {
        self.connectors.forget(namespace, name);
    }

    /// Counts one handled event (webhook or poll) and asks for a status update.
    pub fn record(
        &self,
        connector: &ObjectRef<SupplierConnector>,
        result: &Result<Handled, EventError>,
    ) {
        let namespace = connector.namespace.clone().unwrap_or_default();
        self.connectors
            .with_entry(&namespace, &connector.name, |state| {
                count(&mut state.counts, result);
                if matches!(result, Ok(h) if !h.applied.duplicate) {
                    state.last_event_time = Some(Timestamp::now().to_string());
                }
            });
        self.notify(connector);
    }

    fn notify(&self, connector: &ObjectRef<SupplierConnector>) {
        self.requests.request(connector);
    }

    /// Reads counts and cursor from the status once per leadership.
    fn load(&self, namespace: &str, name: &str, status: &SupplierConnectorStatus) {
        self.connectors.with_entry(namespace, name, |state| {
            if !state.loaded {
                state.loaded = true;
                state.counts = status.events.clone().unwrap_or_default();
                state.cursor = status.poll_cursor.clone();
                state.last_event_time = status.last_event_time.clone();
            }
        });
    }
}

fn count(counts: &mut EventCounts, result: &Result<Handled, EventError>) {
    match result {
        Ok(h) if h.applied.duplicate => {
            counts.received += 1;
            counts.duplicate += 1;
        }
        Ok(_) => {
            counts.received += 1;
            counts.accepted += 1;
        }
        Err(e) if e.is_rejected() => {
            counts.received += 1;
            counts.rejected += 1;
        }
        // Not settled: the sender (or the poller) tries again.
        Err(_) => {}
    }
}

/// What the SupplierConnector reconciler and its poll loops use.
pub struct SupplierContext {
    pub core: Arc<Core>,
    /// Odoo clients, one per connection (the connection controller's).
    pub odoo: Arc<OdooClients>,
    /// Serves the connectors' webhook routes.
    pub gateway: Gateway,
    /// Poll loops, event counts and caches of every connector (active on the leader only).
    pub suppliers: Suppliers,
    /// A supplier event re-evaluates the rules a connector names.
    pub rules: Arc<RuleContext>,
}

impl KindContext for SupplierContext {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Reconciler for SupplierConnector {
    type Context = SupplierContext;

    fn validate(&self) -> Vec<FieldError> {
        let mapping = &self.spec.mapping;
        let mut errors = Vec::new();
        for (field, path) in [
            ("spec.mapping.eventType", Some(mapping.event_type.as_str())),
            ("spec.mapping.eventId", mapping.event_id.as_deref()),
            (
                "spec.mapping.purchaseOrderRef",
                Some(mapping.purchase_order_ref.as_str()),
            ),
            ("spec.mapping.lines", mapping.lines.as_deref()),
            ("spec.mapping.productCode", mapping.product_code.as_deref()),
            ("spec.mapping.quantity", mapping.quantity.as_deref()),
            (
                "spec.mapping.promisedDate",
                mapping.promised_date.as_deref(),
            ),
        ] {
            check_json_path(&mut errors, field, path);
        }
        if let Some(hmac) = self
            .spec
            .inbound
            .webhook
            .as_ref()
            .and_then(|w| w.auth.hmac_sha256.as_ref())
        {
            for (field, name) in [
                ("spec.inbound.webhook.auth.hmacSha256.header", &hmac.header),
                (
                    "spec.inbound.webhook.auth.hmacSha256.timestampHeader",
                    &hmac.timestamp_header,
                ),
            ] {
                if let Some(name) = name
                    && axum::http::HeaderName::try_from(name.as_str()).is_err()
                {
                    errors.push(FieldError::new(
                        field,
                        format!("{name:?} is not an HTTP header name"),
                    ));
                }
            }
        }
        if let Some(poll) = &self.spec.inbound.poll {
            check_json_path(
                &mut errors,
                "spec.inbound.poll.itemsPath",
                poll.items_path.as_deref(),
            );
            check_json_path(
                &mut errors,
                "spec.inbound.poll.nextCursorPath",
                poll.next_cursor_path.as_deref(),
            );
            match reqwest::Url::parse(&poll.url) {
                Err(err) => errors.push(FieldError::new(
                    "spec.inbound.poll.url",
                    format!("is not a URL: {err}"),
                )),
                // A literal address can be judged now; names are checked
                // each time they resolve.
                Ok(url) => {
                    if let Err(denied) = crate::outbound::policy().check_url(&url) {
                        errors.push(FieldError::new("spec.inbound.poll.url", denied.to_string()));
                    }
                }
            }
            if let Some(h) = &poll.header_auth
                && let Err(err) = poll::header_name(&h.header)
            {
                errors.push(FieldError::new(
                    "spec.inbound.poll.headerAuth.header",
                    err.to_string(),
                ));
            }
        }
        if mapping.lines.is_none() && (mapping.product_code.is_some() || mapping.quantity.is_some())
        {
            errors.push(FieldError::new(
                "spec.mapping.lines",
                "productCode and quantity are read per line; set lines too",
            ));
        }
        if mapping.lines.is_some() && mapping.product_code.is_none() {
            errors.push(FieldError::new(
                "spec.mapping.productCode",
                "required when lines is set: lines are matched by product code",
            ));
        }
        errors
    }

    async fn evaluate(
        obj: Arc<Self>,
        ctx: Arc<SupplierContext>,
        conditions: &mut ConditionSet,
        status: &mut SupplierConnectorStatus,
    ) -> Result<Duration, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let suppliers = &ctx.suppliers;
        suppliers.load(&namespace, &name, status);
        status.route_path = obj
            .spec
            .inbound
            .webhook
            .as_ref()
            .map(|_| route_path(&namespace, &name));

        let connection = &obj.spec.connection_ref.name;
        let Some(client) = ctx.odoo.get(&namespace, connection) else {
            unavailable(
                &ctx,
                &obj,
                conditions,
                status,
                format!("OdooConnection {namespace}/{connection} has no connected client yet"),
            );
            // The client comes with the connection's first probe: the route
            // should be back within seconds of a start or failover.
            return Ok(DEPENDENCY_RECHECK);
        };

        let partner = match partner(&ctx, &client, &namespace, &name, &obj.spec.supplier).await {
            Ok(Ok(id)) => id,
            Ok(Err((reason, message))) => {
                suppliers.stop(&namespace, &name);
                routes::remove_supplier_route(&ctx.gateway, &namespace, &name);
                status.partner_id = None;
                settle(conditions, ConditionStatus::False, reason, message.clone());
                conditions.set(ct::SYNCED, ConditionStatus::False, reason, message);
                copy_state(&ctx, &namespace, &name, status);
                return Ok(DEFAULT_RESYNC);
            }
            Err(err) => {
                unavailable(
                    &ctx,
                    &obj,
                    conditions,
                    status,
                    format!("resolving spec.supplier: {err}"),
                );
                return Ok(Duration::from_secs(30));
            }
        };
        status.partner_id = Some(partner);

        let window = obj
            .spec
            .effects
            .as_ref()
            .and_then(|e| e.lead_time_window_days)
            .unwrap_or(DEFAULT_WINDOW_DAYS);
        status.lead_time = lead_time(&ctx, &client, &namespace, &name, partner, window).await;

        let mut parts = Vec::new();
        if let Some(path) = &status.route_path {
            parts.push(format!("webhook route {path}"));
        }
        let runtime = match SupplierRuntime::new(&obj, partner) {
            Ok(runtime) => runtime,
            Err(err) => {
                routes::remove_supplier_route(&ctx.gateway, &namespace, &name);
                suppliers.stop(&namespace, &name);
                return Ok(invalid(
                    &ctx,
                    &namespace,
                    &name,
                    conditions,
                    status,
                    err.to_string(),
                ));
            }
        };
        match &obj.spec.inbound.webhook {
            Some(webhook) => {
                if let Err(err) =
                    routes::upsert_supplier_route(&ctx, &obj, webhook, runtime.clone()).await
                {
                    routes::remove_supplier_route(&ctx.gateway, &namespace, &name);
                    suppliers.stop(&namespace, &name);
                    return Ok(invalid(&ctx, &namespace, &name, conditions, status, err));
                }
            }
            None => routes::remove_supplier_route(&ctx.gateway, &namespace, &name),
        }
        let mut synced = (ConditionStatus::True, sr::ACTIVE, String::new());
        if let Some(poll_spec) = &obj.spec.inbound.poll {
            ensure_poll(&ctx, &obj, runtime, partner);
            let interval = poll_spec
                .interval_seconds
                .unwrap_or(poll::DEFAULT_INTERVAL_SECONDS);
            parts.push(format!("polling {} every {interval}s", poll_spec.url));
            let last = suppliers
                .connectors
                .with(&namespace, &name, |s| s.and_then(|s| s.last_poll.clone()));
            synced = match last {
                None => (
                    ConditionStatus::Unknown,
                    sr::POLL_PENDING,
                    "waiting for the first poll".into(),
                ),
                Some(Ok(())) => synced,
                Some(Err(err)) => (
                    ConditionStatus::False,
                    sr::POLL_FAILED,
                    format!("the last poll failed, retrying with backoff: {err}"),
                ),
            };
        } else {
            suppliers.stop(&namespace, &name);
        }
        let active = parts.join("; ");
        let message = if synced.2.is_empty() {
            active
        } else {
            format!("{}; {active}", synced.2)
        };
        conditions.set(ct::SYNCED, synced.0, synced.1, message);
        settle(
            conditions,
            ConditionStatus::True,
            reasons::RECONCILED,
            format!("supplier resolved to res.partner {partner}"),
        );
        copy_state(&ctx, &namespace, &name, status);
        Ok(DEFAULT_RESYNC)
    }

    fn inactive(
        obj: &Self,
        ctx: &SupplierContext,
        conditions: &mut ConditionSet,
        status: &mut SupplierConnectorStatus,
        reason: &str,
    ) {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        ctx.suppliers.stop(&namespace, &name);
        routes::remove_supplier_route(&ctx.gateway, &namespace, &name);
        ctx.suppliers.load(&namespace, &name, status);
        copy_state(ctx, &namespace, &name, status);
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reason,
            "polling is stopped while the connector is not active",
        );
    }

    fn forget(obj: &Self, ctx: &SupplierContext) {
        let namespace = obj.namespace().unwrap_or_default();
        ctx.suppliers.forget(&namespace, &obj.name_any());
        routes::remove_supplier_route(&ctx.gateway, &namespace, &obj.name_any());
    }
}

/// The spec cannot be served as it is (mapping or webhook auth): nothing runs.
fn invalid(
    ctx: &SupplierContext,
    namespace: &str,
    name: &str,
    conditions: &mut ConditionSet,
    status: &mut SupplierConnectorStatus,
    message: String,
) -> Duration {
    settle(
        conditions,
        ConditionStatus::False,
        reasons::INVALID_SPEC,
        message.clone(),
    );
    conditions.set(
        ct::SYNCED,
        ConditionStatus::False,
        reasons::INVALID_SPEC,
        message,
    );
    copy_state(ctx, namespace, name, status);
    DEFAULT_RESYNC
}

/// Odoo cannot be asked now: polling stops until it can.
fn unavailable(
    ctx: &SupplierContext,
    obj: &SupplierConnector,
    conditions: &mut ConditionSet,
    status: &mut SupplierConnectorStatus,
    message: String,
) {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    ctx.suppliers.stop(&namespace, &name);
    settle(
        conditions,
        ConditionStatus::False,
        sr::ODOO_UNAVAILABLE,
        message.clone(),
    );
    conditions.set(
        ct::SYNCED,
        ConditionStatus::False,
        sr::ODOO_UNAVAILABLE,
        message,
    );
    copy_state(ctx, &namespace, &name, status);
}

/// The poll loop's and gateway's numbers into the status.
fn copy_state(
    ctx: &SupplierContext,
    namespace: &str,
    name: &str,
    status: &mut SupplierConnectorStatus,
) {
    ctx.suppliers.connectors.with(namespace, name, |state| {
        if let Some(state) = state {
            status.events = Some(state.counts.clone());
            status.poll_cursor = state.cursor.clone();
            status.last_event_time = state.last_event_time.clone();
        }
    });
}

/// The supplier's partner id (cached for [`LEAD_TIME_REFRESH`]), or why it
/// does not resolve.
async fn partner(
    ctx: &SupplierContext,
    client: &OdooClient,
    namespace: &str,
    name: &str,
    selector: &SupplierSelector,
) -> Result<Result<i64, (&'static str, String)>, OdooError> {
    let cached = ctx
        .suppliers
        .connectors
        .with(namespace, name, |s| s.and_then(|s| s.partner.clone()))
        .filter(|(sel, _, at)| sel == selector && at.elapsed() < LEAD_TIME_REFRESH);
    if let Some((_, id, _)) = cached {
        return Ok(Ok(id));
    }
    let (domain, shown) = match selector {
        SupplierSelector {
            partner_id: Some(id),
            ..
        } => (json!([["id", "=", id]]), format!("partnerId {id}")),
        SupplierSelector {
            reference: Some(r), ..
        } => (json!([["ref", "=", r]]), format!("ref {r:?}")),
        SupplierSelector { name: Some(n), .. } => {
            (json!([["name", "=", n]]), format!("name {n:?}"))
        }
        // The schema requires exactly one; an object that slipped past it still gets an answer.
        _ => {
            return Ok(Err((
                reasons::INVALID_SPEC,
                "spec.supplier: set exactly one of partnerId, ref or name".into(),
            )));
        }
    };
    let ids = client
        .search("res.partner", &domain, &SearchOptions::limit(2))
        .await?;
    match ids.as_slice() {
        [id] => {
            ctx.suppliers.connectors.with_entry(namespace, name, |s| {
                s.partner = Some((selector.clone(), *id, Instant::now()));
            });
            Ok(Ok(*id))
        }
        [] => Ok(Err((
            sr::SUPPLIER_NOT_FOUND,
            format!("spec.supplier: no res.partner with {shown}"),
        ))),
        _ => Ok(Err((
            sr::SUPPLIER_AMBIGUOUS,
            format!("spec.supplier: several res.partner records have {shown}; use partnerId"),
        ))),
    }
}

/// Lead-time statistics, measured at most every [`LEAD_TIME_REFRESH`]; a
/// failed measurement keeps the last value.
async fn lead_time(
    ctx: &SupplierContext,
    client: &OdooClient,
    namespace: &str,
    name: &str,
    partner: i64,
    window: u32,
) -> Option<LeadTimeStats> {
    let fresh = |c: &LeadCache| {
        c.partner == partner && c.window == window && c.at.elapsed() < LEAD_TIME_REFRESH
    };
    let (fresh_stats, previous) =
        ctx.suppliers
            .connectors
            .with(namespace, name, |s| match s.and_then(|s| s.lead.as_ref()) {
                Some(c) if fresh(c) => (Some(c.stats.clone()), None),
                cache => (None, cache.and_then(|c| c.stats.clone())),
            });
    if let Some(stats) = fresh_stats {
        return stats;
    }
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    match leadtime::measure(client, partner, window, today).await {
        Ok(stats) => {
            ctx.suppliers.connectors.with_entry(namespace, name, |s| {
                s.lead = Some(LeadCache {
                    partner,
                    window,
                    at: Instant::now(),
                    stats: stats.clone(),
                });
            });
            stats
        }
        Err(err) => {
            tracing::warn!(namespace, connector = name, error = %err, "measuring lead time failed; keeping the last value");
            previous
        }
    }
}

/// Starts the connector's poll loop, or restarts it when what it runs with changed.
fn ensure_poll(
    ctx: &Arc<SupplierContext>,
    obj: &Arc<SupplierConnector>,
    runtime: SupplierRuntime,
    partner: i64,
) {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let signature = json!({
        "poll": obj.spec.inbound.poll,
        "mapping": obj.spec.mapping,
        "effects": obj.spec.effects,
        "connection": obj.spec.connection_ref.name,
        "partner": partner,
    })
    .to_string();
    ctx.suppliers
        .connectors
        .with_entry(&namespace, &name, |state| {
            if let Some(task) = &state.poll
                && task.signature == signature
                && !task.token.is_cancelled()
            {
                return;
            }
            state.stop();
            // A new spec's loop reports its own first poll, not the old loop's.
            state.last_poll = None;
            let token = ctx.core.work_for(obj.as_ref());
            state.poll = Some(PollTask {
                signature,
                token: token.clone(),
            });
            tokio::spawn(poll_loop(ctx.clone(), obj.clone(), runtime, token));
        });
}

async fn poll_loop(
    ctx: Arc<SupplierContext>,
    obj: Arc<SupplierConnector>,
    runtime: SupplierRuntime,
    token: CancellationToken,
) {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let object_ref = ObjectRef::from_obj(&*obj);
    let Some(spec) = obj.spec.inbound.poll.clone() else {
        return;
    };
    let http = match poll::PollClient::new(crate::outbound::policy()) {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the HTTP client for polling");
            return;
        }
    };
    let mut failures = 0u32;
    let mut pages_in_round = 0usize;
    loop {
        let result = poll_round(
            &ctx, &obj, &spec, &http, &runtime, &namespace, &name, &token,
        )
        .await;
        let Some((changed, more, outcome)) = result else {
            return; // cancelled
        };
        let interval = Duration::from_secs(u64::from(
            spec.interval_seconds
                .unwrap_or(poll::DEFAULT_INTERVAL_SECONDS),
        ));
        let failed = outcome.is_err();
        let outcome_changed = ctx
            .suppliers
            .connectors
            .with_entry(&namespace, &name, |state| {
                let changed = state.last_poll.as_ref() != Some(&outcome);
                state.last_poll = Some(outcome.clone());
                changed
            });
        if let Err(err) = &outcome {
            tracing::warn!(namespace, connector = name, error = %err, "supplier poll failed");
        }
        if changed || outcome_changed {
            ctx.suppliers.notify(&object_ref);
        }
        let wait = if failed {
            failures += 1;
            pages_in_round = 0;
            poll::backoff(failures, interval, &mut rand::rng())
        } else {
            failures = 0;
            pages_in_round += 1;
            // A full page with a new cursor: more may be waiting.
            if more && pages_in_round < poll::MAX_PAGES_PER_ROUND {
                Duration::ZERO
            } else {
                pages_in_round = 0;
                interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = token.cancelled() => return,
        }
    }
}

/// One page. `None` when cancelled; else whether counts or cursor changed,
/// whether to fetch the next page at once, and the outcome.
#[allow(clippy::too_many_arguments)]
async fn poll_round(
    ctx: &Arc<SupplierContext>,
    obj: &SupplierConnector,
    spec: &crate::api::supplier::PollInbound,
    http: &poll::PollClient,
    runtime: &SupplierRuntime,
    namespace: &str,
    name: &str,
    token: &CancellationToken,
) -> Option<(bool, bool, Result<(), String>)> {
    let Some(client) = ctx.odoo.get(namespace, &obj.spec.connection_ref.name) else {
        return Some((
            false,
            false,
            Err("the OdooConnection has no connected client".into()),
        ));
    };
    let auth = tokio::select! {
        auth = poll_auth(&ctx.core, namespace, spec) => auth,
        _ = token.cancelled() => return None,
    };
    let auth = match auth {
        Ok(auth) => auth,
        Err(err) => return Some((false, false, Err(err))),
    };
    let config = match PollConfig::new(spec, auth) {
        Ok(config) => config,
        Err(err) => return Some((false, false, Err(err.to_string()))),
    };
    let cursor = ctx
        .suppliers
        .connectors
        .with(namespace, name, |s| s.and_then(|s| s.cursor.clone()));
    let page = tokio::select! {
        page = poll::poll_once(http, &config, cursor.as_deref(), &client, runtime) => page,
        // Stopping mid-page is safe: what was applied is found by fingerprint.
        _ = token.cancelled() => return None,
    };
    // The page's effects are in Odoo; the rules see them before the next page.
    routes::reevaluate_named_rules(&ctx.rules, obj, &page.counts.product_ids).await;
    ctx.suppliers
        .connectors
        .with_entry(namespace, name, |state| {
            let c = &page.counts;
            let settled = c.accepted + c.duplicate + c.rejected;
            state.counts.received += settled;
            state.counts.accepted += c.accepted;
            state.counts.duplicate += c.duplicate;
            state.counts.rejected += c.rejected;
            if c.accepted > 0 {
                state.last_event_time = Some(Timestamp::now().to_string());
            }
            let mut changed = settled > 0;
            let mut more = false;
            let outcome = match page.next {
                Ok(next) => {
                    if let Some(next) = next
                        && state.cursor.as_deref() != Some(next.as_str())
                    {
                        state.cursor = Some(next);
                        changed = true;
                        more = c.items > 0;
                    }
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            };
            Some((changed, more, outcome))
        })
}

/// The poll credentials from their Secret, read for each poll so a rotated
/// token is used at once; never logged.
async fn poll_auth(
    core: &Core,
    namespace: &str,
    spec: &crate::api::supplier::PollInbound,
) -> Result<Option<PollAuth>, String> {
    async fn value(core: &Core, namespace: &str, r: &SecretKeyRef) -> Result<Secret, String> {
        let api: Api<KubeSecret> = Api::namespaced(core.client.clone(), namespace);
        core.api_limiter.until_ready().await;
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("reading Secret {namespace}/{}: {e}", r.name))?
            .ok_or_else(|| format!("Secret {namespace}/{} not found", r.name))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .ok_or_else(|| format!("Secret {namespace}/{} has no key {:?}", r.name, r.key))?;
        let text = String::from_utf8(bytes.0.clone())
            .map_err(|_| format!("Secret {namespace}/{} key {:?} is not UTF-8", r.name, r.key))?;
        Ok(Secret::new(text.trim().to_string()))
    }
    if let Some(r) = &spec.bearer_token_ref {
        return Ok(Some(PollAuth::bearer(value(core, namespace, r).await?)));
    }
    if let Some(h) = &spec.header_auth {
        let header = poll::header_name(&h.header).map_err(|e| e.to_string())?;
        return Ok(Some(PollAuth {
            header,
            value: value(core, namespace, &h.secret_ref).await?,
        }));
    }
    Ok(None)
}
