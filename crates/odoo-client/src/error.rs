//! Typed errors of the Odoo client, mapped from the error payloads of each
//! protocol: the JSON-RPC `error` member and the JSON-2
//! status + `{name, message, arguments, context, debug}` body.
//!
//! Every error keeps Odoo's exception name and message so that the operator
//! can show them in status conditions; tracebacks (`debug`) are dropped, they
//! are long and may quote request data.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// Longest raw HTTP body quoted in an error (proxies answer with HTML pages).
const MAX_BODY_SNIPPET: usize = 300;

/// Why a call failed in a way that may succeed if repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransientKind {
    /// A 5xx answer without an Odoo exception in it (proxy, worker killed).
    Http5xx { status: u16 },
    /// No complete answer within the configured timeout.
    Timeout,
    /// The connection broke after the request was (possibly) sent.
    ConnectionReset,
    /// The server could not be reached at all: nothing was sent.
    Unreachable,
    /// Odoo gave up on a concurrent-update conflict after its own retries
    /// (`SerializationFailure`, deadlock, `LockError`); the transaction was rolled back.
    SerializationFailure,
    /// HTTP 429 from a proxy, with its `Retry-After` when given.
    RateLimited { retry_after: Option<Duration> },
}

impl TransientKind {
    /// Whether Odoo may have committed the call before it failed. Only calls
    /// that are safe to repeat may be retried after such a failure.
    pub fn may_have_committed(self) -> bool {
        match self {
            TransientKind::Unreachable
            | TransientKind::SerializationFailure
            | TransientKind::RateLimited { .. } => false,
            // 503 is what proxies answer when no worker took the request.
            TransientKind::Http5xx { status } => status != 503,
            TransientKind::Timeout | TransientKind::ConnectionReset => true,
        }
    }
}

impl fmt::Display for TransientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransientKind::Http5xx { status } => write!(f, "HTTP {status}"),
            TransientKind::Timeout => f.write_str("timeout"),
            TransientKind::ConnectionReset => f.write_str("connection reset"),
            TransientKind::Unreachable => f.write_str("unreachable"),
            TransientKind::SerializationFailure => f.write_str("serialization failure"),
            TransientKind::RateLimited {
                retry_after: Some(after),
            } => write!(f, "rate limited (retry after {}s)", after.as_secs()),
            TransientKind::RateLimited { retry_after: None } => f.write_str("rate limited"),
        }
    }
}

/// What went wrong, independent of which call it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// Wrong login or API key (`AccessDenied`, `common.authenticate` → false, JSON-2 401).
    #[error("authentication failed: {message}")]
    Authentication { message: String },
    /// The user lacks rights (ACL, record rule, private method).
    #[error("access error ({name}): {message}")]
    Access { name: String, message: String },
    /// A constraint rejected the values (`ValidationError`, integrity errors).
    #[error("validation error ({name}): {message}")]
    Validation { name: String, message: String },
    /// A record that the call refers to does not exist (any more).
    #[error("missing record ({name}): {message}")]
    MissingRecord { name: String, message: String },
    /// A business rule refused the operation (`UserError`, `RedirectWarning`).
    #[error("user error ({name}): {message}")]
    User { name: String, message: String },
    /// The call itself is malformed: bad domain, unknown field, wrong argument
    /// (`ValueError`, `TypeError`, JSON-2 400/422).
    #[error("invalid argument ({name}): {message}")]
    InvalidArgument { name: String, message: String },
    /// A cookie session expired (JSON-RPC code 100).
    #[error("session expired: {message}")]
    SessionExpired { message: String },
    #[error("unknown model {model:?}: {message}")]
    UnknownModel { model: String, message: String },
    #[error("unknown method {method:?} on model {model:?}: {message}")]
    UnknownMethod {
        model: String,
        method: String,
        message: String,
    },
    /// May succeed if repeated; see [`TransientKind`].
    #[error("transient failure ({kind}): {message}")]
    Transient {
        kind: TransientKind,
        message: String,
    },
    /// Any other exception raised inside Odoo (a bug, an unmarshallable result).
    #[error("server error ({name}): {message}")]
    Server { name: String, message: String },
    /// The answer does not follow the protocol (not JSON, wrong shape, unexpected status).
    #[error("protocol error: {message}")]
    Protocol { message: String },
    /// The server runs a version PlanOps does not support.
    #[error("unsupported Odoo version {version:?}")]
    UnsupportedVersion { version: String },
    /// The client configuration is unusable (bad URL, zero rate).
    #[error("invalid client configuration: {message}")]
    Config { message: String },
}

