//! The Odoo client PlanOps uses: connects (version probe, protocol choice,
//! authentication), retries transient failures, and offers the ORM helpers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::config::{OdooConfig, Protocol, RetryConfig};
use super::error::{ErrorKind, OdooError};
use super::group::{self, Group, ReadGroupSpec};
use super::limiter::RequestLimiter;
use super::retry::RetryPolicy;
use super::secret::Secret;
use super::stats::{CallCounters, CallsSnapshot};
use super::transport::{Call, Json2Transport, JsonRpcTransport, Transport, Wire};
use super::values::{Record, RecordExt};
use super::version::ServerVersion;

/// Community or Enterprise (Enterprise has the Approvals app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edition {
    Community,
    Enterprise,
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Edition::Community => "Community",
            Edition::Enterprise => "Enterprise",
        })
    }
}

/// What [`OdooClient::probe`] found out about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: ServerVersion,
    pub edition: Edition,
    /// The user the API key belongs to.
    pub uid: i64,
    /// The protocol in use (never `Auto`).
    pub protocol: Protocol,
}

/// `search` / `search_read` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchOptions {
    pub offset: u64,
    pub limit: Option<u64>,
    pub order: Option<String>,
}

impl SearchOptions {
    pub fn limit(limit: u64) -> SearchOptions {
        SearchOptions {
            limit: Some(limit),
            ..SearchOptions::default()
        }
    }
}

/// How [`Pager`] walks a result set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// `[("id", ">", last)]` + `order="id"`: stable while records are added
    /// or removed, and cheap at any depth. The default.
    Keyset,
    /// `offset` + `limit` with a caller-chosen order (records added during
    /// the walk may be skipped or seen twice).
    Offset { order: String },
}

/// Page size and strategy of a paginated read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOptions {
    pub page_size: u64,
    pub pagination: Pagination,
}

impl Default for PageOptions {
    fn default() -> Self {
        PageOptions {
            page_size: 500,
            pagination: Pagination::Keyset,
        }
    }
}

impl PageOptions {
    pub fn keyset(page_size: u64) -> PageOptions {
        PageOptions {
            page_size,
            pagination: Pagination::Keyset,
        }
    }
}

/// An external id `module.name` (an `ir.model.data` row).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalId {
    pub module: String,
    pub name: String,
}

impl ExternalId {
    /// Checks the parts: no dot in the module, no spaces or commas anywhere
    /// (`load` reads the id column as CSV text).
    pub fn new(
        module: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<ExternalId, OdooError> {
        let (module, name) = (module.into(), name.into());
        let ok = |s: &str, dots: bool| {
            !s.is_empty()
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dots && c == '.')
                })
        };
        if !ok(&module, false) || !ok(&name, true) {
            return Err(invalid(format!(
                "{module:?}.{name:?} is not a valid external id"
            )));
        }
        Ok(ExternalId { module, name })
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// Result of an idempotent write keyed by an external id or business key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub id: i64,
    /// The record did not exist before this call (also true when an earlier
    /// attempt of this same call created it and its reply was lost).
    pub created: bool,
}

fn invalid(message: String) -> OdooError {
    OdooError::new(ErrorKind::InvalidArgument {
        name: "planops.InvalidArgument".into(),
        message,
    })
}

struct Inner {
    transport: Box<dyn Transport>,
    info: ServerInfo,
    retry: RetryConfig,
    wire: Arc<Wire>,
    counters: Arc<CallCounters>,
    api_key: Secret,
    field_types: Mutex<HashMap<String, Arc<HashMap<String, String>>>>,
}

/// A connection to one Odoo database. Cloning is cheap and every clone
/// shares the rate limiter, the counters and the authenticated transport.
#[derive(Clone)]
pub struct OdooClient {
    inner: Arc<Inner>,
    context: Arc<Map<String, Value>>,
}

impl fmt::Debug for OdooClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OdooClient")
            .field("info", &self.inner.info)
            .field("transport", &self.inner.transport)
            .finish_non_exhaustive()
    }
}

