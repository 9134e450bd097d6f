//! The webhook gateway: one axum router serving the inbound webhook routes of
//! `ExceptionRule`s (Odoo automation callbacks) and `SupplierConnector`s.
//!
//! Routes live in a table that controllers change at run time
//! ([`Gateway::upsert_route`], [`Gateway::remove_route`]); the router looks the
//! route up on every request, so nothing restarts when resources come and go.
//!
//! Each request passes these checks, in order, and the first that fails answers:
//!
//! | check | answer |
//! |---|---|
//! | route exists | 404 |
//! | body ≤ `max_body_bytes` (read as a stream, never buffered past the limit) | 413 |
//! | `Content-Type: application/json` | 415 |
//! | route's rate limit | 429 + `Retry-After` |
//! | authentication ([`RouteAuth`]) | 401, the same body whatever failed |
//! | body is JSON | 400 with line and column |
//! | event not seen before (dedup) | 200 `{"duplicate":true}`, or 409 + `Retry-After` while the first attempt runs |
//!
//! Then delivery depends on [`RouteKind`]: supplier events are handled before
//! the answer (2xx only once the handler succeeded), Odoo hints are answered
//! 202 at once and handled by a worker.

mod auth;
mod dedup;
pub mod forward;
mod metrics;

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{Value, json};
use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use auth::{
    AuthConfigError, DEFAULT_HMAC_HEADER, DEFAULT_TOLERANCE, MAX_ID_LEN, MIN_KEY_BYTES,
    MIN_TOKEN_BYTES, RouteAuth, SecretUse, SecretValueError, check_secret,
};
pub use metrics::{GatewayMetrics, RejectLabels, RejectReason, RouteCounts, RouteLabels};

use auth::Verifier;
use dedup::{Claim, Dedup};
use metrics::{RouteMeter, RouteStats};

/// Default largest accepted body (Standard Webhooks advises payloads < 20 kB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Which family of URLs a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// `/hooks/odoo/{namespace}/{rule}`: Odoo automation callbacks of an ExceptionRule.
    Odoo,
    /// `/hooks/suppliers/{namespace}/{connector}`: a SupplierConnector's inbound webhook.
    Suppliers,
    /// `/hooks/approvals/{namespace}/{policy}`: Odoo's callback when an
    /// ApprovalPolicy's request changes state.
    Approvals,
}

impl PathKind {
    pub fn segment(self) -> &'static str {
        match self {
            PathKind::Odoo => "odoo",
            PathKind::Suppliers => "suppliers",
            PathKind::Approvals => "approvals",
        }
    }
}

/// The address of one route: its kind and the owning resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePath {
    pub kind: PathKind,
    pub namespace: String,
    pub name: String,
}

impl RoutePath {
    pub fn odoo(namespace: impl Into<String>, rule: impl Into<String>) -> RoutePath {
        RoutePath {
            kind: PathKind::Odoo,
            namespace: namespace.into(),
            name: rule.into(),
        }
    }

    pub fn supplier(namespace: impl Into<String>, connector: impl Into<String>) -> RoutePath {
        RoutePath {
            kind: PathKind::Suppliers,
            namespace: namespace.into(),
            name: connector.into(),
        }
    }

    pub fn approval(namespace: impl Into<String>, policy: impl Into<String>) -> RoutePath {
        RoutePath {
            kind: PathKind::Approvals,
            namespace: namespace.into(),
            name: policy.into(),
        }
    }

    /// The URL path, e.g. `/hooks/suppliers/ns/acme`. Kubernetes names and
    /// namespaces need no escaping.
    pub fn url_path(&self) -> String {
        format!(
            "/hooks/{}/{}/{}",
            self.kind.segment(),
            self.namespace,
            self.name
        )
    }
}

impl fmt::Display for RoutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url_path())
    }
}