/// An error of one Odoo call, with the call it came from (`model.method`).
#[derive(Debug, Clone, PartialEq)]
pub struct OdooError {
    call: Option<String>,
    kind: ErrorKind,
}

impl fmt::Display for OdooError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.call {
            Some(call) => write!(f, "Odoo call {call} failed: {}", self.kind),
            None => write!(f, "Odoo: {}", self.kind),
        }
    }
}

impl std::error::Error for OdooError {}

impl From<ErrorKind> for OdooError {
    fn from(kind: ErrorKind) -> OdooError {
        OdooError { call: None, kind }
    }
}

impl OdooError {
    pub fn new(kind: ErrorKind) -> OdooError {
        kind.into()
    }

    /// Records which call failed (kept if already set: the innermost call is the useful one).
    pub fn in_call(mut self, call: impl Into<String>) -> OdooError {
        if self.call.is_none() {
            self.call = Some(call.into());
        }
        self
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub fn into_kind(self) -> ErrorKind {
        self.kind
    }

    /// The call that failed, as `model.method` or `service.method`.
    pub fn call(&self) -> Option<&str> {
        self.call.as_deref()
    }

    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient { .. })
    }

    pub fn transient_kind(&self) -> Option<TransientKind> {
        match &self.kind {
            ErrorKind::Transient { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn is_authentication(&self) -> bool {
        matches!(self.kind, ErrorKind::Authentication { .. })
    }

    /// Whether Odoo may have applied the call although it failed (a timeout or
    /// a reset after the request went out). For a write, only looking the record
    /// up tells whether it landed; when that look-up fails too, the write's
    /// outcome is unknown rather than failed.
    pub fn may_have_committed(&self) -> bool {
        self.transient_kind()
            .is_some_and(TransientKind::may_have_committed)
    }

    /// Whether any other call on the same connection would fail alike (the
    /// credentials, the client configuration, the server version), so that a
    /// caller working through independent writes stops at it instead of failing
    /// each in turn.
    pub fn fails_every_call(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Authentication { .. }
                | ErrorKind::SessionExpired { .. }
                | ErrorKind::Config { .. }
                | ErrorKind::UnsupportedVersion { .. }
        )
    }

    /// Odoo's exception name (`odoo.exceptions.AccessError`, ...) when Odoo reported one.
    pub fn exception_name(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Access { name, .. }
            | ErrorKind::Validation { name, .. }
            | ErrorKind::MissingRecord { name, .. }
            | ErrorKind::User { name, .. }
            | ErrorKind::InvalidArgument { name, .. }
            | ErrorKind::Server { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The human message (Odoo's own text when it sent one), for status conditions.
    pub fn message(&self) -> &str {
        match &self.kind {
            ErrorKind::Authentication { message }
            | ErrorKind::Access { message, .. }
            | ErrorKind::Validation { message, .. }
            | ErrorKind::MissingRecord { message, .. }
            | ErrorKind::User { message, .. }
            | ErrorKind::InvalidArgument { message, .. }
            | ErrorKind::SessionExpired { message }
            | ErrorKind::UnknownModel { message, .. }
            | ErrorKind::UnknownMethod { message, .. }
            | ErrorKind::Transient { message, .. }
            | ErrorKind::Server { message, .. }
            | ErrorKind::Protocol { message }
            | ErrorKind::Config { message } => message,
            ErrorKind::UnsupportedVersion { version } => version,
        }
    }

    /// Replaces every occurrence of `secret` in the texts of the error. A
    /// last line of defence: a server or proxy that echoes a request would
    /// otherwise put the API key into an operator status.
    pub fn redact(mut self, secret: &str) -> OdooError {
        if secret.is_empty() {
            return self;
        }
        let scrub = |text: &mut String| {
            if text.contains(secret) {
                *text = text.replace(secret, super::secret::REDACTED);
            }
        };
        match &mut self.kind {
            ErrorKind::Authentication { message }
            | ErrorKind::SessionExpired { message }
            | ErrorKind::Transient { message, .. }
            | ErrorKind::Protocol { message }
            | ErrorKind::Config { message } => scrub(message),
            ErrorKind::Access { name, message }
            | ErrorKind::Validation { name, message }
            | ErrorKind::MissingRecord { name, message }
            | ErrorKind::User { name, message }
            | ErrorKind::InvalidArgument { name, message }
            | ErrorKind::Server { name, message } => {
                scrub(name);
                scrub(message);
            }
            ErrorKind::UnknownModel { model, message } => {
                scrub(model);
                scrub(message);
            }
            ErrorKind::UnknownMethod {
                model,
                method,
                message,
            } => {
                scrub(model);
                scrub(method);
                scrub(message);
            }
            ErrorKind::UnsupportedVersion { version } => scrub(version),
        }
        self
    }

    /// An answer that breaks the protocol PlanOps expects, described by `message`.
    pub fn protocol(message: impl Into<String>) -> OdooError {
        ErrorKind::Protocol {
            message: message.into(),
        }
        .into()
    }

    pub(crate) fn config(message: impl Into<String>) -> OdooError {
        ErrorKind::Config {
            message: message.into(),
        }
        .into()
    }

    pub(crate) fn transient(kind: TransientKind, message: impl Into<String>) -> OdooError {
        ErrorKind::Transient {
            kind,
            message: message.into(),
        }
        .into()
    }
}

/// The model and method a request was for, used to name unknown ones.
#[derive(Debug, Clone, Copy)]
pub struct CallTarget<'a> {
    pub model: &'a str,
    pub method: &'a str,
}

/// Maps the `error` member of a JSON-RPC response.
pub fn from_jsonrpc_error(error: &Value, target: Option<CallTarget<'_>>) -> OdooError {
    let code = error.get("code").and_then(Value::as_i64);
    let top_message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Odoo Server Error");
    let data = error.get("data");
    let name = data
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = data
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .unwrap_or(top_message);
    match code {
        Some(100) => ErrorKind::SessionExpired {
            message: message.to_string(),
        }
        .into(),
        Some(404) if name.is_empty() => OdooError::protocol(format!(
            "endpoint not found: {message} (is /jsonrpc disabled on this server?)"
        )),
        _ if name.is_empty() => ErrorKind::Server {
            name: "unknown".to_string(),
            message: message.to_string(),
        }
        .into(),
        _ => classify_exception(name, message, None, target),
    }
}

/// Maps a failed JSON-2 answer: HTTP status plus body.
/// Accepts the five-key object, the bare JSON string of pre-release 19 builds,
/// and non-JSON bodies from proxies.
pub fn from_json2_failure(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    target: Option<CallTarget<'_>>,
) -> OdooError {
    if let Some(kind) = transport_status(status, retry_after, body) {
        return kind;
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (name, message) = match &parsed {
        Some(Value::Object(obj)) => (
            obj.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            obj.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        Some(Value::String(text)) => (String::new(), text.clone()),
        _ => (String::new(), body_snippet(body)),
    };
    if status == 401 {
        return ErrorKind::Authentication { message }.into();
    }
    if !name.is_empty() {
        return classify_exception(&name, &message, Some(status), target);
    }
    // No exception name: fall back on the status alone.
    let name = format!("HTTP {status}");
    match status {
        403 => ErrorKind::Access { name, message }.into(),
        404 => not_found(&message, target),
        400 | 422 => ErrorKind::InvalidArgument { name, message }.into(),
        409 => OdooError::transient(TransientKind::SerializationFailure, message),
        500..=599 => OdooError::transient(TransientKind::Http5xx { status }, message),
        _ => OdooError::protocol(format!("unexpected HTTP {status}: {message}")),
    }
}

/// Statuses that mean "the request did not get to (or back from) Odoo's
/// dispatcher", whatever the protocol: rate limiting and gateway errors.
/// Returns `None` when the body must be read as an Odoo error.
pub fn transport_status(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Option<OdooError> {
    match status {
        429 => Some(OdooError::transient(
            TransientKind::RateLimited { retry_after },
            format!("HTTP 429: {}", body_snippet(body)),
        )),
        502..=504 => Some(OdooError::transient(
            TransientKind::Http5xx { status },
            format!("HTTP {status}: {}", body_snippet(body)),
        )),
        _ => None,
    }
}

/// Maps an Odoo exception by its fully qualified name, refined by message
/// patterns where Odoo reuses one class for several situations.
pub fn classify_exception(
    name: &str,
    message: &str,
    status: Option<u16>,
    target: Option<CallTarget<'_>>,
) -> OdooError {
    let class = name.rsplit('.').next().unwrap_or(name);
    let owned = || (name.to_string(), message.to_string());
    if let Some(model) = unknown_model_in(message) {
        return ErrorKind::UnknownModel {
            model,
            message: message.to_string(),
        }
        .into();
    }
    if message.contains("does not exist on the model") || class == "AttributeError" {
        let (model, method) = target
            .map(|t| (t.model.to_string(), t.method.to_string()))
            .unwrap_or_default();
        return ErrorKind::UnknownMethod {
            model,
            method,
            message: message.to_string(),
        }
        .into();
    }
    let kind = match class {
        "AccessDenied" => ErrorKind::Authentication {
            message: message.to_string(),
        },
        "AccessError" => {
            let (name, message) = owned();
            ErrorKind::Access { name, message }
        }
        "MissingError" => {
            let (name, message) = owned();
            ErrorKind::MissingRecord { name, message }
        }
        "ValidationError" | "IntegrityError" => {
            let (name, message) = owned();
            ErrorKind::Validation { name, message }
        }
        "UserError" | "RedirectWarning" | "Warning" | "except_orm" => {
            let (name, message) = owned();
            ErrorKind::User { name, message }
        }
        "SerializationFailure"
        | "TransactionRollbackError"
        | "DeadlockDetected"
        | "LockNotAvailable"
        | "ConcurrencyError"
        | "LockError" => ErrorKind::Transient {
            kind: TransientKind::SerializationFailure,
            message: message.to_string(),
        },
        "SessionExpiredException" => ErrorKind::SessionExpired {
            message: message.to_string(),
        },
        "Unauthorized" => ErrorKind::Authentication {
            message: message.to_string(),
        },
        "NotFound" => return not_found(message, target),
        "ValueError" | "TypeError" | "KeyError" | "BadRequest" | "UnprocessableEntity" => {
            let (name, message) = owned();
            ErrorKind::InvalidArgument { name, message }
        }
        _ => {
            let (name, message) = owned();
            match status {
                Some(403) => ErrorKind::Access { name, message },
                Some(422) => ErrorKind::InvalidArgument { name, message },
                _ => ErrorKind::Server { name, message },
            }
        }
    };
    kind.into()
}

fn not_found(message: &str, target: Option<CallTarget<'_>>) -> OdooError {
    let (model, method) = target
        .map(|t| (t.model.to_string(), t.method.to_string()))
        .unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    if lower.contains("method") {
        ErrorKind::UnknownMethod {
            model,
            method,
            message: message.to_string(),
        }
        .into()
    } else if lower.contains("model") {
        ErrorKind::UnknownModel {
            model,
            message: message.to_string(),
        }
        .into()
    } else if lower.contains("record") || lower.contains("deleted") {
        ErrorKind::MissingRecord {
            name: "werkzeug.exceptions.NotFound".to_string(),
            message: message.to_string(),
        }
        .into()
    } else {
        OdooError::protocol(format!("not found: {message}"))
    }
}

/// Odoo's "Object foo.bar doesn't exist" (execute_kw on an unknown model) and
/// JSON-2's "the model 'foo.bar' does not exist".
fn unknown_model_in(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("Object ")
        && let Some(model) = rest.strip_suffix(" doesn't exist")
    {
        return Some(model.trim().to_string());
    }
    let rest = message.strip_prefix("the model ")?;
    let model = rest.strip_suffix(" does not exist")?;
    Some(model.trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// Maps a transport failure of reqwest to a transient kind.
pub fn from_reqwest(err: &reqwest::Error) -> OdooError {
    // reqwest's Display names the URL, never headers or body, so it is safe to keep.
    let text = error_chain(err);
    let kind = if err.is_timeout() {
        TransientKind::Timeout
    } else if err.is_connect() {
        TransientKind::Unreachable
    } else if err.is_builder() {
        return OdooError::config(text);
    } else {
        TransientKind::ConnectionReset
    };
    OdooError::transient(kind, text)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

pub(crate) fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX_BODY_SNIPPET {
        return text.to_string();
    }
    let mut end = MAX_BODY_SNIPPET;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rpc_error(name: &str, message: &str) -> Value {
        json!({"code": 200, "message": "Odoo Server Error",
               "data": {"name": name, "debug": "Traceback (most recent call last):\n ...",
                        "message": message, "arguments": [message], "context": {}}})
    }

    const TARGET: Option<CallTarget<'static>> = Some(CallTarget {
        model: "purchase.order",
        method: "button_frobnicate",
    });

    #[test]
    fn jsonrpc_exceptions_map_to_kinds() {
        let cases = [
            (
                "odoo.exceptions.AccessDenied",
                "Access Denied",
                "Authentication",
            ),
            ("odoo.exceptions.AccessError", "no rights", "Access"),
            (
                "odoo.exceptions.MissingError",
                "Record does not exist or has been deleted.",
                "MissingRecord",
            ),
            (
                "odoo.exceptions.ValidationError",
                "min <= max",
                "Validation",
            ),
            ("odoo.exceptions.UserError", "cannot confirm", "User"),
            ("odoo.exceptions.RedirectWarning", "configure first", "User"),
            (
                "builtins.ValueError",
                "Invalid field 'x' in leaf",
                "InvalidArgument",
            ),
            (
                "psycopg2.errors.SerializationFailure",
                "could not serialize",
                "Transient",
            ),
            ("odoo.exceptions.LockError", "could not lock", "Transient"),
            ("builtins.ZeroDivisionError", "division by zero", "Server"),
        ];
        for (name, message, expected) in cases {
            let err = from_jsonrpc_error(&rpc_error(name, message), TARGET);
            let got = format!("{:?}", err.kind());
            assert!(got.starts_with(expected), "{name}: got {got}");
            assert_eq!(err.message(), message);
        }
    }

    #[test]
    fn exception_name_is_kept_for_status_messages() {
        let err = from_jsonrpc_error(
            &rpc_error(
                "odoo.exceptions.ValidationError",
                "The minimum quantity must be less than or equal to the maximum quantity.",
            ),
            None,
        )
        .in_call("stock.warehouse.orderpoint.write");
        assert_eq!(
            err.exception_name(),
            Some("odoo.exceptions.ValidationError")
        );
        let text = err.to_string();
        assert!(text.contains("stock.warehouse.orderpoint.write"), "{text}");
        assert!(text.contains("minimum quantity"), "{text}");
        assert!(!text.contains("Traceback"), "{text}");
    }

    #[test]
    fn unknown_model_and_method_are_recognised_by_message() {
        let err = from_jsonrpc_error(
            &rpc_error(
                "odoo.exceptions.UserError",
                "Object no.such.model doesn't exist",
            ),
            None,
        );
        assert_eq!(
            err.kind(),
            &ErrorKind::UnknownModel {
                model: "no.such.model".into(),
                message: "Object no.such.model doesn't exist".into()
            }
        );
        let err = from_jsonrpc_error(
            &rpc_error(
                "builtins.AttributeError",
                "The method 'button_frobnicate' does not exist on the model 'purchase.order'",
            ),
            TARGET,
        );
        assert!(
            matches!(err.kind(), ErrorKind::UnknownMethod { model, method, .. }
                if model == "purchase.order" && method == "button_frobnicate"),
            "{err:?}"
        );
    }

    #[test]
    fn jsonrpc_session_expired_and_missing_route() {
        let err = from_jsonrpc_error(
            &json!({"code": 100, "message": "Odoo Session Expired",
                    "data": {"name": "odoo.http.SessionExpiredException", "message": "Session expired"}}),
            None,
        );
        assert!(matches!(err.kind(), ErrorKind::SessionExpired { .. }));
        let err = from_jsonrpc_error(&json!({"code": 404, "message": "404: Not Found"}), None);
        assert!(matches!(err.kind(), ErrorKind::Protocol { .. }));
        assert!(!err.is_transient());
    }

    #[test]
    fn json2_statuses_and_bodies() {
        let body = br#"{"name": "werkzeug.exceptions.Unauthorized", "message": "Invalid apikey",
                        "arguments": ["Invalid apikey", 401], "context": {}, "debug": ""}"#;
        assert!(from_json2_failure(401, None, body, None).is_authentication());
        // Pre-release 19 builds answered with a bare JSON string.
        assert!(from_json2_failure(401, None, br#""Invalid apikey""#, None).is_authentication());

        let body = br#"{"name": "werkzeug.exceptions.NotFound", "message": "the model 'x.y' does not exist",
                        "arguments": [], "context": {}, "debug": ""}"#;
        assert!(matches!(
            from_json2_failure(404, None, body, None).kind(),
            ErrorKind::UnknownModel { model, .. } if model == "x.y"
        ));
        let body = br#"{"name": "odoo.exceptions.MissingError", "message": "Record does not exist or has been deleted.",
                        "arguments": [], "context": {}, "debug": ""}"#;
        assert!(matches!(
            from_json2_failure(404, None, body, None).kind(),
            ErrorKind::MissingRecord { .. }
        ));
        let body = br#"{"name": "werkzeug.exceptions.UnprocessableEntity", "message": "missing a required argument: 'domain'",
                        "arguments": [], "context": {}, "debug": ""}"#;
        assert!(matches!(
            from_json2_failure(422, None, body, None).kind(),
            ErrorKind::InvalidArgument { .. }
        ));
        let body = br#"{"name": "odoo.exceptions.AccessError", "message": "Private methods (such as 'purchase.order._x') cannot be called remotely.",
                        "arguments": [], "context": {}, "debug": ""}"#;
        assert!(matches!(
            from_json2_failure(403, None, body, None).kind(),
            ErrorKind::Access { .. }
        ));
        let body = br#"{"name": "psycopg2.errors.SerializationFailure", "message": "could not serialize access",
                        "arguments": [], "context": {}, "debug": ""}"#;
        assert_eq!(
            from_json2_failure(500, None, body, None).transient_kind(),
            Some(TransientKind::SerializationFailure)
        );
        let body = br#"{"name": "builtins.ValueError", "message": "Invalid field res.users.bad in condition",
                        "arguments": [], "context": {}, "debug": ""}"#;
        assert!(!from_json2_failure(500, None, body, None).is_transient());
    }

    #[test]
    fn proxy_answers_are_transient() {
        let err = from_json2_failure(502, None, b"<html>Bad Gateway</html>", None);
        assert_eq!(
            err.transient_kind(),
            Some(TransientKind::Http5xx { status: 502 })
        );
        let err = from_json2_failure(500, None, b"<html>oops</html>", None);
        assert_eq!(
            err.transient_kind(),
            Some(TransientKind::Http5xx { status: 500 })
        );
        let err = from_json2_failure(429, Some(Duration::from_secs(7)), b"slow down", None);
        assert_eq!(
            err.transient_kind(),
            Some(TransientKind::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            })
        );
        let err = from_json2_failure(415, None, b"<html>Unsupported Media Type</html>", None);
        assert!(matches!(err.kind(), ErrorKind::Protocol { .. }));
    }

    #[test]
    fn only_ambiguous_failures_may_have_committed() {
        assert!(TransientKind::Timeout.may_have_committed());
        assert!(TransientKind::ConnectionReset.may_have_committed());
        assert!(TransientKind::Http5xx { status: 502 }.may_have_committed());
        assert!(!TransientKind::Http5xx { status: 503 }.may_have_committed());
        assert!(!TransientKind::Unreachable.may_have_committed());
        assert!(!TransientKind::SerializationFailure.may_have_committed());
    }

    #[test]
    fn lost_replies_may_have_committed_and_refusals_did_not() {
        assert!(OdooError::transient(TransientKind::ConnectionReset, "x").may_have_committed());
        assert!(
            !OdooError::transient(TransientKind::Http5xx { status: 503 }, "x").may_have_committed()
        );
        let refused = from_jsonrpc_error(&rpc_error("odoo.exceptions.UserError", "no"), None);
        assert!(!refused.may_have_committed());
    }

    #[test]
    fn only_connection_wide_errors_fail_every_call() {
        assert!(
            from_jsonrpc_error(&rpc_error("odoo.exceptions.AccessDenied", "no"), None)
                .fails_every_call()
        );
        assert!(OdooError::config("bad URL").fails_every_call());
        for name in [
            "odoo.exceptions.AccessError",
            "odoo.exceptions.ValidationError",
            "builtins.ValueError",
        ] {
            assert!(
                !from_jsonrpc_error(&rpc_error(name, "no"), None).fails_every_call(),
                "{name}"
            );
        }
        assert!(!OdooError::transient(TransientKind::Timeout, "x").fails_every_call());
    }

    #[test]
    fn redact_scrubs_the_secret_everywhere() {
        let key = "0123456789abcdef0123456789abcdef01234567";
        let err = OdooError::protocol(format!("echoed body: {{\"args\": [\"db\", 2, \"{key}\"]}}"));
        let text = err.redact(key).to_string();
        assert!(!text.contains(key), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "é".repeat(400);
        let snippet = body_snippet(body.as_bytes());
        assert!(snippet.len() <= MAX_BODY_SNIPPET + '…'.len_utf8());
    }
}
