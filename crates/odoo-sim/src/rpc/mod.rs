//! Protocol-independent part of the simulator's RPC layer: Odoo's `common`,
//! `object` and `db` services, credential checks, the ORM call wrapper that
//! applies call-level faults and sends webhooks, and the mapping from errors
//! to Odoo's exception classes that each protocol renders its own way.

pub mod json2;
pub mod jsonrpc;
pub mod session;
pub mod xmlrpc;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::db::{Edition, OdooVersion, OrmError};
use super::faults::CallFault;
use super::server::SimState;

/// Superuser id of every Odoo database; used only to look up a login.
const SUPERUSER_UID: i64 = 1;
/// `base.login_cooldown_after` as written at database creation.
const LOGIN_COOLDOWN_AFTER: u32 = 10;
/// `base.login_cooldown_duration`.
const LOGIN_COOLDOWN: Duration = Duration::from_secs(60);
const COOLDOWN_MESSAGE: &str = "Too many login failures, please wait a bit before trying again.";

/// Why an RPC failed, before it is rendered by a protocol.
#[derive(Debug)]
pub enum RpcError {
    /// An exception raised by the ORM.
    Orm(OrmError),
    /// PostgreSQL gave up on a concurrent update after Odoo's retries.
    SerializationFailure,
    /// The database named in the call does not exist on this server.
    DatabaseNotFound(String),
    /// A Python exception outside `odoo.exceptions` (`builtins.TypeError`, …).
    Python { name: &'static str, message: String },
    /// A `/web/*` call without a valid session cookie.
    SessionExpired,
    /// Login refused because of too many recent failures from this address.
    LoginCooldown,
}

impl From<OrmError> for RpcError {
    fn from(error: OrmError) -> Self {
        RpcError::Orm(error)
    }
}

impl RpcError {
    pub fn type_error(message: impl Into<String>) -> RpcError {
        RpcError::Python {
            name: "builtins.TypeError",
            message: message.into(),
        }
    }

    /// The exception Odoo would raise, as a name and message.
    pub fn exception(&self) -> ExceptionInfo {
        match self {
            // `service/model.py` raises UserError for an unknown model name.
            RpcError::Orm(error @ OrmError::UnknownModel(_)) => {
                ExceptionInfo::new("odoo.exceptions.UserError", error.to_string())
            }
            RpcError::Orm(error @ OrmError::AccessDenied) => {
                ExceptionInfo::access_denied(error.to_string())
            }
            RpcError::Orm(error) => {
                ExceptionInfo::new(error.odoo_exception_name(), error.to_string())
            }
            RpcError::SerializationFailure => ExceptionInfo::new(
                "psycopg2.errors.SerializationFailure",
                "could not serialize access due to concurrent update".to_string(),
            ),
            RpcError::DatabaseNotFound(name) => ExceptionInfo::new(
                "psycopg2.OperationalError",
                format!(
                    "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  database \"{name}\" does not exist"
                ),
            ),
            RpcError::Python { name, message } => ExceptionInfo::new(name, message.clone()),
            RpcError::SessionExpired => ExceptionInfo::new(
                "odoo.http.SessionExpiredException",
                "Session expired".to_string(),
            ),
            RpcError::LoginCooldown => ExceptionInfo::access_denied(COOLDOWN_MESSAGE.to_string()),
        }
    }
}

/// An exception as Odoo serialises it (`odoo.http.serialize_exception`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionInfo {
    /// `<module>.<class>`, e.g. `odoo.exceptions.ValidationError`.
    pub name: String,
    pub message: String,
    pub arguments: Vec<Value>,
    /// Python-style traceback text (`data.debug`, XML-RPC fault 1 string).
    pub traceback: String,
}

impl ExceptionInfo {
    pub fn new(name: &str, message: String) -> ExceptionInfo {
        let traceback = format!(
            "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/odoo/service/model.py\", line 156, in dispatch\n    return fn(db, uid, *params)\n  File \"/usr/lib/python3/dist-packages/odoo/service/model.py\", line 134, in execute_kw\n    return execute(db, uid, obj, method, *args, **kw or {{}})\n{}: {}\n",
            python_class_label(name),
            message
        );
        ExceptionInfo {
            name: name.to_string(),
            arguments: vec![Value::String(message.clone())],
            message,
            traceback,
        }
    }

