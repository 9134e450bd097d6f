//! `base.automation` in the simulator: which record-triggered rules fire for
//! a create or a write, the webhook POSTs their actions queue, and the fields
//! Odoo recomputes on the rules and their server actions when some are
//! written alone.
//!
//! Every write goes through [`Store::write`], so the writes that server
//! methods make (`button_confirm`, approvals, activities, …) fire the same
//! rules as a client's `write`, as they do in Odoo.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::OdooVersion;
use super::OrmError;
use super::WebhookDelivery;
use super::model::FieldType;
use super::orm::Ctx;
use super::store::Store;
use super::value::Val;
use odoo_client::domain::Domain;

/// Triggers that run after a create.
const CREATE_TRIGGERS: &[&str] = &["on_create", "on_create_or_write"];
/// Triggers that run after a write.
const WRITE_TRIGGERS: &[&str] = &["on_write", "on_create_or_write"];
/// Triggers whose rules need a date field and run from a cron, not on save.
const TIME_TRIGGERS: &[&str] = &["on_time", "on_time_created", "on_time_updated"];

/// Turns a `filter_domain` Python literal such as `[('name', 'like', 'X')]`
/// into JSON. Handles the literals automation rules use (lists, tuples,
/// quoted strings, numbers, True/False/None); anything else is an error.
pub(super) fn python_domain_literal(text: &str) -> Result<Value, OrmError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => out.push('['),
            ')' => out.push(']'),
            '\'' | '"' => {
                out.push('"');
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                out.push('\\');
                                out.push(escaped);
                            }
                        }
                        '"' if c == '\'' => out.push_str("\\\""),
                        _ if inner == c => break,
                        _ => out.push(inner),
                    }
                }
                out.push('"');
            }
            c if c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        word.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(match word.as_str() {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    _ => {
                        return Err(OrmError::Value(format!(
                            "filter_domain: unsupported name '{word}'"
                        )));
                    }
                });
            }
            _ => out.push(c),
        }
    }
    // Python allows a trailing comma in one-element tuples and lists.
    let out = out.replace(",]", "]").replace(", ]", "]");
    serde_json::from_str(&out)
        .map_err(|e| OrmError::Value(format!("filter_domain is not a valid domain: {e}")))
}

fn text_of(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

fn ids_of(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// One active record-triggered rule, as the trigger path needs it.
struct Rule {
    id: i64,
    filter_pre_domain: Option<String>,
    filter_domain: Option<String>,
    /// Names of `trigger_field_ids`; empty: every field.
    trigger_fields: Vec<String>,
    action_ids: Vec<i64>,
}

fn field_names(store: &Store, ids: &[i64]) -> Result<Vec<String>, OrmError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store
        .read(
            "ir.model.fields",
            ids,
            &["name".to_string()],
            false,
            &Ctx::user(1),
        )?
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect())
}