impl OdooClient {
    /// Probes the version, picks the protocol, authenticates and detects the
    /// edition. Errors: `Authentication` (wrong login/key), `UnsupportedVersion`,
    /// `Transient` (unreachable after retries), `Config`.
    pub async fn connect(config: OdooConfig) -> Result<OdooClient, OdooError> {
        let key = config.api_key.clone();
        Self::connect_inner(config)
            .await
            .map_err(|e| e.redact(key.expose()))
    }

    async fn connect_inner(config: OdooConfig) -> Result<OdooClient, OdooError> {
        if config.database.is_empty() || config.login.is_empty() || config.api_key.is_empty() {
            return Err(OdooError::config(
                "database, login and API key are all required",
            ));
        }
        let limiter = Arc::new(RequestLimiter::new(&config.rate_limit)?);
        let counters = Arc::new(CallCounters::default());
        let wire = Arc::new(Wire::new(
            &config.url,
            config.timeout,
            &config.user_agent,
            limiter,
            Arc::clone(&counters),
        )?);
        let version = with_retries(&config.retry, &counters, "common.version", true, || {
            wire.probe_version()
        })
        .await?;
        if !version.is_supported() {
            return Err(OdooError::new(ErrorKind::UnsupportedVersion {
                version: version.full.clone(),
            }));
        }
        let protocol = match config.protocol {
            Protocol::Auto if version.has_json2() => Protocol::Json2,
            Protocol::Auto => Protocol::JsonRpc,
            Protocol::Json2 if !version.has_json2() => {
                return Err(OdooError::config(format!(
                    "JSON-2 needs Odoo 19 or later; the server runs {version}"
                )));
            }
            other => other,
        };
        let transport: Box<dyn Transport> = match protocol {
            Protocol::Json2 => Box::new(
                with_retries(
                    &config.retry,
                    &counters,
                    "res.users.context_get",
                    true,
                    || {
                        Json2Transport::connect(
                            Arc::clone(&wire),
                            &config.database,
                            &config.api_key,
                        )
                    },
                )
                .await?,
            ),
            _ => Box::new(
                with_retries(
                    &config.retry,
                    &counters,
                    "common.authenticate",
                    true,
                    || {
                        JsonRpcTransport::authenticate(
                            Arc::clone(&wire),
                            &config.database,
                            &config.login,
                            config.api_key.clone(),
                        )
                    },
                )
                .await?,
            ),
        };
        let info = ServerInfo {
            edition: if version.enterprise_marker {
                Edition::Enterprise
            } else {
                Edition::Community
            },
            uid: transport.uid(),
            protocol,
            version,
        };
        let mut client = OdooClient {
            inner: Arc::new(Inner {
                transport,
                info,
                retry: config.retry.clone(),
                wire,
                counters,
                api_key: config.api_key,
                field_types: Mutex::new(HashMap::new()),
            }),
            context: Arc::new(Map::new()),
        };
        if client.inner.info.edition == Edition::Community
            && client.has_model("approval.request").await?
        {
            // Only this constructor holds the Arc, so the edition can still be fixed up.
            if let Some(inner) = Arc::get_mut(&mut client.inner) {
                inner.info.edition = Edition::Enterprise;
            }
        }
        Ok(client)
    }

    /// What `connect` found: version, edition, uid, protocol.
    pub fn info(&self) -> &ServerInfo {
        &self.inner.info
    }

    pub fn protocol(&self) -> Protocol {
        self.inner.info.protocol
    }

    pub fn uid(&self) -> i64 {
        self.inner.info.uid
    }