    /// `AccessDenied` drops its traceback on purpose (it may reveal login details).
    fn access_denied(message: String) -> ExceptionInfo {
        ExceptionInfo {
            name: "odoo.exceptions.AccessDenied".to_string(),
            arguments: vec![Value::String(message.clone())],
            traceback: format!("odoo.exceptions.AccessDenied: {message}\n"),
            message,
        }
    }

    fn short_class(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    fn is_user_error_family(&self) -> bool {
        matches!(
            self.name.as_str(),
            "odoo.exceptions.UserError"
                | "odoo.exceptions.ValidationError"
                | "odoo.exceptions.MissingError"
                | "odoo.exceptions.RedirectWarning"
                | "odoo.exceptions.LockError"
                | "odoo.exceptions.CacheMiss"
        )
    }

    /// `faultCode` of `/xmlrpc/2/*` (`xmlrpc_handle_exception_int`).
    pub fn xmlrpc_fault_code(&self) -> i32 {
        match self.name.as_str() {
            "odoo.exceptions.RedirectWarning" => 2,
            "odoo.exceptions.AccessError" => 4,
            "odoo.exceptions.AccessDenied" => 3,
            _ if self.is_user_error_family() => 2,
            _ => 1,
        }
    }

    /// `faultString` of `/xmlrpc/2/*`: the message, or the traceback for code 1.
    pub fn xmlrpc_fault_string(&self) -> String {
        if self.xmlrpc_fault_code() == 1 {
            self.traceback.clone()
        } else {
            self.message.clone()
        }
    }

    /// `(faultCode, faultString)` of the legacy `/xmlrpc/*` routes, whose codes are strings.
    pub fn legacy_fault(&self) -> (String, String) {
        let warning = |kind: &str| {
            (
                format!("warning -- {kind}\n\n{}", self.message),
                String::new(),
            )
        };
        match self.short_class() {
            "RedirectWarning" => warning("Warning"),
            "MissingError" => warning("MissingError"),
            "AccessError" => warning("AccessError"),
            "AccessDenied" => ("AccessDenied".to_string(), self.message.clone()),
            _ if self.is_user_error_family() => warning("UserError"),
            _ => (self.message.clone(), self.traceback.clone()),
        }
    }
}

/// Python prints builtins without their module.
fn python_class_label(name: &str) -> &str {
    name.strip_prefix("builtins.").unwrap_or(name)
}

/// Per-request facts the protocol handlers pass down to the shared dispatch.
pub struct CallCtx {
    pub peer: IpAddr,
    drop_reply: AtomicBool,
}

impl CallCtx {
    pub fn new(peer: IpAddr) -> CallCtx {
        CallCtx {
            peer,
            drop_reply: AtomicBool::new(false),
        }
    }

    /// Whether the call was executed and its reply must now be lost.
    pub fn reply_dropped(&self) -> bool {
        self.drop_reply.load(Ordering::Relaxed)
    }
}

/// Arguments of an ORM call: positional + keyword (XML-RPC, JSON-RPC) or named (JSON-2).
pub enum OrmArgs {
    Positional {
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    },
    Named(Map<String, Value>),
}

/// The dict returned by `common.version()` and `/web/webclient/version_info`.
pub fn version_info(version: OdooVersion, edition: Edition) -> Value {
    let (suffix, marker) = match edition {
        Edition::Community => ("", ""),
        Edition::Enterprise => ("+e", "e"),
    };
    json!({
        "server_version": format!("{}{suffix}", version.server_version()),
        "server_version_info": [version.major(), 0, 0, "final", 0, marker],
        "server_serie": version.server_version(),
        "protocol_version": 1,
    })
}

fn positional<'a>(
    params: &'a [Value],
    index: usize,
    function: &str,
    name: &str,
) -> Result<&'a Value, RpcError> {
    params.get(index).ok_or_else(|| {
        RpcError::type_error(format!(
            "{function}() missing 1 required positional argument: '{name}'"
        ))
    })
}

fn positional_str<'a>(
    params: &'a [Value],
    index: usize,
    function: &str,
    name: &str,
) -> Result<&'a str, RpcError> {
    match positional(params, index, function, name)? {
        Value::String(text) => Ok(text),
        // Odoo compares these against strings, so a non-string never matches.
        _ => Ok(""),
    }
}

impl SimState {
    fn check_database(&self, name: &str) -> Result<(), RpcError> {
        if name == self.db.name() {
            Ok(())
        } else {
            Err(RpcError::DatabaseNotFound(name.to_string()))
        }
    }

