//! The simulator's HTTP server: one database behind Odoo's XML-RPC, JSON-RPC
//! and (19) JSON-2 surfaces, request-level fault injection, and the admin
//! endpoints under `/planops-sim/` (loopback only, bearer token).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::db::{Database, OdooVersion, SimConfig};
use super::faults::{FaultConfig, FaultConfigError, FaultInjector, FaultStatus, RequestFault};
use super::rpc::session::{SessionStore, random_hex};
use super::rpc::{json2, jsonrpc, xmlrpc};
use super::stats::{RequestStats, StatsSnapshot};
use super::webhooks::{DeliveryLogSnapshot, WebhookClientError, WebhookSender};

/// Odoo accepts request bodies up to 128 MiB by default.
const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;
/// How long `stop()` lets in-flight requests finish before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Errors starting or restarting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid fault configuration: {0}")]
    Faults(#[from] FaultConfigError),
    #[error(transparent)]
    Webhooks(#[from] WebhookClientError),
    #[error("building the simulated database failed: {0}")]
    Database(String),
}

/// Everything the handlers share; survives `stop()`/`restart()`.
pub struct SimState {
    pub db: Database,
    pub faults: FaultInjector,
    pub stats: RequestStats,
    pub sessions: SessionStore,
    pub webhooks: Arc<WebhookSender>,
    /// Held by each writing ORM call until it committed.
    pub(crate) transactions: tokio::sync::Mutex<()>,
    admin_token: String,
    pub(crate) login_failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub(crate) verified_credentials: Mutex<HashSet<(i64, [u8; 32])>>,
    deprecation_warned: Mutex<HashSet<(IpAddr, String)>>,
}

impl SimState {
    fn new(db: Database, options: SimOptions) -> Result<Arc<SimState>, SimError> {
        Ok(Arc::new(SimState {
            db,
            faults: FaultInjector::new(options.faults)?,
            stats: RequestStats::default(),
            sessions: SessionStore::default(),
            webhooks: Arc::new(WebhookSender::new()?),
            transactions: tokio::sync::Mutex::new(()),
            admin_token: options.admin_token.unwrap_or_else(random_hex::<24>),
            login_failures: Mutex::new(HashMap::new()),
            verified_credentials: Mutex::new(HashSet::new()),
            deprecation_warned: Mutex::new(HashSet::new()),
        }))
    }

    /// Odoo 19 logs one deprecation warning per client address and user agent
    /// on the legacy RPC endpoints.
    pub fn warn_deprecated(&self, peer: IpAddr, headers: &HeaderMap, route: &str) {
        if self.db.version() < OdooVersion::V19 {
            return;
        }
        let agent = headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let first = self
            .deprecation_warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((peer, agent.clone()));
        if first {
            tracing::warn!(
                %peer, user_agent = %agent, route,
                "the {route} endpoint is deprecated in Odoo 19 and scheduled for removal in Odoo 20; use /json/2"
            );
        }
    }
}

/// Options of an in-process simulator beyond the database itself.
#[derive(Clone, Default)]
pub struct SimOptions {
    /// Token of the admin endpoints; random when not given.
    pub admin_token: Option<String>,
    pub faults: FaultConfig,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("faults", &self.faults)
            .finish()
    }
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// A running simulator. Dropping it stops the listener.
pub struct SimServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    pub addr: SocketAddr,
    pub db: Database,
    /// Bearer token of the `/planops-sim/*` admin endpoints.
    pub admin_token: String,
    state: Arc<SimState>,
    running: Option<Running>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("url", &self.url)
            .field("database", &self.db.name())
            .field("admin_token", &"<redacted>")
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl SimServer {
    /// Builds the database from `cfg` and serves it on `addr` (port 0 picks a free port).
    pub async fn start(cfg: SimConfig, addr: SocketAddr) -> Result<SimServer, SimError> {
        SimServer::start_with(cfg, addr, SimOptions::default()).await
    }

    pub async fn start_with(
        cfg: SimConfig,
        addr: SocketAddr,
        options: SimOptions,
    ) -> Result<SimServer, SimError> {
        let db = tokio::task::spawn_blocking(move || Database::new(cfg))
            .await
            .map_err(|error| SimError::Database(error.to_string()))?;
        SimServer::serve(db, addr, options).await
    }

    /// Serves an existing database.
    pub async fn serve(
        db: Database,
        addr: SocketAddr,
        options: SimOptions,
    ) -> Result<SimServer, SimError> {
        let state = SimState::new(db.clone(), options)?;
        let admin_token = state.admin_token.clone();
        let (bound, running) = listen(Arc::clone(&state), addr).await?;
        Ok(SimServer {
            url: format!("http://{bound}"),
            addr: bound,
            db,
            admin_token,
            state,
            running: Some(running),
        })
    }

    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), FaultConfigError> {
        self.state.faults.set(faults)
    }

    pub fn faults(&self) -> FaultStatus {
        self.state.faults.status()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.state.stats.reset();
    }

    pub fn webhook_log(&self) -> DeliveryLogSnapshot {
        self.state.webhooks.snapshot()
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops listening; clients then get "connection refused". The database,
    /// sessions, faults and counters are kept for `restart()`.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            let mut task = running.task;
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }

    /// Listens again on the same address, serving the same database.
    pub async fn restart(&mut self) -> Result<(), SimError> {
        if self.running.is_some() {
            return Ok(());
        }
        let (_, running) = listen(Arc::clone(&self.state), self.addr).await?;
        self.running = Some(running);
        Ok(())
    }

    /// Stops for good.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
        }
    }
}

