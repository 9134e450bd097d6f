//! The simulator's wire layer over real HTTP: envelopes and error shapes of
//! XML-RPC, JSON-RPC, the session routes and JSON-2 per Odoo version, fault
//! injection, the admin endpoints, stop/restart and webhook delivery.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use planops::sim::db::WebhookDelivery;
use planops::sim::webhooks::WebhookSender;
use planops::sim::{DatasetParams, Edition, FaultConfig, OdooVersion, SimConfig, SimServer};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

const ALL_VERSIONS: [OdooVersion; 4] = [
    OdooVersion::V16,
    OdooVersion::V17,
    OdooVersion::V18,
    OdooVersion::V19,
];

fn config(version: OdooVersion) -> SimConfig {
    SimConfig {
        database: "acme".into(),
        version,
        edition: Edition::Community,
        admin_password: "admin-pw".into(),
        dataset: DatasetParams {
            seed: 3,
            products: 8,
            warehouses: 1,
            history_days: 10,
            suppliers: 2,
            customers: 3,
            open_sale_orders: 2,
            open_purchase_orders: 2,
        },
        today: jiff::civil::date(2025, 3, 1),
    }
}

async fn start(version: OdooVersion) -> SimServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SimServer::start(config(version), addr).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

// ---------- XML-RPC helpers (hand-written XML, as a foreign client sends it) ----------

fn xml_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil/>".into(),
        Value::Bool(b) => format!("<boolean>{}</boolean>", u8::from(*b)),
        Value::Number(n) if n.is_i64() => format!("<int>{n}</int>"),
        Value::Number(n) => format!("<double>{n}</double>"),
        Value::String(s) => format!(
            "<string>{}</string>",
            s.replace('&', "&amp;").replace('<', "&lt;")
        ),
        Value::Array(items) => format!(
            "<array><data>{}</data></array>",
            items
                .iter()
                .map(|i| format!("<value>{}</value>", xml_value(i)))
                .collect::<String>()
        ),
        Value::Object(map) => format!(
            "<struct>{}</struct>",
            map.iter()
                .map(|(k, v)| format!(
                    "<member><name>{k}</name><value>{}</value></member>",
                    xml_value(v)
                ))
                .collect::<String>()
        ),
    }
}

async fn xmlrpc(server: &SimServer, path: &str, method: &str, params: &[Value]) -> String {
    let body = format!(
        "<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{}</params></methodCall>",
        params
            .iter()
            .map(|p| format!("<param><value>{}</value></param>", xml_value(p)))
            .collect::<String>()
    );
    let response = http()
        .post(format!("{}{path}", server.url))
        .header(CONTENT_TYPE, "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "XML-RPC answers 200 even for faults"
    );
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    response.text().await.unwrap()
}

fn fault_code(xml: &str) -> Option<String> {
    let start = xml.find("<name>faultCode</name>")?;
    let rest = &xml[start..];
    let open = rest.find("<value>")? + "<value>".len();
    let close = rest.find("</value>")?;
    Some(rest[open..close].to_string())
}

// ---------- JSON-RPC helpers ----------

async fn jsonrpc_raw(
    server: &SimServer,
    path: &str,
    params: Value,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = http()
        .post(format!("{}{path}", server.url))
        .json(&json!({"jsonrpc": "2.0", "method": "call", "id": "req-7", "params": params}));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn jsonrpc(server: &SimServer, path: &str, params: Value, cookie: Option<&str>) -> Value {
    let response = jsonrpc_raw(server, path, params, cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], "req-7", "id is echoed");
    body
}

async fn execute_kw(
    server: &SimServer,
    model: &str,
    method: &str,
    args: Value,
    kwargs: Value,
) -> Value {
    execute_kw_as(server, (2, "admin-pw"), model, method, args, kwargs).await
}

/// `execute_kw` as the user `(uid, password)`.
async fn execute_kw_as(
    server: &SimServer,
    (uid, password): (i64, &str),
    model: &str,
    method: &str,
    args: Value,
    kwargs: Value,
) -> Value {
    jsonrpc(
        server,
        "/jsonrpc",
        json!({"service": "object", "method": "execute_kw",
               "args": ["acme", uid, password, model, method, args, kwargs]}),
        None,
    )
    .await
}

fn assert_error_shape(body: &Value, code: i64, name: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["data"]["name"], name, "{body}");
    for key in ["message", "arguments", "context", "debug"] {
        assert!(
            error["data"].get(key).is_some(),
            "data.{key} missing: {body}"
        );
    }
    assert!(body.get("result").is_none());
}

/// A JSON-RPC Odoo error of exception `name` whose message contains `part`.
fn assert_error_saying(body: &Value, name: &str, part: &str) {
    assert_error_shape(body, 200, name);
    assert!(
        body["error"]["data"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(part)),
        "{body}"
    );
}

// ---------- JSON-2 helpers ----------

async fn json2(
    server: &SimServer,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = http()
        .post(format!("{}/json/2/{path}", server.url))
        .header("X-Odoo-Database", "acme")
        .json(&body);
    if let Some(key) = key {
        request = request.header(AUTHORIZATION, format!("bearer {key}"));
    }
    request.send().await.unwrap()
}

async fn json2_error(response: reqwest::Response, status: StatusCode, name: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "{body}");
    for key in ["name", "message", "arguments", "context", "debug"] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(body["name"], name, "{body}");
    body
}

// ---------- admin helpers ----------

