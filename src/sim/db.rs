//! The simulator's in-memory database: configuration, authentication and the
//! `execute_kw` entry point that the protocol layer (XML-RPC, JSON-RPC, JSON-2)
//! calls for every ORM method.

use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// The Odoo major version the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OdooVersion {
    V16,
    V17,
    V18,
    V19,
}

/// An Odoo version string the simulator does not imitate.
#[derive(Debug, thiserror::Error)]
#[error("unsupported Odoo version {0:?} (expected 16, 17, 18 or 19)")]
pub struct UnsupportedVersion(pub String);

impl OdooVersion {
    /// Parses "16", "17.0", "saas~17.2" style strings by their major number.
    pub fn parse(text: &str) -> Result<OdooVersion, UnsupportedVersion> {
        let trimmed = text.trim().trim_start_matches("saas~");
        let major = trimmed.split('.').next().unwrap_or_default();
        match major {
            "16" => Ok(OdooVersion::V16),
            "17" => Ok(OdooVersion::V17),
            "18" => Ok(OdooVersion::V18),
            "19" => Ok(OdooVersion::V19),
            _ => Err(UnsupportedVersion(text.to_string())),
        }
    }

    pub fn major(self) -> u32 {
        match self {
            OdooVersion::V16 => 16,
            OdooVersion::V17 => 17,
            OdooVersion::V18 => 18,
            OdooVersion::V19 => 19,
        }
    }

    /// The `server_version` string reported by `common.version()`, e.g. "17.0".
    pub fn server_version(self) -> String {
        format!("{}.0", self.major())
    }
}

impl std::str::FromStr for OdooVersion {
    type Err = UnsupportedVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OdooVersion::parse(s)
    }
}

/// Community or Enterprise; Enterprise adds the approvals models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edition {
    Community,
    Enterprise,
}

/// Shape of the seeded data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetParams {
    pub seed: u64,
    pub products: usize,
    pub warehouses: usize,
    pub history_days: u32,
    pub suppliers: usize,
    pub customers: usize,
    /// Open (unconfirmed-delivery) sale orders.
    pub open_sale_orders: usize,
    /// Open purchase orders, some of them late.
    pub open_purchase_orders: usize,
}

impl Default for DatasetParams {
    fn default() -> Self {
        DatasetParams {
            seed: 7,
            products: 200,
            warehouses: 3,
            history_days: 365,
            suppliers: 12,
            customers: 40,
            open_sale_orders: 60,
            open_purchase_orders: 40,
        }
    }
}

/// Everything needed to build a simulated database.
#[derive(Clone)]
pub struct SimConfig {
    pub database: String,
    pub version: OdooVersion,
    pub edition: Edition,
    pub admin_password: String,
    pub dataset: DatasetParams,
    /// Fixed "today" so the data set is deterministic.
    pub today: jiff::civil::Date,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("database", &self.database)
            .field("version", &self.version)
            .field("edition", &self.edition)
            .field("admin_password", &"<redacted>")
            .field("dataset", &self.dataset)
            .field("today", &self.today)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            database: "planops".to_string(),
            version: OdooVersion::V17,
            edition: Edition::Community,
            admin_password: "admin".to_string(),
            dataset: DatasetParams::default(),
            today: jiff::Zoned::now().date(),
        }
    }
}

/// A POST queued by a `base.automation` webhook rule; the protocol layer sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub url: String,
    pub payload: Value,
    pub automation_id: i64,
}

/// Errors raised by ORM methods, mirroring the Odoo exception classes.
#[derive(Debug, thiserror::Error)]
pub enum OrmError {
    #[error("{0}")]
    Access(String),
    #[error("Access Denied")]
    AccessDenied,
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    User(String),
    /// Bad arguments: Python's ValueError / TypeError.
    #[error("{0}")]
    Value(String),
    #[error("Object {0} doesn't exist")]
    UnknownModel(String),
    #[error("The method '{method}' does not exist on the model '{model}'")]
    UnknownMethod { model: String, method: String },
}

impl OrmError {
    /// The fully qualified exception name Odoo reports in `data.name`.
    pub fn odoo_exception_name(&self) -> &'static str {
        match self {
            OrmError::Access(_) => "odoo.exceptions.AccessError",
            OrmError::AccessDenied => "odoo.exceptions.AccessDenied",
            OrmError::Validation(_) => "odoo.exceptions.ValidationError",
            OrmError::Missing(_) => "odoo.exceptions.MissingError",
            OrmError::User(_) => "odoo.exceptions.UserError",
            OrmError::Value(_) => "builtins.ValueError",
            OrmError::UnknownModel(_) => "builtins.KeyError",
            OrmError::UnknownMethod { .. } => "builtins.AttributeError",
        }
    }
}

struct Inner {
    cfg: SimConfig,
}

/// The simulated Odoo database. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Database {
    inner: Arc<RwLock<Inner>>,
    calls: Arc<AtomicU64>,
    name: Arc<str>,
    version: OdooVersion,
    edition: Edition,
}

impl Database {
    pub fn new(cfg: SimConfig) -> Database {
        let name: Arc<str> = Arc::from(cfg.database.as_str());
        let version = cfg.version;
        let edition = cfg.edition;
        Database {
            inner: Arc::new(RwLock::new(Inner { cfg })),
            calls: Arc::new(AtomicU64::new(0)),
            name,
            version,
            edition,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> OdooVersion {
        self.version
    }

    pub fn edition(&self) -> Edition {
        self.edition
    }

    /// Checks a login against its password or one of its API keys; returns the uid.
    pub fn authenticate(&self, login: &str, password_or_api_key: &str) -> Option<i64> {
        let inner = self.inner.read().ok()?;
        (login == "admin" && password_or_api_key == inner.cfg.admin_password).then_some(2)
    }

    /// Resolves a JSON-2 bearer API key to its user.
    pub fn uid_for_api_key(&self, _key: &str) -> Option<i64> {
        None
    }

    /// The admin's API key, generated when the database is built.
    pub fn admin_api_key(&self) -> String {
        String::new()
    }

    /// Runs an ORM method with positional `args` and keyword `kwargs` (XML-RPC / JSON-RPC).
    pub fn execute_kw(
        &self,
        _uid: i64,
        model: &str,
        method: &str,
        _args: Vec<Value>,
        _kwargs: Map<String, Value>,
    ) -> Result<Value, OrmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(OrmError::UnknownMethod {
            model: model.to_string(),
            method: method.to_string(),
        })
    }

    /// Runs an ORM method with named parameters only (JSON-2: `ids`, `domain`, `fields`, …).
    pub fn execute_named(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Value, OrmError> {
        self.execute_kw(uid, model, method, Vec::new(), params)
    }

    /// Takes the webhook POSTs queued by automation rules since the last call.
    pub fn drain_webhooks(&self) -> Vec<WebhookDelivery> {
        Vec::new()
    }

    /// Number of `execute_kw` calls served so far.
    pub fn call_count(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}