async fn listen(state: Arc<SimState>, addr: SocketAddr) -> Result<(SocketAddr, Running), SimError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let app = router(state);
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = signal.await;
        })
        .await
    });
    Ok((bound, Running { shutdown, task }))
}

/// The routes that exist for the simulated version (Odoo 19 adds JSON-2).
pub fn router(state: Arc<SimState>) -> Router {
    let mut app = Router::new()
        .route("/xmlrpc/2/{service}", post(xmlrpc::xmlrpc_2))
        .route("/xmlrpc/{service}", post(xmlrpc::xmlrpc_legacy))
        .route("/jsonrpc", post(jsonrpc::jsonrpc))
        .route(
            "/web/session/authenticate",
            post(jsonrpc::session_authenticate),
        )
        .route(
            "/web/session/get_session_info",
            post(jsonrpc::session_get_info),
        )
        .route("/web/session/destroy", post(jsonrpc::session_destroy))
        .route("/web/dataset/call_kw", post(jsonrpc::call_kw))
        .route("/web/dataset/call_kw/{*path}", post(jsonrpc::call_kw))
        .route(
            "/web/webclient/version_info",
            post(jsonrpc::version_info_route),
        )
        .route("/web/database/list", post(jsonrpc::database_list));
    if state.db.version() >= OdooVersion::V19 {
        app = app
            .route("/json/2", any(json2::json2_hint))
            .route("/json/2/{*rest}", any(json2::json2))
            .route("/web/version", get(json2::web_version))
            .route("/json/version", get(json2::web_version));
    }
    app.route(
        "/planops-sim/faults",
        get(admin_get_faults).post(admin_set_faults),
    )
    .route("/planops-sim/stats", get(admin_stats))
    .route("/planops-sim/stats/reset", post(admin_reset_stats))
    .route("/planops-sim/webhooks", get(admin_webhooks))
    .fallback(fallback_not_found)
    .layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        request_faults,
    ))
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .with_state(state)
}

const ADMIN_PREFIX: &str = "/planops-sim/";

fn endpoint_kind(path: &str) -> &'static str {
    if path.starts_with("/xmlrpc/") {
        "xmlrpc"
    } else if path == "/jsonrpc" {
        "jsonrpc"
    } else if path.starts_with("/web/") {
        "web"
    } else if path == "/json/2" || path.starts_with("/json/2/") {
        "json2"
    } else {
        "other"
    }
}

/// Counts every Odoo request and applies outage, 503 and latency faults.
async fn request_faults(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path.starts_with(ADMIN_PREFIX) {
        return next.run(request).await;
    }
    state.stats.record_request(endpoint_kind(path));
    match state.faults.before_request() {
        RequestFault::Outage => {
            state.stats.record_fault(|f| f.outage_refused += 1);
            dropped_reply()
        }
        RequestFault::Unavailable => {
            state.stats.record_fault(|f| f.unavailable += 1);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(CONTENT_TYPE, "text/html")],
                "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>\n",
            )
                .into_response()
        }
        RequestFault::Proceed { latency } => {
            if !latency.is_zero() {
                state.stats.record_fault(|f| f.delayed += 1);
                tokio::time::sleep(latency).await;
            }
            next.run(request).await
        }
    }
}

