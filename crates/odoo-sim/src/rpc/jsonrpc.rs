//! JSON-RPC: `/jsonrpc` (the `common`/`object`/`db` services) and the
//! session-cookie routes of the web client (`/web/session/*`,
//! `/web/dataset/call_kw`, `/web/webclient/version_info`, `/web/database/list`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{CONTENT_TYPE, HOST, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::session::{Session, set_cookie_value};
use super::{CallCtx, ExceptionInfo, OrmArgs, RpcError, dispatch_service, version_info};
use crate::db::{OdooVersion, OrmError};
use crate::server::{SimState, dropped_reply};

/// A parsed JSON-RPC request: the `id` to echo and the `params` object.
pub struct Envelope {
    pub id: Value,
    pub params: Map<String, Value>,
}

#[derive(Serialize)]
struct ResultEnvelope<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    /// Odoo leaves `result` out when the method returned None.
    #[serde(skip_serializing_if = "returned_none")]
    result: &'a Value,
}

fn returned_none(result: &&Value) -> bool {
    result.is_null()
}

#[derive(Serialize)]
struct ErrorEnvelope<'a, D: Serialize> {
    jsonrpc: &'static str,
    id: &'a Value,
    error: ErrorBody<D>,
}

#[derive(Serialize)]
struct ErrorBody<D: Serialize> {
    code: i32,
    message: &'static str,
    data: D,
}

/// `serialize_exception` key order of 16–18.
#[derive(Serialize)]
struct ErrorDataUpTo18<'a> {
    name: &'a str,
    debug: &'a str,
    message: &'a str,
    arguments: &'a [Value],
    context: Map<String, Value>,
}

/// `serialize_exception` key order of 19 (also the JSON-2 error body).
#[derive(Serialize)]
pub struct ErrorData19<'a> {
    pub name: &'a str,
    pub message: &'a str,
    pub arguments: &'a [Value],
    pub context: Map<String, Value>,
    pub debug: &'a str,
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn result_response(id: &Value, result: &Value) -> Response {
    let envelope = ResultEnvelope {
        jsonrpc: "2.0",
        id,
        result,
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&envelope).unwrap_or_default(),
    )
}

/// Error envelope: code 200 "Odoo Server Error", or 100 for expired sessions.
pub fn error_response(version: OdooVersion, id: &Value, error: &RpcError) -> Response {
    let info = error.exception();
    let (code, message) = match error {
        RpcError::SessionExpired => (100, "Odoo Session Expired"),
        _ => (200, "Odoo Server Error"),
    };
    exception_response(version, id, code, message, &info)
}

fn exception_response(
    version: OdooVersion,
    id: &Value,
    code: i32,
    message: &'static str,
    info: &ExceptionInfo,
) -> Response {
    let body = if version >= OdooVersion::V19 {
        serde_json::to_vec(&ErrorEnvelope {
            jsonrpc: "2.0",
            id,
            error: ErrorBody {
                code,
                message,
                data: ErrorData19 {
                    name: &info.name,
                    message: &info.message,
                    arguments: &info.arguments,
                    context: Map::new(),
                    debug: &info.traceback,
                },
            },
        })
    } else {
        serde_json::to_vec(&ErrorEnvelope {
            jsonrpc: "2.0",
            id,
            error: ErrorBody {
                code,
                message,
                data: ErrorDataUpTo18 {
                    name: &info.name,
                    debug: &info.traceback,
                    message: &info.message,
                    arguments: &info.arguments,
                    context: Map::new(),
                },
            },
        })
    };
    json_response(StatusCode::OK, body.unwrap_or_default())
}

/// Why a request is not a JSON-RPC call; Odoo answers these with a plain-text 400.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The route is `type='json'` but the request is not JSON.
    NotJson {
        route: String,
    },
    InvalidJson,
    InvalidJsonRpc,
}

impl IntoResponse for EnvelopeError {
    fn into_response(self) -> Response {
        let message = match self {
            EnvelopeError::NotJson { route } => {
                format!(
                    "Request inferred type is compatible with ['http'] but {route} is type=json."
                )
            }
            EnvelopeError::InvalidJson => "Invalid JSON data".to_string(),
            EnvelopeError::InvalidJsonRpc => "Invalid JSON-RPC data".to_string(),
        };
        (StatusCode::BAD_REQUEST, message).into_response()
    }
}

/// Checks the request is a JSON-RPC call, as Odoo's JSON dispatcher does
/// before anything else.
pub fn parse_envelope(
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Envelope, EnvelopeError> {
    let mimetype = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mimetype != "application/json" && mimetype != "application/json-rpc" {
        return Err(EnvelopeError::NotJson {
            route: route.to_string(),
        });
    }
    let document: Value = serde_json::from_slice(body).map_err(|_| EnvelopeError::InvalidJson)?;
    let Value::Object(mut document) = document else {
        return Err(EnvelopeError::InvalidJsonRpc);
    };
    let id = document.remove("id").unwrap_or(Value::Null);
    let params = match document.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return Err(EnvelopeError::InvalidJsonRpc),
    };
    Ok(Envelope { id, params })
}

