//! The Odoo side: desired records, comparison with what Odoo holds, repair,
//! removal, and the Odoo 16 polling fallback.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::MIN_WEBHOOK_VERSION;
use odoo_client::domain::{Condition, Domain, Operator};
use odoo_client::values::{format_datetime, parse_datetime};
use odoo_client::{
    ErrorKind, ExternalId, OdooClient, OdooError, PageOptions, RecordExt, SearchOptions, Secret,
};
use planops_api::rule::{EventTriggerSpec, RecordOperation};

/// Module of every external id PlanOps creates (`planops.<name>`).
pub const XMLID_MODULE: &str = "planops";

const AUTOMATION_MODEL: &str = "base.automation";
const ACTION_MODEL: &str = "ir.actions.server";
/// Fields of an automation that Odoo recomputes from one another on write
/// (writing `trigger` or `model_id` alone empties `trigger_field_ids` and
/// `filter_domain`; on 18 and later a written `filter_domain` moves
/// `trigger_field_ids`). Odoo leaves the fields of one write alone, so when
/// any of them differs, all of them are written together.
const COUPLED_AUTOMATION_FIELDS: &[&str] = &[
    "model_id",
    "trigger",
    "trigger_field_ids",
    "filter_domain",
    "filter_pre_domain",
];
/// Odoo 17 and 18 rename an automation's server action after its type
/// whenever its type or URL is written; 19 keeps a name it did not generate.
const FIRST_VERSION_KEEPING_ACTION_NAMES: u32 = 19;
/// Readable part of an xmlid name; the hash keeps it unique when truncated.
const MAX_READABLE: usize = 80;

/// The two external ids of one rule's automation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutomationKey {
    pub automation: ExternalId,
    pub action: ExternalId,
}

impl AutomationKey {
    /// `planops.rule_<ns>_<rule>_<hash>_automation` and `..._webhook`. The
    /// names are sanitised to `[a-z0-9_]` and shortened; the hash of the exact
    /// `namespace/rule` keeps two rules apart even when they sanitise alike
    /// (`team-a/x` and `team/a-x`).
    pub fn for_rule(namespace: &str, rule: &str) -> AutomationKey {
        Self::owned_by("rule", namespace, rule)
    }

    /// `planops.approval_<ns>_<policy>_<hash>_automation` and `..._webhook`:
    /// an ApprovalPolicy's callback when its requests change state.
    pub fn for_approval(namespace: &str, policy: &str) -> AutomationKey {
        Self::owned_by("approval", namespace, policy)
    }

    fn owned_by(kind: &str, namespace: &str, rule: &str) -> AutomationKey {
        let digest = Sha256::digest(format!("{namespace}/{rule}").as_bytes());
        let hash = hex::encode(&digest[..4]);
        let mut readable = format!("{kind}_{}_{}", sanitise(namespace), sanitise(rule));
        readable.truncate(MAX_READABLE);
        let base = format!("{readable}_{hash}");
        let id = |suffix: &str| ExternalId {
            module: XMLID_MODULE.to_string(),
            name: format!("{base}_{suffix}"),
        };
        AutomationKey {
            automation: id("automation"),
            action: id("webhook"),
        }
    }
}

fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `base.automation.trigger` for record operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    OnCreate,
    OnWrite,
    OnCreateOrWrite,
}

impl Trigger {
    /// Both or none listed: create and write, Odoo's "On save".
    pub fn from_operations(operations: &[RecordOperation]) -> Trigger {
        let create = operations.contains(&RecordOperation::Create);
        let write = operations.contains(&RecordOperation::Write);
        match (create, write) {
            (true, false) => Trigger::OnCreate,
            (false, true) => Trigger::OnWrite,
            _ => Trigger::OnCreateOrWrite,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::OnCreate => "on_create",
            Trigger::OnWrite => "on_write",
            Trigger::OnCreateOrWrite => "on_create_or_write",
        }
    }
}

/// What Odoo should hold for one rule.
#[derive(Clone, Debug)]
pub struct AutomationSpec {
    pub key: AutomationKey,
    /// `namespace/rule`, shown in the records' names.
    pub label: String,
    pub model: String,
    pub trigger: Trigger,
    /// Fields whose change fires the trigger on write; empty: any field.
    pub watched_fields: Vec<String>,
    pub filter_domain: Option<Domain>,
    /// The gateway route with its token: a credential, hence a [`Secret`].
    pub webhook_url: Secret,
}