    /// Checks a login; `interactive` is the browser path, where API keys are refused.
    pub async fn login(
        &self,
        peer: IpAddr,
        database: &str,
        login: &str,
        password: &str,
        interactive: bool,
    ) -> Result<Option<i64>, RpcError> {
        self.check_database(database)?;
        if self.in_login_cooldown(peer) {
            return Err(RpcError::LoginCooldown);
        }
        let db = self.db.clone();
        let (login_owned, password_owned) = (login.to_string(), password.to_string());
        let uid = tokio::task::spawn_blocking(move || {
            if interactive && db.uid_for_api_key(&password_owned).is_some() {
                return None;
            }
            db.authenticate(&login_owned, &password_owned)
        })
        .await
        .map_err(|error| RpcError::Python {
            name: "builtins.RuntimeError",
            message: format!("authentication task failed: {error}"),
        })?;
        match uid {
            Some(uid) => {
                self.remember_credentials(uid, password);
                self.clear_login_failures(peer);
            }
            None => self.record_login_failure(peer),
        }
        Ok(uid)
    }

    fn in_login_cooldown(&self, peer: IpAddr) -> bool {
        let failures = self
            .login_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        failures.get(&peer).is_some_and(|(count, last)| {
            *count >= LOGIN_COOLDOWN_AFTER && last.elapsed() < LOGIN_COOLDOWN
        })
    }

    fn record_login_failure(&self, peer: IpAddr) {
        let mut failures = self
            .login_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = failures.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOGIN_COOLDOWN {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    fn clear_login_failures(&self, peer: IpAddr) {
        self.login_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&peer);
    }

    fn remember_credentials(&self, uid: i64, password: &str) {
        self.verified_credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((uid, credential_digest(password)));
    }

    /// The per-call `uid` + password/API key check of the `object` service
    /// (Odoo caches successful checks the same way).
    pub async fn check_credentials(&self, uid: i64, password: &str) -> Result<(), RpcError> {
        let digest = credential_digest(password);
        let known = self
            .verified_credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(uid, digest));
        if known {
            return Ok(());
        }
        let db = self.db.clone();
        let password_owned = password.to_string();
        let valid = tokio::task::spawn_blocking(move || {
            if db.uid_for_api_key(&password_owned) == Some(uid) {
                return true;
            }
            let login = db
                .execute_kw(
                    SUPERUSER_UID,
                    "res.users",
                    "read",
                    vec![json!([uid]), json!(["login"])],
                    Map::new(),
                )
                .ok()
                .and_then(|rows| rows.get(0)?.get("login")?.as_str().map(str::to_string));
            login.is_some_and(|login| db.authenticate(&login, &password_owned) == Some(uid))
        })
        .await
        .unwrap_or(false);
        if valid {
            self.remember_credentials(uid, password);
            Ok(())
        } else {
            Err(RpcError::Orm(OrmError::AccessDenied))
        }
    }

    /// Runs one ORM method: private-method guard, call-level faults, the call
    /// itself on a blocking thread, then the webhooks it queued.
    pub async fn call_orm(
        self: &Arc<Self>,
        ctx: &CallCtx,
        uid: i64,
        model: &str,
        method: &str,
        args: OrmArgs,
    ) -> Result<Value, RpcError> {
        self.stats.record_model_call(model, method);
        if method.starts_with('_') {
            return Err(RpcError::Orm(OrmError::Access(format!(
                "Private methods (such as '{model}.{method}') cannot be called remotely."
            ))));
        }
        match self.faults.before_call() {
            CallFault::SerializationFailure => {
                self.stats.record_fault(|f| f.serialization_failures += 1);
                return Err(RpcError::SerializationFailure);
            }
            CallFault::Proceed { drop_reply } => {
                if drop_reply {
                    self.stats.record_fault(|f| f.dropped_replies += 1);
                    ctx.drop_reply.store(true, Ordering::Relaxed);
                }
            }
        }
        // Writers take turns, as PostgreSQL's locks make them wait for a
        // transaction that is still sending its webhooks; readers never wait.
        let writes = !crate::db::is_read_only(method);
        let _transaction = if writes {
            Some(self.transactions.lock().await)
        } else {
            None
        };
        let db = self.db.clone();
        let (model_owned, method_owned) = (model.to_string(), method.to_string());
        let result = tokio::task::spawn_blocking(move || match args {
            OrmArgs::Positional { args, kwargs } => {
                db.execute_kw_uncommitted(uid, &model_owned, &method_owned, args, kwargs)
            }
            OrmArgs::Named(params) => {
                db.execute_named_uncommitted(uid, &model_owned, &method_owned, params)
            }
        })
        .await
        .map_err(|error| RpcError::Python {
            name: "builtins.RuntimeError",
            message: format!("ORM task failed: {error}"),
        })?
        .map_err(RpcError::Orm);
        // Only the writer that queued webhooks sends them and commits.
        if writes {
            self.send_webhooks(result.is_ok()).await;
        }
        result
    }