    /// Checks the server again: version (unauthenticated), the API key (an
    /// authenticated call) and the edition. For readiness checks.
    pub async fn probe(&self) -> Result<ServerInfo, OdooError> {
        let wire = Arc::clone(&self.inner.wire);
        let version = with_retries(
            &self.inner.retry,
            &self.inner.counters,
            "common.version",
            true,
            || wire.probe_version(),
        )
        .await
        .map_err(|e| e.redact(self.inner.api_key.expose()))?;
        let context = self
            .call(Call::new("res.users", "context_get").idempotent(true))
            .await?;
        let uid = context
            .get("uid")
            .and_then(Value::as_i64)
            .unwrap_or(self.uid());
        let enterprise = version.enterprise_marker || self.has_model("approval.request").await?;
        Ok(ServerInfo {
            edition: if enterprise {
                Edition::Enterprise
            } else {
                Edition::Community
            },
            uid,
            protocol: self.protocol(),
            version,
        })
    }

    /// A client that sends `context` (merged under each call's own context)
    /// with every call; shares limits and counters with `self`.
    pub fn with_context(&self, context: Map<String, Value>) -> OdooClient {
        let mut merged = (*self.context).clone();
        merged.extend(context);
        OdooClient {
            inner: Arc::clone(&self.inner),
            context: Arc::new(merged),
        }
    }

    /// Requests sent so far by this connection (all clones); one atomic load.
    pub fn requests_made(&self) -> u64 {
        self.inner.counters.requests()
    }

    /// Snapshot of the counters; `after.since(&before)` gives the calls of a scope.
    pub fn calls_made(&self) -> CallsSnapshot {
        self.inner.counters.snapshot()
    }

    /// Calls any method (`button_confirm`, `message_post`, `action_feedback`…)
    /// with retries for transient failures (ambiguous ones only when the
    /// call is marked idempotent).
    pub async fn call(&self, call: Call) -> Result<Value, OdooError> {
        let call = self.prepare(call);
        let idempotent = call.idempotent;
        self.retrying(&call.label(), idempotent, || {
            self.inner.transport.execute(&call)
        })
        .await
    }

    fn prepare(&self, mut call: Call) -> Call {
        if !self.context.is_empty() {
            let mut context = (*self.context).clone();
            context.extend(std::mem::take(&mut call.context));
            call.context = context;
        }
        call
    }

    async fn retrying<T, F, Fut>(
        &self,
        label: &str,
        idempotent: bool,
        op: F,
    ) -> Result<T, OdooError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OdooError>>,
    {
        with_retries(
            &self.inner.retry,
            &self.inner.counters,
            label,
            idempotent,
            op,
        )
        .await
        .map_err(|e| e.redact(self.inner.api_key.expose()))
    }

    /// One attempt, no retries: building block of the idempotent composites,
    /// which retry as a whole.
    async fn call_once(&self, call: Call) -> Result<Value, OdooError> {
        let call = self.prepare(call);
        self.inner
            .transport
            .execute(&call)
            .await
            .map_err(|e| e.in_call(call.label()))
    }

    pub async fn search(
        &self,
        model: &str,
        domain: &Value,
        options: &SearchOptions,
    ) -> Result<Vec<i64>, OdooError> {
        let call = with_search_options(
            Call::new(model, "search").arg("domain", domain.clone()),
            options,
        );
        let result = self.call(call.idempotent(true)).await?;
        ids_of(&result).map_err(|e| e.in_call(format!("{model}.search")))
    }

    pub async fn search_count(&self, model: &str, domain: &Value) -> Result<u64, OdooError> {
        let call = Call::new(model, "search_count")
            .arg("domain", domain.clone())
            .idempotent(true);
        let result = self.call(call).await?;
        result.as_u64().ok_or_else(|| {
            OdooError::protocol(format!("search_count returned {result}"))
                .in_call(format!("{model}.search_count"))
        })
    }

    /// One `search_read` call (one page). Use [`OdooClient::search_read_all`]
    /// or [`OdooClient::pages`] for everything.
    pub async fn search_read(
        &self,
        model: &str,
        domain: &Value,
        fields: &[&str],
        options: &SearchOptions,
    ) -> Result<Vec<Record>, OdooError> {
        let call = with_search_options(
            Call::new(model, "search_read")
                .arg("domain", domain.clone())
                .arg("fields", json!(fields)),
            options,
        );
        let result = self.call(call.idempotent(true)).await?;
        records_of(result).map_err(|e| e.in_call(format!("{model}.search_read")))
    }

