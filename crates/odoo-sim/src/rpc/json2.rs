//! JSON-2 (Odoo 19): `POST /json/2/<model>/<method>` with a bearer API key,
//! named arguments, no envelope, errors as `{name, message, arguments,
//! context, debug}` with an HTTP status; plus `GET /web/version`, `/json/version`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::jsonrpc::ErrorData19;
use super::{CallCtx, ExceptionInfo, OrmArgs, RpcError};
use crate::db::OrmError;
use crate::server::{SimState, dropped_reply, not_found_page};

const JSON_UTF8: &str = "application/json; charset=utf-8";

fn error_body(status: StatusCode, info: &ExceptionInfo) -> Response {
    let body = serde_json::to_vec(&ErrorData19 {
        name: &info.name,
        message: &info.message,
        arguments: &info.arguments,
        context: Map::new(),
        debug: &info.traceback,
    })
    .unwrap_or_default();
    (status, [(CONTENT_TYPE, JSON_UTF8)], body).into_response()
}

/// A werkzeug HTTP exception; its args are `(description, status)`.
fn werkzeug(status: StatusCode, class: &str, message: &str) -> Response {
    let mut info = ExceptionInfo::new(&format!("werkzeug.exceptions.{class}"), message.to_string());
    info.arguments = vec![json!(message), json!(status.as_u16())];
    error_body(status, &info)
}

fn unauthorized(message: &str) -> Response {
    let mut response = werkzeug(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("bearer"),
    );
    response
}

/// Maps an error to the status Odoo 19 gives it (`http_status` of the exception).
fn rpc_error_response(model: &str, method: &str, error: &RpcError) -> Response {
    match error {
        RpcError::Orm(OrmError::UnknownModel(_)) => werkzeug(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the model '{model}' does not exist"),
        ),
        RpcError::Orm(OrmError::UnknownMethod { .. }) => werkzeug(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the method '{method}' does not exist on the model '{model}'"),
        ),
        _ => {
            let info = error.exception();
            let status = match info.name.as_str() {
                "odoo.exceptions.AccessError" | "odoo.exceptions.AccessDenied" => {
                    StatusCode::FORBIDDEN
                }
                "odoo.exceptions.MissingError" => StatusCode::NOT_FOUND,
                "odoo.exceptions.LockError" => StatusCode::CONFLICT,
                "odoo.exceptions.UserError"
                | "odoo.exceptions.ValidationError"
                | "builtins.TypeError" => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error_body(status, &info)
        }
    }
}

/// The bearer key of an `Authorization` header; the scheme is case-insensitive.
fn bearer_key(headers: &HeaderMap) -> Option<Option<String>> {
    let value = headers.get(AUTHORIZATION)?;
    let text = value.to_str().ok()?;
    let (scheme, key) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Some(None);
    }
    Some(Some(key.trim().to_string()))
}

/// `/json/2/<anything>`: dispatches `<model>/<method>` and answers every other
/// shape with the hint Odoo gives.
pub async fn json2(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = rest.split('/').collect();
    let (model, model_method) = match segments.as_slice() {
        [model, model_method]
            if !model.is_empty() && !model_method.is_empty() && method == Method::POST =>
        {
            (model.to_string(), model_method.to_string())
        }
        _ => return json2_hint().await,
    };
    if let Some(database) = headers.get("x-odoo-database")
        && database.to_str().ok() != Some(state.db.name())
    {
        return not_found_page();
    }
    state.stats.record_rpc_method("json2");
    let uid = match bearer_key(&headers) {
        None => return unauthorized("User not authenticated, use the \"Authorization\" header"),
        Some(None) => return unauthorized("Invalid apikey"),
        Some(Some(key)) => {
            let db = state.db.clone();
            let uid = tokio::task::spawn_blocking(move || db.uid_for_api_key(&key))
                .await
                .ok()
                .flatten();
            match uid {
                Some(uid) => uid,
                None => return unauthorized("Invalid apikey"),
            }
        }
    };
    let mimetype = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if !body.is_empty() && mimetype.as_deref() != Some("application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Html("<!doctype html>\n<html lang=en>\n<title>415 Unsupported Media Type</title>\n<h1>Unsupported Media Type</h1>\n<p>The server does not support the media type transmitted in the request.</p>\n"),
        )
            .into_response();
    }
    let params = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(params)) => params,
            Ok(_) => {
                return werkzeug(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "could not parse the body, its JSON root must be an object",
                );
            }
            Err(error) => {
                return werkzeug(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("could not parse the body as json: {error}"),
                );
            }
        }
    };
    let ctx = CallCtx::new(peer.ip());
    let outcome = state
        .call_orm(&ctx, uid, &model, &model_method, OrmArgs::Named(params))
        .await;
    if ctx.reply_dropped() {
        return dropped_reply();
    }
    match outcome {
        Ok(value) => {
            // Recordsets come back as id lists, so `create` always answers a list.
            let value = match (model_method.as_str(), value) {
                ("create", Value::Number(id)) => json!([id]),
                (_, value) => value,
            };
            (
                StatusCode::OK,
                [(CONTENT_TYPE, JSON_UTF8)],
                serde_json::to_vec(&value).unwrap_or_default(),
            )
                .into_response()
        }
        Err(error) => rpc_error_response(&model, &model_method, &error),
    }
}

/// `/json/2` itself.
pub async fn json2_hint() -> Response {
    werkzeug(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Did you mean POST /json/2/<model>/<method>?",
    )
}

/// `GET /web/version` and `GET /json/version` (19, no authentication).
pub async fn web_version(State(state): State<Arc<SimState>>) -> Response {
    let version = state.db.version();
    let marker = match state.db.edition() {
        crate::db::Edition::Community => "",
        crate::db::Edition::Enterprise => "e",
    };
    let body = json!({
        "version_info": [version.major(), 0, 0, "final", 0, marker],
        "version": version.server_version(),
    });
    (
        StatusCode::OK,
        [(CONTENT_TYPE, JSON_UTF8)],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_key(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("BeArEr abc"));
        assert_eq!(bearer_key(&headers), Some(Some("abc".to_string())));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_key(&headers), Some(None));
    }

    #[test]
    fn statuses_follow_exception_classes() {
        let status = |error: RpcError| rpc_error_response("res.partner", "x", &error).status();
        assert_eq!(
            status(RpcError::Orm(OrmError::Access("no".into()))),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(RpcError::Orm(OrmError::Missing("gone".into()))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(RpcError::Orm(OrmError::UnknownModel("x".into()))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(RpcError::Orm(OrmError::Validation("min".into()))),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(RpcError::Orm(OrmError::Value("bad".into()))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(RpcError::SerializationFailure),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
