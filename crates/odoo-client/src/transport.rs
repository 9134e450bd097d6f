//! The wire protocols behind one object-safe trait: JSON-RPC (`/jsonrpc`,
//! `object.execute_kw`, Odoo 16–19) and JSON-2 (`/json/2/<model>/<method>`,
//! Odoo 19+). The rest of PlanOps only sees [`Call`] and `serde_json::Value`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value, json};

use super::config::Protocol;
use super::error::{
    self, CallTarget, ErrorKind, OdooError, from_json2_failure, from_jsonrpc_error, from_reqwest,
    transport_status,
};
use super::limiter::RequestLimiter;
use super::secret::Secret;
use super::stats::CallCounters;
use super::version::ServerVersion;

/// One ORM method call, protocol-neutral.
///
/// `args` are the method's leading parameters by name and in order: JSON-RPC
/// sends them positionally (Odoo's `create` needs its `vals_list`
/// positionally), JSON-2 by name. `kwargs` are optional parameters, named in
/// both protocols.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub model: String,
    pub method: String,
    /// Record ids for record methods (`write`, `button_confirm`); `None` for
    /// `@api.model` methods (`search_read`, `create`).
    pub ids: Option<Vec<i64>>,
    pub args: Vec<(String, Value)>,
    pub kwargs: Map<String, Value>,
    pub context: Map<String, Value>,
    /// Safe to repeat after an ambiguous failure (reads, same-value writes,
    /// upserts by external id). Decides whether timeouts are retried.
    pub idempotent: bool,
}

impl Call {
    /// A call of `model.method`, not idempotent until said otherwise.
    pub fn new(model: impl Into<String>, method: impl Into<String>) -> Call {
        Call {
            model: model.into(),
            method: method.into(),
            ids: None,
            args: Vec::new(),
            kwargs: Map::new(),
            context: Map::new(),
            idempotent: false,
        }
    }

    pub fn ids(mut self, ids: impl Into<Vec<i64>>) -> Call {
        self.ids = Some(ids.into());
        self
    }

    pub fn arg(mut self, name: impl Into<String>, value: impl Into<Value>) -> Call {
        self.args.push((name.into(), value.into()));
        self
    }

    pub fn kwarg(mut self, name: impl Into<String>, value: impl Into<Value>) -> Call {
        self.kwargs.insert(name.into(), value.into());
        self
    }

    pub fn context_value(mut self, key: impl Into<String>, value: impl Into<Value>) -> Call {
        self.context.insert(key.into(), value.into());
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> Call {
        self.idempotent = idempotent;
        self
    }

    /// `model.method`, how errors and logs name the call.
    pub fn label(&self) -> String {
        format!("{}.{}", self.model, self.method)
    }

    fn target(&self) -> CallTarget<'_> {
        CallTarget {
            model: &self.model,
            method: &self.method,
        }
    }
}

/// A wire protocol, authenticated and ready to execute calls.
pub trait Transport: Send + Sync + fmt::Debug {
    fn protocol(&self) -> Protocol;
    /// The uid the API key belongs to.
    fn uid(&self) -> i64;
    /// Sends one call once (no retries: the client decides about those).
    fn execute<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Value, OdooError>>;
}