    /// 17/18 POST inside the transaction, before the reply and before the
    /// call's changes are visible to anyone else; 19 after commit.
    async fn send_webhooks(self: &Arc<Self>, committed: bool) {
        let deliveries = self.db.drain_webhooks();
        if deliveries.is_empty() {
            self.db.commit();
            return;
        }
        if self.db.version() >= OdooVersion::V19 {
            if !committed {
                tracing::info!(
                    count = deliveries.len(),
                    "webhooks cancelled due to a rollback"
                );
                return;
            }
            let webhooks = Arc::clone(&self.webhooks);
            tokio::spawn(async move { webhooks.deliver_all(deliveries).await });
        } else {
            self.webhooks.deliver_all(deliveries).await;
            let delay = self.faults.webhook_commit_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.db.commit();
        }
    }
}

fn credential_digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

/// Serves Odoo's RPC services (`common`, `object`, `db`), shared by XML-RPC and `/jsonrpc`.
pub async fn dispatch_service(
    state: &Arc<SimState>,
    ctx: &CallCtx,
    service: &str,
    method: &str,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    state
        .stats
        .record_rpc_method(&format!("{service}.{method}"));
    match service {
        "common" => dispatch_common(state, ctx, method, &params).await,
        "object" => dispatch_object(state, ctx, method, params).await,
        "db" => dispatch_db(state, method, &params),
        _ => Err(RpcError::Python {
            name: "builtins.KeyError",
            message: format!("'{service}'"),
        }),
    }
}

async fn dispatch_common(
    state: &Arc<SimState>,
    ctx: &CallCtx,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcError> {
    match method {
        "version" => Ok(version_info(state.db.version(), state.db.edition())),
        "about" => {
            let text = Value::String("See http://openerp.com".to_string());
            let extended = params.first().is_some_and(is_truthy);
            if extended {
                Ok(json!([text, state.db.version().server_version()]))
            } else {
                Ok(text)
            }
        }
        "login" | "authenticate" => {
            let function = format!("exp_{method}");
            let database = positional_str(params, 0, &function, "db")?;
            let login = positional_str(params, 1, &function, "login")?;
            let password = positional_str(params, 2, &function, "password")?;
            if method == "authenticate" {
                positional(params, 3, &function, "user_agent_env")?;
            }
            // RPC logins swallow AccessDenied (cooldown included) and answer false.
            match state
                .login(ctx.peer, database, login, password, false)
                .await
            {
                Ok(Some(uid)) => Ok(json!(uid)),
                Ok(None) | Err(RpcError::LoginCooldown) => Ok(Value::Bool(false)),
                Err(error) => Err(error),
            }
        }
        _ => Err(RpcError::Python {
            name: "builtins.KeyError",
            message: format!("'exp_{method}'"),
        }),
    }
}

async fn dispatch_object(
    state: &Arc<SimState>,
    ctx: &CallCtx,
    method: &str,
    mut params: Vec<Value>,
) -> Result<Value, RpcError> {
    let function = match method {
        "execute" | "execute_kw" => method,
        _ => {
            return Err(RpcError::Python {
                name: "builtins.NameError",
                message: format!("Method not available {method}"),
            });
        }
    };
    let required = ["db", "uid", "passwd", "obj", "method"];
    if params.len() < required.len() {
        let missing = &required[params.len()..];
        let names = missing
            .iter()
            .map(|name| format!("'{name}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(RpcError::type_error(format!(
            "{function}() missing {} required positional argument{}: {names}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
        )));
    }
    let rest = params.split_off(required.len());
    let database = params[0].as_str().unwrap_or_default().to_string();
    state.check_database(&database)?;
    let uid = params[1]
        .as_i64()
        .ok_or(RpcError::Orm(OrmError::AccessDenied))?;
    let password = params[2].as_str().unwrap_or_default();
    state.check_credentials(uid, password).await?;
    let model = params[3]
        .as_str()
        .ok_or_else(|| RpcError::type_error("model name must be a string"))?;
    let model_method = params[4]
        .as_str()
        .ok_or_else(|| RpcError::type_error("method name must be a string"))?;
    let args = if function == "execute" {
        OrmArgs::Positional {
            args: rest,
            kwargs: Map::new(),
        }
    } else {
        let mut rest = rest.into_iter();
        let args = match rest.next() {
            Some(Value::Array(args)) => args,
            Some(other) => {
                return Err(RpcError::type_error(format!(
                    "execute_kw() argument 'args' must be a list, not {}",
                    python_type_name(&other)
                )));
            }
            None => {
                return Err(RpcError::type_error(
                    "execute_kw() missing 1 required positional argument: 'args'",
                ));
            }
        };
        let kwargs = match rest.next() {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(kwargs)) => kwargs,
            Some(other) => {
                return Err(RpcError::type_error(format!(
                    "execute_kw() argument after ** must be a mapping, not {}",
                    python_type_name(&other)
                )));
            }
        };
        OrmArgs::Positional { args, kwargs }
    };
    state.call_orm(ctx, uid, model, model_method, args).await
}