/// How a route delivers its events to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// The sender retries (Standard Webhooks senders for days): the answer is
    /// 2xx only after the handler succeeded, so an accepted event is never lost.
    Supplier,
    /// Odoo's webhook action calls with a 1 s timeout and never retries
    /// (17 and 18 from inside the transaction, before its commit): answer 202
    /// at once and handle the event from a bounded queue, where the handler
    /// may wait for the commit without holding Odoo up. A full queue drops
    /// the hint; the scheduled scan is the safety net.
    OdooHint,
}

/// One route's configuration. `Debug` never shows secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub auth: RouteAuth,
    /// Standard Webhooks: how far `webhook-timestamp` may be in the past or the future.
    pub timestamp_tolerance: Duration,
    pub max_body_bytes: usize,
    /// Sustained requests per second (also the burst); `None` for no limit.
    pub rate_per_second: Option<NonZeroU32>,
    pub kind: RouteKind,
    /// RFC 9535 JSONPath selecting the event id in the payload (e.g.
    /// `$.event.id`). Without it, or when it selects nothing, the id is the
    /// `webhook-id` header, else the SHA-256 of the body.
    pub event_id_path: Option<String>,
}

impl RouteConfig {
    /// A configuration with the defaults: 300 s tolerance, 256 KiB bodies, no
    /// rate limit, no event id path.
    pub fn new(kind: RouteKind, auth: RouteAuth) -> RouteConfig {
        RouteConfig {
            auth,
            timestamp_tolerance: DEFAULT_TOLERANCE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_per_second: None,
            kind,
            event_id_path: None,
        }
    }
}

/// Why a route configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteConfigError {
    #[error("auth: {0}")]
    Auth(#[from] AuthConfigError),
    #[error("eventIdPath is not an RFC 9535 JSONPath: {0}")]
    EventIdPath(String),
    #[error("maxBodyBytes must be at least 1")]
    ZeroBodyLimit,
}

/// One verified, parsed event handed to the route's handler.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub route: RoutePath,
    /// The dedup key (see [`RouteConfig::event_id_path`]).
    pub event_id: String,
    /// The sender's delivery id (`webhook-id`), when it sent one.
    pub delivery_id: Option<String>,
    pub payload: Value,
    pub raw_body: Bytes,
    pub received_at: jiff::Timestamp,
    /// The request as the sender made it, so that an edge gateway can pass it
    /// on for the next hop to authenticate again (see [`forward`]).
    pub origin: OriginalRequest,
}

/// The parts of a request, besides its body, that authenticate it.
#[derive(Debug, Clone, Default)]
pub struct OriginalRequest {
    /// The query string (an Odoo callback's `token=`).
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// What a handler reports on success; `detail` is echoed to supplier senders
/// as `"detail"` in the 200 body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandlerOutcome {
    pub detail: Value,
}

/// Why a handler did not take an event. Neither variant is remembered as
/// done: the sender may retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The payload does not map (unknown PO, missing field): 422 with the
    /// reason, which the sender sees, so it must not contain secrets.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Something on our side is down (e.g. Odoo): 503 + `Retry-After`. The
    /// reason is logged, not sent.
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        /// Overrides [`GatewayOptions::transient_retry_after`].
        retry_after: Option<Duration>,
    },
}

impl HandlerError {
    pub fn rejected(reason: impl Into<String>) -> HandlerError {
        HandlerError::Rejected(reason.into())
    }

    pub fn transient(reason: impl Into<String>) -> HandlerError {
        HandlerError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// What a route does with its events.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(&self, event: InboundEvent) -> BoxFuture<'_, Result<HandlerOutcome, HandlerError>>;
}

/// Gateway-wide settings.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// How long a handled event id is remembered (per route).
    pub dedup_ttl: Duration,
    /// Most handled ids remembered per route; the oldest go first.
    pub dedup_capacity: usize,
    /// Odoo hints waiting for a worker; beyond it hints are dropped.
    pub hint_queue_capacity: usize,
    /// Hints handled at the same time.
    pub hint_concurrency: usize,
    /// `Retry-After` on 503 when the handler gives none.
    pub transient_retry_after: Duration,
    /// `Retry-After` on 409 (same event in progress).
    pub in_progress_retry_after: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            dedup_ttl: Duration::from_secs(24 * 3600),
            dedup_capacity: 100_000,
            hint_queue_capacity: 1024,
            hint_concurrency: 4,
            transient_retry_after: Duration::from_secs(30),
            in_progress_retry_after: Duration::from_secs(5),
        }
    }
}