impl AutomationSpec {
    /// The desired records for a rule's `triggers.events`.
    pub fn for_rule(
        namespace: &str,
        rule: &str,
        events: &EventTriggerSpec,
        webhook_url: Secret,
    ) -> Result<AutomationSpec, SyncError> {
        let filter_domain = match events.filter_domain.as_deref() {
            Some(text) => {
                let domain = Domain::parse(text).map_err(|e| SyncError::InvalidDomain {
                    message: e.to_string(),
                })?;
                (!domain.is_empty()).then_some(domain)
            }
            None => None,
        };
        Ok(AutomationSpec {
            key: AutomationKey::for_rule(namespace, rule),
            label: format!("{namespace}/{rule}"),
            model: events.model.clone(),
            trigger: Trigger::from_operations(&events.operations),
            watched_fields: events.watched_fields.clone(),
            filter_domain,
            webhook_url,
        })
    }

    /// Fields the webhook sends besides `_id`, `_model`, `_action` and `id`
    /// (which Odoo always adds): the watched fields and `write_date`, so the
    /// gateway can drop stale or duplicate deliveries without a read.
    pub fn webhook_fields(&self) -> BTreeSet<String> {
        let mut fields: BTreeSet<String> = self.watched_fields.iter().cloned().collect();
        fields.insert("write_date".to_string());
        fields
    }

    /// Watched fields matter on write only; a create-only trigger has none.
    fn trigger_fields(&self) -> BTreeSet<String> {
        match self.trigger {
            Trigger::OnCreate => BTreeSet::new(),
            _ => self.watched_fields.iter().cloned().collect(),
        }
    }
}

/// One of the two records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// The `base.automation` rule.
    Automation,
    /// The `ir.actions.server` webhook action.
    Action,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Record::Automation => "automation",
            Record::Action => "webhook action",
        })
    }
}

/// One difference between Odoo and the spec, fixed by [`sync`] (or that would
/// be, in [`SyncMode::DryRun`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Neither record existed: a first install.
    Created(Record),
    /// The record was gone while the other one was still there (deleted in Odoo).
    Recreated(Record),
    /// A field differed from the spec (edited in Odoo, or the spec changed).
    Field { record: Record, field: &'static str },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Created(record) => write!(f, "created the {record}"),
            Change::Recreated(record) => write!(f, "recreated the deleted {record}"),
            Change::Field {
                record: Record::Automation,
                field: "active",
            } => f.write_str("re-enabled the disabled automation"),
            Change::Field { record, field } => write!(f, "reset {record} field {field}"),
        }
    }
}

/// Whether [`sync`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    Apply,
    /// Read and compare only (rules in `mode: DryRun` write nothing to Odoo).
    DryRun,
}

/// What [`sync`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Unset only in a dry run that would create the record.
    pub automation_id: Option<i64>,
    pub action_id: Option<i64>,
    /// Empty when Odoo already matched the spec.
    pub changes: Vec<Change>,
    /// Whether the changes were written.
    pub applied: bool,
}

