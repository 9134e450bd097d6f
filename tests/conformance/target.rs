//! Where the suite runs: the simulator in one version mode, or any Odoo named by
//! environment variables.
//!
//! | variable | meaning |
//! |---|---|
//! | `PLANOPS_ODOO_URL` | base URL, e.g. `http://127.0.0.1:8017` |
//! | `PLANOPS_ODOO_DB` | database |
//! | `PLANOPS_ODOO_LOGIN` | login (default `admin`) |
//! | `PLANOPS_ODOO_API_KEY` | API key (needed for JSON-2 on 19), else |
//! | `PLANOPS_ODOO_PASSWORD` | password |

use std::time::Duration;

use jiff::civil::Date;
use planops::odoo::{OdooClient, OdooConfig, OdooError, RateLimitConfig, RetryConfig, Secret};
use planops::sim::{DatasetParams, Edition, OdooVersion, SimConfig, SimServer};

/// A connected server and the day it lives in.
pub struct Target {
    pub client: OdooClient,
    pub today: Date,
    /// `simulator 17` or the URL.
    pub label: String,
    sim: Option<SimServer>,
}

impl Target {
    pub fn major(&self) -> u32 {
        self.client.info().version.major
    }

    pub async fn close(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

fn utc_today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

fn config(url: &str, database: &str, login: &str, secret: Secret) -> OdooConfig {
    let mut cfg = OdooConfig::new(url, database, login, secret);
    cfg.timeout = Duration::from_secs(60);
    cfg.retry = RetryConfig {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        budget: Duration::from_secs(60),
    };
    cfg.rate_limit = RateLimitConfig {
        rps: 1_000.0,
        burst: 1_000,
        max_concurrent: 4,
        calls_per_minute: None,
    };
    cfg
}

/// The simulator in `version` mode, on a loopback port, living today.
pub async fn simulator(version: OdooVersion) -> Target {
    let cfg = SimConfig {
        database: "conformance".into(),
        version,
        edition: Edition::Community,
        admin_password: "admin".into(),
        dataset: DatasetParams {
            seed: 11,
            products: 5,
            warehouses: 1,
            history_days: 14,
            ..DatasetParams::default()
        },
        today: utc_today(),
    };
    let addr = "127.0.0.1:0".parse().expect("a loopback address");
    let sim = SimServer::start(cfg, addr)
        .await
        .expect("starting the simulator");
    let key = sim.db.admin_api_key();
    let secret = Secret::new(if key.is_empty() {
        "admin".to_string()
    } else {
        key.to_string()
    });
    let client = OdooClient::connect(config(&sim.url, "conformance", "admin", secret))
        .await
        .expect("connecting to the simulator");
    Target {
        client,
        today: utc_today(),
        label: format!("simulator {}", version.major()),
        sim: Some(sim),
    }
}

/// The Odoo the environment names, if it names one.
pub async fn from_env() -> Option<Target> {
    let url = std::env::var("PLANOPS_ODOO_URL").ok()?;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let database = var("PLANOPS_ODOO_DB").expect("PLANOPS_ODOO_DB names the database");
    let login = var("PLANOPS_ODOO_LOGIN").unwrap_or_else(|| "admin".into());
    let secret = var("PLANOPS_ODOO_API_KEY")
        .or_else(|| var("PLANOPS_ODOO_PASSWORD"))
        .expect("PLANOPS_ODOO_API_KEY or PLANOPS_ODOO_PASSWORD");
    let client = OdooClient::connect(config(&url, &database, &login, Secret::new(secret)))
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    Some(Target {
        client,
        today: utc_today(),
        label: url,
        sim: None,
    })
}

/// The value, or a panic that says what the suite was doing.
pub fn must<T>(result: Result<T, OdooError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}
