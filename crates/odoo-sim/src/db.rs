//! The simulator's in-memory database: configuration, authentication and the
//! `execute_kw` entry point that the protocol layer (XML-RPC, JSON-RPC, JSON-2)
//! calls for every ORM method.

use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

#[path = "access.rs"]
mod access;
#[path = "approvals.rs"]
mod approvals;
#[path = "automation.rs"]
mod automation;
#[path = "create_effects.rs"]
pub mod create_effects;
#[path = "dataset.rs"]
pub mod dataset;
#[path = "eval.rs"]
pub mod eval;
#[path = "group.rs"]
pub mod group;
#[path = "inventory.rs"]
pub mod inventory;
#[path = "mail.rs"]
pub mod mail;
#[path = "model.rs"]
pub mod model;
#[path = "orm.rs"]
pub mod orm;
#[path = "stock.rs"]
pub mod stock;
#[path = "store.rs"]
pub mod store;
#[path = "value.rs"]
pub mod value;

use model::FieldType;
use odoo_client::domain::Domain;
use orm::Ctx;
use store::{Store, UserAuth, hash_secret};
use value::Val;

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
    store: Store,
    admin_api_key: String,
    /// On 17 and 18, the state after a call whose automation rules sent
    /// webhooks, until [`Database::commit`]: Odoo posts them inside its
    /// transaction, so meanwhile everyone else reads `store`, the state
    /// before the call.
    uncommitted: Option<Store>,
}

impl Inner {
    fn commit(&mut self) {
        if let Some(mut next) = self.uncommitted.take() {
            next.webhooks.append(&mut self.store.webhooks);
            self.store = next;
        }
    }
}

/// ORM methods that change nothing: they read whatever is committed and
/// never wait for an open transaction.
pub fn is_read_only(method: &str) -> bool {
    matches!(
        method,
        "search"
            | "search_count"
            | "search_read"
            | "read"
            | "fields_get"
            | "name_search"
            | "read_group"
            | "formatted_read_group"
            | "check_access_rights"
            | "context_get"
    )
}

/// uid of the administrator, as in a fresh Odoo database.
pub const ADMIN_UID: i64 = 2;
/// uid of the restricted `planner` user.
pub const PLANNER_UID: i64 = 3;

fn random_key() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let mut bytes = a.as_bytes().to_vec();
    bytes.extend_from_slice(&b.as_bytes()[..4]);
    hex::encode(bytes)
}

fn seed_base(store: &mut Store, cfg: &SimConfig) {
    store.frozen_now = Some(cfg.today.to_datetime(jiff::civil::Time::midnight()));
    let ctx = Ctx::user(1);
    let object = |v: Value| v.as_object().cloned().unwrap_or_default();
    // Ids follow a fresh database: company 1, users 1 (__system__) and 2 (admin).
    let steps: Vec<(&str, Value)> = vec![
        ("res.currency", json!({"name": "EUR", "symbol": "€"})),
        (
            "res.partner",
            json!({"name": "PlanOps Distribution", "is_company": true}),
        ),
        (
            "res.company",
            json!({"name": "PlanOps Distribution", "partner_id": 1}),
        ),
        ("res.partner", json!({"name": "OdooBot"})),
        (
            "res.partner",
            json!({"name": "Administrator", "email": "admin@example.com"}),
        ),
        (
            "res.partner",
            json!({"name": "Demand Planner", "email": "planner@example.com"}),
        ),
        (
            "res.users",
            json!({"login": "__system__", "partner_id": 2, "active": false}),
        ),
        ("res.users", json!({"login": "admin", "partner_id": 3})),
        ("res.users", json!({"login": "planner", "partner_id": 4})),
        ("uom.category", json!({"name": "Unit"})),
        ("uom.uom", json!({"name": "Units", "category_id": 1})),
        ("res.country", json!({"name": "Belgium", "code": "BE"})),
        ("res.country", json!({"name": "France", "code": "FR"})),
        ("res.country", json!({"name": "Germany", "code": "DE"})),
        (
            "res.country",
            json!({"name": "United States", "code": "US"}),
        ),
        ("product.category", json!({"name": "All"})),
        (
            "ir.config_parameter",
            json!({"key": "database.uuid", "value": DATABASE_UUID}),
        ),
    ];
    for (model, vals) in steps {
        // The seed values are fixed literals; failure would be a programming error
        // caught by the tests, so it is only logged here.
        if let Err(error) = store.create(model, &object(vals), &ctx) {
            tracing::error!(%model, %error, "seeding the simulator failed");
        }
    }
    let buyers = mail::seed_mail_and_groups(store, &ctx);
    seed_model_registry(store, &ctx);
    store.frozen_now = None;
    store.users = vec![
        UserAuth {
            uid: ADMIN_UID,
            login: "admin".into(),
            password_hash: hash_secret(&cfg.admin_password),
            is_admin: true,
        },
        UserAuth {
            uid: PLANNER_UID,
            login: "planner".into(),
            password_hash: hash_secret("planner"),
            is_admin: false,
        },
    ];
    store.users.extend(buyers);
}

/// One `ir.model` row per served model and one `ir.model.fields` row per
/// field, as a real database has them: clients resolve `model_id`,
/// `trigger_field_ids` and `webhook_field_ids` through these.
fn seed_model_registry(store: &mut Store, ctx: &Ctx) {
    let defs: Vec<_> = store.reg.models.clone();
    for def in defs {
        let vals = json!({
            "model": def.name,
            "name": def.description,
            "state": "base",
            "transient": false,
            "is_mail_thread": def.is_mail_thread,
        });
        let Some(vals) = vals.as_object() else {
            continue;
        };
        let model_id = match store.create("ir.model", vals, ctx) {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(model = %def.name, %error, "seeding ir.model failed");
                continue;
            }
        };
        for field in &def.fields {
            let vals = json!({
                "name": field.name,
                "field_description": field.string,
                "model_id": model_id,
                "model": def.name,
                "ttype": field.ftype.as_str(),
                "relation": field.relation.clone().map(Value::String).unwrap_or(Value::Bool(false)),
                "required": field.required,
                "readonly": field.readonly,
                "store": matches!(field.storage, model::Storage::Stored(_) | model::Storage::Id),
            });
            if let Some(vals) = vals.as_object()
                && let Err(error) = store.create("ir.model.fields", vals, ctx)
            {
                tracing::error!(model = %def.name, field = %field.name, %error, "seeding ir.model.fields failed");
            }
        }
    }
}

/// Models a non-admin user may read but not change.
const READ_ONLY_FOR_USERS: &[&str] = &[
    "ir.model.data",
    "base.automation",
    "ir.actions.server",
    "ir.cron",
    "res.users",
    "res.groups",
    "res.company",
    "res.country",
    "ir.model",
    "ir.model.fields",
    "ir.model.fields.selection",
];
/// Models a non-admin user may not touch at all (system parameters need
/// Settings rights in Odoo).
const FORBIDDEN_FOR_USERS: &[&str] = &["res.users.apikeys", "ir.config_parameter"];

/// The simulated database's `database.uuid`, as Odoo generates one per database.
const DATABASE_UUID: &str = "6c3e2b1a-9f4d-4e8b-a1c7-5d0f2e9b8a34";

/// Deleting records deletes their external ids with them, as Odoo's unlink
/// does: the name can then be given to a new record.
fn drop_external_ids(
    store: &mut Store,
    model: &str,
    ids: &[i64],
    ctx: &Ctx,
) -> Result<(), OrmError> {
    if model == "ir.model.data" || ids.is_empty() {
        return Ok(());
    }
    let domain = Domain::from_json_value(&json!([["model", "=", model], ["res_id", "in", ids]]))
        .map_err(|e| OrmError::Value(e.to_string()))?;
    let names = store.search("ir.model.data", &domain, 0, None, None, ctx)?;
    if !names.is_empty() {
        store.unlink("ir.model.data", &names, ctx)?;
    }
    Ok(())
}