/// The active rules of `model` with one of `triggers`.
fn rules_of(store: &Store, model: &str, triggers: &[&str]) -> Result<Vec<Rule>, OrmError> {
    if store.version < OdooVersion::V17 || model == "base.automation" {
        return Ok(Vec::new());
    }
    let system = Ctx::user(1);
    let rule_ids = store.search("base.automation", &Domain::all(), 0, None, None, &system)?;
    if rule_ids.is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<String> = [
        "model_id",
        "trigger",
        "filter_pre_domain",
        "filter_domain",
        "action_server_ids",
        "trigger_field_ids",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    let mut rules = Vec::new();
    for row in store.read("base.automation", &rule_ids, &fields, false, &system)? {
        if !triggers.contains(&row["trigger"].as_str().unwrap_or_default()) {
            continue;
        }
        let Some(model_id) = row["model_id"].as_i64() else {
            continue;
        };
        let rule_model = store.read(
            "ir.model",
            &[model_id],
            &["model".to_string()],
            false,
            &system,
        )?;
        if rule_model.first().and_then(|m| m["model"].as_str()) != Some(model) {
            continue;
        }
        rules.push(Rule {
            id: row["id"].as_i64().unwrap_or_default(),
            filter_pre_domain: text_of(&row["filter_pre_domain"]).map(str::to_string),
            filter_domain: text_of(&row["filter_domain"]).map(str::to_string),
            trigger_fields: field_names(store, &ids_of(&row["trigger_field_ids"]))?,
            action_ids: ids_of(&row["action_server_ids"]),
        });
    }
    Ok(rules)
}

/// The records among `ids` that match a rule's domain (all of them without one).
fn matching(
    store: &Store,
    model: &str,
    ids: &[i64],
    filter: Option<&str>,
) -> Result<Vec<i64>, OrmError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut domain_json = json!([["id", "in", ids]]);
    if let Some(filter) = filter
        && let (Some(all), Value::Array(extra)) =
            (domain_json.as_array_mut(), python_domain_literal(filter)?)
    {
        all.extend(extra);
    }
    let domain = Domain::from_json_value(&domain_json)
        .map_err(|e| OrmError::Value(format!("Invalid domain: {e}")))?;
    // Odoo filters as superuser and sees archived records too.
    let ctx = Ctx {
        active_test: false,
        ..Ctx::user(1)
    };
    store.search(model, &domain, 0, None, Some("id"), &ctx)
}

/// Runs the create rules of `model` for freshly created `ids`.
pub(super) fn run_on_create(store: &mut Store, model: &str, ids: &[i64]) -> Result<(), OrmError> {
    if ids.is_empty() {
        return Ok(());
    }
    for rule in rules_of(store, model, CREATE_TRIGGERS)? {
        let records = matching(store, model, ids, rule.filter_domain.as_deref())?;
        queue_webhooks(store, &rule, model, &records)?;
    }
    Ok(())
}

/// Taken just before a write: the rules that may fire, the records their
/// pre-domain lets through, and the written fields' values before.
pub(super) struct WriteWatch {
    model: String,
    written: Vec<String>,
    rules: Vec<(Rule, Vec<i64>)>,
    before: HashMap<i64, Vec<Val>>,
}

/// What [`after_write`] needs; `None` when nothing can fire or be recomputed.
pub(super) fn before_write(
    store: &mut Store,
    model: &str,
    ids: &[i64],
    vals: &Map<String, Value>,
) -> Result<Option<WriteWatch>, OrmError> {
    if ids.is_empty() || store.version < OdooVersion::V17 {
        return Ok(None);
    }
    let mi = store.model_index(model)?;
    if !ids.iter().all(|&id| store.tables[mi].exists(id)) {
        // The write fails on its own.
        return Ok(None);
    }
    if model == "base.automation"
        && store.version >= OdooVersion::V18
        && vals.contains_key("model_id")
        && !vals.contains_key("trigger")
    {
        // 18 and later recompute `trigger` from `model_id`, to nothing; the
        // required field refuses that and the whole write fails.
        let mut reset = Map::new();
        reset.insert("trigger".into(), Value::Bool(false));
        store.write_without_triggers(model, ids, &reset, &Ctx::user(1))?;
    }
    let mut rules = Vec::new();
    for rule in rules_of(store, model, WRITE_TRIGGERS)? {
        let candidates = matching(store, model, ids, rule.filter_pre_domain.as_deref())?;
        rules.push((rule, candidates));
    }
    let recomputes = matches!(model, "base.automation" | "ir.actions.server");
    if rules.is_empty() && !recomputes {
        return Ok(None);
    }
    let written: Vec<String> = vals.keys().cloned().collect();
    let before = values_of(store, model, ids, &written)?;
    Ok(Some(WriteWatch {
        model: model.to_string(),
        written,
        rules,
        before,
    }))
}