    /// Every matching record, read page by page.
    pub async fn search_read_all(
        &self,
        model: &str,
        domain: &Value,
        fields: &[&str],
        pages: &PageOptions,
    ) -> Result<Vec<Record>, OdooError> {
        let mut pager = self.pages(model, domain, fields, pages.clone())?;
        let mut all = Vec::new();
        while let Some(page) = pager.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// A paginated read that yields one page per call, for scans that
    /// process records as they come.
    pub fn pages(
        &self,
        model: &str,
        domain: &Value,
        fields: &[&str],
        options: PageOptions,
    ) -> Result<Pager, OdooError> {
        if !domain.is_array() {
            return Err(invalid(format!("domain must be a list, got {domain}")));
        }
        if options.page_size == 0 {
            return Err(invalid("page size must be at least 1".into()));
        }
        Ok(Pager {
            client: self.clone(),
            model: model.to_string(),
            domain: domain.clone(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            options,
            last_id: 0,
            offset: 0,
            done: false,
        })
    }

    pub async fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: &[&str],
    ) -> Result<Vec<Record>, OdooError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let call = Call::new(model, "read")
            .ids(ids)
            .arg("fields", json!(fields))
            .idempotent(true);
        let result = self.call(call).await?;
        records_of(result).map_err(|e| e.in_call(format!("{model}.read")))
    }

    /// Grouped totals with one shape on every version (see [`group`]).
    pub async fn read_group(
        &self,
        model: &str,
        spec: &ReadGroupSpec,
    ) -> Result<Vec<Group>, OdooError> {
        let major = self.inner.info.version.major;
        let call = group::build_call(model, spec, major)
            .map_err(|e| e.in_call(format!("{model}.read_group")))?;
        let label = call.label();
        let result = self.call(call).await?;
        group::parse_groups(spec, result, major).map_err(|e| e.in_call(label))
    }

    /// Creates records in one call. Not retried after an ambiguous failure
    /// (it could create twice): use [`OdooClient::upsert`] or
    /// [`OdooClient::find_or_create`] where that matters.
    pub async fn create(
        &self,
        model: &str,
        vals_list: Vec<Map<String, Value>>,
    ) -> Result<Vec<i64>, OdooError> {
        if vals_list.is_empty() {
            return Ok(Vec::new());
        }
        let vals: Vec<Value> = vals_list.into_iter().map(Value::Object).collect();
        let result = self
            .call(Call::new(model, "create").arg("vals_list", Value::Array(vals)))
            .await?;
        created_ids(&result).map_err(|e| e.in_call(format!("{model}.create")))
    }

    /// Writes the same values on every id (repeating it is harmless).
    pub async fn write(
        &self,
        model: &str,
        ids: &[i64],
        vals: Map<String, Value>,
    ) -> Result<(), OdooError> {
        if ids.is_empty() {
            return Ok(());
        }
        let call = Call::new(model, "write")
            .ids(ids)
            .arg("vals", Value::Object(vals))
            .idempotent(true);
        self.call(call).await.map(drop)
    }