impl SyncOutcome {
    pub fn in_sync(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes, for a status message or an Event.
    pub fn describe(&self) -> String {
        self.changes
            .iter()
            .map(Change::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why Odoo could not be made to match the spec.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "Odoo {major} has no webhook server action (it needs Odoo {MIN_WEBHOOK_VERSION} or later)"
    )]
    NoWebhookSupport { major: u32 },
    #[error("model {model:?} is not installed in Odoo")]
    ModelNotFound { model: String },
    #[error("model {model:?} has no field {}", fields.join(", "))]
    FieldsNotFound { model: String, fields: Vec<String> },
    #[error("spec.triggers.events.filterDomain: {message}")]
    InvalidDomain { message: String },
    #[error("external id {xmlid} belongs to a {found} record, not {expected}")]
    XmlidConflict {
        xmlid: String,
        found: String,
        expected: String,
    },
    #[error("OdooConnection {connection} has no connected client")]
    NotConnected { connection: String },
    #[error(transparent)]
    Odoo(#[from] OdooError),
}

impl SyncError {
    /// Worth retrying soon: Odoo was unreachable or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::NotConnected { .. } => true,
            SyncError::Odoo(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Makes Odoo hold exactly the records `spec` describes. Creates what is
/// missing (with its external id, atomically, so a retry after a lost reply
/// finds it), writes only the fields that differ, and reports every change.
/// An unchanged world costs five reads and no write.
pub async fn sync(
    client: &OdooClient,
    spec: &AutomationSpec,
    mode: SyncMode,
) -> Result<SyncOutcome, SyncError> {
    sync_inner(client, spec, mode)
        .await
        .map_err(|e| redact(e, &spec.webhook_url))
}

async fn sync_inner(
    client: &OdooClient,
    spec: &AutomationSpec,
    mode: SyncMode,
) -> Result<SyncOutcome, SyncError> {
    let major = client.info().version.major;
    if major < MIN_WEBHOOK_VERSION {
        return Err(SyncError::NoWebhookSupport { major });
    }
    let model_id = model_id(client, &spec.model).await?;
    let trigger_fields = spec.trigger_fields();
    let webhook_fields = spec.webhook_fields();
    let wanted: BTreeSet<&String> = trigger_fields.iter().chain(&webhook_fields).collect();
    let field_ids = field_ids(client, &spec.model, &wanted).await?;
    let ids_of = |names: &BTreeSet<String>| -> Vec<i64> {
        let mut ids: Vec<i64> = names
            .iter()
            .filter_map(|n| field_ids.get(n).copied())
            .collect();
        ids.sort_unstable();
        ids
    };
    let rows = lookup(client, &spec.key).await?;

    let automation_wants = vec![
        ("name", Want::Str(format!("PlanOps: {}", spec.label))),
        ("model_id", Want::Many2one(model_id)),
        ("trigger", Want::Str(spec.trigger.as_str().to_string())),
        ("trigger_field_ids", Want::Ids(ids_of(&trigger_fields))),
        (
            "filter_domain",
            Want::Domain(spec.filter_domain.as_ref().map(Domain::to_python)),
        ),
        ("filter_pre_domain", Want::Domain(None)),
        ("active", Want::Bool(true)),
    ];
    let mut changes = Vec::new();
    let automation_id = ensure(
        client,
        mode,
        Target {
            record: Record::Automation,
            model: AUTOMATION_MODEL,
            xmlid: &spec.key.automation,
            row: rows.automation.as_ref(),
            sibling_exists: rows.action.is_some(),
            coupled: COUPLED_AUTOMATION_FIELDS,
            set_on_create_only: &[],
        },
        &automation_wants,
        &mut changes,
    )
    .await?;

    let mut action_wants = vec![
        (
            "name",
            Want::Str(format!("PlanOps webhook: {}", spec.label)),
        ),
        ("model_id", Want::Many2one(model_id)),
        ("state", Want::Str("webhook".into())),
        ("usage", Want::Str("base_automation".into())),
        (
            "webhook_url",
            Want::Str(spec.webhook_url.expose().to_string()),
        ),
        ("webhook_field_ids", Want::Ids(ids_of(&webhook_fields))),
    ];
    if let Some(id) = automation_id {
        action_wants.push(("base_automation_id", Want::Many2one(id)));
    }
    let action_id = ensure(
        client,
        mode,
        Target {
            record: Record::Action,
            model: ACTION_MODEL,
            xmlid: &spec.key.action,
            row: rows.action.as_ref(),
            sibling_exists: rows.automation.is_some(),
            coupled: &[],
            // Where Odoo renames the action itself, its name is no drift.
            set_on_create_only: if major >= FIRST_VERSION_KEEPING_ACTION_NAMES {
                &[]
            } else {
                &["name"]
            },
        },
        &action_wants,
        &mut changes,
    )
    .await?;

    Ok(SyncOutcome {
        automation_id,
        action_id,
        applied: mode == SyncMode::Apply,
        changes,
    })
}

/// Deletes both records and their external ids; returns the records that
/// existed. Safe to repeat (a record or id already gone is not an error).
pub async fn remove(client: &OdooClient, key: &AutomationKey) -> Result<Vec<Record>, SyncError> {
    let rows = lookup(client, key).await?;
    let mut removed = Vec::new();
    // The action first: on Odoo, deleting the automation cascades to it anyway.
    for (record, model, row) in [
        (Record::Action, ACTION_MODEL, rows.action),
        (Record::Automation, AUTOMATION_MODEL, rows.automation),
    ] {
        let Some(row) = row else { continue };
        if row.model == model && unlink_if_present(client, model, row.res_id).await? {
            removed.push(record);
        }
        // Odoo drops a record's external ids with it; the simulator and
        // older databases may keep the row.
        unlink_if_present(client, "ir.model.data", row.data_id).await?;
    }
    Ok(removed)
}

/// Records of `model` matching `domain` written at or after `since` (all of
/// them without `since`), as `(id, write_date)` oldest first. The Odoo 16
/// fallback for webhooks: call it every poll interval with the newest
/// `write_date` seen, minus a small overlap (Odoo stores seconds, and a
/// transaction may commit after a later one).
pub async fn poll_changes(
    client: &OdooClient,
    model: &str,
    domain: &Domain,
    since: Option<jiff::Timestamp>,
) -> Result<Vec<(i64, jiff::Timestamp)>, OdooError> {
    let domain = match since {
        Some(since) => domain.and(&Domain::from_conditions([Condition::new(
            "write_date",
            Operator::Ge,
            format_datetime(since),
        )])),
        None => domain.clone(),
    };
    let records = client
        .search_read_all(
            model,
            &domain.to_json_value(),
            &["write_date"],
            &PageOptions::keyset(500),
        )
        .await?;
    let mut changes = Vec::with_capacity(records.len());
    for record in records {
        let id = record.id()?;
        let Some(text) = record.str_field("write_date")? else {
            continue;
        };
        let written = parse_datetime(text).map_err(OdooError::protocol)?;
        changes.push((id, written));
    }
    changes.sort_by_key(|&(id, written)| (written, id));
    Ok(changes)
}

/// A desired field value and how to compare it with what Odoo returns.
#[derive(Clone, Debug)]
enum Want {
    Str(String),
    Bool(bool),
    Many2one(i64),
    /// A many2many, compared as a set.
    Ids(Vec<i64>),
    /// A domain in Python-literal form; `None` is "no domain".
    Domain(Option<String>),
}

impl Want {
    fn matches(&self, current: Option<&Value>) -> bool {
        let current = current.unwrap_or(&Value::Null);
        match self {
            Want::Str(text) => current.as_str() == Some(text),
            Want::Bool(flag) => current.as_bool().unwrap_or(false) == *flag,
            Want::Many2one(id) => {
                let got = match current {
                    Value::Array(pair) => pair.first().and_then(Value::as_i64),
                    other => other.as_i64(),
                };
                got == Some(*id)
            }
            Want::Ids(ids) => {
                let Some(items) = current.as_array() else {
                    return ids.is_empty() && is_empty(current);
                };
                let got: BTreeSet<i64> = items.iter().filter_map(Value::as_i64).collect();
                got.len() == items.len() && got == ids.iter().copied().collect()
            }
            Want::Domain(want) => {
                let got = current
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|text| Domain::parse(text).map(|d| d.to_python()));
                match (want, got) {
                    (None, None) => true,
                    (None, Some(Ok(python))) => python == "[]",
                    (Some(want), Some(Ok(python))) => *want == python,
                    // A domain PlanOps cannot parse was not written by PlanOps.
                    (_, Some(Err(_))) | (Some(_), None) => false,
                }
            }
        }
    }

    /// The value for `write`, and for `load` (which takes the same shapes).
    fn to_value(&self) -> Value {
        match self {
            Want::Str(text) => json!(text),
            Want::Bool(flag) => json!(flag),
            Want::Many2one(id) => json!(id),
            Want::Ids(ids) => json!([[6, 0, ids]]),
            Want::Domain(Some(python)) => json!(python),
            Want::Domain(None) => json!(false),
        }
    }
}

fn is_empty(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Bool(false))
}

/// An `ir.model.data` row of ours.
#[derive(Clone, Debug)]
struct XmlRow {
    data_id: i64,
    model: String,
    res_id: i64,
}

#[derive(Default)]
struct Rows {
    automation: Option<XmlRow>,
    action: Option<XmlRow>,
}

/// Both external ids in one read.
async fn lookup(client: &OdooClient, key: &AutomationKey) -> Result<Rows, SyncError> {
    let records = client
        .search_read(
            "ir.model.data",
            &json!([
                ["module", "=", XMLID_MODULE],
                ["name", "in", [key.automation.name, key.action.name]]
            ]),
            &["name", "model", "res_id"],
            &SearchOptions::limit(10),
        )
        .await?;
    let mut rows = Rows::default();
    for record in records {
        let row = XmlRow {
            data_id: record.id()?,
            model: record.str_field("model")?.unwrap_or_default().to_string(),
            res_id: record.get("res_id").and_then(Value::as_i64).unwrap_or(0),
        };
        match record.str_field("name")? {
            Some(name) if name == key.automation.name => rows.automation = Some(row),
            Some(name) if name == key.action.name => rows.action = Some(row),
            _ => {}
        }
    }
    Ok(rows)
}

async fn model_id(client: &OdooClient, model: &str) -> Result<i64, SyncError> {
    let ids = client
        .search(
            "ir.model",
            &json!([["model", "=", model]]),
            &SearchOptions::limit(1),
        )
        .await?;
    ids.first()
        .copied()
        .ok_or_else(|| SyncError::ModelNotFound {
            model: model.to_string(),
        })
}

async fn field_ids(
    client: &OdooClient,
    model: &str,
    names: &BTreeSet<&String>,
) -> Result<HashMap<String, i64>, SyncError> {
    let records = client
        .search_read(
            "ir.model.fields",
            &json!([["model", "=", model], ["name", "in", names]]),
            &["name"],
            &SearchOptions::default(),
        )
        .await?;
    let mut ids = HashMap::new();
    for record in records {
        if let Some(name) = record.str_field("name")? {
            ids.insert(name.to_string(), record.id()?);
        }
    }
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !ids.contains_key(n.as_str()))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(SyncError::FieldsNotFound {
            model: model.to_string(),
            fields: missing,
        });
    }
    Ok(ids)
}