fn check_access(store: &Store, uid: i64, model: &str, operation: &str) -> Result<(), OrmError> {
    if uid == 1 || store.users.iter().any(|u| u.uid == uid && u.is_admin) {
        return Ok(());
    }
    let denied = FORBIDDEN_FOR_USERS.contains(&model)
        || (operation != "read" && READ_ONLY_FOR_USERS.contains(&model));
    if !denied {
        return Ok(());
    }
    let description = store
        .def(model)
        .map(|d| d.description.clone())
        .unwrap_or_default();
    let verb = match operation {
        "read" => "access",
        "write" => "modify",
        "create" => "create",
        _ => "delete",
    };
    Err(OrmError::Access(format!(
        "You are not allowed to {verb} '{description}' ({model}) records.\n\nThis operation is allowed for the following groups:\n\t- Administration/Settings\n\nContact your administrator to request access if necessary."
    )))
}

/// Positional and keyword arguments, looked up by position or name.
struct Args {
    positional: Vec<Value>,
    named: Map<String, Value>,
}

impl Args {
    fn get(&self, position: usize, name: &str) -> Option<&Value> {
        self.named
            .get(name)
            .or_else(|| self.positional.get(position))
    }

    fn ids(&self, model: &str, method: &str) -> Result<Vec<i64>, OrmError> {
        match self.get(0, "ids") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .ok_or_else(|| OrmError::Value(format!("{method}: invalid id {v}")))
                })
                .collect(),
            Some(Value::Number(n)) => Ok(n.as_i64().into_iter().collect()),
            _ => Err(OrmError::Value(format!(
                "{model}.{method}() missing 1 required positional argument: 'ids'"
            ))),
        }
    }

    fn domain(&self, position: usize, names: &[&str]) -> Result<Domain, OrmError> {
        let value = names
            .iter()
            .find_map(|n| self.named.get(*n))
            .or_else(|| self.positional.get(position));
        match value {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(Domain::all()),
            Some(v) => Domain::from_json_value(v)
                .map_err(|e| OrmError::Value(format!("Invalid domain: {e}"))),
        }
    }

    fn strings(&self, position: usize, name: &str) -> Vec<String> {
        match self.get(position, name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    fn usize(&self, position: usize, name: &str) -> Option<usize> {
        self.get(position, name)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    }

    /// A search's `limit`: Odoo adds `LIMIT` only for a truthy value, so 0
    /// (like `False` or `None`) means all records.
    fn limit(&self, position: usize) -> Option<usize> {
        self.usize(position, "limit").filter(|&n| n > 0)
    }
}

fn dispatch(
    store: &mut Store,
    uid: i64,
    model: &str,
    method: &str,
    args: Args,
) -> Result<Value, OrmError> {
    if method.starts_with('_') {
        return Err(OrmError::Access(format!(
            "Private methods (such as '{model}.{method}') cannot be called remotely."
        )));
    }
    store.model_index(model)?;
    let ctx = Ctx::from_kwargs(uid, args.named.get("context"));
    match method {
        "search" => {
            check_access(store, uid, model, "read")?;
            let domain = args.domain(0, &["domain", "args"])?;
            let order = args.get(3, "order").and_then(Value::as_str);
            let ids = store.search(
                model,
                &domain,
                args.usize(1, "offset").unwrap_or(0),
                args.limit(2),
                order,
                &ctx,
            )?;
            Ok(json!(ids))
        }
        "search_count" => {
            check_access(store, uid, model, "read")?;
            let domain = args.domain(0, &["domain", "args"])?;
            let ids = store.search(model, &domain, 0, args.limit(1), Some("id"), &ctx)?;
            Ok(json!(ids.len()))
        }
        "search_read" => {
            check_access(store, uid, model, "read")?;
            let domain = args.domain(0, &["domain"])?;
            let fields = args.strings(1, "fields");
            let order = args.get(4, "order").and_then(Value::as_str);
            let ids = store.search(
                model,
                &domain,
                args.usize(2, "offset").unwrap_or(0),
                args.limit(3),
                order,
                &ctx,
            )?;
            Ok(Value::Array(store.read(model, &ids, &fields, true, &ctx)?))
        }
        "read" => {
            check_access(store, uid, model, "read")?;
            let ids = args.ids(model, method)?;
            let fields = args.strings(1, "fields");
            let classic = !matches!(
                args.get(2, "load"),
                Some(Value::Null) | Some(Value::Bool(false))
            ) && args.get(2, "load").and_then(Value::as_str) != Some("");
            Ok(Value::Array(
                store.read(model, &ids, &fields, classic, &ctx)?,
            ))
        }
        "create" => {
            check_access(store, uid, model, "create")?;
            match args.get(0, "vals_list").or_else(|| args.named.get("vals")) {
                Some(Value::Object(vals)) if model == "mail.activity" => {
                    let ids = store.create_activities(&[vals], &ctx)?;
                    automation::run_on_create(store, model, &ids)?;
                    Ok(json!(ids.first()))
                }
                Some(Value::Array(list)) if model == "mail.activity" => {
                    let list = list
                        .iter()
                        .map(|item| {
                            item.as_object().ok_or_else(|| {
                                OrmError::Value("create expects dicts of values".into())
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let ids = store.create_activities(&list, &ctx)?;
                    automation::run_on_create(store, model, &ids)?;
                    Ok(json!(ids))
                }
                Some(Value::Object(vals)) => {
                    let id = store.create_as_odoo(model, vals, &ctx)?;
                    store.subscribe_creator(model, &[id], &ctx)?;
                    store.approvers_changed(model, &[id], &ctx)?;
                    store.group_members_changed(model, &[id]);
                    store.moves_created(model, &[id]);
                    automation::run_on_create(store, model, &[id])?;
                    Ok(json!(id))
                }
                Some(Value::Array(list)) => {
                    let mut ids = Vec::with_capacity(list.len());
                    for item in list {
                        let vals = item.as_object().ok_or_else(|| {
                            OrmError::Value("create expects dicts of values".into())
                        })?;
                        ids.push(store.create_as_odoo(model, vals, &ctx)?);
                    }
                    store.subscribe_creator(model, &ids, &ctx)?;
                    store.approvers_changed(model, &ids, &ctx)?;
                    store.group_members_changed(model, &ids);
                    store.moves_created(model, &ids);
                    automation::run_on_create(store, model, &ids)?;
                    Ok(json!(ids))
                }
                _ => Err(OrmError::Value(format!(
                    "{model}.create() missing 1 required positional argument: 'vals_list'"
                ))),
            }
        }
        "write" => {
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            let vals = args
                .get(1, "vals")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| {
                    OrmError::Value(format!(
                        "{model}.write() missing 1 required positional argument: 'vals'"
                    ))
                })?;
            store.write(model, &ids, &vals, &ctx)?;
            store.approvers_changed(model, &ids, &ctx)?;
            store.group_members_changed(model, &ids);
            Ok(Value::Bool(true))
        }
        "unlink" => {
            check_access(store, uid, model, "unlink")?;
            let ids = args.ids(model, method)?;
            store.unlink(model, &ids, &ctx)?;
            drop_external_ids(store, model, &ids, &ctx)?;
            Ok(Value::Bool(true))
        }
        "fields_get" => store.fields_get(
            model,
            &args.strings(0, "allfields"),
            &args.strings(1, "attributes"),
        ),
        "name_search" => {
            check_access(store, uid, model, "read")?;
            let name = args
                .get(0, "name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let domain = args.domain(1, &["domain", "args"])?;
            let operator = args
                .get(2, "operator")
                .and_then(Value::as_str)
                .unwrap_or("ilike")
                .to_string();
            store.name_search(
                model,
                &name,
                &domain,
                &operator,
                args.usize(3, "limit").unwrap_or(100),
                &ctx,
            )
        }
        "load" => {
            check_access(store, uid, model, "create")?;
            check_access(store, uid, model, "write")?;
            let fields = args.strings(0, "fields");
            let data = match args.get(1, "data") {
                Some(Value::Array(rows)) => rows.clone(),
                _ => {
                    return Err(OrmError::Value(format!(
                        "{model}.load() missing 1 required positional argument: 'data'"
                    )));
                }
            };
            Ok(load(store, model, &fields, &data, &ctx))
        }
        "read_group" => {
            check_access(store, uid, model, "read")?;
            let domain = args.domain(0, &["domain"])?;
            let lazy = args
                .get(6, "lazy")
                .is_none_or(|v| v.as_bool() != Some(false));
            store.read_group(
                model,
                &group::ReadGroupArgs {
                    domain: &domain,
                    fields: &args.strings(1, "fields"),
                    groupby: &args.strings(2, "groupby"),
                    offset: args.usize(3, "offset").unwrap_or(0),
                    limit: args.usize(4, "limit"),
                    orderby: args.get(5, "orderby").and_then(Value::as_str),
                    lazy,
                },
                &ctx,
            )
        }
        // The public grouping API of Odoo 19 (18.2 on Online); absent before.
        "formatted_read_group" if store.version >= OdooVersion::V19 => {
            check_access(store, uid, model, "read")?;
            let domain = args.domain(0, &["domain"])?;
            let having = args.domain(3, &["having"])?;
            if !having.is_empty() {
                return Err(OrmError::Value(
                    "formatted_read_group: `having` is not supported by the simulator".into(),
                ));
            }
            store.formatted_read_group(
                model,
                &group::FormattedArgs {
                    domain: &domain,
                    groupby: &args.strings(1, "groupby"),
                    aggregates: &args.strings(2, "aggregates"),
                    offset: args.usize(4, "offset").unwrap_or(0),
                    limit: args.usize(5, "limit"),
                    order: args.get(6, "order").and_then(Value::as_str),
                },
                &ctx,
            )
        }
        "message_post" => {
            // Odoo's default `_mail_post_access` is write on the document.
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            let text = |name: &str| {
                args.named
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let params = mail::PostParams {
                body: text("body").unwrap_or_default(),
                subject: text("subject"),
                message_type: text("message_type"),
                subtype_xmlid: text("subtype_xmlid"),
                subtype_id: args.named.get("subtype_id").and_then(Value::as_i64),
                author_id: args.named.get("author_id").and_then(Value::as_i64),
                attachment_ids: args
                    .named
                    .get("attachment_ids")
                    .and_then(Value::as_array)
                    .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default(),
                // Python truthiness; 16 takes it as an unknown keyword and ignores it.
                body_is_html: match args.named.get("body_is_html") {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
                    Some(Value::String(s)) => !s.is_empty(),
                    Some(Value::Array(a)) => !a.is_empty(),
                    Some(Value::Object(o)) => !o.is_empty(),
                    Some(Value::Null) | None => false,
                },
            };
            let message = store.message_post(model, &ids, &params, &ctx)?;
            // The message is created through the ORM: automation rules on
            // mail.message fire, as in Odoo.
            automation::run_on_create(store, "mail.message", &[message])?;
            // Up to 18 `@api.returns` downgrades the message to its id; 19
            // dropped the decorator, so the recordset goes out as its id list.
            if store.version >= OdooVersion::V19 {
                Ok(json!([message]))
            } else {
                Ok(json!(message))
            }
        }
        "action_feedback" | "action_done" if model == "mail.activity" => {
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            let feedback = match method {
                "action_feedback" => args
                    .get(1, "feedback")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            };
            // Done activities are archived in 17+: the ids may be inactive.
            let done = store.activity_done(&ids, feedback.as_deref(), &ctx)?;
            // The "done" message is an ORM create in Odoo: rules on
            // mail.message fire (for the message the method returns).
            if let Some(message) = done.as_i64() {
                automation::run_on_create(store, "mail.message", &[message])?;
            }
            Ok(done)
        }
        "action_apply_inventory" if model == "stock.quant" => {
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            store.apply_inventory(&ids, &ctx)
        }
        "button_confirm" | "button_approve" | "button_cancel" if model == "purchase.order" => {
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            match method {
                "button_confirm" => store.po_button_confirm(&ids, &ctx),
                "button_approve" => store.po_button_approve(&ids, &ctx),
                _ => store.po_button_cancel(&ids, &ctx),
            }
        }
        // "Run Manually": the simulator runs no Python, so only the bookkeeping
        // Odoo does after running the code is visible.
        "method_direct_trigger" if model == "ir.cron" => {
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            let mut vals = Map::new();
            vals.insert(
                "lastcall".into(),
                json!(value::format_datetime(store.now())),
            );
            store.write(model, &ids, &vals, &ctx)?;
            Ok(Value::Bool(true))
        }
        "action_confirm" | "action_approve" | "action_refuse" if model == "approval.request" => {
            check_access(store, uid, model, "write")?;
            let ids = args.ids(model, method)?;
            let result = match method {
                "action_confirm" => store.approval_confirm(&ids, &ctx),
                "action_approve" => store.approval_decide(&ids, "approved", &ctx),
                _ => store.approval_decide(&ids, "refused", &ctx),
            }?;
            Ok(result)
        }
        "check_access_rights" => {
            let operation = args
                .get(0, "operation")
                .and_then(Value::as_str)
                .unwrap_or("read")
                .to_string();
            let raise = args
                .get(1, "raise_exception")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            match check_access(store, uid, model, &operation) {
                Ok(()) => Ok(Value::Bool(true)),
                Err(_) if !raise => Ok(Value::Bool(false)),
                Err(error) => Err(error),
            }
        }
        "context_get" if model == "res.users" => {
            Ok(json!({"lang": "en_US", "tz": "Europe/Brussels", "uid": uid}))
        }
        _ => Err(OrmError::UnknownMethod {
            model: model.to_string(),
            method: method.to_string(),
        }),
    }
}

/// Odoo's CSV import (`load`): each row creates a record or, when its `id`
/// column names an external id that already exists, updates that record.
/// Errors are reported in `messages` with `ids: false`, never raised. Unlike
/// Odoo, rows imported before a failing row are not rolled back.
fn load(store: &mut Store, model: &str, fields: &[String], data: &[Value], ctx: &Ctx) -> Value {
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    for (row_index, row) in data.iter().enumerate() {
        let cells: Vec<String> = match row.as_array() {
            Some(cells) => cells
                .iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    Value::Null | Value::Bool(false) => String::new(),
                    other => other.to_string(),
                })
                .collect(),
            None => {
                messages.push(load_message(row_index, "row is not a list".into()));
                continue;
            }
        };
        match load_row(store, model, fields, &cells, ctx) {
            Ok(id) => ids.push(id),
            Err(error) => messages.push(load_message(row_index, error.to_string())),
        }
    }
    if messages.is_empty() {
        json!({"ids": ids, "messages": [], "nextrow": 0})
    } else {
        json!({"ids": false, "messages": messages, "nextrow": 0})
    }
}

fn load_message(row_index: usize, message: String) -> Value {
    json!({"type": "error", "message": message, "record": row_index, "rows": {"from": row_index, "to": row_index}})
}

/// Splits `module.name`; ids without a module go to `__import__` as in Odoo.
fn split_xmlid(xmlid: &str) -> (String, String) {
    match xmlid.split_once('.') {
        Some((module, name)) => (module.to_string(), name.to_string()),
        None => ("__import__".to_string(), xmlid.to_string()),
    }
}

fn resolve_xmlid(
    store: &mut Store,
    xmlid: &str,
    ctx: &Ctx,
) -> Result<Option<(String, i64)>, OrmError> {
    let (module, name) = split_xmlid(xmlid);
    let domain = Domain::from_json_value(&json!([["module", "=", module], ["name", "=", name]]))
        .map_err(|e| OrmError::Value(format!("Invalid domain: {e}")))?;
    let found = store.search("ir.model.data", &domain, 0, Some(1), None, ctx)?;
    let Some(&row) = found.first() else {
        return Ok(None);
    };
    let mi = store.model_index("ir.model.data")?;
    let model = match store.slot_value(mi, row, "model") {
        Val::Str(s) => s.to_string(),
        _ => String::new(),
    };
    let res_id = match store.slot_value(mi, row, "res_id") {
        Val::Int(n) => n,
        _ => 0,
    };
    Ok(Some((model, res_id)))
}

fn load_row(
    store: &mut Store,
    model: &str,
    fields: &[String],
    cells: &[String],
    ctx: &Ctx,
) -> Result<i64, OrmError> {
    let def = store.def(model)?;
    let mut xmlid = None;
    let mut vals = Map::new();
    for (column, cell) in fields.iter().zip(cells) {
        if column == "id" || column == ".id" {
            if !cell.is_empty() {
                xmlid = Some((column.clone(), cell.clone()));
            }
            continue;
        }
        let (name, suffix) = match column.split_once('/') {
            Some((name, suffix)) => (name, Some(suffix)),
            None => (column.as_str(), None),
        };
        let field = def.field(name).ok_or_else(|| {
            OrmError::Value(format!("Unknown field '{column}' on model '{model}'"))
        })?;
        let value = if cell.is_empty() {
            match field.ftype {
                FieldType::Many2many | FieldType::One2many => json!([[6, 0, []]]),
                FieldType::Integer | FieldType::Float | FieldType::Monetary => json!(0),
                _ => Value::Bool(false),
            }
        } else {
            match (field.ftype, suffix) {
                (FieldType::Many2one, Some(".id")) => json!(parse_int(column, cell)?),
                (FieldType::Many2many, Some(".id")) => {
                    let ids = cell
                        .split(',')
                        .map(|part| parse_int(column, part.trim()))
                        .collect::<Result<Vec<_>, _>>()?;
                    json!([[6, 0, ids]])
                }
                (FieldType::Many2one, Some("id")) => {
                    let (_, id) = resolve_xmlid(store, cell, ctx)?.ok_or_else(|| {
                        OrmError::Value(format!(
                            "No matching record found for external id '{cell}' in field '{}'",
                            field.string
                        ))
                    })?;
                    json!(id)
                }
                (FieldType::Integer, None) => json!(parse_int(column, cell)?),
                (FieldType::Float | FieldType::Monetary, None) => {
                    json!(cell.parse::<f64>().map_err(|_| OrmError::Value(format!(
                        "'{cell}' does not seem to be a number for field '{}'",
                        field.string
                    )))?)
                }
                (FieldType::Boolean, None) => {
                    json!(matches!(
                        cell.to_ascii_lowercase().as_str(),
                        "1" | "true" | "yes"
                    ))
                }
                (_, None) => json!(cell),
                (_, Some(other)) => {
                    return Err(OrmError::Value(format!(
                        "Unsupported import column '{name}/{other}' on model '{model}'"
                    )));
                }
            }
        };
        vals.insert(name.to_string(), value);
    }
    match xmlid {
        Some((column, cell)) if column == ".id" => {
            let id = parse_int(".id", &cell)?;
            store.write(model, &[id], &vals, ctx)?;
            Ok(id)
        }
        Some((_, cell)) => match resolve_xmlid(store, &cell, ctx)? {
            Some((known_model, res_id))
                if known_model == model && store.table(model)?.exists(res_id) =>
            {
                store.write(model, &[res_id], &vals, ctx)?;
                Ok(res_id)
            }
            Some(_) => Err(OrmError::Value(format!(
                "External id '{cell}' points to a record of another model or a deleted record"
            ))),
            None => {
                let id = store.create(model, &vals, ctx)?;
                let (module, name) = split_xmlid(&cell);
                let row = json!({"module": module, "name": name, "model": model, "res_id": id});
                if let Some(row) = row.as_object() {
                    store.create("ir.model.data", row, ctx)?;
                }
                Ok(id)
            }
        },
        None => store.create(model, &vals, ctx),
    }
}

fn parse_int(column: &str, cell: &str) -> Result<i64, OrmError> {
    cell.parse::<i64>()
        .map_err(|_| OrmError::Value(format!("'{cell}' is not a valid id for column '{column}'")))
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
        let real_now = jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::UTC)
            .datetime();
        let origin = if real_now.date() == cfg.today {
            real_now
        } else {
            cfg.today
                .to_datetime(jiff::civil::Time::constant(9, 0, 0, 0))
        };
        let mut store = Store::new(version, edition, cfg.today, origin);
        seed_base(&mut store, &cfg);
        dataset::seed_dataset(&mut store, &cfg);
        let admin_api_key = random_key();
        store
            .api_keys
            .insert(hash_secret(&admin_api_key), ADMIN_UID);
        Database {
            inner: Arc::new(RwLock::new(Inner {
                store,
                admin_api_key,
                uncommitted: None,
            })),
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
        let user = inner.store.users.iter().find(|u| u.login == login)?;
        let hashed = hash_secret(password_or_api_key);
        if hashed == user.password_hash || inner.store.api_keys.get(&hashed) == Some(&user.uid) {
            Some(user.uid)
        } else {
            None
        }
    }

    /// Creates an API key for a user (as the preferences dialog does) and returns it.
    pub fn generate_api_key(&self, login: &str) -> Option<String> {
        let mut inner = self.inner.write().ok()?;
        let uid = inner.store.users.iter().find(|u| u.login == login)?.uid;
        let key = random_key();
        inner.store.api_keys.insert(hash_secret(&key), uid);
        Some(key)
    }

    /// Resolves a JSON-2 bearer API key to its user.
    pub fn uid_for_api_key(&self, key: &str) -> Option<i64> {
        let inner = self.inner.read().ok()?;
        inner.store.api_keys.get(&hash_secret(key)).copied()
    }

    /// The admin's API key, generated when the database is built.
    pub fn admin_api_key(&self) -> String {
        self.inner
            .read()
            .map(|i| i.admin_api_key.clone())
            .unwrap_or_default()
    }

    /// Runs an ORM method with positional `args` and keyword `kwargs` (XML-RPC / JSON-RPC).
    pub fn execute_kw(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, OrmError> {
        let args = Args {
            positional: args,
            named: kwargs,
        };
        self.execute(uid, model, method, args, false)
    }

    /// [`Database::execute_kw`] as Odoo 17 and 18 run a call whose automation
    /// rules send webhooks: the call's changes stay invisible to every other
    /// caller until [`Database::commit`], which the protocol layer calls once
    /// it has sent them. Other versions, and calls that sent nothing, commit
    /// at once.
    pub fn execute_kw_uncommitted(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, OrmError> {
        let args = Args {
            positional: args,
            named: kwargs,
        };
        self.execute(uid, model, method, args, true)
    }

    fn execute(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        args: Args,
        hold: bool,
    ) -> Result<Value, OrmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut inner = self
            .inner
            .write()
            .map_err(|_| OrmError::Value("the simulator's database lock is poisoned".into()))?;
        let writes = !is_read_only(method);
        if writes {
            // A writer that did not wait for the open transaction ends it.
            inner.commit();
        }
        let before = (hold
            && writes
            && matches!(self.version, OdooVersion::V17 | OdooVersion::V18)
            && inner.store.has_automations())
        .then(|| inner.store.clone());
        let result = dispatch(&mut inner.store, uid, model, method, args);
        if let Some(mut before) = before
            && !inner.store.webhooks.is_empty()
        {
            before.webhooks = std::mem::take(&mut inner.store.webhooks);
            let after = std::mem::replace(&mut inner.store, before);
            inner.uncommitted = Some(after);
        }
        result
    }

    /// Makes the changes of the call left open by
    /// [`Database::execute_kw_uncommitted`] visible; nothing when none is open.
    pub fn commit(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.commit();
        }
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

    /// [`Database::execute_named`] left open like [`Database::execute_kw_uncommitted`].
    pub fn execute_named_uncommitted(
        &self,
        uid: i64,
        model: &str,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Value, OrmError> {
        self.execute_kw_uncommitted(uid, model, method, Vec::new(), params)
    }

    /// Takes the webhook POSTs queued by automation rules since the last call.
    pub fn drain_webhooks(&self) -> Vec<WebhookDelivery> {
        self.inner
            .write()
            .map(|mut i| std::mem::take(&mut i.store.webhooks))
            .unwrap_or_default()
    }

    /// Number of `execute_kw` calls served so far.
    pub fn call_count(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(version: OdooVersion) -> Database {
        Database::new(SimConfig {
            version,
            today: jiff::civil::date(2025, 3, 10),
            ..SimConfig::default()
        })
    }

    fn call(
        db: &Database,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> Result<Value, OrmError> {
        let args = args.as_array().cloned().unwrap_or_default();
        let kwargs = kwargs.as_object().cloned().unwrap_or_default();
        db.execute_kw(ADMIN_UID, model, method, args, kwargs)
    }

    /// An automation on `res.partner` name changes whose webhook sends
    /// `write_date`; returns a partner to write.
    fn hooked_partner(db: &Database) -> i64 {
        let ids = |model: &str, domain: Value| -> Vec<Value> {
            call(db, model, "search", json!([domain]), json!({}))
                .unwrap()
                .as_array()
                .cloned()
                .unwrap()
        };
        let model = ids("ir.model", json!([["model", "=", "res.partner"]]))[0].clone();
        let field = |name: &str| {
            ids(
                "ir.model.fields",
                json!([["model", "=", "res.partner"], ["name", "=", name]]),
            )[0]
            .clone()
        };
        let rule = call(
            db,
            "base.automation",
            "create",
            json!([{
            "name": "hook", "model_id": model, "trigger": "on_write",
            "trigger_field_ids": [[6, 0, [field("name")]]]}]),
            json!({}),
        )
        .unwrap();
        call(
            db,
            "ir.actions.server",
            "create",
            json!([{
            "name": "hook", "model_id": model, "state": "webhook", "usage": "base_automation",
            "webhook_url": "http://127.0.0.1:9/hook", "base_automation_id": rule,
            "webhook_field_ids": [[6, 0, [field("name"), field("write_date")]]]}]),
            json!({}),
        )
        .unwrap();
        call(
            db,
            "res.partner",
            "create",
            json!([{"name": "Before"}]),
            json!({}),
        )
        .unwrap()
        .as_i64()
        .unwrap()
    }

    /// What writing one automation field alone did to the others on real
    /// Odoo 17, 18 and 19 servers (a rule on `res.partner`).
    #[test]
    fn automation_fields_written_alone_recompute_as_each_version_does() {
        for version in [OdooVersion::V17, OdooVersion::V18, OdooVersion::V19] {
            let db = db(version);
            let search = |model: &str, domain: Value| -> Value {
                call(&db, model, "search", json!([domain]), json!({})).unwrap()
            };
            let model = search("ir.model", json!([["model", "=", "res.partner"]]))[0].clone();
            let field = |name: &str| {
                search(
                    "ir.model.fields",
                    json!([["model", "=", "res.partner"], ["name", "=", name]]),
                )[0]
                .as_i64()
                .unwrap()
            };
            let (name, email) = (field("name"), field("email"));
            let rule = call(
                &db,
                "base.automation",
                "create",
                json!([{
                "name": "r", "model_id": model, "trigger": "on_write"}]),
                json!({}),
            )
            .unwrap();
            let write = |vals: Value| {
                call(
                    &db,
                    "base.automation",
                    "write",
                    json!([[rule], vals]),
                    json!({}),
                )
            };
            let set = |trigger: &str, fields: &[i64], domain: &str| {
                write(
                    json!({"trigger": trigger, "trigger_field_ids": [[6, 0, fields]],
                    "filter_domain": domain}),
                )
                .unwrap();
            };
            let state = || -> (Vec<i64>, Value) {
                let row = call(
                    &db,
                    "base.automation",
                    "read",
                    json!([[rule], ["trigger_field_ids", "filter_domain"]]),
                    json!({}),
                )
                .unwrap()[0]
                    .clone();
                let mut ids: Vec<i64> = row["trigger_field_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_i64)
                    .collect();
                ids.sort_unstable();
                (ids, row["filter_domain"].clone())
            };
            let label = format!("{version:?}");
            let v17 = version == OdooVersion::V17;
            let domain = "[('name', 'like', 'X')]";

            set("on_write", &[name], domain);
            write(json!({"trigger": "on_write"})).unwrap();
            let kept = if v17 { vec![name] } else { vec![] };
            assert_eq!(state(), (kept, json!(false)), "{label} trigger alone");

            set("on_write", &[name], domain);
            write(json!({"filter_domain": "[('name', 'like', 'Y')]"})).unwrap();
            let kept = if v17 { vec![name] } else { vec![] };
            assert_eq!(state().0, kept, "{label} filter_domain alone");

            set("on_write", &[name], domain);
            write(json!({"trigger_field_ids": [[6, 0, [name]]]})).unwrap();
            let kept = if v17 { json!(false) } else { json!(domain) };
            assert_eq!(
                state(),
                (vec![name], kept),
                "{label} trigger_field_ids alone"
            );

            set("on_write", &[name], domain);
            let alone = write(json!({"model_id": model}));
            if v17 {
                alone.unwrap();
                assert_eq!(state(), (vec![], json!(false)), "{label} model_id alone");
            } else {
                assert!(matches!(alone, Err(OrmError::Validation(_))), "{label}");
                assert_eq!(state(), (vec![name], json!(domain)), "{label} refused");
            }

            set("on_write", &[name, email], domain);
            write(json!({"trigger": "on_create"})).unwrap();
            let expected = if v17 {
                (vec![name, email], json!(domain))
            } else {
                (vec![], json!(false))
            };
            assert_eq!(state(), expected, "{label} two fields, trigger alone");

            set("on_create_or_write", &[], "[('email', '=', 'a@b.c')]");
            write(json!({"filter_domain": domain})).unwrap();
            let grown = if version == OdooVersion::V18 {
                vec![name]
            } else {
                vec![]
            };
            assert_eq!(state().0, grown, "{label} on save, filter_domain alone");
        }
    }

    #[test]
    fn a_17_call_that_sent_webhooks_is_invisible_until_committed() {
        let db = db(OdooVersion::V17);
        let partner = hooked_partner(&db);
        db.execute_kw_uncommitted(
            ADMIN_UID,
            "res.partner",
            "write",
            vec![json!([partner]), json!({"name": "After"})],
            Map::new(),
        )
        .unwrap();
        let sent = db.drain_webhooks();
        assert_eq!(sent.len(), 1);
        let written = sent[0].payload["write_date"].as_str().unwrap().to_string();
        assert_eq!(
            written.len(),
            "2026-01-02 03:04:05.123456".len(),
            "{written}"
        );
        let newer = json!([[["id", "=", partner], ["write_date", ">=", written]]]);
        let read_name = || {
            call(
                &db,
                "res.partner",
                "read",
                json!([[partner], ["name"]]),
                json!({}),
            )
            .unwrap()[0]["name"]
                .clone()
        };
        assert_eq!(read_name(), "Before");
        assert_eq!(
            call(&db, "res.partner", "search", newer.clone(), json!({})).unwrap(),
            json!([])
        );
        db.commit();
        assert_eq!(read_name(), "After");
        assert_eq!(
            call(&db, "res.partner", "search", newer, json!({})).unwrap(),
            json!([partner])
        );
        // The same name again changes nothing the rule watches: no webhook.
        call(
            &db,
            "res.partner",
            "write",
            json!([[partner], {"name": "After"}]),
            json!({}),
        )
        .unwrap();
        assert!(db.drain_webhooks().is_empty());
    }

    #[test]
    fn on_19_a_call_is_visible_when_its_webhooks_are_sent() {
        let db = db(OdooVersion::V19);
        let partner = hooked_partner(&db);
        db.execute_kw_uncommitted(
            ADMIN_UID,
            "res.partner",
            "write",
            vec![json!([partner]), json!({"name": "After"})],
            Map::new(),
        )
        .unwrap();
        assert_eq!(db.drain_webhooks().len(), 1);
        let name = call(
            &db,
            "res.partner",
            "read",
            json!([[partner], ["name"]]),
            json!({}),
        )
        .unwrap()[0]["name"]
            .clone();
        assert_eq!(name, "After");
    }

    #[test]
    fn filter_domain_python_literals_become_json_domains() {
        assert_eq!(
            automation::python_domain_literal(
                "[('name', 'like', 'Hooked'), ('active', '=', True)]"
            )
            .unwrap(),
            json!([["name", "like", "Hooked"], ["active", "=", true]])
        );
        assert_eq!(
            automation::python_domain_literal(
                "['|', (\"ref\", '=', \"it's\"), ('id', 'in', (1, 2,))]"
            )
            .unwrap(),
            json!(["|", ["ref", "=", "it's"], ["id", "in", [1, 2]]])
        );
        assert!(automation::python_domain_literal("[('date', '<', context_today())]").is_err());
    }

    /// A page is the same slice of the full order whether the simulator sorts
    /// everything or only selects the page; limit 0 means no limit, as in Odoo.
    #[test]
    fn long_id_lists_match_like_short_ones() {
        // Long `in` / `not in` lists are looked up in a set; the answer must be
        // the one a short list gives, NULL many2ones included.
        let db = db(OdooVersion::V17);
        let search = |domain: Value| -> Vec<i64> {
            let found = call(&db, "stock.move", "search", json!([domain]), json!({})).unwrap();
            serde_json::from_value(found).unwrap()
        };
        let all = search(json!([]));
        assert!(all.len() > 100, "{}", all.len());
        let long: Vec<i64> = all.iter().copied().step_by(2).collect();
        assert!(long.len() > 32);
        let short: Vec<i64> = long.iter().copied().take(3).collect();
        let inside = search(json!([["id", "in", long]]));
        assert_eq!(inside, long);
        let outside = search(json!([["id", "not in", long]]));
        let expected: Vec<i64> = all.iter().copied().filter(|i| !long.contains(i)).collect();
        assert_eq!(outside, expected);
        // A many2one that is NULL on some rows (`purchase_line_id`): in no
        // list, outside every list, whatever its length.
        let lines: Vec<i64> = (1..=200).collect();
        let with_line = search(json!([["purchase_line_id", "in", lines]]));
        let without = search(json!([["purchase_line_id", "not in", lines]]));
        let short_lines: Vec<i64> = lines.iter().copied().take(3).collect();
        assert_eq!(
            with_line.len() + without.len(),
            all.len(),
            "in and not in split the table"
        );
        assert!(without.len() > with_line.len(), "NULLs fall in `not in`");
        let short_without = search(json!([["purchase_line_id", "not in", short_lines]]));
        assert!(short_without.len() >= without.len());
        assert_eq!(search(json!([["id", "in", short]])), short);
    }

    #[test]
    fn pages_are_slices_of_the_full_order_and_limit_zero_means_all() {
        let db = db(OdooVersion::V17);
        let domain = json!([["id", ">", 0]]);
        let order = json!({"order": "warehouse_id, product_min_qty desc, id"});
        let all = call(
            &db,
            "stock.warehouse.orderpoint",
            "search",
            json!([domain]),
            order.clone(),
        )
        .unwrap();
        let all = all.as_array().unwrap().clone();
        assert!(all.len() > 20, "{}", all.len());
        for (offset, limit) in [(0, 5), (3, 7), (all.len() - 2, 5), (0, all.len() + 1)] {
            let mut kwargs = order.clone();
            kwargs["offset"] = json!(offset);
            kwargs["limit"] = json!(limit);
            let page = call(
                &db,
                "stock.warehouse.orderpoint",
                "search",
                json!([domain]),
                kwargs,
            )
            .unwrap();
            let expected: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
            assert_eq!(page, json!(expected), "offset {offset} limit {limit}");
        }
        let unlimited = call(
            &db,
            "stock.warehouse.orderpoint",
            "search",
            json!([domain]),
            json!({"order": "warehouse_id, product_min_qty desc, id", "limit": 0}),
        )
        .unwrap();
        assert_eq!(unlimited, json!(all));
        let counted = call(
            &db,
            "stock.warehouse.orderpoint",
            "search_count",
            json!([domain]),
            json!({"limit": 0}),
        )
        .unwrap();
        assert_eq!(counted, json!(all.len()));

        // Keyset pages (`id > last`, order id) walk the same records as one
        // search, with the table scan and with an indexed leaf.
        for extra in [json!(["state", "=", "done"]), json!(["product_id", "=", 1])] {
            let whole = call(
                &db,
                "stock.move",
                "search",
                json!([[extra.clone()]]),
                json!({"order": "id"}),
            )
            .unwrap();
            let mut walked = Vec::new();
            let mut last = 0;
            loop {
                let page = call(
                    &db,
                    "stock.move",
                    "search",
                    json!([[["id", ">", last], extra.clone()]]),
                    json!({"order": "id", "limit": 7}),
                )
                .unwrap();
                let page = page.as_array().unwrap().clone();
                walked.extend(page.iter().cloned());
                match page.last().and_then(Value::as_i64) {
                    Some(id) if page.len() == 7 => last = id,
                    _ => break,
                }
            }
            assert!(walked.len() > 7, "{extra}: {}", walked.len());
            assert_eq!(json!(walked), whole, "{extra}");
        }
    }

    #[test]
    fn load_upserts_by_external_id() {
        let db = db(OdooVersion::V17);
        let fields = json!(["id", "name", "ref", "parent_id/.id"]);
        let first = call(
            &db,
            "res.partner",
            "load",
            json!([fields, [["planops.p1", "Loaded", "L-1", "1"]]]),
            json!({}),
        )
        .unwrap();
        let id = first["ids"][0].as_i64().unwrap();
        assert_eq!(first["messages"], json!([]));
        let again = call(
            &db,
            "res.partner",
            "load",
            json!([fields, [["planops.p1", "Renamed", "L-1", ""]]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(again["ids"], json!([id]));
        let rows = call(
            &db,
            "res.partner",
            "search_read",
            json!([[["ref", "=", "L-1"]], ["name", "parent_id"]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 1);
        assert_eq!(rows[0]["name"], json!("Renamed"));
        assert_eq!(rows[0]["parent_id"], json!(false));
        let xmlids = call(
            &db,
            "ir.model.data",
            "search_read",
            json!([
                [["module", "=", "planops"], ["name", "=", "p1"]],
                ["model", "res_id"]
            ]),
            json!({}),
        )
        .unwrap();
        assert_eq!(xmlids[0]["res_id"], json!(id));
        assert_eq!(xmlids[0]["model"], json!("res.partner"));

        let failed = call(
            &db,
            "res.partner",
            "load",
            json!([["id", "no_such_field"], [["planops.p2", "x"]]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(failed["ids"], json!(false));
        assert_eq!(failed["messages"][0]["type"], json!("error"));
    }

    /// A small fixed data set of partners and categories (not the random one).
    fn fixture() -> (Database, Vec<i64>) {
        let db = db(OdooVersion::V17);
        let ids = call(&db, "res.partner", "create", json!([[
            {"name": "Azure Supplies", "is_company": true, "supplier_rank": 3, "email": "sales@azure.example", "city": "Gent"},
            {"name": "Bolt & Nut", "is_company": true, "supplier_rank": 1, "customer_rank": 2, "city": "Brugge"},
            {"name": "Carla Contact", "parent_id": 0, "email": false, "customer_rank": 5},
            {"name": "Delta_Archived", "active": false, "supplier_rank": 2},
            {"name": "echo lowercase", "ref": "E-100%", "city": "Gent"}
        ]]), json!({})).unwrap();
        let ids: Vec<i64> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        call(
            &db,
            "res.partner",
            "write",
            json!([[ids[2]], {"parent_id": ids[0]}]),
            json!({}),
        )
        .unwrap();
        (db, ids)
    }

    #[test]
    fn domain_table() {
        let (db, p) = fixture();
        let (a, b, c, d, e) = (p[0], p[1], p[2], p[3], p[4]);
        let table: Vec<(Value, Vec<i64>)> = vec![
            (json!([["supplier_rank", ">", 0]]), vec![a, b]),
            (json!([["supplier_rank", ">=", 1]]), vec![a, b]),
            (json!([["supplier_rank", "<", 2]]), vec![b, c, e]),
            (json!([["supplier_rank", "<=", 0]]), vec![c, e]),
            (json!([["supplier_rank", "=", 3]]), vec![a]),
            (json!([["supplier_rank", "!=", 3]]), vec![b, c, e]),
            (json!([["name", "=", "Bolt & Nut"]]), vec![b]),
            (json!([["name", "like", "Co"]]), vec![c]),
            (json!([["name", "ilike", "co"]]), vec![c]),
            (json!([["name", "not ilike", "co"]]), vec![a, b, e]),
            (json!([["name", "not like", "Co"]]), vec![a, b, e]),
            (json!([["name", "=like", "A%"]]), vec![a]),
            (json!([["name", "=ilike", "a%"]]), vec![a]),
            (json!([["name", "=like", "_olt%"]]), vec![b]),
            (json!([["ref", "like", "100%"]]), vec![e]),
            (json!([["email", "=", false]]), vec![b, c, e]),
            (json!([["email", "!=", false]]), vec![a]),
            (json!([["city", "in", ["Gent", "Brugge"]]]), vec![a, b, e]),
            (json!([["city", "not in", ["Gent"]]]), vec![b, c]),
            (json!([["city", "in", [false]]]), vec![c]),
            (json!([["city", "=?", false]]), vec![a, b, c, e]),
            (json!([["city", "=?", "Gent"]]), vec![a, e]),
            (
                json!(["|", ["city", "=", "Gent"], ["customer_rank", ">", 0]]),
                vec![a, b, c, e],
            ),
            (json!(["!", ["city", "=", "Gent"]]), vec![b, c]),
            (
                json!([["city", "=", "Gent"], ["is_company", "=", true]]),
                vec![a],
            ),
            (
                json!(["&", ["is_company", "=", false], "!", ["email", "=", false]]),
                vec![],
            ),
            (json!([["is_company", "=", false]]), vec![c, e]),
            (json!([["is_company", "!=", true]]), vec![c, e]),
            (json!([["parent_id", "=", a]]), vec![c]),
            (json!([["parent_id", "=", false]]), vec![a, b, e]),
            (json!([["parent_id", "!=", false]]), vec![c]),
            (json!([["parent_id.name", "=", "Azure Supplies"]]), vec![c]),
            (json!([["parent_id.city", "ilike", "gen"]]), vec![c]),
            (json!([["parent_id", "ilike", "azure"]]), vec![c]),
            (json!([["parent_id", "in", [a, b]]]), vec![c]),
            (
                json!([["parent_id", "any", [["supplier_rank", ">", 2]]]]),
                vec![c],
            ),
            (
                json!([["parent_id", "not any", [["supplier_rank", ">", 2]]]]),
                vec![a, b, e],
            ),
            (
                json!([["child_ids", "any", [["customer_rank", "=", 5]]]]),
                vec![a],
            ),
            (json!([["child_ids", "=", false]]), vec![b, c, e]),
            (json!([["id", "in", [a, e, 9999]]]), vec![a, e]),
            (json!([["id", "child_of", a]]), vec![a]),
            (json!([["active", "=", false]]), vec![d]),
            (
                json!([["active", "in", [true, false]], ["supplier_rank", "=", 2]]),
                vec![d],
            ),
            (
                json!([
                    ["create_date", "<=", "2100-01-01"],
                    ["name", "=", "echo lowercase"]
                ]),
                vec![e],
            ),
        ];
        assert!(table.len() >= 40);
        let base = [a, b, c, d, e];
        for (domain, expected) in table {
            // Restrict to the fixture so seeded base partners do not interfere.
            let mut full = domain.as_array().unwrap().clone();
            full.push(json!(["id", "in", base]));
            let got = call(
                &db,
                "res.partner",
                "search",
                json!([full]),
                json!({"order": "id"}),
            )
            .unwrap();
            let got: Vec<i64> = got
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            assert_eq!(got, expected, "domain {domain}");
        }
    }

    #[test]
    fn read_shapes_order_and_paging() {
        let (db, p) = fixture();
        let rows = call(
            &db,
            "res.partner",
            "read",
            json!([[p[2]], ["parent_id", "email", "supplier_rank"]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(rows[0]["parent_id"], json!([p[0], "Azure Supplies"]));
        assert_eq!(rows[0]["email"], json!(false));
        assert_eq!(rows[0]["supplier_rank"], json!(0));
        let rows = call(
            &db,
            "res.partner",
            "read",
            json!([[p[2]], ["parent_id"]]),
            json!({"load": null}),
        )
        .unwrap();
        assert_eq!(rows[0]["parent_id"], json!(p[0]));
        let page = call(&db, "res.partner", "search_read", json!([[["supplier_rank", ">", 0]]]), json!({"fields": ["name"], "order": "supplier_rank desc, id", "limit": 1, "offset": 1, "context": {"active_test": false}})).unwrap();
        assert_eq!(page, json!([{"id": p[3], "name": "Delta_Archived"}]));
        let count = call(
            &db,
            "res.partner",
            "search_count",
            json!([[["city", "=", "Gent"]]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(count, json!(2));
    }

    #[test]
    fn write_moves_write_date_and_errors_match_odoo() {
        let (db, p) = fixture();
        let before = call(
            &db,
            "res.partner",
            "read",
            json!([[p[0]], ["write_date"]]),
            json!({}),
        )
        .unwrap();
        assert!(
            before[0]["write_date"]
                .as_str()
                .unwrap()
                .starts_with("2025-03-10 ")
        );
        let err = call(
            &db,
            "res.partner",
            "write",
            json!([[p[0]], {"bogus": 1}]),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid field 'bogus' on model 'res.partner'"
        );
        assert_eq!(err.odoo_exception_name(), "builtins.ValueError");
        let err = call(&db, "res.partner", "read", json!([[424242]]), json!({})).unwrap_err();
        assert!(matches!(err, OrmError::Missing(_)));
        let err = call(
            &db,
            "stock.warehouse",
            "create",
            json!([{"code": "X"}]),
            json!({}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Field: Warehouse (name)"), "{err}");
        let err = call(
            &db,
            "res.partner",
            "search",
            json!([[["nope", "=", 1]]]),
            json!({}),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Invalid field res.partner.nope"),
            "{err}"
        );
        assert!(matches!(
            call(&db, "no.such", "search", json!([[]]), json!({})),
            Err(OrmError::UnknownModel(_))
        ));
        assert!(matches!(
            call(&db, "res.partner", "_private", json!([]), json!({})),
            Err(OrmError::Access(_))
        ));
    }

    #[test]
    fn x2many_commands() {
        let (db, p) = fixture();
        let m2m = |cmds: Value| {
            call(
                &db,
                "res.users",
                "write",
                json!([[ADMIN_UID], {"company_ids": cmds}]),
                json!({}),
            )
            .unwrap();
            call(
                &db,
                "res.users",
                "read",
                json!([[ADMIN_UID], ["company_ids"]]),
                json!({}),
            )
            .unwrap()[0]["company_ids"]
                .clone()
        };
        assert_eq!(m2m(json!([[6, 0, [1]]])), json!([1]));
        let created = m2m(json!([[0, 0, {"name": "Second Co"}]]));
        assert_eq!(created.as_array().unwrap().len(), 2);
        let second = created[1].as_i64().unwrap();
        assert_eq!(m2m(json!([[3, second, 0]])), json!([1]));
        assert_eq!(m2m(json!([[4, second, 0]])), json!([1, second]));
        assert_eq!(m2m(json!([[5, 0, 0]])), json!([]));
        // one2many through the inverse many2one.
        call(
            &db,
            "res.partner",
            "write",
            json!([[p[1]], {"child_ids": [[0, 0, {"name": "New child"}], [4, p[4], 0]]}]),
            json!({}),
        )
        .unwrap();
        let kids = call(
            &db,
            "res.partner",
            "read",
            json!([[p[1]], ["child_ids"]]),
            json!({}),
        )
        .unwrap()[0]["child_ids"]
            .clone();
        assert_eq!(kids.as_array().unwrap().len(), 2);
        call(
            &db,
            "res.partner",
            "write",
            json!([[p[1]], {"child_ids": [[5, 0, 0]]}]),
            json!({}),
        )
        .unwrap();
        let kids = call(
            &db,
            "res.partner",
            "read",
            json!([[p[1]], ["child_ids"]]),
            json!({}),
        )
        .unwrap()[0]["child_ids"]
            .clone();
        assert_eq!(kids, json!([]));
    }

    #[test]
    fn authentication_and_access() {
        let db = db(OdooVersion::V19);
        assert_eq!(db.authenticate("admin", "admin"), Some(ADMIN_UID));
        assert_eq!(db.authenticate("admin", "wrong"), None);
        let key = db.admin_api_key();
        assert_eq!(key.len(), 40);
        assert_eq!(db.authenticate("admin", &key), Some(ADMIN_UID));
        assert_eq!(db.uid_for_api_key(&key), Some(ADMIN_UID));
        assert_eq!(db.authenticate("planner", &key), None);
        let planner_key = db.generate_api_key("planner").unwrap();
        assert_eq!(db.uid_for_api_key(&planner_key), Some(PLANNER_UID));
        let err = db
            .execute_kw(
                PLANNER_UID,
                "res.users.apikeys",
                "search",
                vec![json!([])],
                Map::new(),
            )
            .unwrap_err();
        assert_eq!(err.odoo_exception_name(), "odoo.exceptions.AccessError");
        assert!(
            err.to_string()
                .starts_with("You are not allowed to access 'Users API Keys'"),
            "{err}"
        );
        let err = db
            .execute_kw(
                PLANNER_UID,
                "base.automation",
                "create",
                vec![json!({})],
                Map::new(),
            )
            .unwrap_err();
        assert!(matches!(err, OrmError::Access(_)));
        assert!(
            db.execute_kw(
                PLANNER_UID,
                "ir.model.data",
                "search",
                vec![json!([])],
                Map::new()
            )
            .is_ok()
        );
        assert!(db.call_count() >= 3);
    }

    #[test]
    fn version_personalities() {
        let fields = |v| {
            call(
                &db(v),
                "product.template",
                "fields_get",
                json!([]),
                json!({"attributes": ["type"]}),
            )
            .unwrap()
        };
        assert!(fields(OdooVersion::V16).get("is_storable").is_none());
        assert!(fields(OdooVersion::V17).get("detailed_type").is_some());
        assert!(fields(OdooVersion::V18).get("is_storable").is_some());
        assert!(fields(OdooVersion::V19).get("uom_po_id").is_none());
        let community = db(OdooVersion::V17);
        assert!(matches!(
            call(
                &community,
                "approval.request",
                "search",
                json!([[]]),
                json!({})
            ),
            Err(OrmError::UnknownModel(_))
        ));
    }

    #[test]
    fn purchase_confirm_cancel_and_approval_workflow() {
        let db = Database::new(SimConfig {
            version: OdooVersion::V17,
            edition: Edition::Enterprise,
            today: jiff::civil::date(2025, 3, 10),
            ..SimConfig::default()
        });
        let po = call(
            &db,
            "purchase.order",
            "create",
            json!([[{"partner_id": 1}]]),
            json!({}),
        )
        .unwrap()[0]
            .as_i64()
            .unwrap();
        let state = |db: &Database| {
            call(
                db,
                "purchase.order",
                "read",
                json!([[po], ["state"]]),
                json!({}),
            )
            .unwrap()[0]["state"]
                .clone()
        };
        call(
            &db,
            "purchase.order",
            "button_confirm",
            json!([[po]]),
            json!({}),
        )
        .unwrap();
        call(
            &db,
            "purchase.order",
            "button_confirm",
            json!([[po]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(state(&db), json!("purchase"));
        call(
            &db,
            "purchase.order",
            "button_cancel",
            json!([[po]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(state(&db), json!("cancel"));
        // A cancelled order is not confirmed by a late button_confirm.
        call(
            &db,
            "purchase.order",
            "button_confirm",
            json!([[po]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(state(&db), json!("cancel"));

        let bob = db.authenticate("buyer.bob", "buyer.bob").unwrap();
        let alice = db.authenticate("buyer.alice", "buyer.alice").unwrap();
        let category = call(
            &db,
            "approval.category",
            "create",
            json!([[{"name": "C", "approval_minimum": 1}]]),
            json!({}),
        )
        .unwrap()[0]
            .as_i64()
            .unwrap();
        let request = |db: &Database| {
            let r = call(
                db,
                "approval.request",
                "create",
                json!([[{"name": "R", "category_id": category}]]),
                json!({}),
            )
            .unwrap()[0]
                .as_i64()
                .unwrap();
            call(
                db,
                "approval.approver",
                "create",
                json!([[{"request_id": r, "user_id": bob}]]),
                json!({}),
            )
            .unwrap();
            r
        };
        let status = |db: &Database, r: i64| {
            call(
                db,
                "approval.request",
                "read",
                json!([[r], ["request_status"]]),
                json!({}),
            )
            .unwrap()[0]["request_status"]
                .clone()
        };
        let r = request(&db);
        call(
            &db,
            "approval.request",
            "action_confirm",
            json!([[r]]),
            json!({}),
        )
        .unwrap();
        assert_eq!(status(&db, r), json!("pending"));
        // Not an approver: nothing changes.
        db.execute_kw(
            alice,
            "approval.request",
            "action_approve",
            vec![json!([r])],
            Map::new(),
        )
        .unwrap();
        assert_eq!(status(&db, r), json!("pending"));
        db.execute_kw(
            bob,
            "approval.request",
            "action_approve",
            vec![json!([r])],
            Map::new(),
        )
        .unwrap();
        assert_eq!(status(&db, r), json!("approved"));
        // request_status is computed from the lines: writing one recomputes it.
        let line = call(
            &db,
            "approval.approver",
            "search",
            json!([[["request_id", "=", r]]]),
            json!({}),
        )
        .unwrap();
        call(
            &db,
            "approval.approver",
            "write",
            json!([line, {"status": "pending"}]),
            json!({}),
        )
        .unwrap();
        assert_eq!(status(&db, r), json!("pending"));
        let r2 = request(&db);
        call(
            &db,
            "approval.request",
            "action_confirm",
            json!([[r2]]),
            json!({}),
        )
        .unwrap();
        db.execute_kw(
            bob,
            "approval.request",
            "action_refuse",
            vec![json!([r2])],
            Map::new(),
        )
        .unwrap();
        assert_eq!(status(&db, r2), json!("refused"));
        // Fewer approvers than the category minimum cannot be submitted.
        call(
            &db,
            "approval.category",
            "write",
            json!([[category], {"approval_minimum": 2}]),
            json!({}),
        )
        .unwrap();
        let r3 = request(&db);
        assert!(matches!(
            call(
                &db,
                "approval.request",
                "action_confirm",
                json!([[r3]]),
                json!({})
            ),
            Err(OrmError::User(_))
        ));
    }
}