    pub async fn unlink(&self, model: &str, ids: &[i64]) -> Result<(), OdooError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.call(Call::new(model, "unlink").ids(ids).idempotent(true))
            .await
            .map(drop)
    }

    /// `fields_get`, limited to `attributes` when given (e.g. `["type", "relation"]`).
    pub async fn fields_get(
        &self,
        model: &str,
        attributes: &[&str],
    ) -> Result<Map<String, Value>, OdooError> {
        let mut call = Call::new(model, "fields_get").idempotent(true);
        if !attributes.is_empty() {
            call = call.kwarg("attributes", json!(attributes));
        }
        match self.call(call).await? {
            Value::Object(fields) => Ok(fields),
            other => Err(OdooError::protocol(format!("fields_get returned {other}"))
                .in_call(format!("{model}.fields_get"))),
        }
    }

    /// Whether a model is installed (`ir.model`). Only transient and
    /// authentication failures are errors; any other refusal reads as `false`.
    pub async fn has_model(&self, model: &str) -> Result<bool, OdooError> {
        match self
            .search_count("ir.model", &json!([["model", "=", model]]))
            .await
        {
            Ok(n) => Ok(n > 0),
            Err(e) if e.is_transient() || e.is_authentication() => Err(e),
            Err(e) => {
                // Edition detection is informational: a user without rights on
                // ir.model, or a server that refuses the search, must not make
                // the connection unusable.
                tracing::warn!(model, error = %e, "cannot check whether a model is installed; assuming it is not");
                Ok(false)
            }
        }
    }

    /// Field name → type of `model`, fetched once per client.
    pub async fn field_types(
        &self,
        model: &str,
    ) -> Result<Arc<HashMap<String, String>>, OdooError> {
        if let Some(types) = self.cached_field_types(model) {
            return Ok(types);
        }
        let fields = self.fields_get(model, &["type"]).await?;
        let types: HashMap<String, String> = fields
            .into_iter()
            .filter_map(|(name, attrs)| {
                let ty = attrs.get("type")?.as_str()?.to_string();
                Some((name, ty))
            })
            .collect();
        let types = Arc::new(types);
        self.inner
            .field_types
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(model.to_string(), Arc::clone(&types));
        Ok(types)
    }

    fn cached_field_types(&self, model: &str) -> Option<Arc<HashMap<String, String>>> {
        self.inner
            .field_types
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(model)
            .cloned()
    }

    /// The record an external id points to, if any.
    pub async fn resolve_external_id(
        &self,
        xmlid: &ExternalId,
    ) -> Result<Option<(String, i64)>, OdooError> {
        let rows = self
            .search_read(
                "ir.model.data",
                &json!([["module", "=", xmlid.module], ["name", "=", xmlid.name]]),
                &["model", "res_id"],
                &SearchOptions::limit(1),
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let model = row.str_field("model")?.unwrap_or_default().to_string();
        let res_id = row
            .get("res_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| OdooError::protocol("ir.model.data row without res_id"))?;
        Ok(Some((model, res_id)))
    }

    /// Creates or updates the record of `model` known by `xmlid`, with Odoo's
    /// `load` (the import method): the record and its `ir.model.data` row are
    /// written in one transaction, and loading the same external id again
    /// updates instead of creating. So the whole upsert can be repeated after
    /// any failure, including "Odoo committed but the reply was lost".
    ///
    /// `vals` are write-style values: many2one as id or `false`, many2many as
    /// an id list or `[[6, 0, ids]]`; one2many values are not supported.
    pub async fn upsert(
        &self,
        model: &str,
        xmlid: &ExternalId,
        vals: &Map<String, Value>,
    ) -> Result<UpsertOutcome, OdooError> {
        let types = self.field_types(model).await?;
        let (columns, row) =
            load_row(xmlid, vals, &types).map_err(|e| e.in_call(format!("{model}.load")))?;
        // Whether the record existed before the first attempt; later attempts
        // may see the record that a lost-reply attempt created.
        let existed_before: Mutex<Option<bool>> = Mutex::new(None);
        self.retrying(&format!("{model}.load"), true, || async {
            let existing = self.resolve_external_id_once(xmlid).await?;
            let existed = *lock(&existed_before).get_or_insert(existing.is_some());
            let call = Call::new(model, "load")
                .arg("fields", json!(columns))
                .arg("data", json!([row]));
            let result = self.call_once(call).await?;
            let id = loaded_id(&result).map_err(|e| e.in_call(format!("{model}.load")))?;
            Ok(UpsertOutcome {
                id,
                created: !existed,
            })
        })
        .await
    }

    async fn resolve_external_id_once(&self, xmlid: &ExternalId) -> Result<Option<i64>, OdooError> {
        let call = Call::new("ir.model.data", "search_read")
            .arg(
                "domain",
                json!([["module", "=", xmlid.module], ["name", "=", xmlid.name]]),
            )
            .arg("fields", json!(["res_id"]))
            .kwarg("limit", 1);
        let rows = records_of(self.call_once(call).await?)?;
        Ok(rows
            .first()
            .and_then(|r| r.get("res_id"))
            .and_then(Value::as_i64))
    }

    /// Returns the record matching `key_domain`, creating it from `vals`
    /// when there is none. The key must be stored by `vals` (e.g. `origin`
    /// or `partner_ref` holding a fingerprint) so that a retry after a lost
    /// reply finds the record created by the first attempt.
    pub async fn find_or_create(
        &self,
        model: &str,
        key_domain: &Value,
        vals: &Map<String, Value>,
    ) -> Result<UpsertOutcome, OdooError> {
        // Set once a create was sent: finding the record on a later attempt
        // then means that create committed and only its reply was lost.
        let create_sent = Mutex::new(false);
        let outcome = self
            .retrying(&format!("{model}.find_or_create"), true, || async {
                let search = Call::new(model, "search")
                    .arg("domain", key_domain.clone())
                    .kwarg("limit", 1)
                    .kwarg("order", "id");
                let found = ids_of(&self.call_once(search).await?)?;
                if let Some(&id) = found.first() {
                    let created = *lock(&create_sent);
                    return Ok(UpsertOutcome { id, created });
                }
                *lock(&create_sent) = true;
                let create = Call::new(model, "create")
                    .arg("vals_list", json!([Value::Object(vals.clone())]));
                let ids = created_ids(&self.call_once(create).await?)?;
                let id = *ids
                    .first()
                    .ok_or_else(|| OdooError::protocol("create returned no id"))?;
                Ok(UpsertOutcome { id, created: true })
            })
            .await?;
        Ok(outcome)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `op` until it succeeds, fails permanently, or the retry policy gives up.
async fn with_retries<T, F, Fut>(
    retry: &RetryConfig,
    counters: &CallCounters,
    label: &str,
    idempotent: bool,
    mut op: F,
) -> Result<T, OdooError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OdooError>>,
{
    let started = Instant::now();
    let mut policy = RetryPolicy::new(retry, idempotent);
    loop {
        if policy.attempts() > 0 {
            counters.record_retry();
        }
        policy.record_attempt();
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err.in_call(label),
        };
        let delay = {
            let mut rng = rand::rng();
            policy.next_delay(&err, started.elapsed(), &mut rng)
        };
        let Some(delay) = delay else {
            if err.is_transient() && policy.attempts() > 1 {
                tracing::warn!(call = label, attempts = policy.attempts(), error = %err, "giving up on Odoo call");
            }
            return Err(err);
        };
        tracing::debug!(call = label, attempt = policy.attempts(), ?delay, error = %err, "retrying Odoo call");
        tokio::time::sleep(delay).await;
    }
}

fn with_search_options(mut call: Call, options: &SearchOptions) -> Call {
    if options.offset > 0 {
        call = call.kwarg("offset", options.offset);
    }
    if let Some(limit) = options.limit {
        call = call.kwarg("limit", limit);
    }
    if let Some(order) = &options.order {
        call = call.kwarg("order", order.clone());
    }
    call
}

fn ids_of(value: &Value) -> Result<Vec<i64>, OdooError> {
    value
        .as_array()
        .and_then(|items| items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| OdooError::protocol(format!("expected a list of ids, got {value}")))
}

/// `create` answers an id for one dict and a list for a list (JSON-2: always a list).
fn created_ids(value: &Value) -> Result<Vec<i64>, OdooError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(|id| vec![id])
            .ok_or_else(|| OdooError::protocol(format!("create returned {value}"))),
        _ => ids_of(value),
    }
}