/// HTTP plumbing shared by both protocols: base URL, limiter, counters.
pub struct Wire {
    http: reqwest::Client,
    base: Url,
    limiter: Arc<RequestLimiter>,
    counters: Arc<CallCounters>,
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// An HTTP answer read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Wire {
    pub fn new(
        base_url: &str,
        timeout: Duration,
        user_agent: &str,
        limiter: Arc<RequestLimiter>,
        counters: Arc<CallCounters>,
    ) -> Result<Wire, OdooError> {
        let mut base = Url::parse(base_url)
            .map_err(|e| OdooError::config(format!("invalid Odoo URL {base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(OdooError::config(format!(
                "Odoo URL must be http or https, got {:?}",
                base.scheme()
            )));
        }
        // Keep a path prefix (Odoo behind /odoo) and make joins relative to it.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(user_agent)
            .build()
            .map_err(|e| OdooError::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Wire {
            http,
            base,
            limiter,
            counters,
        })
    }

    pub fn counters(&self) -> &Arc<CallCounters> {
        &self.counters
    }

    fn url(&self, path: &str) -> Result<Url, OdooError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| OdooError::config(format!("cannot build URL for {path}: {e}")))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        count_as: (&str, &str),
    ) -> Result<Answer, OdooError> {
        let _permit = self.limiter.acquire().await?;
        self.counters.record_request(count_as.0, count_as.1);
        let response = request.send().await.map_err(|e| from_reqwest(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| from_reqwest(&e))?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    async fn post_json(
        &self,
        path: &str,
        headers: HeaderMap,
        body: &Value,
        count_as: (&str, &str),
    ) -> Result<Answer, OdooError> {
        let url = self.url(path)?;
        let bytes = serde_json::to_vec(body)
            .map_err(|e| OdooError::protocol(format!("cannot encode request: {e}")))?;
        let request = self
            .http
            .post(url)
            .headers(headers)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(bytes);
        self.send(request, count_as).await
    }

    /// Sends a JSON-RPC 2.0 envelope to `path` and returns its `result`.
    async fn jsonrpc(
        &self,
        path: &str,
        params: Value,
        id: u64,
        count_as: (&str, &str),
        target: Option<CallTarget<'_>>,
    ) -> Result<Value, OdooError> {
        let envelope = json!({"jsonrpc": "2.0", "method": "call", "id": id, "params": params});
        let answer = self
            .post_json(path, HeaderMap::new(), &envelope, count_as)
            .await?;
        decode_jsonrpc_answer(
            path,
            answer.status.as_u16(),
            retry_after(&answer.headers),
            &answer.body,
            target,
        )
    }

    /// Reads the server version without authenticating: `common.version` on
    /// `/jsonrpc`, then `/web/webclient/version_info`, then 19's `GET /web/version`.
    pub async fn probe_version(&self) -> Result<ServerVersion, OdooError> {
        let params = json!({"service": "common", "method": "version", "args": []});
        let first = match self
            .jsonrpc("jsonrpc", params, 1, ("common", "version"), None)
            .await
        {
            Ok(info) => return ServerVersion::from_version_info(&info),
            Err(err) if err.is_transient() => return Err(err),
            Err(err) => err,
        };
        match self
            .jsonrpc(
                "web/webclient/version_info",
                json!({}),
                1,
                ("web", "version_info"),
                None,
            )
            .await
        {
            Ok(info) => return ServerVersion::from_version_info(&info),
            Err(err) if err.is_transient() => return Err(err),
            Err(_) => {}
        }
        let request = self.http.get(self.url("web/version")?);
        let answer = self.send(request, ("web", "version")).await?;
        if !answer.status.is_success() {
            return Err(first);
        }
        let info: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| OdooError::protocol(format!("/web/version answered invalid JSON: {e}")))?;
        ServerVersion::from_version_info(&info)
    }
}

/// Turns the bytes of a JSON-RPC answer into the call's `result` or a typed
/// error: the HTTP status first, then the envelope's `error` member. Free of
/// I/O so that the fuzz tests can feed it any answer.
pub fn decode_jsonrpc_answer(
    path: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    target: Option<CallTarget<'_>>,
) -> Result<Value, OdooError> {
    if !(200..300).contains(&status) {
        if let Some(err) = transport_status(status, retry_after, body) {
            return Err(err);
        }
        let snippet = error::body_snippet(body);
        return Err(match status {
            500..=599 => OdooError::transient(
                error::TransientKind::Http5xx { status },
                format!("HTTP {status}: {snippet}"),
            ),
            404 => OdooError::protocol(format!(
                "{path} not found (HTTP 404); on Odoo 19+ use the JSON-2 protocol"
            )),
            _ => OdooError::protocol(format!("unexpected HTTP {status} from {path}: {snippet}")),
        });
    }
    let mut reply: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        OdooError::protocol(format!(
            "{path} answered with invalid JSON-RPC ({e}): {}",
            error::body_snippet(body)
        ))
    })?;
    if let Some(error) = reply.get("error") {
        return Err(from_jsonrpc_error(error, target));
    }
    // Odoo leaves `result` out when the method returned None
    // (`action_apply_inventory`, `button_cancel`, ...).
    Ok(reply.remove("result").unwrap_or(Value::Null))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `/jsonrpc` with `object.execute_kw(db, uid, key, model, method, args, kwargs)`.