fn param_str<'a>(
    params: &'a Map<String, Value>,
    name: &str,
    function: &str,
) -> Result<&'a str, RpcError> {
    match params.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Ok(""),
        None => Err(RpcError::type_error(format!(
            "{function}() missing 1 required positional argument: '{name}'"
        ))),
    }
}

/// `POST /jsonrpc`.
pub async fn jsonrpc(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/jsonrpc", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    state.warn_deprecated(peer.ip(), &headers, "/jsonrpc");
    let ctx = CallCtx::new(peer.ip());
    let params = &envelope.params;
    let outcome = async {
        let service = param_str(params, "service", "jsonrpc")?;
        let method = param_str(params, "method", "jsonrpc")?;
        let args = match params.get("args") {
            Some(Value::Array(args)) => args.clone(),
            Some(_) => {
                return Err(RpcError::type_error(
                    "jsonrpc() argument 'args' must be a list",
                ));
            }
            None => {
                return Err(RpcError::type_error(
                    "jsonrpc() missing 1 required positional argument: 'args'",
                ));
            }
        };
        dispatch_service(&state, &ctx, service, method, args).await
    }
    .await;
    finish(&state, &ctx, &envelope.id, outcome)
}

fn finish(
    state: &SimState,
    ctx: &CallCtx,
    id: &Value,
    outcome: Result<Value, RpcError>,
) -> Response {
    if ctx.reply_dropped() {
        return dropped_reply();
    }
    match outcome {
        Ok(result) => result_response(id, &result),
        Err(error) => error_response(state.db.version(), id, &error),
    }
}

/// `POST /web/webclient/version_info`.
pub async fn version_info_route(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/web/webclient/version_info", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    state.stats.record_rpc_method("web.version_info");
    result_response(
        &envelope.id,
        &version_info(state.db.version(), state.db.edition()),
    )
}

/// `POST /web/database/list`.
pub async fn database_list(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/web/database/list", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    state.stats.record_rpc_method("web.database_list");
    result_response(&envelope.id, &json!([state.db.name()]))
}

/// `POST /web/session/authenticate`: password login (API keys are refused on
/// this interactive path), sets the `session_id` cookie, returns the session info.
pub async fn session_authenticate(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/web/session/authenticate", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    state.stats.record_rpc_method("web.session_authenticate");
    let params = &envelope.params;
    let outcome = async {
        let database = param_str(params, "db", "authenticate")?;
        let login = param_str(params, "login", "authenticate")?;
        let password = param_str(params, "password", "authenticate")?;
        if database != state.db.name() {
            return Err(RpcError::Orm(OrmError::Access(
                "Database not found.".to_string(),
            )));
        }
        match state
            .login(peer.ip(), database, login, password, true)
            .await?
        {
            Some(uid) => Ok((uid, login.to_string())),
            None => Err(RpcError::Orm(OrmError::AccessDenied)),
        }
    }
    .await;
    match outcome {
        Ok((uid, login)) => {
            let session = Session {
                uid,
                login,
                database: state.db.name().to_string(),
            };
            let info = session_info(&state, &session, &headers).await;
            let id = state.sessions.open(session);
            let mut response = result_response(&envelope.id, &info);
            let cookie = set_cookie_value(&id, state.db.version() >= OdooVersion::V17);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            response
        }
        Err(error) => error_response(state.db.version(), &envelope.id, &error),
    }
}

/// `POST /web/session/get_session_info`.
pub async fn session_get_info(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/web/session/get_session_info", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    state.stats.record_rpc_method("web.get_session_info");
    match state.sessions.from_headers(&headers) {
        Some((_, session)) => {
            let info = session_info(&state, &session, &headers).await;
            result_response(&envelope.id, &info)
        }
        None => error_response(state.db.version(), &envelope.id, &RpcError::SessionExpired),
    }
}

/// `POST /web/session/destroy`.
pub async fn session_destroy(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/web/session/destroy", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    if let Some((id, _)) = state.sessions.from_headers(&headers) {
        state.sessions.close(&id);
    }
    result_response(&envelope.id, &Value::Null)
}

/// `POST /web/dataset/call_kw` and `/web/dataset/call_kw/<path>` with the session cookie.
pub async fn call_kw(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope = match parse_envelope("/web/dataset/call_kw", &headers, &body) {
        Ok(envelope) => envelope,
        Err(error) => return error.into_response(),
    };
    state.stats.record_rpc_method("web.call_kw");
    let ctx = CallCtx::new(peer.ip());
    let params = &envelope.params;
    let outcome = async {
        let (_, session) = state
            .sessions
            .from_headers(&headers)
            .ok_or(RpcError::SessionExpired)?;
        let model = param_str(params, "model", "call_kw")?;
        let method = param_str(params, "method", "call_kw")?;
        let args = match params.get("args") {
            Some(Value::Array(args)) => args.clone(),
            _ => {
                return Err(RpcError::type_error(
                    "call_kw() missing 1 required positional argument: 'args'",
                ));
            }
        };
        let kwargs = match params.get("kwargs") {
            Some(Value::Object(kwargs)) => kwargs.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                return Err(RpcError::type_error(
                    "call_kw() argument 'kwargs' must be a dict",
                ));
            }
        };
        state
            .call_orm(
                &ctx,
                session.uid,
                model,
                method,
                OrmArgs::Positional { args, kwargs },
            )
            .await
    }
    .await;
    finish(&state, &ctx, &envelope.id, outcome)
}