fn records_of(value: Value) -> Result<Vec<Record>, OdooError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(record) => Ok(record),
                other => Err(OdooError::protocol(format!(
                    "expected a record, got {other}"
                ))),
            })
            .collect(),
        other => Err(OdooError::protocol(format!(
            "expected a list of records, got {other}"
        ))),
    }
}

/// Builds the `load` columns and the single data row for `vals`.
fn load_row(
    xmlid: &ExternalId,
    vals: &Map<String, Value>,
    types: &HashMap<String, String>,
) -> Result<(Vec<String>, Vec<String>), OdooError> {
    let mut columns = vec!["id".to_string()];
    let mut row = vec![xmlid.to_string()];
    for (field, value) in vals {
        let ty = types
            .get(field)
            .ok_or_else(|| invalid(format!("unknown field {field:?}")))?;
        let empty = matches!(value, Value::Null | Value::Bool(false));
        let (column, text) = match ty.as_str() {
            "many2one" | "many2one_reference" if empty => (field.clone(), String::new()),
            "many2one" => {
                let id = match value {
                    Value::Number(n) => n.as_i64(),
                    Value::Array(pair) => pair.first().and_then(Value::as_i64),
                    _ => None,
                }
                .ok_or_else(|| invalid(format!("{field}: expected a record id, got {value}")))?;
                (format!("{field}/.id"), id.to_string())
            }
            "many2many" => {
                let ids = x2many_set_ids(value).ok_or_else(|| {
                    invalid(format!(
                        "{field}: expected ids or [[6, 0, ids]], got {value}"
                    ))
                })?;
                let joined = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                (format!("{field}/.id"), joined)
            }
            "one2many" => {
                return Err(invalid(format!(
                    "{field}: one2many values cannot be upserted with load"
                )));
            }
            "boolean" => (
                field.clone(),
                if value.as_bool().unwrap_or(false) {
                    "True"
                } else {
                    "False"
                }
                .to_string(),
            ),
            _ if empty => (field.clone(), String::new()),
            _ => match value {
                Value::String(text) => (field.clone(), text.clone()),
                Value::Number(n) => (field.clone(), n.to_string()),
                other => return Err(invalid(format!("{field}: cannot load {other}"))),
            },
        };
        columns.push(column);
        row.push(text);
    }
    Ok((columns, row))
}