fn values_of(
    store: &Store,
    model: &str,
    ids: &[i64],
    fields: &[String],
) -> Result<HashMap<i64, Vec<Val>>, OrmError> {
    let mi = store.model_index(model)?;
    let def = store.tables[mi].def.clone();
    let system = Ctx::user(1);
    Ok(ids
        .iter()
        .map(|&id| {
            let values = fields
                .iter()
                .map(|name| match def.field(name) {
                    Some(field) => store.get(mi, id, field, &system),
                    None => Val::False,
                })
                .collect();
            (id, values)
        })
        .collect())
}

/// Whether two values of one field are the same to Odoo's cache: unset is
/// unset whatever its spelling, and many2many values are sets.
fn same_value(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Ids(x), Val::Ids(y)) => {
            x.iter().collect::<BTreeSet<_>>() == y.iter().collect::<BTreeSet<_>>()
        }
        _ if a.is_false() && b.is_false() => true,
        _ => a == b,
    }
}

/// Runs what a write triggers: the fields Odoo recomputes on automations
/// and their actions, then the write rules whose post-domain matches and,
/// for rules with trigger fields, only on records where one of them changed.
pub(super) fn after_write(
    store: &mut Store,
    watch: WriteWatch,
    vals: &Map<String, Value>,
    ctx: &Ctx,
) -> Result<(), OrmError> {
    let ids: Vec<i64> = watch.before.keys().copied().collect();
    match watch.model.as_str() {
        "base.automation" => recompute_automations(store, &watch, vals, ctx)?,
        "ir.actions.server" => rename_automation_actions(store, &ids, Some(vals), ctx)?,
        _ => {}
    }
    if watch.rules.is_empty() {
        return Ok(());
    }
    let after = values_of(store, &watch.model, &ids, &watch.written)?;
    for (rule, candidates) in &watch.rules {
        let mut records = matching(
            store,
            &watch.model,
            candidates,
            rule.filter_domain.as_deref(),
        )?;
        if !rule.trigger_fields.is_empty() {
            records.retain(|id| {
                let (Some(old), Some(new)) = (watch.before.get(id), after.get(id)) else {
                    return false;
                };
                watch.written.iter().enumerate().any(|(i, name)| {
                    rule.trigger_fields.contains(name) && !same_value(&old[i], &new[i])
                })
            });
        }
        queue_webhooks(store, rule, &watch.model, &records)?;
    }
    Ok(())
}

/// Queues one POST per (record, webhook action of `rule`), with the body
/// Odoo's webhook action builds: `_action`, `_id`, `_model` and the chosen
/// fields read without names (many2one as a bare id), serialised by Python's
/// `json.dumps(..., default=str)`, so datetimes keep their microseconds.
fn queue_webhooks(
    store: &mut Store,
    rule: &Rule,
    model: &str,
    records: &[i64],
) -> Result<(), OrmError> {
    if records.is_empty() || rule.action_ids.is_empty() {
        return Ok(());
    }
    let system = Ctx::user(1);
    let action_fields: Vec<String> = ["name", "state", "webhook_url", "webhook_field_ids"]
        .iter()
        .map(|f| f.to_string())
        .collect();
    let mi = store.model_index(model)?;
    let def = store.tables[mi].def.clone();
    for action in store.read(
        "ir.actions.server",
        &rule.action_ids,
        &action_fields,
        false,
        &system,
    )? {
        if action["state"].as_str() != Some("webhook") {
            continue;
        }
        let Some(url) = text_of(&action["webhook_url"]).map(str::to_string) else {
            return Err(OrmError::User(
                "I'll be happy to send a webhook for you, but you really need to give me a URL to reach out to...".into(),
            ));
        };
        let mut names = field_names(store, &ids_of(&action["webhook_field_ids"]))?;
        let label = format!(
            "{}(#{})",
            action["name"].as_str().unwrap_or_default(),
            action["id"].as_i64().unwrap_or_default()
        );
        let mut payloads = Vec::new();
        for &id in records {
            let mut payload = Map::new();
            payload.insert("_action".into(), json!(label));
            payload.insert("_id".into(), json!(id));
            payload.insert("_model".into(), json!(model));
            if !names.is_empty() {
                // Odoo's read always adds the id to the chosen fields.
                if !names.iter().any(|n| n == "id") {
                    names.push("id".to_string());
                }
                let row = store.read(model, &[id], &names, false, &system)?;
                if let Some(Value::Object(values)) = row.into_iter().next() {
                    payload.extend(values);
                }
                for name in &names {
                    if let Some(field) = def.field(name)
                        && field.ftype == FieldType::Datetime
                        && let Val::Datetime(at) = store.get(mi, id, field, &system)
                    {
                        payload.insert(name.clone(), json!(python_str_datetime(at)));
                    }
                }
            }
            payloads.push(Value::Object(payload));
        }
        for payload in payloads {
            store.webhooks.push(WebhookDelivery {
                url: url.clone(),
                payload,
                automation_id: rule.id,
            });
        }
    }
    Ok(())
}