pub struct JsonRpcTransport {
    wire: Arc<Wire>,
    database: String,
    uid: i64,
    api_key: Secret,
    next_id: AtomicU64,
}

impl fmt::Debug for JsonRpcTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonRpcTransport")
            .field("wire", &self.wire)
            .field("database", &self.database)
            .field("uid", &self.uid)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl JsonRpcTransport {
    /// Logs in with `common.authenticate`; `false` means wrong login or key.
    pub async fn authenticate(
        wire: Arc<Wire>,
        database: &str,
        login: &str,
        api_key: Secret,
    ) -> Result<JsonRpcTransport, OdooError> {
        let params = json!({"service": "common", "method": "authenticate",
                            "args": [database, login, api_key.expose(), {}]});
        let result = wire
            .jsonrpc("jsonrpc", params, 1, ("common", "authenticate"), None)
            .await
            .map_err(|e| e.in_call("common.authenticate"))?;
        let uid = match result {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .filter(|uid| *uid > 0)
        .ok_or_else(|| {
            OdooError::new(ErrorKind::Authentication {
                message: format!(
                    "Odoo refused login {login:?} on database {database:?} with the given API key"
                ),
            })
            .in_call("common.authenticate")
        })?;
        Ok(JsonRpcTransport {
            wire,
            database: database.to_string(),
            uid,
            api_key,
            next_id: AtomicU64::new(2),
        })
    }

    async fn execute_kw(&self, call: &Call) -> Result<Value, OdooError> {
        let mut positional = Vec::with_capacity(call.args.len() + 1);
        if let Some(ids) = &call.ids {
            positional.push(json!(ids));
        }
        positional.extend(call.args.iter().map(|(_, value)| value.clone()));
        let mut kwargs = call.kwargs.clone();
        if !call.context.is_empty() {
            kwargs.insert("context".into(), Value::Object(call.context.clone()));
        }
        let params = json!({"service": "object", "method": "execute_kw",
                            "args": [self.database, self.uid, self.api_key.expose(),
                                     call.model, call.method, positional, kwargs]});
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.wire
            .jsonrpc(
                "jsonrpc",
                params,
                id,
                (&call.model, &call.method),
                Some(call.target()),
            )
            .await
    }
}

impl Transport for JsonRpcTransport {
    fn protocol(&self) -> Protocol {
        Protocol::JsonRpc
    }

    fn uid(&self) -> i64 {
        self.uid
    }

    fn execute<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Value, OdooError>> {
        Box::pin(self.execute_kw(call))
    }
}

/// `POST /json/2/<model>/<method>` with `Authorization: bearer <key>`.
pub struct Json2Transport {
    wire: Arc<Wire>,
    headers: HeaderMap,
    uid: i64,
}

impl fmt::Debug for Json2Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The headers hold the bearer key: never print them.
        f.debug_struct("Json2Transport")
            .field("wire", &self.wire)
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl Json2Transport {
    /// Checks the key with `res.users.context_get`, which also names the uid.
    pub async fn connect(
        wire: Arc<Wire>,
        database: &str,
        api_key: &Secret,
    ) -> Result<Json2Transport, OdooError> {
        let mut headers = HeaderMap::new();
        let mut auth =
            HeaderValue::from_str(&format!("bearer {}", api_key.expose())).map_err(|_| {
                OdooError::config("the API key contains characters not allowed in a header")
            })?;
        auth.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, auth);
        let db = HeaderValue::from_str(database).map_err(|_| {
            OdooError::config(format!(
                "database name {database:?} is not a valid header value"
            ))
        })?;
        headers.insert("X-Odoo-Database", db);
        let mut transport = Json2Transport {
            wire,
            headers,
            uid: 0,
        };
        let context = transport
            .post(&Call::new("res.users", "context_get"))
            .await
            .map_err(|e| e.in_call("res.users.context_get"))?;
        transport.uid = context.get("uid").and_then(Value::as_i64).ok_or_else(|| {
            OdooError::protocol(format!("context_get answer has no uid: {context}"))
        })?;
        Ok(transport)
    }

    async fn post(&self, call: &Call) -> Result<Value, OdooError> {
        let path = json2_path(&call.model, &call.method)?;
        let mut body = Map::new();
        if let Some(ids) = &call.ids {
            body.insert("ids".into(), json!(ids));
        }
        for (name, value) in &call.args {
            body.insert(name.clone(), value.clone());
        }
        for (name, value) in &call.kwargs {
            body.insert(name.clone(), value.clone());
        }
        if !call.context.is_empty() {
            body.insert("context".into(), Value::Object(call.context.clone()));
        }
        let answer = self
            .wire
            .post_json(
                &path,
                self.headers.clone(),
                &Value::Object(body),
                (&call.model, &call.method),
            )
            .await?;
        decode_json2_answer(
            answer.status.as_u16(),
            retry_after(&answer.headers),
            &answer.body,
            Some(call.target()),
        )
    }
}