/// What survives a route's reconfiguration: counters and dedup memory.
struct RouteShared {
    path: RoutePath,
    labels: RouteLabels,
    stats: RouteStats,
    dedup: Dedup,
}

struct Route {
    kind: RouteKind,
    verifier: Verifier,
    max_body_bytes: usize,
    event_id_path: Option<JsonPath>,
    rate: Option<NonZeroU32>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    handler: Arc<dyn EventHandler>,
    shared: Arc<RouteShared>,
    /// The term of the shard the route's object belongs to: once it ended,
    /// another replica may hold the object and the route is not served.
    term: Option<CancellationToken>,
}

struct Hint {
    route: Arc<Route>,
    event: InboundEvent,
    /// Ids from the payload or `webhook-id` are remembered once handled; a
    /// body hash only coalesces identical hints while they wait, because the
    /// same Odoo payload after a later write is a new hint.
    explicit_id: bool,
    received: Instant,
}

struct Inner {
    routes: RwLock<HashMap<RoutePath, Arc<Route>>>,
    /// A standby replica (not the leader) has no routes: it answers 503, so
    /// that senders retry and reach the leader, rather than 404.
    standby: AtomicBool,
    /// Sharded: a path without a route may be served by another replica, so
    /// the sender is told to retry (503) rather than that nothing is there.
    routes_elsewhere: AtomicBool,
    options: GatewayOptions,
    metrics: GatewayMetrics,
    hints: mpsc::Sender<Hint>,
}

/// The gateway. Clones share one route table.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes())
            .finish()
    }
}

impl Gateway {
    /// Creates the gateway and starts its hint worker; must be called inside a
    /// Tokio runtime. The worker ends when the last clone is dropped.
    pub fn new(options: GatewayOptions) -> Gateway {
        let (tx, rx) = mpsc::channel(options.hint_queue_capacity.max(1));
        let metrics = GatewayMetrics::default();
        tokio::spawn(run_hints(
            rx,
            options.hint_concurrency.max(1),
            metrics.clone(),
        ));
        Gateway {
            inner: Arc::new(Inner {
                routes: RwLock::new(HashMap::new()),
                standby: AtomicBool::new(false),
                routes_elsewhere: AtomicBool::new(false),
                options,
                metrics,
                hints: tx,
            }),
        }
    }

    /// Adds `path` or replaces its configuration and handler. Counters and the
    /// dedup memory of an existing route are kept, so a secret rotation
    /// neither resets status nor re-runs handled events.
    pub fn upsert_route(
        &self,
        path: RoutePath,
        config: RouteConfig,
        handler: Arc<dyn EventHandler>,
    ) -> Result<(), RouteConfigError> {
        self.upsert_route_in_term(path, config, handler, None)
    }