/// Python's `str(datetime)`: microseconds only when there are some.
pub(crate) fn python_str_datetime(at: jiff::civil::DateTime) -> String {
    let seconds = at.strftime("%Y-%m-%d %H:%M:%S").to_string();
    match at.subsec_nanosecond() / 1000 {
        0 => seconds,
        micros => format!("{seconds}.{micros:06}"),
    }
}

/// The field a special trigger watches (`on_state_set`: `state`, …); none
/// for plain create/write rules.
fn trigger_specific_field(
    store: &Store,
    model_id: i64,
    trigger: &str,
) -> Result<Vec<i64>, OrmError> {
    let names: &[&str] = match trigger {
        "on_stage_set" => &["stage_id", "x_studio_stage_id"],
        "on_tag_set" => &["tag_ids", "x_studio_tag_ids"],
        "on_priority_set" => &["priority", "x_studio_priority"],
        "on_state_set" => &["state", "x_studio_state"],
        "on_user_set" => &[
            "user_id",
            "user_ids",
            "x_studio_user_id",
            "x_studio_user_ids",
        ],
        "on_archive" | "on_unarchive" => &["active", "x_active"],
        "on_time_created" => &["create_date"],
        "on_time_updated" => &["write_date"],
        _ => return Ok(Vec::new()),
    };
    let domain =
        Domain::from_json_value(&json!([["model_id", "=", model_id], ["name", "in", names]]))
            .map_err(|e| OrmError::Value(format!("Invalid domain: {e}")))?;
    store.search("ir.model.fields", &domain, 0, Some(1), None, &Ctx::user(1))
}

/// Ids of the fields of `model_id` that a domain's leaves name.
fn domain_field_ids(
    store: &Store,
    model_id: i64,
    domain: Option<&str>,
) -> Result<BTreeSet<i64>, OrmError> {
    let Some(text) = domain else {
        return Ok(BTreeSet::new());
    };
    let Ok(Value::Array(leaves)) = python_domain_literal(text) else {
        return Ok(BTreeSet::new());
    };
    let names: Vec<String> = leaves
        .iter()
        .filter_map(|leaf| leaf.as_array()?.first()?.as_str())
        .map(|path| path.split('.').next().unwrap_or(path).to_string())
        .collect();
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    let domain =
        Domain::from_json_value(&json!([["model_id", "=", model_id], ["name", "in", names]]))
            .map_err(|e| OrmError::Value(format!("Invalid domain: {e}")))?;
    Ok(store
        .search("ir.model.fields", &domain, 0, None, None, &Ctx::user(1))?
        .into_iter()
        .collect())
}

