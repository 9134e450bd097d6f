//! Configuration of one Odoo connection, filled from an `OdooConnection`
//! resource and its credentials Secret.

use std::fmt;
use std::time::Duration;

use super::secret::Secret;

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// Probe the server version and use JSON-2 on 19+, JSON-RPC before.
    #[default]
    Auto,
    /// `POST /jsonrpc`, service `object`, `execute_kw` (Odoo 16–19).
    JsonRpc,
    /// `POST /json/2/<model>/<method>` with a bearer API key (Odoo 19+).
    Json2,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Auto => "Auto",
            Protocol::JsonRpc => "JsonRpc",
            Protocol::Json2 => "Json2",
        })
    }
}

/// Retry policy for transient failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in total, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Upper bound of the first backoff; doubles on each retry.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Total time one call may take across its attempts and backoffs; a
    /// retry that could not finish its backoff within it is not made.
    pub budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            budget: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn none() -> RetryConfig {
        RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        }
    }
}

/// Limits shared by every user of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained requests per second (may be below 1).
    pub rps: f64,
    /// Requests that may go at once after an idle period.
    pub burst: u32,
    /// Requests in flight at the same time.
    pub max_concurrent: u32,
    /// Budget of requests per minute (`None`: no per-minute budget).
    pub calls_per_minute: Option<u32>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rps: 10.0,
            burst: 20,
            max_concurrent: 4,
            calls_per_minute: None,
        }
    }
}

/// Everything needed to reach one Odoo database.
#[derive(Debug, Clone)]
pub struct OdooConfig {
    /// Base URL, e.g. `https://acme.odoo.com` (a path prefix is kept).
    pub url: String,
    pub database: String,
    pub login: String,
    pub api_key: Secret,
    pub protocol: Protocol,
    /// Timeout of one HTTP request (connect included).
    pub timeout: Duration,
    pub retry: RetryConfig,
    pub rate_limit: RateLimitConfig,
    /// Sent as `User-Agent` so Odoo's logs name the integration.
    pub user_agent: String,
}

impl OdooConfig {
    pub fn new(
        url: impl Into<String>,
        database: impl Into<String>,
        login: impl Into<String>,
        api_key: Secret,
    ) -> OdooConfig {
        OdooConfig {
            url: url.into(),
            database: database.into(),
            login: login.into(),
            api_key,
            protocol: Protocol::Auto,
            timeout: Duration::from_secs(30),
            retry: RetryConfig::default(),
            rate_limit: RateLimitConfig::default(),
            user_agent: format!("planops/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_key() {
        let cfg = OdooConfig::new(
            "http://odoo",
            "acme",
            "planner-bot",
            Secret::new("3f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c"),
        );
        let text = format!("{cfg:?}");
        assert!(!text.contains("3f0c1d2e"), "{text}");
        assert!(text.contains("planner-bot"));
    }
}