    /// [`Gateway::upsert_route`] for a route served only while `term` lasts
    /// (the term of its object's shard): past it, requests get 503 +
    /// `Retry-After` even before the route is removed.
    pub fn upsert_route_in_term(
        &self,
        path: RoutePath,
        config: RouteConfig,
        handler: Arc<dyn EventHandler>,
        term: Option<CancellationToken>,
    ) -> Result<(), RouteConfigError> {
        let verifier = Verifier::new(&config.auth, config.timestamp_tolerance)?;
        if config.max_body_bytes == 0 {
            return Err(RouteConfigError::ZeroBodyLimit);
        }
        let event_id_path = config
            .event_id_path
            .as_deref()
            .map(|p| {
                crate::supplier::mapping::parse_json_path(p)
                    .map_err(|e| RouteConfigError::EventIdPath(e.to_string()))
            })
            .transpose()?;
        let mut routes = self.write_routes();
        let existing = routes.get(&path);
        let shared = match existing {
            Some(route) => route.shared.clone(),
            None => Arc::new(RouteShared {
                labels: RouteLabels::of(&path),
                path: path.clone(),
                stats: RouteStats::default(),
                dedup: Dedup::new(
                    self.inner.options.dedup_ttl,
                    self.inner.options.dedup_capacity,
                ),
            }),
        };
        let limiter = match (existing, config.rate_per_second) {
            (_, None) => None,
            (Some(route), Some(rate)) if route.rate == Some(rate) => route.limiter.clone(),
            (_, Some(rate)) => Some(Arc::new(RateLimiter::direct(Quota::per_second(rate)))),
        };
        let route = Route {
            kind: config.kind,
            verifier,
            max_body_bytes: config.max_body_bytes,
            event_id_path,
            rate: config.rate_per_second,
            limiter,
            handler,
            shared,
            term,
        };
        routes.insert(path, Arc::new(route));
        Ok(())
    }

    /// Removes `path`; later requests get 404. Returns whether it existed.
    /// Hints already queued for it are still handled.
    pub fn remove_route(&self, path: &RoutePath) -> bool {
        let removed = self.write_routes().remove(path).is_some();
        if removed {
            self.inner.metrics.forget(path);
        }
        removed
    }

    /// Switches standby on (every request gets 503 + `Retry-After`, and the
    /// routes are dropped: the next leader's controllers own them) or off
    /// (routes are served again as controllers register them).
    pub fn set_standby(&self, standby: bool) {
        self.inner.standby.store(standby, Ordering::SeqCst);
        if standby {
            let dropped: Vec<RoutePath> =
                self.write_routes().drain().map(|(path, _)| path).collect();
            for path in &dropped {
                self.inner.metrics.forget(path);
            }
        }
    }

    /// Sharded operators: a path without a route here answers 503 +
    /// `Retry-After` instead of 404, since another replica may serve it.
    pub fn set_routes_elsewhere(&self, elsewhere: bool) {
        self.inner
            .routes_elsewhere
            .store(elsewhere, Ordering::SeqCst);
    }

    /// The counters of `path`, or `None` when no such route exists.
    pub fn route_counts(&self, path: &RoutePath) -> Option<RouteCounts> {
        self.read_routes()
            .get(path)
            .map(|route| route.shared.stats.snapshot())
    }

    /// The routes currently served, sorted by URL path.
    pub fn routes(&self) -> Vec<RoutePath> {
        let mut paths: Vec<RoutePath> = self.read_routes().keys().cloned().collect();
        paths.sort_by_key(RoutePath::url_path);
        paths
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.inner.metrics
    }