/// The stored computes of `base.automation` that a write sets off. Odoo
/// leaves alone every field computed by the same method as a written one;
/// the others follow their dependencies as each version's `base_automation`
/// defines them:
///
/// - 17: `trigger` and `trigger_field_ids` come from one compute on
///   `model_id`/`trigger` (plain create/write rules watch no field), so
///   writing `model_id` alone empties `trigger_field_ids`; `filter_domain`
///   and `filter_pre_domain` follow `trigger`/`trigger_field_ids` (emptied
///   while at most one field is watched).
/// - 18, 19: `trigger` follows `model_id` (to nothing, which the required
///   field refuses: see [`before_write`]); `filter_domain` and
///   `filter_pre_domain` follow `trigger` (emptied); `trigger_field_ids`
///   follows `trigger`/`filter_domain`: on save rules gain the fields the
///   domain names on 18 and keep theirs on 19, other rules get their
///   trigger's own field (none for plain create/write rules).
fn recompute_automations(
    store: &mut Store,
    watch: &WriteWatch,
    vals: &Map<String, Value>,
    ctx: &Ctx,
) -> Result<(), OrmError> {
    let written = |name: &str| vals.contains_key(name);
    let fields: Vec<String> = [
        "model_id",
        "trigger",
        "trigger_field_ids",
        "filter_domain",
        "filter_pre_domain",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    let version = store.version;
    let ids: Vec<i64> = watch.before.keys().copied().collect();
    for row in store.read("base.automation", &ids, &fields, false, &Ctx::user(1))? {
        let Some(id) = row["id"].as_i64() else {
            continue;
        };
        let model_id = row["model_id"].as_i64().unwrap_or_default();
        let trigger = row["trigger"].as_str().unwrap_or_default().to_string();
        let mut update = Map::new();
        if version == OdooVersion::V17 {
            let mut field_count = ids_of(&row["trigger_field_ids"]).len();
            let trigger_group_written = written("trigger") || written("trigger_field_ids");
            if written("model_id") && !trigger_group_written {
                let recomputed = trigger_specific_field(store, model_id, &trigger)?;
                field_count = recomputed.len();
                update.insert("trigger_field_ids".into(), json!([[6, 0, recomputed]]));
            }
            if trigger_group_written || update.contains_key("trigger_field_ids") {
                // With two or more watched fields the 17 compute assigns nothing.
                if !written("filter_domain") && field_count <= 1 && is_plain(&trigger) {
                    update.insert("filter_domain".into(), Value::Bool(false));
                }
                if !written("filter_pre_domain") && trigger != "on_tag_set" {
                    update.insert("filter_pre_domain".into(), Value::Bool(false));
                }
            }
        } else {
            let mut filter_domain = text_of(&row["filter_domain"]).map(str::to_string);
            if written("trigger") {
                if !written("filter_domain") && is_plain(&trigger) {
                    update.insert("filter_domain".into(), Value::Bool(false));
                    filter_domain = None;
                }
                if !written("filter_pre_domain") && trigger != "on_tag_set" {
                    update.insert("filter_pre_domain".into(), Value::Bool(false));
                }
            }
            let domain_moved = written("filter_domain") || update.contains_key("filter_domain");
            if (written("trigger") || domain_moved) && !written("trigger_field_ids") {
                let recomputed: Option<Vec<i64>> = if trigger == "on_create_or_write" {
                    // 19 diffs the domain against the one the form showed,
                    // which a write does not have: nothing moves.
                    (version == OdooVersion::V18)
                        .then(|| {
                            let mut current: BTreeSet<i64> =
                                ids_of(&row["trigger_field_ids"]).into_iter().collect();
                            current.extend(domain_field_ids(
                                store,
                                model_id,
                                filter_domain.as_deref(),
                            )?);
                            Ok::<_, OrmError>(current.into_iter().collect())
                        })
                        .transpose()?
                } else if TIME_TRIGGERS.contains(&trigger.as_str()) {
                    Some(Vec::new())
                } else {
                    Some(trigger_specific_field(store, model_id, &trigger)?)
                };
                if let Some(recomputed) = recomputed {
                    update.insert("trigger_field_ids".into(), json!([[6, 0, recomputed]]));
                }
            }
        }
        if !update.is_empty() {
            write_silently(store, "base.automation", id, &update, ctx)?;
        }
    }
    Ok(())
}

/// Triggers whose `filter_domain` compute yields nothing (no domain of their own).
fn is_plain(trigger: &str) -> bool {
    CREATE_TRIGGERS.contains(&trigger)
        || WRITE_TRIGGERS.contains(&trigger)
        || TIME_TRIGGERS.contains(&trigger)
        || trigger == "on_unlink"
        || trigger == "on_change"
        || trigger == "on_webhook"
}

/// Fields an automation's server action takes its generated name from on 17 and 18.
const ACTION_NAME_DEPENDS: &[&str] = &[
    "state",
    "update_field_id",
    "crud_model_id",
    "value",
    "evaluation_type",
    "template_id",
    "partner_ids",
    "activity_summary",
    "sms_template_id",
    "webhook_url",
];

/// On 17 and 18 an automation's server action is named after its type when
/// it is created (whatever name was given) and whenever a field the name
/// derives from is written without the name; a name written alone stays.
/// 19 keeps a name it did not generate.
fn rename_automation_actions(
    store: &mut Store,
    ids: &[i64],
    vals: Option<&Map<String, Value>>,
    ctx: &Ctx,
) -> Result<(), OrmError> {
    // 16 has no automation actions; 19 keeps the name.
    if !matches!(store.version, OdooVersion::V17 | OdooVersion::V18) {
        return Ok(());
    }
    if let Some(vals) = vals
        && (vals.contains_key("name") || !ACTION_NAME_DEPENDS.iter().any(|f| vals.contains_key(*f)))
    {
        return Ok(());
    }
    let fields = vec!["state".to_string(), "base_automation_id".to_string()];
    for row in store.read("ir.actions.server", ids, &fields, false, &Ctx::user(1))? {
        let (Some(id), Some(_)) = (row["id"].as_i64(), row["base_automation_id"].as_i64()) else {
            continue;
        };
        let name = match row["state"].as_str().unwrap_or_default() {
            "webhook" => "Send Webhook Notification",
            "code" => "Execute Code",
            "multi" => "Execute Existing Actions",
            _ => continue,
        };
        let mut update = Map::new();
        update.insert("name".into(), json!(name));
        write_silently(store, "ir.actions.server", id, &update, ctx)?;
    }
    Ok(())
}

/// What Odoo computes when a record is created: the generated name of an
/// automation's server action.
pub(super) fn after_create(
    store: &mut Store,
    model: &str,
    id: i64,
    ctx: &Ctx,
) -> Result<(), OrmError> {
    if model == "ir.actions.server" {
        rename_automation_actions(store, &[id], None, ctx)?;
    }
    Ok(())
}

/// A recomputation stored by Odoo's ORM: no `write` of its own, so no
/// second round of recomputes or rules.
fn write_silently(
    store: &mut Store,
    model: &str,
    id: i64,
    vals: &Map<String, Value>,
    ctx: &Ctx,
) -> Result<(), OrmError> {
    store.write_without_triggers(model, &[id], vals, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_print_like_python_str() {
        let at: jiff::civil::DateTime = "2026-12-05T17:06:18.123456".parse().unwrap();
        assert_eq!(python_str_datetime(at), "2026-12-05 17:06:18.123456");
        let whole: jiff::civil::DateTime = "2026-12-05T17:06:18".parse().unwrap();
        assert_eq!(python_str_datetime(whole), "2026-12-05 17:06:18");
        let early: jiff::civil::DateTime = "2026-12-05T17:06:18.000042".parse().unwrap();
        assert_eq!(python_str_datetime(early), "2026-12-05 17:06:18.000042");
    }
}