/// A response whose body fails before anything is written: hyper then closes
/// the connection without sending a status line, which the client sees as a
/// reset/EOF, exactly like a reply lost after the server committed.
pub fn dropped_reply() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "reply dropped by fault injection",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// Werkzeug's HTML 404 page.
pub fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n"),
    )
        .into_response()
}

async fn fallback_not_found() -> Response {
    not_found_page()
}

/// Why an admin request was refused.
#[derive(Debug, PartialEq, Eq)]
enum AdminRefusal {
    NotLoopback,
    BadToken,
}

impl IntoResponse for AdminRefusal {
    fn into_response(self) -> Response {
        match self {
            AdminRefusal::NotLoopback => (
                StatusCode::FORBIDDEN,
                "admin endpoints only accept loopback clients\n",
            )
                .into_response(),
            AdminRefusal::BadToken => (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                "missing or invalid admin token\n",
            )
                .into_response(),
        }
    }
}

/// Admin endpoints answer only loopback peers presenting the token.
fn admin_guard(
    state: &SimState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), AdminRefusal> {
    if !peer.ip().is_loopback() {
        return Err(AdminRefusal::NotLoopback);
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes().to_vec())
        .unwrap_or_default();
    if bool::from(presented.ct_eq(state.admin_token.as_bytes())) {
        Ok(())
    } else {
        Err(AdminRefusal::BadToken)
    }
}

fn json_ok<T: serde::Serialize>(value: &T) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

async fn admin_get_faults(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admin_guard(&state, peer, &headers) {
        return refused.into_response();
    }
    json_ok(&state.faults.status())
}

async fn admin_set_faults(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = admin_guard(&state, peer, &headers) {
        return refused.into_response();
    }
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(config) => config,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                json_error(format!("invalid fault configuration: {error}")),
            )
                .into_response();
        }
    };
    match state.faults.set(config) {
        Ok(()) => json_ok(&state.faults.status()),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json_error(error.to_string()),
        )
            .into_response(),
    }
}

fn json_error(message: String) -> Response {
    json_ok(&json!({ "error": message }))
}

async fn admin_stats(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admin_guard(&state, peer, &headers) {
        return refused.into_response();
    }
    json_ok(&state.stats.snapshot())
}

async fn admin_reset_stats(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admin_guard(&state, peer, &headers) {
        return refused.into_response();
    }
    state.stats.reset();
    state.webhooks.reset();
    json_ok(&state.stats.snapshot())
}

async fn admin_webhooks(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admin_guard(&state, peer, &headers) {
        return refused.into_response();
    }
    json_ok(&state.webhooks.snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_guard_wants_loopback_and_the_token() {
        let db = Database::new(SimConfig {
            dataset: crate::db::DatasetParams {
                products: 1,
                warehouses: 1,
                history_days: 1,
                ..Default::default()
            },
            ..SimConfig::default()
        });
        let state = SimState::new(
            db,
            SimOptions {
                admin_token: Some("s3cret".into()),
                ..SimOptions::default()
            },
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        let loopback: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(admin_guard(&state, loopback, &headers), Ok(()));
        assert_eq!(
            admin_guard(&state, remote, &headers),
            Err(AdminRefusal::NotLoopback)
        );
        headers.insert(AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert_eq!(
            admin_guard(&state, loopback, &headers),
            Err(AdminRefusal::BadToken)
        );
        assert_eq!(
            admin_guard(&state, loopback, &HeaderMap::new()),
            Err(AdminRefusal::BadToken)
        );
    }

    #[test]
    fn endpoint_kinds() {
        assert_eq!(endpoint_kind("/xmlrpc/2/object"), "xmlrpc");
        assert_eq!(endpoint_kind("/jsonrpc"), "jsonrpc");
        assert_eq!(
            endpoint_kind("/web/dataset/call_kw/res.partner.read"),
            "web"
        );
        assert_eq!(endpoint_kind("/json/2/res.partner/search"), "json2");
        assert_eq!(endpoint_kind("/json/version"), "other");
    }
}