    /// Adds the gateway's metric families to `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    /// `POST /hooks/odoo/{namespace}/{rule}`,
    /// `POST /hooks/suppliers/{namespace}/{connector}` and
    /// `POST /hooks/approvals/{namespace}/{policy}`, to merge into the
    /// operator's HTTP server. The router does not log URLs: Odoo routes carry
    /// their token in the query string, so an outer request-logging layer must
    /// not print the query either.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/hooks/odoo/{namespace}/{name}",
                post(
                    |State(gw): State<Gateway>,
                     Path((namespace, name)): Path<(String, String)>,
                     request: Request| async move {
                        gw.receive(RoutePath::odoo(namespace, name), request).await
                    },
                ),
            )
            .route(
                "/hooks/suppliers/{namespace}/{name}",
                post(
                    |State(gw): State<Gateway>,
                     Path((namespace, name)): Path<(String, String)>,
                     request: Request| async move {
                        gw.receive(RoutePath::supplier(namespace, name), request)
                            .await
                    },
                ),
            )
            .route(
                "/hooks/approvals/{namespace}/{name}",
                post(
                    |State(gw): State<Gateway>,
                     Path((namespace, name)): Path<(String, String)>,
                     request: Request| async move {
                        gw.receive(RoutePath::approval(namespace, name), request)
                            .await
                    },
                ),
            )
            .with_state(self.clone())
    }

    fn read_routes(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RoutePath, Arc<Route>>> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_routes(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<RoutePath, Arc<Route>>> {
        self.inner
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn receive(&self, path: RoutePath, request: Request) -> Response {
        let started = Instant::now();
        let received_at = jiff::Timestamp::now();
        if self.inner.standby.load(Ordering::SeqCst) {
            return with_retry_after(
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "standby",
                    "this replica is on standby; retry later",
                ),
                self.inner.options.in_progress_retry_after,
            );
        }
        let found = self.read_routes().get(&path).cloned();
        let term_ended = found
            .as_ref()
            .is_some_and(|route| route.term.as_ref().is_some_and(|t| t.is_cancelled()));
        let Some(route) = found.filter(|_| !term_ended) else {
            if term_ended || self.inner.routes_elsewhere.load(Ordering::SeqCst) {
                return with_retry_after(
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "elsewhere",
                        "another replica serves this path, or none does yet; retry later",
                    ),
                    self.inner.options.in_progress_retry_after,
                );
            }
            self.inner.metrics.unknown_route();
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no webhook route at this path",
            );
        };
        let meter = RouteMeter {
            stats: &route.shared.stats,
            metrics: &self.inner.metrics,
            labels: &route.shared.labels,
        };
        meter.received();
        let (parts, body) = request.into_parts();

        let body = match read_limited(body, &parts.headers, route.max_body_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                meter.rejected(RejectReason::TooLarge);
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    &format!("the body exceeds {} bytes", route.max_body_bytes),
                );
            }
            Err(BodyError::Read) => {
                meter.rejected(RejectReason::Malformed);
                return error(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "the request body could not be read",
                );
            }
        };

        if !is_json(&parts.headers) {
            meter.rejected(RejectReason::UnsupportedMediaType);
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/json",
            );
        }

        if let Some(limiter) = &route.limiter
            && let Err(not_until) = limiter.check()
        {
            meter.rejected(RejectReason::RateLimited);
            let wait = not_until.wait_time_from(limiter.clock().now());
            return with_retry_after(
                error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests for this route",
                ),
                wait,
            );
        }

        let now = received_at.as_second();
        let verified = match route
            .verifier
            .verify(&parts.headers, parts.uri.query(), &body, now)
        {
            Ok(verified) => verified,
            Err(failure) => {
                meter.rejected(RejectReason::Unauthorized);
                tracing::debug!(route = %path, check = failure.as_str(), "webhook refused");
                return error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the request could not be authenticated",
                );
            }
        };

        let payload: Value = match serde_json::from_slice(&body) {
            Ok(payload) => payload,
            Err(err) => {
                meter.rejected(RejectReason::Malformed);
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({
                        "error": "malformed_json",
                        "message": format!("the body is not valid JSON: {err}"),
                        "line": err.line(),
                        "column": err.column(),
                    })),
                )
                    .into_response();
            }
        };

        let delivery_id = verified.webhook_id.or_else(|| {
            parts
                .headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
                .map(str::to_string)
        });
        let (event_id, explicit_id) = match route
            .event_id_path
            .as_ref()
            .and_then(|p| id_from_payload(p, &payload))
        {
            Some(id) => (id, true),
            None => match &delivery_id {
                Some(id) => (id.clone(), true),
                None => (
                    format!("sha256:{}", hex::encode(Sha256::digest(&body))),
                    false,
                ),
            },
        };

        let event = InboundEvent {
            route: path.clone(),
            event_id: event_id.clone(),
            delivery_id,
            payload,
            raw_body: body,
            received_at,
            origin: OriginalRequest {
                query: parts.uri.query().map(str::to_string),
                headers: parts.headers,
            },
        };
        match route.kind {
            RouteKind::Supplier => self.deliver_now(route.clone(), event, started).await,
            RouteKind::OdooHint => self.enqueue_hint(route.clone(), event, explicit_id, started),
        }
    }

    async fn deliver_now(
        &self,
        route: Arc<Route>,
        event: InboundEvent,
        started: Instant,
    ) -> Response {
        let event_id = event.event_id.clone();
        let meter = RouteMeter {
            stats: &route.shared.stats,
            metrics: &self.inner.metrics,
            labels: &route.shared.labels,
        };
        match route.shared.dedup.claim(&event_id, Instant::now()) {
            Claim::Done => {
                meter.duplicate();
                return duplicate(StatusCode::OK, &event_id);
            }
            Claim::Pending => {
                meter.duplicate();
                return with_retry_after(
                    error(
                        StatusCode::CONFLICT,
                        "in_progress",
                        "this event is being processed; retry later",
                    ),
                    self.inner.options.in_progress_retry_after,
                );
            }
            Claim::New => {}
        }
        // The handler runs in its own task with the bookkeeping, so a sender
        // that hangs up mid-request neither cancels a half-done effect nor
        // leaves the id pending forever.
        let task_route = route.clone();
        let metrics = self.inner.metrics.clone();
        let task = tokio::spawn(async move {
            let route = task_route;
            let id = event.event_id.clone();
            let guard = PendingGuard::new(&route.shared, &id);
            let result = route.handler.handle(event).await;
            let meter = RouteMeter {
                stats: &route.shared.stats,
                metrics: &metrics,
                labels: &route.shared.labels,
            };
            match &result {
                Ok(_) => {
                    guard.complete();
                    meter.accepted();
                    meter.latency(started.elapsed().as_secs_f64());
                }
                Err(HandlerError::Rejected(_)) => meter.rejected(RejectReason::Unmappable),
                Err(HandlerError::Transient { reason, .. }) => {
                    meter.rejected(RejectReason::Transient);
                    tracing::warn!(route = %route.shared.path, %reason, "webhook handler failed transiently");
                }
            }
            result
        });
        match task.await {
            Ok(Ok(outcome)) => (
                StatusCode::OK,
                axum::Json(json!({
                    "accepted": true,
                    "event_id": event_id,
                    "detail": outcome.detail,
                })),
            )
                .into_response(),
            Ok(Err(HandlerError::Rejected(reason))) => {
                error(StatusCode::UNPROCESSABLE_ENTITY, "unmappable", &reason)
            }
            Ok(Err(HandlerError::Transient { retry_after, .. })) => with_retry_after(
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "transient",
                    "the event could not be processed now; retry later",
                ),
                retry_after.unwrap_or(self.inner.options.transient_retry_after),
            ),
            Err(join_error) => {
                meter.rejected(RejectReason::Transient);
                tracing::error!(route = %route.shared.path, error = %join_error, "webhook handler panicked");
                with_retry_after(
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "transient",
                        "the event could not be processed now; retry later",
                    ),
                    self.inner.options.transient_retry_after,
                )
            }
        }
    }

    fn enqueue_hint(
        &self,
        route: Arc<Route>,
        event: InboundEvent,
        explicit_id: bool,
        started: Instant,
    ) -> Response {
        let event_id = event.event_id.clone();
        let meter = RouteMeter {
            stats: &route.shared.stats,
            metrics: &self.inner.metrics,
            labels: &route.shared.labels,
        };
        match route.shared.dedup.claim(&event_id, Instant::now()) {
            Claim::Done => {
                meter.duplicate();
                return duplicate(StatusCode::OK, &event_id);
            }
            // The waiting hint will read the same records: coalesce. Odoo
            // does not retry, so a 409 would only add noise to its log.
            Claim::Pending => {
                meter.duplicate();
                return duplicate(StatusCode::ACCEPTED, &event_id);
            }
            Claim::New => {}
        }
        let hint = Hint {
            route: route.clone(),
            event,
            explicit_id,
            received: started,
        };
        match self.inner.hints.try_send(hint) {
            Ok(()) => {
                meter.accepted();
                (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({"accepted": true, "queued": true, "event_id": event_id})),
                )
                    .into_response()
            }
            Err(_) => {
                route.shared.dedup.release(&event_id);
                meter.rejected(RejectReason::QueueFull);
                tracing::warn!(route = %route.shared.path, "hint queue full; hint dropped (the next scan covers it)");
                with_retry_after(
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "queue_full",
                        "too many events waiting; retry later",
                    ),
                    self.inner.options.transient_retry_after,
                )
            }
        }
    }
}