async fn admin(
    server: &SimServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = http()
        .request(method, format!("{}/planops-sim/{path}", server.url))
        .bearer_auth(&server.admin_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn partner_count(server: &SimServer, name: &str) -> i64 {
    execute_kw(
        server,
        "res.partner",
        "search_count",
        json!([[["name", "=", name]]]),
        json!({}),
    )
    .await["result"]
        .as_i64()
        .unwrap()
}

// ======================================================================

#[tokio::test]
async fn xmlrpc_envelopes_and_faults_on_every_version() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");

        let answer = xmlrpc(&server, "/xmlrpc/2/common", "version", &[]).await;
        assert!(answer.contains("<name>server_version</name>"), "{label}");
        assert!(
            answer.contains(&format!("<string>{}.0</string>", version.major())),
            "{label}"
        );

        let uid = xmlrpc(
            &server,
            "/xmlrpc/2/common",
            "authenticate",
            &[json!("acme"), json!("admin"), json!("admin-pw"), json!({})],
        )
        .await;
        assert!(uid.contains("<int>2</int>"), "{label}: {uid}");
        let key = server.db.admin_api_key();
        let by_key = xmlrpc(
            &server,
            "/xmlrpc/2/common",
            "login",
            &[json!("acme"), json!("admin"), json!(key)],
        )
        .await;
        assert!(
            by_key.contains("<int>2</int>"),
            "{label}: API key replaces the password"
        );
        let refused = xmlrpc(
            &server,
            "/xmlrpc/2/common",
            "login",
            &[json!("acme"), json!("admin"), json!("wrong")],
        )
        .await;
        assert!(
            refused.contains("<boolean>0</boolean>"),
            "{label}: {refused}"
        );

        let count = xmlrpc(
            &server,
            "/xmlrpc/2/object",
            "execute_kw",
            &[
                json!("acme"),
                json!(2),
                json!("admin-pw"),
                json!("res.partner"),
                json!("search_count"),
                json!([[]]),
            ],
        )
        .await;
        assert!(count.contains("<int>"), "{label}: {count}");

        let bad_password = xmlrpc(
            &server,
            "/xmlrpc/2/object",
            "execute_kw",
            &[
                json!("acme"),
                json!(2),
                json!("nope"),
                json!("res.partner"),
                json!("search"),
                json!([[]]),
            ],
        )
        .await;
        assert_eq!(
            fault_code(&bad_password).as_deref(),
            Some("<int>3</int>"),
            "{label}"
        );

        let bad_model = xmlrpc(
            &server,
            "/xmlrpc/2/object",
            "execute_kw",
            &[
                json!("acme"),
                json!(2),
                json!("admin-pw"),
                json!("no.such.model"),
                json!("search"),
                json!([[]]),
            ],
        )
        .await;
        assert_eq!(
            fault_code(&bad_model).as_deref(),
            Some("<int>2</int>"),
            "{label}: {bad_model}"
        );

        let bad_field = xmlrpc(
            &server,
            "/xmlrpc/2/object",
            "execute_kw",
            &[
                json!("acme"),
                json!(2),
                json!("admin-pw"),
                json!("res.partner"),
                json!("search"),
                json!([[["no_such_field", "=", 1]]]),
            ],
        )
        .await;
        assert_eq!(
            fault_code(&bad_field).as_deref(),
            Some("<int>1</int>"),
            "{label}"
        );
        assert!(
            bad_field.contains("Traceback (most recent call last)"),
            "{label}"
        );

        let private = xmlrpc(
            &server,
            "/xmlrpc/2/object",
            "execute_kw",
            &[
                json!("acme"),
                json!(2),
                json!("admin-pw"),
                json!("res.partner"),
                json!("_read_group"),
                json!([[]]),
            ],
        )
        .await;
        assert_eq!(
            fault_code(&private).as_deref(),
            Some("<int>4</int>"),
            "{label}"
        );

        let legacy = xmlrpc(
            &server,
            "/xmlrpc/object",
            "execute_kw",
            &[
                json!("acme"),
                json!(2),
                json!("nope"),
                json!("res.partner"),
                json!("search"),
                json!([[]]),
            ],
        )
        .await;
        assert_eq!(
            fault_code(&legacy).as_deref(),
            Some("<string>AccessDenied</string>"),
            "{label}"
        );

        let garbage = http()
            .post(format!("{}/xmlrpc/2/common", server.url))
            .body("<methodCall><methodName>")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            fault_code(&garbage).as_deref(),
            Some("<int>1</int>"),
            "{label}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn jsonrpc_envelopes_and_error_shapes() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");
        let login = jsonrpc(
            &server,
            "/jsonrpc",
            json!({"service": "common", "method": "login", "args": ["acme", "admin", "admin-pw"]}),
            None,
        )
        .await;
        assert_eq!(login["result"], 2, "{label}");
        let refused = jsonrpc(
            &server,
            "/jsonrpc",
            json!({"service": "common", "method": "login", "args": ["acme", "admin", "bad"]}),
            None,
        )
        .await;
        assert_eq!(refused["result"], false, "{label}");

        let version_info = jsonrpc(
            &server,
            "/jsonrpc",
            json!({"service": "common", "method": "version", "args": []}),
            None,
        )
        .await;
        assert_eq!(
            version_info["result"]["server_version_info"][0],
            version.major(),
            "{label}"
        );
        assert_eq!(version_info["result"]["protocol_version"], 1);

        let created = execute_kw(
            &server,
            "res.partner",
            "create",
            json!([{"name": "Envelope Test"}]),
            json!({}),
        )
        .await;
        let id = created["result"]
            .as_i64()
            .expect("create with one dict answers an int");
        let rows = execute_kw(
            &server,
            "res.partner",
            "read",
            json!([[id]]),
            json!({"fields": ["name"]}),
        )
        .await;
        assert_eq!(rows["result"][0]["name"], "Envelope Test", "{label}");

        let missing = execute_kw(&server, "no.such.model", "search", json!([[]]), json!({})).await;
        assert_error_shape(&missing, 200, "odoo.exceptions.UserError");
        assert_eq!(missing["error"]["message"], "Odoo Server Error");

        let denied = jsonrpc(
            &server,
            "/jsonrpc",
            json!({"service": "object", "method": "execute_kw",
                   "args": ["acme", 2, "wrong", "res.partner", "search", [[]]]}),
            None,
        )
        .await;
        assert_error_shape(&denied, 200, "odoo.exceptions.AccessDenied");
        assert_eq!(denied["error"]["data"]["message"], "Access Denied");

        let bad_db = jsonrpc(
            &server,
            "/jsonrpc",
            json!({"service": "object", "method": "execute_kw",
                   "args": ["other", 2, "admin-pw", "res.partner", "search", [[]]]}),
            None,
        )
        .await;
        assert_error_shape(&bad_db, 200, "psycopg2.OperationalError");

        // Key order of `data` changed in 19 (never rely on it, but reproduce it).
        let raw = jsonrpc_raw(
            &server,
            "/jsonrpc",
            json!({"service": "object", "method": "execute_kw",
                   "args": ["acme", 2, "admin-pw", "no.such.model", "search", [[]]]}),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
        let debug_at = raw.find("\"debug\"").unwrap();
        let message_at = raw
            .find("\"message\":\"Object")
            .unwrap_or_else(|| raw.rfind("\"message\"").unwrap());
        if version == OdooVersion::V19 {
            assert!(debug_at > message_at, "{label}: {raw}");
        } else {
            assert!(debug_at < message_at, "{label}: {raw}");
        }

        let db_list = jsonrpc(
            &server,
            "/jsonrpc",
            json!({"service": "db", "method": "list", "args": []}),
            None,
        )
        .await;
        assert_eq!(db_list["result"], json!(["acme"]));

        let invalid = http()
            .post(format!("{}/jsonrpc", server.url))
            .header(CONTENT_TYPE, "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
        assert_eq!(invalid.text().await.unwrap(), "Invalid JSON data");
        let not_object = http()
            .post(format!("{}/jsonrpc", server.url))
            .header(CONTENT_TYPE, "application/json")
            .body("[1, 2]")
            .send()
            .await
            .unwrap();
        assert_eq!(not_object.status(), StatusCode::BAD_REQUEST);
        assert_eq!(not_object.text().await.unwrap(), "Invalid JSON-RPC data");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn session_cookie_flow() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");
        let info = jsonrpc(&server, "/web/webclient/version_info", json!({}), None).await;
        assert_eq!(
            info["result"]["server_serie"],
            format!("{}.0", version.major())
        );

        let expired = jsonrpc(
            &server,
            "/web/dataset/call_kw",
            json!({"model": "res.partner", "method": "search_count", "args": [[]], "kwargs": {}}),
            None,
        )
        .await;
        assert_error_shape(&expired, 100, "odoo.http.SessionExpiredException");
        assert_eq!(expired["error"]["message"], "Odoo Session Expired");

        // API keys are refused on the interactive login path.
        let with_key = jsonrpc(
            &server,
            "/web/session/authenticate",
            json!({"db": "acme", "login": "admin", "password": server.db.admin_api_key()}),
            None,
        )
        .await;
        assert_error_shape(&with_key, 200, "odoo.exceptions.AccessDenied");

        let unknown_db = jsonrpc(
            &server,
            "/web/session/authenticate",
            json!({"db": "nope", "login": "admin", "password": "admin-pw"}),
            None,
        )
        .await;
        assert_error_shape(&unknown_db, 200, "odoo.exceptions.AccessError");

        let response = jsonrpc_raw(
            &server,
            "/web/session/authenticate",
            json!({"db": "acme", "login": "admin", "password": "admin-pw"}),
            None,
        )
        .await;
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
        assert!(
            set_cookie.starts_with("session_id="),
            "{label}: {set_cookie}"
        );
        assert!(set_cookie.contains("HttpOnly"));
        assert_eq!(
            set_cookie.contains("SameSite=Lax"),
            version >= OdooVersion::V17,
            "{label}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["uid"], 2);
        assert_eq!(body["result"]["db"], "acme");
        assert_eq!(body["result"]["user_context"]["uid"], 2);
        let cookie = set_cookie.split(';').next().unwrap().to_string();

        let count = jsonrpc(
            &server,
            "/web/dataset/call_kw/res.partner/search_count",
            json!({"model": "res.partner", "method": "search_count", "args": [[]], "kwargs": {}}),
            Some(&cookie),
        )
        .await;
        assert!(count["result"].as_i64().unwrap() > 0, "{label}: {count}");
        let session = jsonrpc(
            &server,
            "/web/session/get_session_info",
            json!({}),
            Some(&cookie),
        )
        .await;
        assert_eq!(session["result"]["username"], "admin");

        jsonrpc(&server, "/web/session/destroy", json!({}), Some(&cookie)).await;
        let after = jsonrpc(
            &server,
            "/web/dataset/call_kw",
            json!({"model": "res.partner", "method": "search_count", "args": [[]], "kwargs": {}}),
            Some(&cookie),
        )
        .await;
        assert_eq!(after["error"]["code"], 100, "{label}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn json2_exists_only_on_19() {
    for version in [OdooVersion::V16, OdooVersion::V17, OdooVersion::V18] {
        let server = start(version).await;
        let key = server.db.admin_api_key();
        let response = json2(
            &server,
            "res.partner/search",
            Some(&key),
            json!({"domain": []}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{version:?}");
        let version_page = http()
            .get(format!("{}/web/version", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(version_page.status(), StatusCode::NOT_FOUND, "{version:?}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn json2_calls_and_errors_on_19() {
    let server = start(OdooVersion::V19).await;
    let key = server.db.admin_api_key();

    let version: Value = http()
        .get(format!("{}/web/version", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        version,
        json!({"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"})
    );
    let json_version = http()
        .get(format!("{}/json/version", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(json_version.status(), StatusCode::OK);

    let missing = json2(&server, "res.partner/search", None, json!({"domain": []})).await;
    assert_eq!(missing.headers()[WWW_AUTHENTICATE], "bearer");
    json2_error(
        missing,
        StatusCode::UNAUTHORIZED,
        "werkzeug.exceptions.Unauthorized",
    )
    .await;
    let wrong = json2(
        &server,
        "res.partner/search",
        Some("0123456789abcdef0123456789abcdef01234567"),
        json!({"domain": []}),
    )
    .await;
    let body = json2_error(
        wrong,
        StatusCode::UNAUTHORIZED,
        "werkzeug.exceptions.Unauthorized",
    )
    .await;
    assert_eq!(body["message"], "Invalid apikey");

    let created = json2(
        &server,
        "res.partner/create",
        Some(&key),
        json!({"vals_list": [{"name": "JSON-2 Partner"}]}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::OK);
    let ids: Value = created.json().await.unwrap();
    assert!(ids.is_array(), "create answers a list over JSON-2: {ids}");
    let rows: Value = json2(
        &server,
        "res.partner/search_read",
        Some(&key),
        json!({"domain": [["name", "=", "JSON-2 Partner"]], "fields": ["name"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        rows[0]["name"], "JSON-2 Partner",
        "bare result, no envelope: {rows}"
    );
    assert_eq!(rows[0]["id"], ids[0]);

    json2_error(
        json2(
            &server,
            "no.such.model/search",
            Some(&key),
            json!({"domain": []}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "werkzeug.exceptions.NotFound",
    )
    .await;
    json2_error(
        json2(&server, "res.partner/_read_group", Some(&key), json!({})).await,
        StatusCode::FORBIDDEN,
        "odoo.exceptions.AccessError",
    )
    .await;
    json2_error(
        json2(
            &server,
            "res.partner/search",
            Some(&key),
            json!({"domain": [["no_such_field", "=", 1]]}),
        )
        .await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "builtins.ValueError",
    )
    .await;

    let not_object = json2(&server, "res.partner/search", Some(&key), json!([1])).await;
    json2_error(
        not_object,
        StatusCode::BAD_REQUEST,
        "werkzeug.exceptions.BadRequest",
    )
    .await;
    let not_json = http()
        .post(format!("{}/json/2/res.partner/search", server.url))
        .bearer_auth(&key)
        .header(CONTENT_TYPE, "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    json2_error(
        not_json,
        StatusCode::BAD_REQUEST,
        "werkzeug.exceptions.BadRequest",
    )
    .await;
    let form = http()
        .post(format!("{}/json/2/res.partner/search", server.url))
        .bearer_auth(&key)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("domain=[]")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let hint = http()
        .post(format!("{}/json/2", server.url))
        .send()
        .await
        .unwrap();
    let hint = json2_error(hint, StatusCode::NOT_FOUND, "werkzeug.exceptions.NotFound").await;
    assert_eq!(
        hint["message"],
        "Did you mean POST /json/2/<model>/<method>?"
    );
    let get = http()
        .get(format!("{}/json/2/res.partner/search", server.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);

    let other_db = http()
        .post(format!("{}/json/2/res.partner/search", server.url))
        .bearer_auth(&key)
        .header("X-Odoo-Database", "other")
        .json(&json!({"domain": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_db.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}

#[tokio::test]
async fn error_rate_is_roughly_honoured() {
    let server = start(OdooVersion::V17).await;
    server
        .set_faults(FaultConfig {
            error_rate: 0.3,
            seed: Some(11),
            ..FaultConfig::default()
        })
        .unwrap();
    let mut unavailable = 0;
    for _ in 0..200 {
        let response = jsonrpc_raw(&server, "/web/webclient/version_info", json!({}), None).await;
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            StatusCode::OK => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        (35..=85).contains(&unavailable),
        "{unavailable} of 200 at rate 0.3"
    );
    assert_eq!(server.stats().faults_injected.unavailable, unavailable);
    server.shutdown().await;
}

#[tokio::test]
async fn latency_and_serialization_failures() {
    let server = start(OdooVersion::V19).await;
    server
        .set_faults(FaultConfig {
            latency_ms: 20,
            ..FaultConfig::default()
        })
        .unwrap();
    let body = execute_kw(
        &server,
        "res.partner",
        "search_count",
        json!([[]]),
        json!({}),
    )
    .await;
    assert!(body["result"].is_i64());
    assert_eq!(server.stats().faults_injected.delayed, 1);

    server
        .set_faults(FaultConfig {
            serialization_failure_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
    let failed = execute_kw(
        &server,
        "res.partner",
        "create",
        json!([{"name": "Never Written"}]),
        json!({}),
    )
    .await;
    assert_error_shape(&failed, 200, "psycopg2.errors.SerializationFailure");
    assert_eq!(
        failed["error"]["data"]["message"],
        "could not serialize access due to concurrent update"
    );
    let xml = xmlrpc(
        &server,
        "/xmlrpc/2/object",
        "execute_kw",
        &[
            json!("acme"),
            json!(2),
            json!("admin-pw"),
            json!("res.partner"),
            json!("create"),
            json!([{"name": "Never Written"}]),
        ],
    )
    .await;
    assert_eq!(fault_code(&xml).as_deref(), Some("<int>1</int>"));
    assert!(xml.contains("SerializationFailure"));
    let key = server.db.admin_api_key();
    json2_error(
        json2(
            &server,
            "res.partner/create",
            Some(&key),
            json!({"vals_list": [{"name": "Never Written"}]}),
        )
        .await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "psycopg2.errors.SerializationFailure",
    )
    .await;
    server.set_faults(FaultConfig::default()).unwrap();
    assert_eq!(
        partner_count(&server, "Never Written").await,
        0,
        "nothing was written"
    );
    assert_eq!(server.stats().faults_injected.serialization_failures, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn dropped_reply_commits_but_the_client_sees_a_transport_error() {
    for version in [OdooVersion::V17, OdooVersion::V19] {
        let server = start(version).await;
        server
            .set_faults(FaultConfig {
                drop_reply_rate: 1.0,
                ..FaultConfig::default()
            })
            .unwrap();
        let outcome = http()
            .post(format!("{}/jsonrpc", server.url))
            .json(&json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "service": "object", "method": "execute_kw",
                "args": ["acme", 2, "admin-pw", "res.partner", "create", [{"name": "Lost Reply"}]]}}))
            .send()
            .await;
        let error = outcome.expect_err("the reply must be lost");
        assert!(
            error.status().is_none(),
            "no HTTP status reached the client: {error}"
        );
        if version == OdooVersion::V19 {
            let key = server.db.admin_api_key();
            let lost = http()
                .post(format!("{}/json/2/res.partner/create", server.url))
                .bearer_auth(&key)
                .json(&json!({"vals_list": [{"name": "Lost Reply"}]}))
                .send()
                .await;
            assert!(lost.is_err());
        }
        server.set_faults(FaultConfig::default()).unwrap();
        let expected = if version == OdooVersion::V19 { 2 } else { 1 };
        assert_eq!(
            partner_count(&server, "Lost Reply").await,
            expected,
            "{version:?}: the write was committed"
        );
        assert_eq!(
            server.stats().faults_injected.dropped_replies,
            expected as u64
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn outage_refuses_requests_until_cleared_or_over() {
    let server = start(OdooVersion::V18).await;
    let response = admin(
        &server,
        reqwest::Method::POST,
        "faults",
        Some(json!({"outage_until_cleared": true})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["outage_active"], true);
    for _ in 0..3 {
        let attempt = http()
            .post(format!("{}/web/webclient/version_info", server.url))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "params": {}}))
            .send()
            .await;
        assert!(
            attempt.is_err(),
            "outage closes connections without an answer"
        );
    }
    // The admin endpoint stays reachable during an outage.
    admin(&server, reqwest::Method::POST, "faults", Some(json!({}))).await;
    let body = jsonrpc(&server, "/web/webclient/version_info", json!({}), None).await;
    assert_eq!(body["result"]["server_serie"], "18.0");
    assert_eq!(server.stats().faults_injected.outage_refused, 3);

    // A timed outage ends by itself.
    server
        .set_faults(FaultConfig {
            outage_seconds: Some(1),
            ..FaultConfig::default()
        })
        .unwrap();
    assert!(
        http()
            .post(format!("{}/jsonrpc", server.url))
            .json(&json!({}))
            .send()
            .await
            .is_err()
    );
    while server.faults().outage_active {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body = jsonrpc(&server, "/web/webclient/version_info", json!({}), None).await;
    assert!(body.get("result").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_require_the_token() {
    let server = start(OdooVersion::V17).await;
    let url = format!("{}/planops-sim/faults", server.url);
    let anonymous = http().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = http()
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let forged = http()
        .post(&url)
        .bearer_auth("not-the-token")
        .json(&json!({"outage_until_cleared": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !server.faults().outage_active,
        "a refused request changes nothing"
    );

    let status: Value = admin(&server, reqwest::Method::GET, "faults", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["config"]["error_rate"], 0.0);
    let invalid = admin(
        &server,
        reqwest::Method::POST,
        "faults",
        Some(json!({"error_rate": 2.0})),
    )
    .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = admin(
        &server,
        reqwest::Method::POST,
        "faults",
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    // Stats count Odoo requests (not admin ones), per method and per model.
    admin(&server, reqwest::Method::POST, "stats/reset", None).await;
    for _ in 0..3 {
        execute_kw(
            &server,
            "res.partner",
            "search_count",
            json!([[]]),
            json!({}),
        )
        .await;
    }
    jsonrpc(&server, "/web/webclient/version_info", json!({}), None).await;
    let stats: Value = admin(&server, reqwest::Method::GET, "stats", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total_requests"], 4, "{stats}");
    assert_eq!(stats["requests_by_endpoint"]["jsonrpc"], 3);
    assert_eq!(stats["requests_by_endpoint"]["web"], 1);
    assert_eq!(stats["rpc_methods"]["object.execute_kw"], 3);
    assert_eq!(stats["model_calls"]["res.partner/search_count"], 3);
    let max = stats["max_requests_per_second"].as_u64().unwrap();
    assert!((1..=4).contains(&max), "{stats}");
    server.shutdown().await;
}

#[tokio::test]
async fn stop_and_restart_on_the_same_address_keeps_the_database() {
    let mut server = start(OdooVersion::V17).await;
    execute_kw(
        &server,
        "res.partner",
        "create",
        json!([{"name": "Survivor"}]),
        json!({}),
    )
    .await;
    let url = server.url.clone();
    server.stop().await;
    assert!(!server.is_running());
    let refused = http()
        .post(format!("{url}/web/webclient/version_info"))
        .json(&json!({}))
        .send()
        .await
        .expect_err("nothing listens any more");
    assert!(refused.is_connect(), "{refused}");
    server.restart().await.unwrap();
    assert_eq!(server.url, url);
    assert_eq!(partner_count(&server, "Survivor").await, 1);
    server.shutdown().await;
}

// ---------- webhooks ----------

#[derive(Clone, Default)]
struct Received {
    calls: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receive(State(received): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    received.calls.lock().unwrap().push((headers, body));
    StatusCode::OK
}

async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .route(
            "/fail",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn webhook_sender_posts_odoo_shaped_requests_and_logs_outcomes() {
    let (url, received) = receiver().await;
    let sender = WebhookSender::new().unwrap();
    let payload = json!({"_action": "Notify(#5)", "_id": 42, "_model": "res.partner", "id": 42, "name": "Café"});
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/gone")
    };
    sender
        .deliver_all(vec![
            WebhookDelivery {
                url: format!("{url}/hook"),
                payload: payload.clone(),
                automation_id: 5,
            },
            WebhookDelivery {
                url: format!("{url}/fail"),
                payload: payload.clone(),
                automation_id: 5,
            },
            WebhookDelivery {
                url: unreachable,
                payload,
                automation_id: 5,
            },
        ])
        .await;
    let calls = received.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (headers, body) = &calls[0];
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert!(
        headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("python-requests/")
    );
    assert_eq!(
        body,
        r#"{"_action": "Notify(#5)", "_id": 42, "_model": "res.partner", "id": 42, "name": "Caf\u00e9"}"#
    );
    let log = sender.snapshot();
    assert_eq!((log.delivered, log.failed), (1, 2));
    assert_eq!(log.recent[0].record_id, Some(42));
    assert_eq!(log.recent[1].status, Some(500));
    assert!(log.recent[2].error.is_some());
}

async fn model_id(server: &SimServer, model: &str) -> i64 {
    execute_kw(
        server,
        "ir.model",
        "search",
        json!([[["model", "=", model]]]),
        json!({}),
    )
    .await["result"][0]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn automation_webhooks_fire_for_matching_records_only() {
    for version in [OdooVersion::V17, OdooVersion::V18, OdooVersion::V19] {
        let server = start(version).await;
        let (url, received) = receiver().await;
        let partner_model = model_id(&server, "res.partner").await;
        let rule = execute_kw(
            &server,
            "base.automation",
            "create",
            json!([{
                "name": "Partner hook",
                "model_id": partner_model,
                "trigger": "on_create_or_write",
                "filter_domain": "[('name', 'like', 'Hooked')]",
                "action_server_ids": [[0, 0, {
                    "name": "Notify receiver",
                    "model_id": partner_model,
                    "state": "webhook",
                    "webhook_url": format!("{url}/hook"),
                }]],
            }]),
            json!({}),
        )
        .await;
        assert!(rule["result"].is_i64(), "{version:?}: {rule}");

        let created = execute_kw(
            &server,
            "res.partner",
            "create",
            json!([{"name": "Hooked Partner"}]),
            json!({}),
        )
        .await;
        let id = created["result"].as_i64().unwrap();
        execute_kw(
            &server,
            "res.partner",
            "create",
            json!([{"name": "Quiet Partner"}]),
            json!({}),
        )
        .await;
        execute_kw(
            &server,
            "res.partner",
            "write",
            json!([[id], {"email": "hook@example.com"}]),
            json!({}),
        )
        .await;

        // 17/18 deliver before the reply; 19 after commit, so wait for it.
        let mut delivered = server.webhook_log().delivered;
        while version == OdooVersion::V19 && delivered < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            delivered = server.webhook_log().delivered;
        }
        assert_eq!(
            delivered, 2,
            "{version:?}: create + write of the matching record"
        );
        let calls = received.calls.lock().unwrap().clone();
        assert_eq!(
            calls.len(),
            2,
            "{version:?}: nothing for the non-matching record"
        );
        // 17 and 18 name an automation's webhook action after its type.
        let action = if version == OdooVersion::V19 {
            "Notify receiver(#"
        } else {
            "Send Webhook Notification(#"
        };
        for (_, body) in &calls {
            let payload: Value = serde_json::from_str(body).unwrap();
            assert_eq!(payload["_model"], "res.partner");
            assert_eq!(payload["_id"], id);
            assert!(
                payload["_action"].as_str().unwrap().starts_with(action),
                "{version:?}: {payload}"
            );
        }
        server.shutdown().await;
    }
}

/// `ir.cron` as each version has it: `numbercall`/`doall` up to 17 (a new
/// cron runs once unless told otherwise), the failure counters from 18, where
/// writing the old fields is an invalid-field error; the interval must be
/// positive; only Settings may create crons; "Run Manually" stamps `lastcall`.
#[tokio::test]
async fn ir_cron_fields_and_rules_follow_the_version() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");
        let old_fields = matches!(version, OdooVersion::V16 | OdooVersion::V17);
        let fields = execute_kw(
            &server,
            "ir.cron",
            "fields_get",
            json!([]),
            json!({"attributes": ["type"]}),
        )
        .await;
        let fields = &fields["result"];
        for name in ["numbercall", "doall"] {
            assert_eq!(fields.get(name).is_some(), old_fields, "{label}: {name}");
        }
        for name in ["failure_count", "first_failure_date"] {
            assert_eq!(fields.get(name).is_some(), !old_fields, "{label}: {name}");
        }
        let model_id = model_id(&server, "res.partner").await;
        let mut vals = json!({"name": "Demand sync", "model_id": model_id, "state": "code",
            "code": "model._planops_sync()", "interval_number": 15, "interval_type": "minutes"});
        let created = execute_kw(
            &server,
            "ir.cron",
            "create",
            json!([vals.clone()]),
            json!({}),
        )
        .await;
        let cron = created["result"]
            .as_i64()
            .unwrap_or_else(|| panic!("{label}: {created}"));
        let read = execute_kw(&server, "ir.cron", "read", json!([[cron]]), json!({})).await;
        let record = &read["result"][0];
        assert_eq!(record["interval_number"], 15, "{label}");
        assert_eq!(record["interval_type"], "minutes", "{label}");
        assert_eq!(record["active"], true, "{label}");
        assert_eq!(record["lastcall"], false, "{label}");
        if old_fields {
            assert_eq!(record["numbercall"], 1, "{label}: runs once by default");
        } else {
            assert_eq!(record["failure_count"], 0, "{label}");
        }

        vals["numbercall"] = json!(-1);
        let with_numbercall = execute_kw(
            &server,
            "ir.cron",
            "create",
            json!([vals.clone()]),
            json!({}),
        )
        .await;
        if old_fields {
            assert!(
                with_numbercall["result"].as_i64().is_some(),
                "{label}: {with_numbercall}"
            );
        } else {
            assert_error_saying(
                &with_numbercall,
                "builtins.ValueError",
                "Invalid field 'numbercall' on model 'ir.cron'",
            );
        }

        let zero = execute_kw(
            &server,
            "ir.cron",
            "write",
            json!([[cron], {"interval_number": 0}]),
            json!({}),
        )
        .await;
        assert_error_saying(
            &zero,
            "odoo.exceptions.ValidationError",
            "strictly positive",
        );

        let by_planner = execute_kw_as(
            &server,
            (3, "planner"),
            "ir.cron",
            "create",
            json!([{"name": "Mine", "model_id": model_id, "interval_number": 1}]),
            json!({}),
        )
        .await;
        assert_error_shape(&by_planner, 200, "odoo.exceptions.AccessError");

        let triggered = execute_kw(
            &server,
            "ir.cron",
            "method_direct_trigger",
            json!([[cron]]),
            json!({}),
        )
        .await;
        assert_eq!(triggered["result"], true, "{label}: {triggered}");
        let read = execute_kw(
            &server,
            "ir.cron",
            "read",
            json!([[cron], ["lastcall"]]),
            json!({}),
        )
        .await;
        assert!(read["result"][0]["lastcall"].is_string(), "{label}: {read}");
        server.shutdown().await;
    }
}

// ---------- mail and purchase behaviour real Odoo showed ----------

/// A `res.users` id by login, through JSON-RPC as admin.
async fn uid_of(server: &SimServer, login: &str) -> i64 {
    execute_kw(
        server,
        "res.users",
        "search",
        json!([[["login", "=", login]]]),
        json!({}),
    )
    .await["result"][0]
        .as_i64()
        .unwrap()
}

/// 17 and 18 subscribe an activity batch's assignees per user with the
/// records in a list: two activities on one record for a user who does not
/// follow it yet insert the same follower twice, and the unique key fails the
/// whole `create`. 16 (one activity at a time) and 19 (a set) accept it.
#[tokio::test]
async fn activity_batch_on_one_record_for_a_new_follower() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");
        let bob = uid_of(&server, "buyer.bob").await;
        let model_id = execute_kw(
            &server,
            "ir.model",
            "search",
            json!([[["model", "=", "product.template"]]]),
            json!({}),
        )
        .await["result"][0]
            .as_i64()
            .unwrap();
        let templates = execute_kw(
            &server,
            "product.template",
            "search",
            json!([[]]),
            json!({"limit": 2}),
        )
        .await["result"]
            .clone();
        let (first, second) = (
            templates[0].as_i64().unwrap(),
            templates[1].as_i64().unwrap(),
        );
        let activity = |res_id: i64, summary: &str| json!({"res_model_id": model_id, "res_id": res_id, "user_id": bob, "summary": summary});
        let created = execute_kw(
            &server,
            "mail.activity",
            "create",
            json!([[
                activity(first, "short in WH1"),
                activity(first, "short in WH2")
            ]]),
            json!({}),
        )
        .await;
        let count = |summary: &'static str| {
            let server = &server;
            async move {
                execute_kw(
                    server,
                    "mail.activity",
                    "search_count",
                    json!([[["summary", "like", summary]]]),
                    json!({}),
                )
                .await["result"]
                    .as_i64()
                    .unwrap()
            }
        };
        let followers = |res_id: i64| {
            let server = &server;
            async move {
                execute_kw(
                    server,
                    "mail.followers",
                    "search_count",
                    json!([[
                        ["res_model", "=", "product.template"],
                        ["res_id", "=", res_id]
                    ]]),
                    json!({}),
                )
                .await["result"]
                    .as_i64()
                    .unwrap()
            }
        };
        if matches!(version, OdooVersion::V17 | OdooVersion::V18) {
            assert_error_shape(&created, 200, "odoo.exceptions.ValidationError");
            assert_eq!(
                created["error"]["data"]["message"],
                "The operation cannot be completed: Error, a partner cannot follow twice the same object.",
                "{label}"
            );
            assert_eq!(count("short in WH").await, 0, "{label}: nothing created");
            assert_eq!(followers(first).await, 0, "{label}");
        } else {
            assert_eq!(
                created["result"].as_array().unwrap().len(),
                2,
                "{label}: {created}"
            );
            assert_eq!(followers(first).await, 1, "{label}: bob follows once");
        }
        // Once bob follows, the same batch is accepted everywhere; one
        // activity per record never repeats a follower.
        execute_kw(
            &server,
            "mail.activity",
            "create",
            json!([[activity(first, "alone"), activity(second, "alone")]]),
            json!({}),
        )
        .await["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{label}"));
        let again = execute_kw(
            &server,
            "mail.activity",
            "create",
            json!([[activity(first, "again 1"), activity(first, "again 2")]]),
            json!({}),
        )
        .await;
        assert_eq!(
            again["result"].as_array().unwrap().len(),
            2,
            "{label}: {again}"
        );
        assert_eq!(followers(first).await, 1, "{label}");
        assert_eq!(followers(second).await, 1, "{label}");
        server.shutdown().await;
    }
}

/// Over RPC, 17+ escapes a plain string `message_post` body unless
/// `body_is_html=True`; 16 stores it as HTML and ignores the unknown keyword.
/// 19 answers the message as a one-element id list (no `@api.returns`).
#[tokio::test]
async fn message_post_bodies_and_results_per_version() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");
        let order = execute_kw(
            &server,
            "purchase.order",
            "search",
            json!([[]]),
            json!({"limit": 1}),
        )
        .await["result"][0]
            .as_i64()
            .unwrap();
        let post = |extra: Value| {
            let server = &server;
            let mut kwargs = json!({"body": "<p>a &lt; b</p>", "message_type": "comment"});
            for (k, v) in extra.as_object().unwrap() {
                kwargs[k] = v.clone();
            }
            async move {
                execute_kw(
                    server,
                    "purchase.order",
                    "message_post",
                    json!([[order]]),
                    kwargs,
                )
                .await
            }
        };
        let body_of = |result: &Value| {
            let id = if version == OdooVersion::V19 {
                assert_eq!(
                    result.as_array().map(Vec::len),
                    Some(1),
                    "{label}: {result}"
                );
                result[0].as_i64().unwrap()
            } else {
                result
                    .as_i64()
                    .unwrap_or_else(|| panic!("{label}: {result}"))
            };
            let server = &server;
            async move {
                execute_kw(
                    server,
                    "mail.message",
                    "read",
                    json!([[id], ["body"]]),
                    json!({}),
                )
                .await["result"][0]["body"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        };
        let plain = post(json!({})).await;
        let plain = body_of(&plain["result"]).await;
        let html = post(json!({"body_is_html": true})).await;
        let html = body_of(&html["result"]).await;
        assert_eq!(html, "<p>a &lt; b</p>", "{label}");
        if version == OdooVersion::V16 {
            assert_eq!(plain, "<p>a &lt; b</p>", "{label}");
        } else {
            assert_eq!(plain, "<p>&lt;p&gt;a &amp;lt; b&lt;/p&gt;</p>", "{label}");
        }
        server.shutdown().await;
    }
}

/// `mail.message_activity_done` per version: 16 and 17 put the unlabelled
/// feedback (lines split by `<br>`) right after the header and before the
/// original note; 18 and 19 put the note first and label the feedback. The
/// assignee is named when someone else marks the activity done.
#[tokio::test]
async fn activity_done_message_follows_the_version_template() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let label = format!("{version:?}");
        let bob = uid_of(&server, "buyer.bob").await;
        let order = execute_kw(
            &server,
            "purchase.order",
            "search",
            json!([[]]),
            json!({"limit": 1}),
        )
        .await["result"][0]
            .as_i64()
            .unwrap();
        let model_id = execute_kw(
            &server,
            "ir.model",
            "search",
            json!([[["model", "=", "purchase.order"]]]),
            json!({}),
        )
        .await["result"][0]
            .as_i64()
            .unwrap();
        let todo = execute_kw(
            &server,
            "ir.model.data",
            "search_read",
            json!([
                [
                    ["module", "=", "mail"],
                    ["name", "=", "mail_activity_data_todo"]
                ],
                ["res_id"]
            ]),
            json!({}),
        )
        .await["result"][0]["res_id"]
            .as_i64()
            .unwrap();
        let activity = execute_kw(
            &server,
            "mail.activity",
            "create",
            json!([{"res_model_id": model_id, "res_id": order, "user_id": bob,
                    "activity_type_id": todo, "summary": "To approve <P1>",
                    "note": "<p>the note</p>"}]),
            json!({}),
        )
        .await["result"]
            .as_i64()
            .unwrap();
        let done = execute_kw(
            &server,
            "mail.activity",
            "action_feedback",
            json!([[activity]]),
            json!({"feedback": "rejected: too dear\nask again"}),
        )
        .await;
        let message = done["result"]
            .as_i64()
            .unwrap_or_else(|| panic!("{label}: {done}"));
        let body = execute_kw(
            &server,
            "mail.message",
            "read",
            json!([[message], ["body"]]),
            json!({}),
        )
        .await["result"][0]["body"]
            .as_str()
            .unwrap()
            .to_string();
        let at = |part: &str| {
            body.find(part)
                .unwrap_or_else(|| panic!("{label}: {part:?} in {body}"))
        };
        // As the real servers stored it: the template's outer div only on
        // 19, the To-Do icon of the version.
        let (open, close) = if version >= OdooVersion::V19 {
            ("<div>", "\n</div>")
        } else {
            ("", "\n")
        };
        let icon = if version >= OdooVersion::V18 {
            "fa-check"
        } else {
            "fa-tasks"
        };
        let header = format!(
            "{open}\n    <p>\n        <span class=\"fa {icon} fa-fw\"></span><span>To-Do</span> done\n         (originally assigned to <span>Bob Buyer</span>)\n        <span>: </span><span>To approve &lt;P1&gt;</span>\n    </p>"
        );
        assert!(body.starts_with(&header), "{label}: {body}");
        assert!(body.ends_with(close), "{label}: {body}");
        let feedback = at(
            "\n            rejected: too dear\n            <br>\n            ask again\n    </div>",
        );
        let note = at("<div><p>the note</p></div>");
        if version >= OdooVersion::V18 {
            let title = at("<div class=\"o_mail_note_title fw-bold\">Original note:</div>");
            let label_at = at("<div class=\"fw-bold\">Feedback:</div>");
            assert!(
                title < note && note < label_at && label_at < feedback,
                "{label}: {body}"
            );
        } else {
            assert!(!body.contains("Feedback:"), "{label}: {body}");
            let title =
                at("<div class=\"o_mail_note_title\"><strong>Original note:</strong></div>");
            assert!(feedback < title && title < note, "{label}: {body}");
        }
        server.shutdown().await;
    }
}

/// Purchase's two-step validation: above the company's amount, a user
/// without the purchase manager group confirms into `to approve`, where
/// `button_confirm` leaves the order; `button_approve` approves only for a
/// user Odoo lets approve (the administrator is a purchase manager).
#[tokio::test]
async fn purchase_two_step_validation() {
    let server = start(OdooVersion::V17).await;
    let company =
        execute_kw(&server, "res.company", "search", json!([[]]), json!({})).await["result"][0]
            .as_i64()
            .unwrap();
    let set = execute_kw(
        &server,
        "res.company",
        "write",
        json!([[company], {"po_double_validation": "two_step", "po_double_validation_amount": 1000.0}]),
        json!({}),
    )
    .await;
    assert_eq!(set["result"], true, "{set}");
    let vendor = execute_kw(
        &server,
        "res.partner",
        "search",
        json!([[["supplier_rank", ">", 0]]]),
        json!({"limit": 1}),
    )
    .await["result"][0]
        .as_i64()
        .unwrap();
    let product = execute_kw(
        &server,
        "product.product",
        "search",
        json!([[]]),
        json!({"limit": 1}),
    )
    .await["result"][0]
        .as_i64()
        .unwrap();
    let order = |qty: f64| {
        let server = &server;
        async move {
            let order = execute_kw(
                server,
                "purchase.order",
                "create",
                json!([{"partner_id": vendor}]),
                json!({}),
            )
            .await["result"]
                .as_i64()
                .unwrap();
            execute_kw(
                server,
                "purchase.order.line",
                "create",
                json!([{"order_id": order, "product_id": product, "product_qty": qty,
                        "price_unit": 100.0, "name": "x", "date_planned": "2025-03-05 12:00:00"}]),
                json!({}),
            )
            .await;
            order
        }
    };
    let state = |order: i64| {
        let server = &server;
        async move {
            execute_kw(
                server,
                "purchase.order",
                "read",
                json!([[order], ["state", "amount_total"]]),
                json!({}),
            )
            .await["result"][0]
                .clone()
        }
    };
    // buyer.chen is a purchase user, not a manager; his API key authenticates him.
    let chen = uid_of(&server, "buyer.chen").await;
    let chen_key = server.db.generate_api_key("buyer.chen").unwrap();
    let as_chen = |method: &'static str, order: i64| {
        let (server, key) = (&server, chen_key.clone());
        async move {
            execute_kw_as(
                server,
                (chen, &key),
                "purchase.order",
                method,
                json!([[order]]),
                json!({}),
            )
            .await
        }
    };
    let big = order(20.0).await;
    assert_eq!(state(big).await["amount_total"], 2000.0);
    assert_eq!(as_chen("button_confirm", big).await["result"], true);
    assert_eq!(state(big).await["state"], "to approve");
    // Confirming again changes nothing; chen may not approve.
    as_chen("button_confirm", big).await;
    assert_eq!(as_chen("button_approve", big).await["result"], json!({}));
    assert_eq!(state(big).await["state"], "to approve");
    // Below the amount chen confirms in one step.
    let small = order(5.0).await;
    as_chen("button_confirm", small).await;
    assert_eq!(state(small).await["state"], "purchase");
    // The administrator approves the waiting order.
    let approved = execute_kw(
        &server,
        "purchase.order",
        "button_approve",
        json!([[big]]),
        json!({}),
    )
    .await;
    assert_eq!(approved["result"], json!({}), "{approved}");
    assert_eq!(state(big).await["state"], "purchase");
    server.shutdown().await;
}

/// Approvals app: approver lines written as `pending` get no activity;
/// `action_confirm` schedules one per approver it moves from `new`, also on
/// a request submitted before (approvers added later).
#[tokio::test]
async fn approval_activities_come_from_action_confirm() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = SimServer::start(
        SimConfig {
            edition: Edition::Enterprise,
            ..config(OdooVersion::V17)
        },
        addr,
    )
    .await
    .unwrap();
    let (bob, chen, alice) = (
        uid_of(&server, "buyer.bob").await,
        uid_of(&server, "buyer.chen").await,
        uid_of(&server, "buyer.alice").await,
    );
    let category = execute_kw(
        &server,
        "approval.category",
        "create",
        json!([{"name": "Buys"}]),
        json!({}),
    )
    .await["result"]
        .as_i64()
        .unwrap();
    let request = execute_kw(
        &server,
        "approval.request",
        "create",
        json!([{"name": "R", "category_id": category}]),
        json!({}),
    )
    .await["result"]
        .as_i64()
        .unwrap();
    let approver = |user: i64, status: Option<&str>| {
        let server = &server;
        let mut vals = json!({"request_id": request, "user_id": user});
        if let Some(status) = status {
            vals["status"] = json!(status);
        }
        async move {
            execute_kw(
                server,
                "approval.approver",
                "create",
                json!([vals]),
                json!({}),
            )
            .await["result"]
                .as_i64()
                .unwrap()
        }
    };
    let todos = |user: i64| {
        let server = &server;
        async move {
            execute_kw(
                server,
                "mail.activity",
                "search_count",
                json!([[
                    ["res_model", "=", "approval.request"],
                    ["res_id", "=", request],
                    ["user_id", "=", user]
                ]]),
                json!({}),
            )
            .await["result"]
                .as_i64()
                .unwrap()
        }
    };
    let confirm = || {
        execute_kw(
            &server,
            "approval.request",
            "action_confirm",
            json!([[request]]),
            json!({}),
        )
    };
    approver(bob, None).await;
    approver(alice, Some("pending")).await;
    confirm().await;
    assert_eq!(todos(bob).await, 1);
    assert_eq!(todos(alice).await, 0, "written as pending: no to-do");
    approver(chen, None).await;
    confirm().await;
    assert_eq!(todos(chen).await, 1);
    assert_eq!(todos(bob).await, 1, "bob was pending already");
    server.shutdown().await;
}

/// On 19 over JSON-2: `message_post` answers `[id]`, `button_cancel` (which
/// returns nothing) `null`, `action_feedback` the message id.
#[tokio::test]
async fn json2_result_shapes_of_workflow_methods_on_19() {
    let server = start(OdooVersion::V19).await;
    let key = server.db.admin_api_key();
    let call = |path: &'static str, body: Value| {
        let (server, key) = (&server, key.clone());
        async move {
            let response = json2(server, path, Some(&key), body).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let vendor = call(
        "res.partner/search",
        json!({"domain": [["supplier_rank", ">", 0]], "limit": 1}),
    )
    .await[0]
        .as_i64()
        .unwrap();
    let order = call(
        "purchase.order/create",
        json!({"vals_list": [{"partner_id": vendor}]}),
    )
    .await[0]
        .as_i64()
        .unwrap();
    let posted = call(
        "purchase.order/message_post",
        json!({"ids": [order], "body": "hello", "body_is_html": true}),
    )
    .await;
    assert!(
        posted
            .as_array()
            .is_some_and(|ids| ids.len() == 1 && ids[0].is_i64()),
        "{posted}"
    );
    let model_id = call(
        "ir.model/search",
        json!({"domain": [["model", "=", "purchase.order"]]}),
    )
    .await[0]
        .as_i64()
        .unwrap();
    let activity = call(
        "mail.activity/create",
        json!({"vals_list": [{"res_model_id": model_id, "res_id": order, "summary": "check"}]}),
    )
    .await[0]
        .as_i64()
        .unwrap();
    let done = call(
        "mail.activity/action_feedback",
        json!({"ids": [activity], "feedback": "ok"}),
    )
    .await;
    assert!(done.is_i64(), "{done}");
    let cancelled = call("purchase.order/button_cancel", json!({"ids": [order]})).await;
    assert_eq!(cancelled, Value::Null);
    server.shutdown().await;
}

/// A method returning `None` (`button_cancel`): Odoo's JSON-RPC envelope then
/// has neither `result` nor `error`, and the call did its work.
#[tokio::test]
async fn a_method_returning_none_has_no_result_over_jsonrpc() {
    let server = start(OdooVersion::V17).await;
    let vendor = execute_kw(
        &server,
        "res.partner",
        "search",
        json!([[["supplier_rank", ">", 0]]]),
        json!({"limit": 1}),
    )
    .await["result"][0]
        .as_i64()
        .unwrap();
    let order = execute_kw(
        &server,
        "purchase.order",
        "create",
        json!([{"partner_id": vendor}]),
        json!({}),
    )
    .await["result"]
        .as_i64()
        .unwrap();
    let cancelled = execute_kw(
        &server,
        "purchase.order",
        "button_cancel",
        json!([[order]]),
        json!({}),
    )
    .await;
    assert!(cancelled.get("result").is_none(), "{cancelled}");
    assert!(cancelled.get("error").is_none(), "{cancelled}");
    let state = execute_kw(
        &server,
        "purchase.order",
        "read",
        json!([[order], ["state"]]),
        json!({}),
    )
    .await;
    assert_eq!(state["result"][0]["state"], "cancel");
    server.shutdown().await;
}

async fn create_record(server: &SimServer, model: &str, vals: Value) -> i64 {
    let body = execute_kw(server, model, "create", json!([vals]), json!({})).await;
    body["result"]
        .as_i64()
        .unwrap_or_else(|| panic!("creating {model}: {body}"))
}

/// Product quantities are scoped by the warehouse context key the version
/// reads (`warehouse` up to 17, `warehouse_id` from 18); the other key is
/// ignored, leaving the figure company-wide, as Odoo does.
#[tokio::test]
async fn stock_quantities_honour_only_the_versions_warehouse_key() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let template = create_record(
            &server,
            "product.template",
            if version < OdooVersion::V19 {
                json!({"name": "Scope probe", "categ_id": 1, "uom_id": 1, "uom_po_id": 1})
            } else {
                json!({"name": "Scope probe", "categ_id": 1, "uom_id": 1})
            },
        )
        .await;
        let product = create_record(
            &server,
            "product.product",
            json!({"product_tmpl_id": template, "default_code": "SCOPE-1"}),
        )
        .await;
        let mut warehouses = Vec::new();
        for (code, qty) in [("SA", 7.0), ("SB", 30.0)] {
            let view = create_record(
                &server,
                "stock.location",
                json!({"name": code, "usage": "view"}),
            )
            .await;
            let stock = create_record(
                &server,
                "stock.location",
                json!({"name": "Stock", "usage": "internal", "location_id": view}),
            )
            .await;
            let wh = create_record(
                &server,
                "stock.warehouse",
                json!({"name": format!("Scope {code}"), "code": code,
                       "view_location_id": view, "lot_stock_id": stock}),
            )
            .await;
            create_record(
                &server,
                "stock.quant",
                json!({"product_id": product, "location_id": stock, "quantity": qty}),
            )
            .await;
            warehouses.push(wh);
        }
        let on_hand = |context: Value| {
            let server = &server;
            async move {
                let body = execute_kw(
                    server,
                    "product.product",
                    "read",
                    json!([[product], ["qty_available"]]),
                    json!({"context": context}),
                )
                .await;
                body["result"][0]["qty_available"].as_f64().unwrap()
            }
        };
        let (known, unknown) = if version >= OdooVersion::V18 {
            ("warehouse_id", "warehouse")
        } else {
            ("warehouse", "warehouse_id")
        };
        let company_wide = on_hand(json!({})).await;
        assert_eq!(company_wide, 37.0, "{version:?}");
        assert_eq!(
            on_hand(json!({known: warehouses[0]})).await,
            7.0,
            "{version:?}"
        );
        assert_eq!(
            on_hand(json!({known: warehouses[1]})).await,
            30.0,
            "{version:?}"
        );
        assert_eq!(
            on_hand(json!({unknown: warehouses[0]})).await,
            company_wide,
            "{version:?}: `{unknown}` is not read"
        );
        server.shutdown().await;
    }
}

/// `execute_kw` answering `result`, or panicking with the error.
async fn call_ok(
    server: &SimServer,
    model: &str,
    method: &str,
    args: Value,
    kwargs: Value,
) -> Value {
    let body = execute_kw(server, model, method, args, kwargs).await;
    assert!(body.get("error").is_none(), "{model}.{method}: {body}");
    body["result"].clone()
}

/// Domain features by version: `any` from 17, date parts in paths from 18,
/// and a date alone compared with a datetime meaning the whole day.
#[tokio::test]
async fn domains_follow_the_versions_operators_and_date_rules() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let any = execute_kw(
            &server,
            "sale.order",
            "search",
            json!([[["order_line", "any", [["product_uom_qty", ">", 0]]]]]),
            json!({}),
        )
        .await;
        if version == OdooVersion::V16 {
            assert_error_saying(&any, "builtins.ValueError", "Invalid leaf");
        } else {
            assert!(any["result"].is_array(), "{version:?}: {any}");
        }
        let part = execute_kw(
            &server,
            "sale.order",
            "search",
            json!([[["date_order.month_number", "=", 3]]]),
            json!({}),
        )
        .await;
        if version < OdooVersion::V18 {
            assert!(part.get("error").is_some(), "{version:?}: {part}");
        } else {
            assert!(part["result"].is_array(), "{version:?}: {part}");
        }

        let partner = create_record(&server, "res.partner", json!({"name": "Day Probe"})).await;
        let order = create_record(
            &server,
            "sale.order",
            json!({"partner_id": partner, "date_order": "2025-03-05 12:00:00"}),
        )
        .await;
        for (operator, day, hit) in [
            ("<=", "2025-03-05", true),
            (">", "2025-03-05", false),
            ("<", "2025-03-05", false),
            (">=", "2025-03-05", true),
            (">", "2025-03-04", true),
            ("<=", "2025-03-04", false),
        ] {
            let found = call_ok(
                &server,
                "sale.order",
                "search",
                json!([[["id", "=", order], ["date_order", operator, day]]]),
                json!({"context": {"tz": "UTC"}}),
            )
            .await;
            assert_eq!(
                found == json!([order]),
                hit,
                "{version:?}: date_order {operator} {day}"
            );
        }
        server.shutdown().await;
    }
}

/// Deleting a record deletes its external ids (the name is free again), and
/// partners carry the address and notes fields Odoo's own examples use.
#[tokio::test]
async fn unlink_drops_external_ids_and_partners_have_address_fields() {
    for version in ALL_VERSIONS {
        let server = start(version).await;
        let belgium = call_ok(
            &server,
            "res.country",
            "search",
            json!([[["code", "=", "BE"]]]),
            json!({}),
        )
        .await[0]
            .as_i64()
            .unwrap();
        let partner = create_record(
            &server,
            "res.partner",
            json!({"name": "Address Probe", "is_company": true, "country_id": belgium,
                   "comment": "<p>Probe</p>", "email": "probe@example.com", "phone": "+32 2 000 00 00",
                   "street": "Rue du Test 1", "city": "Bruxelles", "zip": "1000"}),
        )
        .await;
        let row = call_ok(
            &server,
            "res.partner",
            "read",
            json!([
                [partner],
                [
                    "country_id",
                    "comment",
                    "street",
                    "city",
                    "zip",
                    "is_company"
                ]
            ]),
            json!({}),
        )
        .await;
        assert_eq!(row[0]["country_id"][0], json!(belgium), "{version:?}");
        assert_eq!(row[0]["zip"], json!("1000"), "{version:?}");
        assert_eq!(row[0]["is_company"], json!(true), "{version:?}");

        create_record(
            &server,
            "ir.model.data",
            json!({"module": "planops_probe", "name": "partner", "model": "res.partner", "res_id": partner}),
        )
        .await;
        call_ok(
            &server,
            "res.partner",
            "unlink",
            json!([[partner]]),
            json!({}),
        )
        .await;
        let left = call_ok(
            &server,
            "ir.model.data",
            "search_count",
            json!([[["module", "=", "planops_probe"]]]),
            json!({}),
        )
        .await;
        assert_eq!(left, json!(0), "{version:?}");
        server.shutdown().await;
    }
}
