//! Outgoing webhooks of `base.automation` rules: POSTed the way Odoo's
//! `ir.actions.server` webhook action does (Python `requests`, JSON body with
//! sorted keys, 1-second timeout, no retry, failures only logged).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::db::WebhookDelivery;

/// Odoo's webhook action gives up after one second.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(1);
/// Deliveries kept in memory for inspection.
const LOG_CAPACITY: usize = 1000;
/// The `requests` version Odoo's images ship; receivers sometimes look at it.
const USER_AGENT: &str = "python-requests/2.31.0";

/// One attempted delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub url: String,
    pub automation_id: i64,
    pub model: Option<String>,
    pub record_id: Option<i64>,
    /// HTTP status of the receiver's answer, when there was one.
    pub status: Option<u16>,
    /// Transport error (timeout, refused, …), when there was no answer.
    pub error: Option<String>,
    pub delivered: bool,
}

/// Counters and recent deliveries, as served by `GET /planops-sim/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLogSnapshot {
    pub delivered: u64,
    pub failed: u64,
    pub recent: Vec<DeliveryRecord>,
}

#[derive(Default)]
struct LogState {
    delivered: u64,
    failed: u64,
    recent: VecDeque<DeliveryRecord>,
}

/// Sends webhooks and remembers how each delivery went.
pub struct WebhookSender {
    client: reqwest::Client,
    log: Mutex<LogState>,
}

/// The webhook HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct WebhookClientError(#[from] reqwest::Error);

impl WebhookSender {
    pub fn new() -> Result<WebhookSender, WebhookClientError> {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .user_agent(USER_AGENT)
            // Receivers in tests listen on loopback; a proxy from the environment
            // would swallow those requests, and Odoo's server has none either.
            .no_proxy()
            .build()?;
        Ok(WebhookSender {
            client,
            log: Mutex::new(LogState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends each delivery in turn; failures are recorded, never returned.
    pub async fn deliver_all(&self, deliveries: Vec<WebhookDelivery>) {
        for delivery in deliveries {
            self.deliver(delivery).await;
        }
    }

    async fn deliver(&self, delivery: WebhookDelivery) {
        let body = python_json_dumps(&delivery.payload);
        let outcome = self
            .client
            .post(&delivery.url)
            .header(reqwest::header::ACCEPT, "*/*")
            .header(reqwest::header::ACCEPT_ENCODING, "gzip, deflate")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let (status, error) = match outcome {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) if error.is_timeout() => (None, Some("timed out after 1s".to_string())),
            Err(error) => (None, Some(describe_transport_error(&error))),
        };
        let delivered = status.is_some_and(|code| (200..300).contains(&code));
        let target = redacted_target(&delivery.url);
        match (&status, &error) {
            (Some(code), _) if delivered => {
                tracing::debug!(target_host = %target, status = code, "webhook delivered");
            }
            (Some(code), _) => {
                tracing::warn!(target_host = %target, status = code, "webhook call failed");
            }
            (None, Some(reason)) => {
                tracing::warn!(target_host = %target, %reason, "webhook call failed");
            }
            (None, None) => {}
        }
        let record = DeliveryRecord {
            model: delivery
                .payload
                .get("_model")
                .and_then(Value::as_str)
                .map(str::to_string),
            record_id: delivery.payload.get("_id").and_then(Value::as_i64),
            url: delivery.url,
            automation_id: delivery.automation_id,
            status,
            error,
            delivered,
        };
        let mut log = self.lock();
        if delivered {
            log.delivered += 1;
        } else {
            log.failed += 1;
        }
        if log.recent.len() == LOG_CAPACITY {
            log.recent.pop_front();
        }
        log.recent.push_back(record);
    }

    pub fn snapshot(&self) -> DeliveryLogSnapshot {
        let log = self.lock();
        DeliveryLogSnapshot {
            delivered: log.delivered,
            failed: log.failed,
            recent: log.recent.iter().cloned().collect(),
        }
    }

    pub fn reset(&self) {
        *self.lock() = LogState::default();
    }
}

/// Webhook URLs often carry an unguessable path acting as a secret; logs only
/// get scheme, host and port.
fn redacted_target(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid url>".to_string(),
    }
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "connection failed".to_string()
    } else if error.is_builder() {
        "invalid webhook url".to_string()
    } else {
        "request failed".to_string()
    }
}

/// Serialises like Python's `json.dumps(value, sort_keys=True)`: `", "` and
/// `": "` separators and non-ASCII escaped as `\uXXXX`, so receivers see the
/// bytes a real Odoo sends.
pub fn python_json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => write_python_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_python_string(key, out);
                out.push_str(": ");
                write_python_json(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn write_python_string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dumps_like_python_with_sorted_keys() {
        let payload = json!({"_model": "purchase.order", "_id": 42, "state": "purchase",
            "partner_id": false, "order_line": [1, 2], "_action": "Notify(#87)", "amount": 12.5});
        assert_eq!(
            python_json_dumps(&payload),
            r#"{"_action": "Notify(#87)", "_id": 42, "_model": "purchase.order", "amount": 12.5, "order_line": [1, 2], "partner_id": false, "state": "purchase"}"#
        );
    }

    #[test]
    fn escapes_non_ascii_and_controls_like_ensure_ascii() {
        assert_eq!(
            python_json_dumps(&json!("Café \"q\"\n\u{1}😀")),
            r#""Caf\u00e9 \"q\"\n\u0001\ud83d\ude00""#
        );
    }

    #[test]
    fn redacts_paths_from_log_targets() {
        assert_eq!(
            redacted_target("http://127.0.0.1:9000/hooks/secret-token"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(redacted_target("not a url"), "<invalid url>");
    }
}