/// Releases a pending dedup id unless [`PendingGuard::complete`] ran, also
/// when the handler panics.
struct PendingGuard<'a> {
    shared: &'a RouteShared,
    id: &'a str,
    done: bool,
}

impl<'a> PendingGuard<'a> {
    fn new(shared: &'a RouteShared, id: &'a str) -> PendingGuard<'a> {
        PendingGuard {
            shared,
            id,
            done: false,
        }
    }

    fn complete(mut self) {
        self.shared.dedup.complete(self.id, Instant::now());
        self.done = true;
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.dedup.release(self.id);
        }
    }
}

async fn run_hints(mut rx: mpsc::Receiver<Hint>, concurrency: usize, metrics: GatewayMetrics) {
    let permits = Arc::new(Semaphore::new(concurrency));
    while let Some(hint) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            handle_hint(hint, &metrics).await;
        });
    }
}

async fn handle_hint(hint: Hint, metrics: &GatewayMetrics) {
    let Hint {
        route,
        event,
        explicit_id,
        received,
    } = hint;
    let event_id = event.event_id.clone();
    let shared = &route.shared;
    if !explicit_id {
        // From now on the handler reads Odoo; an identical hint that arrives
        // meanwhile may describe a later write, so it must queue again.
        shared.dedup.release(&event_id);
    }
    let guard = explicit_id.then(|| PendingGuard::new(shared, &event_id));
    let result = route.handler.handle(event).await;
    let meter = RouteMeter {
        stats: &shared.stats,
        metrics,
        labels: &shared.labels,
    };
    match result {
        Ok(_) => {
            if let Some(guard) = guard {
                guard.complete();
            }
            meter.latency(received.elapsed().as_secs_f64());
        }
        Err(err) => {
            let reason = match err {
                HandlerError::Rejected(_) => RejectReason::Unmappable,
                HandlerError::Transient { .. } => RejectReason::Transient,
            };
            meter.failed(reason);
            tracing::warn!(route = %shared.path, error = %err, "Odoo hint handler failed (the next scan covers it)");
        }
    }
}

/// The event id a JSONPath selects: a string as is, anything else as JSON text.
fn id_from_payload(path: &JsonPath, payload: &Value) -> Option<String> {
    let node = path.query(payload).first()?;
    let id = match node {
        Value::String(text) => text.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    (!id.is_empty() && id.len() <= MAX_ID_LEN).then_some(id)
}

enum BodyError {
    TooLarge,
    Read,
}

/// Reads the body chunk by chunk and stops as soon as it passes `limit`, so an
/// oversized body is never held in memory. A declared Content-Length over the
/// limit is refused before reading anything.
async fn read_limited(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let capacity = declared.map_or(0, |len| len as usize);
    let mut buffer = Vec::with_capacity(capacity);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        if buffer.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

fn duplicate(status: StatusCode, event_id: &str) -> Response {
    (
        status,
        axum::Json(json!({"duplicate": true, "event_id": event_id})),
    )
        .into_response()
}

/// Adds `Retry-After` in whole seconds, at least 1.
fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}