/// The dict `ir.http.session_info()` returns, filled from the user record
/// when the ORM can read it.
async fn session_info(state: &Arc<SimState>, session: &Session, headers: &HeaderMap) -> Value {
    let db = state.db.clone();
    let uid = session.uid;
    let (user, context) = tokio::task::spawn_blocking(move || {
        let user = db
            .execute_kw(
                uid,
                "res.users",
                "read",
                vec![json!([uid]), json!(["name", "partner_id", "company_id"])],
                Map::new(),
            )
            .ok()
            .and_then(|rows| rows.get(0).cloned());
        let context = db
            .execute_kw(uid, "res.users", "context_get", vec![], Map::new())
            .ok();
        (user, context)
    })
    .await
    .unwrap_or((None, None));
    let user = user.unwrap_or_else(|| json!({}));
    let mut user_context = match context {
        Some(Value::Object(context)) => context,
        _ => {
            let mut context = Map::new();
            context.insert("lang".into(), json!("en_US"));
            context.insert("tz".into(), json!("Europe/Brussels"));
            context
        }
    };
    user_context.insert("uid".into(), json!(uid));
    let many2one_id = |value: &Value| match value {
        Value::Array(pair) => pair.first().cloned().unwrap_or(Value::Bool(false)),
        other => other.clone(),
    };
    let partner_id = user
        .get("partner_id")
        .map(many2one_id)
        .unwrap_or(Value::Bool(false));
    let company_id = user.get("company_id").map(many2one_id).unwrap_or(json!(1));
    let company_name = match user.get("company_id") {
        Some(Value::Array(pair)) => pair.get(1).cloned().unwrap_or(json!("My Company")),
        _ => json!("My Company"),
    };
    let name = user
        .get("name")
        .cloned()
        .unwrap_or_else(|| json!(session.login));
    let version = state.db.version();
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost:8069");
    let mut companies = Map::new();
    let company_key = company_id
        .as_i64()
        .map(|id| id.to_string())
        .unwrap_or_else(|| "1".to_string());
    companies.insert(
        company_key,
        json!({"id": company_id, "name": company_name, "sequence": 10, "child_ids": [], "parent_id": false}),
    );
    let server = version_info(version, state.db.edition());
    // Approximation: the simulator's admin user is uid 2 (uid 1 is the superuser).
    let is_admin = uid <= 2;
    json!({
        "uid": uid,
        "is_system": is_admin,
        "is_admin": is_admin,
        "user_context": Value::Object(user_context),
        "db": session.database,
        "server_version": server["server_version"],
        "server_version_info": server["server_version_info"],
        "support_url": "https://www.odoo.com/buy",
        "name": name,
        "username": session.login,
        "partner_display_name": name,
        "partner_id": partner_id,
        "company_id": company_id,
        "web.base.url": format!("http://{host}"),
        "active_ids_limit": 20000,
        "profile_session": null,
        "profile_collectors": null,
        "profile_params": null,
        "max_file_upload_size": 134_217_728,
        "home_action_id": false,
        "cache_hashes": {"translations": "0", "load_menus": "0"},
        "currencies": {"1": {"symbol": "€", "position": "after", "digits": [69, 2]}},
        "user_companies": {"current_company": company_id, "allowed_companies": Value::Object(companies)},
        "show_effect": true,
        "display_switch_company_menu": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers
    }

    #[test]
    fn envelope_keeps_id_and_params() {
        let envelope = parse_envelope(
            "/jsonrpc",
            &json_headers(),
            br#"{"jsonrpc":"2.0","method":"call","id":11,"params":{"service":"common"}}"#,
        )
        .unwrap();
        assert_eq!(envelope.id, json!(11));
        assert_eq!(envelope.params["service"], "common");
        let no_params = parse_envelope("/jsonrpc", &json_headers(), br#"{"id":"x"}"#).unwrap();
        assert!(no_params.params.is_empty());
    }

    #[test]
    fn envelope_errors_match_odoo() {
        assert_eq!(
            parse_envelope("/jsonrpc", &HeaderMap::new(), b"{}").err(),
            Some(EnvelopeError::NotJson {
                route: "/jsonrpc".into()
            })
        );
        assert_eq!(
            parse_envelope("/jsonrpc", &json_headers(), b"{nope").err(),
            Some(EnvelopeError::InvalidJson)
        );
        assert_eq!(
            parse_envelope("/jsonrpc", &json_headers(), b"[1]").err(),
            Some(EnvelopeError::InvalidJsonRpc)
        );
        assert_eq!(
            parse_envelope("/jsonrpc", &json_headers(), br#"{"params":[1]}"#).err(),
            Some(EnvelopeError::InvalidJsonRpc)
        );
    }
}