fn dispatch_db(state: &SimState, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    match method {
        "list" => Ok(json!([state.db.name()])),
        "server_version" => Ok(json!(state.db.version().server_version())),
        "db_exist" => {
            let name = positional_str(params, 0, "exp_db_exist", "db_name")?;
            Ok(Value::Bool(name == state.db.name()))
        }
        // Creating, dropping or restoring databases needs the master password,
        // which this server does not have.
        _ => Err(RpcError::Orm(OrmError::AccessDenied)),
    }
}

fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(true) => true,
    }
}

fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_codes_follow_odoo_order() {
        let code = |error: RpcError| error.exception().xmlrpc_fault_code();
        assert_eq!(code(RpcError::Orm(OrmError::Access("no".into()))), 4);
        assert_eq!(code(RpcError::Orm(OrmError::AccessDenied)), 3);
        assert_eq!(code(RpcError::Orm(OrmError::Validation("bad".into()))), 2);
        assert_eq!(code(RpcError::Orm(OrmError::Missing("gone".into()))), 2);
        assert_eq!(code(RpcError::Orm(OrmError::UnknownModel("x.y".into()))), 2);
        assert_eq!(code(RpcError::Orm(OrmError::Value("bad field".into()))), 1);
        assert_eq!(code(RpcError::SerializationFailure), 1);
    }

    #[test]
    fn fault_one_carries_a_traceback_ending_with_the_exception() {
        let info = RpcError::Orm(OrmError::Value("Invalid field 'x'".into())).exception();
        let text = info.xmlrpc_fault_string();
        assert!(text.starts_with("Traceback (most recent call last):"));
        assert!(text.ends_with("ValueError: Invalid field 'x'\n"), "{text}");
        let serialization = RpcError::SerializationFailure
            .exception()
            .xmlrpc_fault_string();
        assert!(serialization.contains(
            "psycopg2.errors.SerializationFailure: could not serialize access due to concurrent update"
        ));
    }

    #[test]
    fn legacy_faults_use_string_codes() {
        let missing = RpcError::Orm(OrmError::Missing("Record does not exist".into())).exception();
        assert_eq!(
            missing.legacy_fault(),
            (
                "warning -- MissingError\n\nRecord does not exist".to_string(),
                String::new()
            )
        );
        let denied = RpcError::Orm(OrmError::AccessDenied).exception();
        assert_eq!(
            denied.legacy_fault(),
            ("AccessDenied".to_string(), "Access Denied".to_string())
        );
        let validation = RpcError::Orm(OrmError::Validation("min > max".into())).exception();
        assert_eq!(
            validation.legacy_fault().0,
            "warning -- UserError\n\nmin > max"
        );
    }

    #[test]
    fn access_denied_hides_its_traceback() {
        let info = RpcError::Orm(OrmError::AccessDenied).exception();
        assert_eq!(
            info.traceback,
            "odoo.exceptions.AccessDenied: Access Denied\n"
        );
        assert_eq!(info.arguments, vec![json!("Access Denied")]);
    }

    #[test]
    fn version_info_marks_enterprise() {
        let info = version_info(OdooVersion::V17, Edition::Enterprise);
        assert_eq!(info["server_version"], "17.0+e");
        assert_eq!(
            info["server_version_info"],
            json!([17, 0, 0, "final", 0, "e"])
        );
        assert_eq!(info["server_serie"], "17.0");
        let community = version_info(OdooVersion::V19, Edition::Community);
        assert_eq!(community["server_version"], "19.0");
        assert_eq!(community["protocol_version"], 1);
    }
}