impl Transport for Json2Transport {
    fn protocol(&self) -> Protocol {
        Protocol::Json2
    }

    fn uid(&self) -> i64 {
        self.uid
    }

    fn execute<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Value, OdooError>> {
        Box::pin(self.post(call))
    }
}

/// Turns the bytes of a JSON-2 answer into the method's return value or a
/// typed error; an empty body is a method that returned nothing.
pub fn decode_json2_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    target: Option<CallTarget<'_>>,
) -> Result<Value, OdooError> {
    if !(200..300).contains(&status) {
        return Err(from_json2_failure(status, retry_after, body, target));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        OdooError::protocol(format!(
            "JSON-2 answered invalid JSON ({e}): {}",
            error::body_snippet(body)
        ))
    })
}

/// `json/2/<model>/<method>`, refusing names that would change the path.
fn json2_path(model: &str, method: &str) -> Result<String, OdooError> {
    let valid = |name: &str, dots: bool| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dots && c == '.'))
    };
    if !valid(model, true) || !valid(method, false) {
        return Err(OdooError::new(ErrorKind::InvalidArgument {
            name: "planops.InvalidName".into(),
            message: format!("{model:?}.{method:?} is not a valid model/method name"),
        }));
    }
    Ok(format!("json/2/{model}/{method}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json2_paths_are_checked() {
        assert_eq!(
            json2_path("stock.warehouse.orderpoint", "search_read").unwrap(),
            "json/2/stock.warehouse.orderpoint/search_read"
        );
        assert!(json2_path("res.partner/../x", "read").is_err());
        assert!(json2_path("res.partner", "a.b").is_err());
        assert!(json2_path("", "read").is_err());
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("12"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn wire_keeps_a_path_prefix() {
        let limiter = Arc::new(RequestLimiter::new(&Default::default()).unwrap());
        let wire = Wire::new(
            "https://example.com/odoo",
            Duration::from_secs(5),
            "t",
            limiter.clone(),
            Default::default(),
        )
        .unwrap();
        assert_eq!(
            wire.url("/jsonrpc").unwrap().as_str(),
            "https://example.com/odoo/jsonrpc"
        );
        assert!(
            Wire::new(
                "ftp://x",
                Duration::from_secs(1),
                "t",
                limiter,
                Default::default()
            )
            .is_err()
        );
    }
}