struct Target<'a> {
    record: Record,
    model: &'static str,
    xmlid: &'a ExternalId,
    row: Option<&'a XmlRow>,
    /// The other record's external id exists: a missing one was deleted.
    sibling_exists: bool,
    /// Fields written all together as soon as one of them differs.
    coupled: &'static [&'static str],
    /// Fields given when creating the record but not compared afterwards.
    set_on_create_only: &'static [&'static str],
}

/// Brings one record in line with `wants`; returns its id (unset in a dry
/// run that would create it).
async fn ensure(
    client: &OdooClient,
    mode: SyncMode,
    target: Target<'_>,
    wants: &[(&'static str, Want)],
    changes: &mut Vec<Change>,
) -> Result<Option<i64>, SyncError> {
    if let Some(row) = target.row
        && row.model != target.model
    {
        return Err(SyncError::XmlidConflict {
            xmlid: target.xmlid.to_string(),
            found: row.model.clone(),
            expected: target.model.to_string(),
        });
    }
    let current = match target.row {
        Some(row) => read_one(client, target.model, row.res_id, wants).await?,
        None => None,
    };
    if let Some(current) = current {
        let id = current.id()?;
        let mut vals = Map::new();
        for (field, want) in wants {
            if target.set_on_create_only.contains(field) {
                continue;
            }
            if !want.matches(current.get(*field)) {
                changes.push(Change::Field {
                    record: target.record,
                    field,
                });
                vals.insert((*field).to_string(), want.to_value());
            }
        }
        if target.coupled.iter().any(|f| vals.contains_key(*f)) {
            for (field, want) in wants {
                if target.coupled.contains(field) {
                    vals.insert((*field).to_string(), want.to_value());
                }
            }
        }
        if mode == SyncMode::Apply && !vals.is_empty() {
            client.write(target.model, &[id], vals).await?;
        }
        return Ok(Some(id));
    }
    // Missing. A leftover external id (its record deleted) would make `load`
    // refuse; Odoo itself drops external ids with their record.
    changes.push(if target.row.is_some() || target.sibling_exists {
        Change::Recreated(target.record)
    } else {
        Change::Created(target.record)
    });
    if mode == SyncMode::DryRun {
        return Ok(None);
    }
    if let Some(row) = target.row {
        unlink_if_present(client, "ir.model.data", row.data_id).await?;
    }
    let vals: Map<String, Value> = wants
        .iter()
        .map(|(field, want)| ((*field).to_string(), want.to_value()))
        .collect();
    let outcome = client.upsert(target.model, target.xmlid, &vals).await?;
    Ok(Some(outcome.id))
}

/// The record, archived or not, or `None` when it was deleted.
async fn read_one(
    client: &OdooClient,
    model: &str,
    id: i64,
    wants: &[(&'static str, Want)],
) -> Result<Option<odoo_client::Record>, SyncError> {
    let fields: Vec<&str> = wants.iter().map(|(f, _)| *f).collect();
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    let records = client
        .with_context(context)
        .search_read(
            model,
            &json!([["id", "=", id]]),
            &fields,
            &SearchOptions::limit(1),
        )
        .await?;
    Ok(records.into_iter().next())
}

/// `unlink` that treats "already gone" as done; returns whether it deleted.
async fn unlink_if_present(client: &OdooClient, model: &str, id: i64) -> Result<bool, SyncError> {
    match client.unlink(model, &[id]).await {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::MissingRecord { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Keeps the webhook URL, and the token inside it, out of error texts.
fn redact(err: SyncError, url: &Secret) -> SyncError {
    match err {
        SyncError::Odoo(e) => {
            let mut e = e.redact(url.expose());
            if let Some((_, token)) = url.expose().split_once("token=") {
                let token = token.split('&').next().unwrap_or_default();
                e = e.redact(token);
            }
            SyncError::Odoo(e)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmlids_are_sanitised_bounded_and_distinct() {
        let key = AutomationKey::for_rule("team-a", "Late.PO");
        assert!(key.automation.name.starts_with("rule_team_a_late_po_"));
        assert!(key.automation.name.ends_with("_automation"));
        assert!(key.action.name.ends_with("_webhook"));
        assert!(ExternalId::new(XMLID_MODULE, key.automation.name.clone()).is_ok());
        // Sanitising alike must not collide.
        let other = AutomationKey::for_rule("team", "a-late.po");
        assert_ne!(
            key.automation,
            AutomationKey::for_rule("team", "a_x").automation
        );
        assert_ne!(
            AutomationKey::for_rule("team-a", "x").automation,
            AutomationKey::for_rule("team", "a-x").automation
        );
        assert_ne!(key.automation, other.automation);
        let long = AutomationKey::for_rule(&"n".repeat(63), &"r".repeat(253));
        assert!(long.automation.name.len() <= MAX_READABLE + 9 + "_automation".len());
        assert_ne!(
            long.automation,
            AutomationKey::for_rule(&"n".repeat(63), &"r".repeat(252)).automation
        );
    }

    #[test]
    fn trigger_follows_operations() {
        use RecordOperation::*;
        assert_eq!(Trigger::from_operations(&[]), Trigger::OnCreateOrWrite);
        assert_eq!(Trigger::from_operations(&[Create]), Trigger::OnCreate);
        assert_eq!(Trigger::from_operations(&[Write]), Trigger::OnWrite);
        assert_eq!(
            Trigger::from_operations(&[Write, Create]),
            Trigger::OnCreateOrWrite
        );
    }

    #[test]
    fn wants_compare_like_odoo_returns_values() {
        assert!(Want::Many2one(7).matches(Some(&json!([7, "Sale Order Line"]))));
        assert!(Want::Many2one(7).matches(Some(&json!(7))));
        assert!(!Want::Many2one(7).matches(Some(&json!(false))));
        assert!(Want::Ids(vec![3, 1]).matches(Some(&json!([1, 3]))));
        assert!(!Want::Ids(vec![1]).matches(Some(&json!([1, 3]))));
        assert!(Want::Ids(vec![]).matches(Some(&json!([]))));
        assert!(Want::Bool(true).matches(Some(&json!(true))));
        assert!(!Want::Bool(true).matches(Some(&json!(false))));
        let want = Want::Domain(Some(
            Domain::parse(r#"[["state","=","sale"]]"#)
                .unwrap()
                .to_python(),
        ));
        // Odoo keeps the text as typed; equal domains in other spellings match.
        assert!(want.matches(Some(&json!("[(\"state\", \"=\", \"sale\")]"))));
        assert!(!want.matches(Some(&json!("[('state', '=', 'draft')]"))));
        assert!(!want.matches(Some(&json!(false))));
        assert!(Want::Domain(None).matches(Some(&json!(false))));
        assert!(Want::Domain(None).matches(Some(&json!("[]"))));
        assert!(!Want::Domain(None).matches(Some(&json!("[('id', '=', 1)]"))));
    }

    #[test]
    fn errors_never_carry_the_webhook_url_or_token() {
        let url = Secret::new("https://gw.example/hooks/odoo/ns/r?token=s3cr3t-t0ken");
        let err = SyncError::Odoo(OdooError::new(ErrorKind::Validation {
            name: "odoo.exceptions.ValidationError".into(),
            message:
                "bad value s3cr3t-t0ken in https://gw.example/hooks/odoo/ns/r?token=s3cr3t-t0ken"
                    .into(),
        }));
        let text = redact(err, &url).to_string();
        assert!(!text.contains("s3cr3t-t0ken"), "{text}");
    }
}