fn x2many_set_ids(value: &Value) -> Option<Vec<i64>> {
    let items = value.as_array()?;
    if let Some(ids) = items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
        return Some(ids);
    }
    match items.as_slice() {
        [Value::Array(command)] if command.first().and_then(Value::as_i64) == Some(6) => command
            .get(2)?
            .as_array()?
            .iter()
            .map(Value::as_i64)
            .collect(),
        _ => None,
    }
}

/// Reads `load`'s answer: `{"ids": [..] | false, "messages": [...]}`.
fn loaded_id(result: &Value) -> Result<i64, OdooError> {
    let messages = result
        .get("messages")
        .and_then(Value::as_array)
        .map(|messages| {
            messages
                .iter()
                .filter_map(|m| m.get("message").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    match result.get("ids") {
        Some(Value::Array(ids)) if !ids.is_empty() => ids[0]
            .as_i64()
            .ok_or_else(|| OdooError::protocol(format!("load returned {result}"))),
        Some(_) | None if !messages.is_empty() => Err(OdooError::new(ErrorKind::Validation {
            name: "load".into(),
            message: messages,
        })),
        _ => Err(OdooError::protocol(format!(
            "load returned no id: {result}"
        ))),
    }
}

/// Pages of a `search_read`, one call each; see [`OdooClient::pages`].
#[derive(Debug)]
pub struct Pager {
    client: OdooClient,
    model: String,
    domain: Value,
    fields: Vec<String>,
    options: PageOptions,
    last_id: i64,
    offset: u64,
    done: bool,
}

impl Pager {
    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Record>>, OdooError> {
        if self.done {
            return Ok(None);
        }
        let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        let limit = self.options.page_size;
        let (domain, options) = match &self.options.pagination {
            Pagination::Keyset => {
                let mut domain = vec![json!(["id", ">", self.last_id])];
                domain.extend(self.domain.as_array().into_iter().flatten().cloned());
                (
                    Value::Array(domain),
                    SearchOptions {
                        offset: 0,
                        limit: Some(limit),
                        order: Some("id".into()),
                    },
                )
            }
            Pagination::Offset { order } => (
                self.domain.clone(),
                SearchOptions {
                    offset: self.offset,
                    limit: Some(limit),
                    order: Some(order.clone()),
                },
            ),
        };
        let page = self
            .client
            .search_read(&self.model, &domain, &fields, &options)
            .await?;
        if (page.len() as u64) < limit {
            self.done = true;
        }
        if let Some(last) = page.last() {
            self.last_id = last.id()?;
        }
        self.offset += page.len() as u64;
        if page.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> HashMap<String, String> {
        [
            ("product_id", "many2one"),
            ("location_id", "many2one"),
            ("product_min_qty", "float"),
            ("active", "boolean"),
            ("name", "char"),
            ("tag_ids", "many2many"),
            ("line_ids", "one2many"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn load_rows_use_database_id_columns_for_relations() {
        let xmlid = ExternalId::new("planops", "op_sku1_wh1").unwrap();
        let vals = json!({"product_id": 42, "location_id": false, "product_min_qty": 10.5,
                          "active": true, "name": "OP/1", "tag_ids": [[6, 0, [3, 4]]]});
        let (columns, row) = load_row(&xmlid, vals.as_object().unwrap(), &types()).unwrap();
        let pairs: HashMap<_, _> = columns.iter().cloned().zip(row.iter().cloned()).collect();
        assert_eq!(pairs["id"], "planops.op_sku1_wh1");
        assert_eq!(pairs["product_id/.id"], "42");
        assert_eq!(pairs["location_id"], "");
        assert_eq!(pairs["product_min_qty"], "10.5");
        assert_eq!(pairs["active"], "True");
        assert_eq!(pairs["name"], "OP/1");
        assert_eq!(pairs["tag_ids/.id"], "3,4");
    }

    #[test]
    fn load_rows_refuse_what_load_cannot_express() {
        let xmlid = ExternalId::new("planops", "x").unwrap();
        for vals in [
            json!({"nope": 1}),
            json!({"line_ids": [[0, 0, {}]]}),
            json!({"product_id": "abc"}),
        ] {
            assert!(
                load_row(&xmlid, vals.as_object().unwrap(), &types()).is_err(),
                "{vals}"
            );
        }
    }

    #[test]
    fn external_ids_are_checked() {
        assert!(ExternalId::new("planops", "fp_abc.def").is_ok());
        assert!(ExternalId::new("plan.ops", "x").is_err());
        assert!(ExternalId::new("planops", "a,b").is_err());
        assert!(ExternalId::new("", "x").is_err());
        assert_eq!(ExternalId::new("m", "n").unwrap().to_string(), "m.n");
    }

    #[test]
    fn load_answers() {
        assert_eq!(loaded_id(&json!({"ids": [7], "messages": []})).unwrap(), 7);
        let err = loaded_id(
            &json!({"ids": false, "messages": [{"type": "error", "message": "bad value"}]}),
        )
        .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Validation { message, .. } if message == "bad value")
        );
        assert!(loaded_id(&json!({"ids": false, "messages": []})).is_err());
    }

    #[test]
    fn create_answers_both_shapes() {
        assert_eq!(created_ids(&json!(5)).unwrap(), vec![5]);
        assert_eq!(created_ids(&json!([5, 6])).unwrap(), vec![5, 6]);
        assert!(created_ids(&json!("x")).is_err());
    }
}
