//! The approval gate's reads and writes in Odoo: domains, approvers, the two
//! backends, decision polling, escalation, refusals and the outcome.
//!
//! Creates follow one pattern: read what exists by the fingerprint key, create
//! only what is missing, and after an ambiguous failure ("Odoo committed but
//! the reply was lost") read again before creating, so nothing exists twice.

use odoo_client::values::html_escape;
use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::levels::{Approver, Decision, Refused, ResolvedLevel, Verdict};
use super::matching::{DomainMembership, GovernedRequest, format_amount};
use super::{ApprovalError, odoo_err};
use crate::managed::{Note, PostError, post_note};
use odoo_client::domain::{Condition, Domain, Operator};
use odoo_client::{
    Call, Edition, ExternalId, OdooClient, OdooError, Record, RecordExt, SearchOptions, ServerInfo,
};
use planops_api::approval::{
    ApprovalBackend, ApprovalLevel, ApprovalOutcomeAction, ApprovalPolicySpec, GovernedAction,
};

/// Where approval happens, after `Auto` was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    ApprovalsApp,
    Activity,
}

/// `Auto` follows the connection's detected edition; asking for the Approvals
/// app on Community is a configuration error rather than a silent fallback,
/// because approvers would be looking in the wrong place.
pub fn resolve_backend(
    wanted: ApprovalBackend,
    info: &ServerInfo,
) -> Result<Backend, ApprovalError> {
    match (wanted, info.edition) {
        (ApprovalBackend::Activity, _) | (ApprovalBackend::Auto, Edition::Community) => {
            Ok(Backend::Activity)
        }
        (_, Edition::Enterprise) => Ok(Backend::ApprovalsApp),
        (ApprovalBackend::ApprovalsApp, Edition::Community) => {
            Err(ApprovalError::BackendUnavailable)
        }
    }
}

/// Asks Odoo whether the action's product and partner are in the policy's
/// domains: one `search_count` per domain set, restricted to the one id.
pub async fn domain_membership(
    client: &OdooClient,
    policy: &str,
    spec: &ApprovalPolicySpec,
    request: &GovernedRequest,
) -> Result<DomainMembership, ApprovalError> {
    let mut out = DomainMembership::default();
    let Some(m) = &spec.match_ else {
        return Ok(out);
    };
    for (field, text, id, model) in [
        (
            "productDomain",
            &m.product_domain,
            request.product_id,
            "product.product",
        ),
        (
            "partnerDomain",
            &m.partner_domain,
            request.partner_id,
            "res.partner",
        ),
    ] {
        let (Some(text), Some(id)) = (text, id) else {
            continue;
        };
        let domain = Domain::parse(text).map_err(|e| ApprovalError::Domain {
            policy: policy.to_string(),
            field,
            message: e.to_string(),
        })?;
        let only = Domain::from_conditions([Condition::new("id", Operator::Eq, id)]);
        let n = client
            .search_count(model, &only.and(&domain).to_json_value())
            .await
            .map_err(odoo_err("evaluating a policy domain"))?;
        let member = Some(n > 0);
        if field == "productDomain" {
            out.product = member;
        } else {
            out.partner = member;
        }
    }
    Ok(out)
}

async fn users_by(client: &OdooClient, domain: Value) -> Result<Vec<Approver>, ApprovalError> {
    let rows = client
        .search_read(
            "res.users",
            &domain,
            &["id", "login", "partner_id"],
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("reading approvers"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(Approver {
            uid: row.id().map_err(odoo_err("reading approvers"))?,
            login: row
                .str_field("login")
                .map_err(odoo_err("reading approvers"))?
                .unwrap_or_default()
                .to_string(),
            partner_id: row.many2one("partner_id").ok().flatten().map(|p| p.id),
        });
    }
    Ok(out)
}

/// The user with this login, for the requester of an action.
pub async fn user_by_login(
    client: &OdooClient,
    login: &str,
) -> Result<Option<Approver>, ApprovalError> {
    Ok(users_by(client, json!([["login", "=", login]]))
        .await?
        .into_iter()
        .next())
}

/// Resolves every level's logins and groups to active users (sorted by id so
/// notes and activities come out in a stable order).
pub async fn resolve_levels(
    client: &OdooClient,
    levels: &[ApprovalLevel],
) -> Result<Vec<ResolvedLevel>, ApprovalError> {
    let mut out = Vec::with_capacity(levels.len());
    for level in levels {
        let mut uids: Vec<i64> = Vec::new();
        for group in &level.groups {
            uids.extend(
                odoo_client::users::group_member_ids(client, group)
                    .await
                    .map_err(odoo_err("reading an approver group"))?,
            );
        }
        let domain = json!(["|", ["login", "in", level.users], ["id", "in", uids]]);
        let mut approvers = users_by(client, domain).await?;
        approvers.sort_by_key(|a| a.uid);
        approvers.dedup_by_key(|a| a.uid);
        if approvers.is_empty() {
            return Err(ApprovalError::NoApprovers {
                level: level.name.clone(),
                users: level.users.clone(),
                groups: level.groups.clone(),
            });
        }
        let hours = level.sla_hours.unwrap_or(24.0).max(0.0);
        out.push(ResolvedLevel {
            name: level.name.clone(),
            approvers,
            min_approvals: level.min_approvals.unwrap_or(1).max(1),
            sla: SignedDuration::from_secs_f64(hours * 3600.0),
        });
    }
    Ok(out)
}

/// Everything the gate writes about one governed action.
#[derive(Debug, Clone)]
pub struct GateRequest<'a> {
    /// The exception's fingerprint: the idempotency key of every write.
    pub fingerprint: &'a str,
    pub namespace: &'a str,
    pub policy: &'a str,
    pub spec: &'a ApprovalPolicySpec,
    /// The draft RFQ the decision gates.
    pub rfq_id: i64,
    pub request: &'a GovernedRequest,
    /// The exception's numbers and planner-ready narrative (plain text).
    pub narrative: &'a str,
    /// Why this policy governs ([`super::matching::Selection::explanation`]).
    pub explanation: &'a str,
    /// The user who raised or owns the action.
    pub requester: Option<&'a Approver>,
    /// The rule that raised the exception, for notes.
    pub rule: Option<&'a str>,
}

impl GateRequest<'_> {
    fn segregation(&self) -> bool {
        self.spec.segregation_of_duties.unwrap_or(true)
    }

    /// The level's approvers Odoo is asked to involve: the requester is left
    /// out under segregation of duties so Odoo never even offers them the choice.
    fn approvers_of<'l>(&self, level: &'l ResolvedLevel) -> Vec<&'l Approver> {
        level
            .approvers
            .iter()
            .filter(|a| !(self.segregation() && self.requester.is_some_and(|r| r.uid == a.uid)))
            .collect()
    }

    fn audit_html(&self, tag: &str, body: &str) -> String {
        format!(
            "<p>{}</p><p><small>{} {tag} · planops-approval {}/{}{}</small></p>",
            body,
            self.fingerprint,
            html_escape(self.namespace),
            html_escape(self.policy),
            self.rule
                .map(|r| format!(" · rule {}", html_escape(r)))
                .unwrap_or_default()
        )
    }

    fn numbers(&self) -> String {
        format!(
            "{} {} {}",
            kind_label(self.request.kind),
            format_amount(self.request.amount),
            html_escape(&self.request.currency)
        )
    }
}

fn kind_label(kind: GovernedAction) -> &'static str {
    match kind {
        GovernedAction::EmergencyPurchase => "Emergency purchase",
        GovernedAction::ForecastOverride => "Forecast override",
        GovernedAction::AllocationChange => "Allocation change",
        GovernedAction::SafetyStockException => "Safety-stock exception",
    }
}

/// A request waiting in Odoo.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub backend: Backend,
    pub fingerprint: String,
    pub rfq_id: i64,
    pub rfq_name: String,
    /// The `approval.request` (ApprovalsApp only).
    pub request_id: Option<i64>,
    /// When the request was first opened in Odoo: the SLA clock's origin, read
    /// back from Odoo so that restarts keep it.
    pub opened_at: Timestamp,
    /// Whether this call created the request (false: it existed already).
    pub created: bool,
}

fn many2one_id(row: &Record, field: &str) -> Option<i64> {
    row.many2one(field).ok().flatten().map(|m| m.id)
}

/// Creates the records of `wanted` (key user id, values) that `existing`
/// does not list yet, in one batch; after a failure that may have committed,
/// reads again before retrying.
async fn create_missing(
    client: &OdooClient,
    model: &'static str,
    lookup_domain: &Value,
    wanted: Vec<(i64, Map<String, Value>)>,
) -> Result<usize, ApprovalError> {
    // Done activities are archived (17+): they still count as existing.
    let reader = {
        let mut context = Map::new();
        context.insert("active_test".into(), json!(false));
        client.with_context(context)
    };
    let mut created = 0;
    let mut last_error: Option<OdooError> = None;
    for _ in 0..4 {
        let rows = reader
            .search_read(
                model,
                lookup_domain,
                &["id", "user_id"],
                &SearchOptions::default(),
            )
            .await
            .map_err(odoo_err("reading existing approvers"))?;
        let present: HashSet<i64> = rows
            .iter()
            .filter_map(|r| many2one_id(r, "user_id"))
            .collect();
        let missing: Vec<Map<String, Value>> = wanted
            .iter()
            .filter(|(uid, _)| !present.contains(uid))
            .map(|(_, v)| v.clone())
            .collect();
        if missing.is_empty() {
            return Ok(created);
        }
        let n = missing.len();
        match client.create(model, missing).await {
            Ok(_) => {
                created += n;
                return Ok(created);
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(model, error = %e, "create failed or its reply was lost; reading again before retrying");
                last_error = Some(e);
            }
            Err(e) => return Err(odoo_err("creating approvers")(e)),
        }
    }
    Err(odoo_err("creating approvers")(last_error.unwrap_or_else(
        || OdooError::protocol("create kept failing"),
    )))
}

/// Posts `body` on the record unless a message carrying "fingerprint tag"
/// is already there; true when posted by this call.
async fn note_once(
    client: &OdooClient,
    model: &str,
    res_id: i64,
    key: &str,
    html: String,
) -> Result<bool, ApprovalError> {
    let find = || async {
        client
            .search(
                "mail.message",
                &json!([
                    ["model", "=", model],
                    ["res_id", "=", res_id],
                    ["body", "ilike", key]
                ]),
                &SearchOptions::limit(1),
            )
            .await
            .map(|ids| ids.first().copied())
            .map_err(odoo_err("looking for an earlier chatter note"))
    };
    if find().await?.is_some() {
        return Ok(false);
    }
    let note = Note {
        model,
        res_id,
        html,
        attachment_ids: Vec::new(),
    };
    let mut last_error = None;
    for _ in 0..4 {
        match post_note(client, &note, find).await {
            Ok(posted) => {
                tracing::debug!(model, res_id, message = ?posted.id, "chatter note posted");
                return Ok(true);
            }
            Err(PostError::Post(e)) if e.is_transient() => last_error = Some(e),
            Err(PostError::Post(e)) => return Err(odoo_err("posting a chatter note")(e)),
            Err(PostError::Lookup(e)) => return Err(e),
        }
    }
    Err(odoo_err("posting a chatter note")(
        last_error.unwrap_or_else(|| OdooError::protocol("message_post kept failing")),
    ))
}

async fn read_rfq(client: &OdooClient, rfq_id: i64) -> Result<(String, String), ApprovalError> {
    let rows = client
        .read("purchase.order", &[rfq_id], &["name", "state"])
        .await
        .map_err(odoo_err("reading the RFQ"))?;
    let row = rows
        .first()
        .ok_or_else(|| ApprovalError::Data(format!("purchase.order {rfq_id} not found")))?;
    let text = |f: &str| {
        row.str_field(f)
            .map(|s| s.unwrap_or_default().to_string())
            .map_err(odoo_err("reading the RFQ"))
    };
    Ok((text("name")?, text("state")?))
}

/// The SLA clock's origin: the earliest `create_date`. Odoo always returns it;
/// if it ever did not, "now" keeps the gate working but restarts the clock on
/// every call, which is worth a warning.
fn opened_at(rows: &[Record]) -> Timestamp {
    rows.iter()
        .filter_map(|r| r.datetime("create_date").ok().flatten())
        .min()
        .unwrap_or_else(|| {
            tracing::warn!("approval record without create_date; the SLA clock starts now");
            Timestamp::now()
        })
}

/// Asks for approval of the first level. Safe to repeat: an existing request
/// (found by fingerprint) is completed, not duplicated.
pub async fn open(
    client: &OdooClient,
    backend: Backend,
    gate: &GateRequest<'_>,
    levels: &[ResolvedLevel],
) -> Result<Pending, ApprovalError> {
    let first = levels.first().ok_or_else(|| ApprovalError::NoApprovers {
        level: "(none)".into(),
        users: Vec::new(),
        groups: Vec::new(),
    })?;
    if gate.approvers_of(first).is_empty() {
        return Err(ApprovalError::NoApprovers {
            level: format!("{} (only the requester, who may not approve)", first.name),
            users: Vec::new(),
            groups: Vec::new(),
        });
    }
    let (rfq_name, _) = read_rfq(client, gate.rfq_id).await?;
    let (request_id, created, opened) = match backend {
        Backend::ApprovalsApp => open_request(client, gate, first, &rfq_name).await?,
        Backend::Activity => open_activities(client, gate, first, 0, &rfq_name).await?,
    };
    let approvers: Vec<&str> = gate
        .approvers_of(first)
        .iter()
        .map(|a| a.login.as_str())
        .collect();
    let body = format!(
        "{} on {} waits for approval ({}, level 1 {}: {}). {}. {}",
        gate.numbers(),
        html_escape(&rfq_name),
        match backend {
            Backend::ApprovalsApp => "Approvals app",
            Backend::Activity => "\"To approve\" activities",
        },
        html_escape(&first.name),
        html_escape(&approvers.join(", ")),
        html_escape(gate.explanation),
        html_escape(gate.narrative),
    );
    note_once(
        client,
        "purchase.order",
        gate.rfq_id,
        &format!("{} approval-requested", gate.fingerprint),
        gate.audit_html("approval-requested", &body),
    )
    .await?;
    Ok(Pending {
        backend,
        fingerprint: gate.fingerprint.to_string(),
        rfq_id: gate.rfq_id,
        rfq_name,
        request_id,
        opened_at: opened,
        created,
    })
}

async fn open_request(
    client: &OdooClient,
    gate: &GateRequest<'_>,
    level: &ResolvedLevel,
    rfq_name: &str,
) -> Result<(Option<i64>, bool, Timestamp), ApprovalError> {
    let category_name = gate.spec.approval_category.as_deref().unwrap_or("PlanOps");
    let mut vals = Map::new();
    vals.insert("name".into(), json!(category_name));
    // Odoo refuses to submit a request with fewer approvers than this; the
    // policy's own minimum per level is enforced by PlanOps.
    vals.insert("approval_minimum".into(), json!(1));
    vals.insert("has_amount".into(), json!("required"));
    vals.insert("has_reference".into(), json!("required"));
    vals.insert("has_partner".into(), json!("optional"));
    let category = client
        .find_or_create(
            "approval.category",
            &json!([["name", "=", category_name]]),
            &vals,
        )
        .await
        .map_err(odoo_err("finding the approval category"))?
        .id;
    let reason = format!(
        "<p>{}</p><p>{}</p><p>Linked record: <a href=\"/web#model=purchase.order&amp;id={}\">{}</a> (purchase.order {})</p>",
        html_escape(gate.explanation),
        html_escape(gate.narrative),
        gate.rfq_id,
        html_escape(rfq_name),
        gate.rfq_id
    );
    let mut vals = Map::new();
    vals.insert(
        "name".into(),
        json!(format!(
            "{} {} ({})",
            kind_label(gate.request.kind),
            rfq_name,
            gate.policy
        )),
    );
    vals.insert("category_id".into(), json!(category));
    vals.insert("amount".into(), json!(gate.request.amount));
    // `reference` links the RFQ by name and carries the fingerprint key.
    vals.insert(
        "reference".into(),
        json!(format!("{rfq_name} {}", gate.fingerprint)),
    );
    vals.insert(
        "reason".into(),
        json!(gate.audit_html("approval-request", &reason)),
    );
    if let Some(partner) = gate.request.partner_id {
        vals.insert("partner_id".into(), json!(partner));
    }
    if let Some(r) = gate.requester {
        vals.insert("request_owner_id".into(), json!(r.uid));
    }
    let outcome = client
        .find_or_create(
            "approval.request",
            &json!([["reference", "ilike", gate.fingerprint]]),
            &vals,
        )
        .await
        .map_err(odoo_err("creating the approval request"))?;
    let request = outcome.id;
    let wanted = gate
        .approvers_of(level)
        .into_iter()
        .map(|a| {
            let mut v = Map::new();
            v.insert("request_id".into(), json!(request));
            v.insert("user_id".into(), json!(a.uid));
            (a.uid, v)
        })
        .collect();
    create_missing(
        client,
        "approval.approver",
        &json!([["request_id", "=", request]]),
        wanted,
    )
    .await?;
    let rows = client
        .read("approval.request", &[request], &["create_date"])
        .await
        .map_err(odoo_err("reading the approval request"))?;
    submit_new_approvers(client, request).await?;
    Ok((Some(request), outcome.created, opened_at(&rows)))
}

/// Approvers are added as `new` and submitted with `action_confirm`, because
/// that is what gives each of them their to-do in Odoo (a line written as
/// `pending` gets none). On a request submitted earlier (escalation, or a
/// retry after a lost reply) the call only moves the lines still `new` and
/// leaves the others; the request shows "To Submit" between the two calls,
/// and a retry finds the `new` lines and submits them. Nothing to submit,
/// nothing sent.
async fn submit_new_approvers(client: &OdooClient, request: i64) -> Result<(), ApprovalError> {
    let new = client
        .search(
            "approval.approver",
            &json!([["request_id", "=", request], ["status", "=", "new"]]),
            &SearchOptions::limit(1),
        )
        .await
        .map_err(odoo_err("reading the approvers to submit"))?;
    if new.is_empty() {
        return Ok(());
    }
    client
        .call(
            Call::new("approval.request", "action_confirm")
                .ids(vec![request])
                .idempotent(true),
        )
        .await
        .map_err(odoo_err("submitting the approval request"))?;
    Ok(())
}

async fn open_activities(
    client: &OdooClient,
    gate: &GateRequest<'_>,
    level: &ResolvedLevel,
    index: usize,
    rfq_name: &str,
) -> Result<(Option<i64>, bool, Timestamp), ApprovalError> {
    let model_id = client
        .search(
            "ir.model",
            &json!([["model", "=", "purchase.order"]]),
            &SearchOptions::limit(1),
        )
        .await
        .map_err(odoo_err("finding purchase.order in ir.model"))?
        .first()
        .copied()
        .ok_or_else(|| ApprovalError::Data("purchase.order is not in ir.model".into()))?;
    let todo = match ExternalId::new("mail", "mail_activity_data_todo") {
        Ok(xmlid) => client
            .resolve_external_id(&xmlid)
            .await
            .map_err(odoo_err("finding the To-Do activity type"))?
            .map(|(_, id)| id),
        Err(_) => None,
    };
    let days = (level.sla.as_secs_f64() / 86_400.0).ceil().max(0.0) as i64;
    let due = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(days))
        .map_err(|e| ApprovalError::Data(format!("deadline out of range: {e}")))?;
    let note = format!(
        "<p>{}</p><p>{}</p><p>Mark this activity done with feedback <b>approved</b> to approve, or <b>rejected: reason</b> to refuse.</p>",
        html_escape(gate.explanation),
        html_escape(gate.narrative),
    );
    let wanted: Vec<(i64, Map<String, Value>)> = gate
        .approvers_of(level)
        .into_iter()
        .map(|a| {
            let mut v = Map::new();
            v.insert("res_model_id".into(), json!(model_id));
            v.insert("res_id".into(), json!(gate.rfq_id));
            v.insert("user_id".into(), json!(a.uid));
            v.insert("date_deadline".into(), json!(due.to_string()));
            // The summary carries the fingerprint into Odoo's "done" message,
            // which is where the decision is read back from.
            v.insert(
                "summary".into(),
                json!(format!(
                    "To approve: {rfq_name} ({}, level {} {}) {}",
                    gate.policy,
                    index + 1,
                    level.name,
                    gate.fingerprint
                )),
            );
            v.insert(
                "note".into(),
                json!(gate.audit_html("approval-activity", &note)),
            );
            if let Some(t) = todo {
                v.insert("activity_type_id".into(), json!(t));
            }
            (a.uid, v)
        })
        .collect();
    let lookup = json!([
        ["res_id", "=", gate.rfq_id],
        ["note", "ilike", gate.fingerprint]
    ]);
    let created = create_missing(client, "mail.activity", &lookup, wanted).await?;
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    let rows = client
        .with_context(context)
        .search_read(
            "mail.activity",
            &lookup,
            &["create_date"],
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("reading the approval activities"))?;
    Ok((None, created > 0, opened_at(&rows)))
}

/// Adds level `to`'s approvers and records the escalation note on the RFQ
/// (once per level).
pub async fn escalate(
    client: &OdooClient,
    pending: &Pending,
    gate: &GateRequest<'_>,
    levels: &[ResolvedLevel],
    to: usize,
    note: &str,
) -> Result<(), ApprovalError> {
    let level = levels
        .get(to)
        .ok_or_else(|| ApprovalError::Data(format!("no level {}", to + 1)))?;
    match (pending.backend, pending.request_id) {
        (Backend::ApprovalsApp, Some(request)) => {
            let wanted = gate
                .approvers_of(level)
                .into_iter()
                .map(|a| {
                    let mut v = Map::new();
                    v.insert("request_id".into(), json!(request));
                    v.insert("user_id".into(), json!(a.uid));
                    (a.uid, v)
                })
                .collect();
            create_missing(
                client,
                "approval.approver",
                &json!([["request_id", "=", request]]),
                wanted,
            )
            .await?;
            submit_new_approvers(client, request).await?;
        }
        (Backend::ApprovalsApp, None) => {
            return Err(ApprovalError::Data(
                "pending ApprovalsApp request without an id".into(),
            ));
        }
        (Backend::Activity, _) => {
            open_activities(client, gate, level, to, &pending.rfq_name).await?;
        }
    }
    let tag = format!("approval-escalated-{}", to + 1);
    note_once(
        client,
        "purchase.order",
        pending.rfq_id,
        &format!("{} {tag}", pending.fingerprint),
        gate.audit_html(&tag, &html_escape(note)),
    )
    .await?;
    Ok(())
}

/// The decisions found in Odoo and who Odoo already involves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub decisions: Vec<Decision>,
    /// Users Odoo lists as approvers (ApprovalsApp) or activity owners (Activity).
    pub involved: Vec<i64>,
    /// Someone cancelled the request in Odoo (ApprovalsApp).
    pub cancelled: bool,
}

impl Observed {
    /// The highest level whose approvers (all but a barred requester) Odoo
    /// already involves: where the SLA clock stands after a restart.
    pub fn level(&self, levels: &[ResolvedLevel], requester: Option<i64>) -> usize {
        let involved: HashSet<i64> = self.involved.iter().copied().collect();
        levels
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                let mut wanted = l
                    .approvers
                    .iter()
                    .filter(|a| Some(a.uid) != requester)
                    .peekable();
                wanted.peek().is_some() && wanted.all(|a| involved.contains(&a.uid))
            })
            .map(|(i, _)| i)
            .max()
            .unwrap_or(0)
    }
}

/// Reads the decisions on a pending request: one call for ApprovalsApp
/// (the approver lines), two for Activity (the "done" messages on the RFQ and
/// the activities, archived ones included), plus one only when a message's
/// author is not among `directory`.
pub async fn poll(
    client: &OdooClient,
    pending: &Pending,
    directory: &[Approver],
) -> Result<Observed, ApprovalError> {
    match pending.backend {
        Backend::ApprovalsApp => {
            let request = pending.request_id.ok_or_else(|| {
                ApprovalError::Data("pending ApprovalsApp request without an id".into())
            })?;
            let rows = client
                .search_read(
                    "approval.approver",
                    &json!([["request_id", "=", request]]),
                    &["user_id", "status"],
                    &SearchOptions::default(),
                )
                .await
                .map_err(odoo_err("reading the approvers' decisions"))?;
            let mut out = Observed::default();
            for row in &rows {
                let Some(user) = row.many2one("user_id").ok().flatten() else {
                    continue;
                };
                out.involved.push(user.id);
                let who = directory
                    .iter()
                    .find(|a| a.uid == user.id)
                    .map(|a| a.login.clone())
                    .unwrap_or(user.name);
                let verdict = match row.str_field("status").ok().flatten() {
                    Some("approved") => Verdict::Approve,
                    Some("refused") => Verdict::Refuse,
                    Some("cancel") => {
                        out.cancelled = true;
                        continue;
                    }
                    _ => continue,
                };
                out.decisions.push(Decision {
                    uid: user.id,
                    who,
                    verdict,
                    note: (verdict == Verdict::Refuse)
                        .then(|| "refused in the Approvals app".into()),
                });
            }
            refusal_reasons(client, request, directory, &mut out.decisions).await?;
            Ok(out)
        }
        Backend::Activity => poll_activities(client, pending, directory).await,
    }
}

/// The Approvals app has no reason field: approvers write it in the request's
/// chatter. Only when there is a refusal, one more read takes each refuser's
/// latest comment on the request as the reason.
async fn refusal_reasons(
    client: &OdooClient,
    request: i64,
    directory: &[Approver],
    decisions: &mut [Decision],
) -> Result<(), ApprovalError> {
    let partners: HashMap<i64, i64> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Refuse)
        .filter_map(|d| {
            let partner = directory.iter().find(|a| a.uid == d.uid)?.partner_id?;
            Some((partner, d.uid))
        })
        .collect();
    if partners.is_empty() {
        return Ok(());
    }
    let rows = client
        .search_read(
            "mail.message",
            &json!([
                ["model", "=", "approval.request"],
                ["res_id", "=", request],
                ["message_type", "=", "comment"],
                [
                    "author_id",
                    "in",
                    partners.keys().copied().collect::<Vec<_>>()
                ]
            ]),
            &["body", "author_id"],
            &SearchOptions {
                order: Some("id desc".into()),
                ..SearchOptions::default()
            },
        )
        .await
        .map_err(odoo_err("reading refusal reasons"))?;
    for row in &rows {
        let Some(uid) = many2one_id(row, "author_id").and_then(|p| partners.get(&p)) else {
            continue;
        };
        let text = strip_html(row.str_field("body").ok().flatten().unwrap_or_default());
        if text.is_empty() {
            continue;
        }
        for d in decisions.iter_mut() {
            // Rows come newest first: keep the first reason found per refuser.
            if d.uid == *uid && d.note.as_deref() == Some("refused in the Approvals app") {
                d.note = Some(text.clone());
            }
        }
    }
    Ok(())
}

/// The text of an Html field, for logs, notes and `planops audit`.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    html_unescape(out.trim())
}

async fn poll_activities(
    client: &OdooClient,
    pending: &Pending,
    directory: &[Approver],
) -> Result<Observed, ApprovalError> {
    let messages = client
        .search_read(
            "mail.message",
            &json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", pending.rfq_id],
                ["body", "ilike", pending.fingerprint]
            ]),
            &["body", "author_id"],
            &SearchOptions {
                order: Some("id".into()),
                ..SearchOptions::default()
            },
        )
        .await
        .map_err(odoo_err("reading the activity outcomes"))?;
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    let activities = client
        .with_context(context)
        .search_read(
            "mail.activity",
            &json!([
                ["res_id", "=", pending.rfq_id],
                ["note", "ilike", pending.fingerprint]
            ]),
            &["user_id"],
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("reading the approval activities"))?;
    let mut found: Vec<(i64, Verdict, Option<String>)> = Vec::new();
    for m in &messages {
        let body = m.str_field("body").ok().flatten().unwrap_or_default();
        let (Some((verdict, note)), Some(author)) =
            (parse_feedback(body), many2one_id(m, "author_id"))
        else {
            continue;
        };
        found.push((author, verdict, note));
    }
    let mut by_partner: HashMap<i64, (i64, String)> = directory
        .iter()
        .filter_map(|a| Some((a.partner_id?, (a.uid, a.login.clone()))))
        .collect();
    let unknown: Vec<i64> = found
        .iter()
        .map(|(p, _, _)| *p)
        .filter(|p| !by_partner.contains_key(p))
        .collect();
    if !unknown.is_empty() {
        for a in users_by(client, json!([["partner_id", "in", unknown]])).await? {
            if let Some(p) = a.partner_id {
                by_partner.insert(p, (a.uid, a.login));
            }
        }
    }
    let mut out = Observed {
        involved: activities
            .iter()
            .filter_map(|r| many2one_id(r, "user_id"))
            .collect(),
        ..Observed::default()
    };
    for (partner, verdict, note) in found {
        // A message from a partner without a user (a portal follower) cannot be a decision.
        let Some((uid, who)) = by_partner.get(&partner).cloned() else {
            continue;
        };
        out.decisions.push(Decision {
            uid,
            who,
            verdict,
            note,
        });
    }
    Ok(out)
}

fn html_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The verdict in an "activity done" message: feedback starting with
/// approved/approve/ok/yes, or rejected/reject/refused/refuse/no followed by
/// the reason. Anything else (including PlanOps' own notes) is no decision.
pub fn parse_feedback(body: &str) -> Option<(Verdict, Option<String>)> {
    let text = done_feedback(body)?;
    // Tolerate feedback that repeats the label 18+ shows.
    let text = text.strip_prefix("Feedback:").unwrap_or(&text).trim();
    let word_end = text
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(text.len());
    let (word, tail) = text.split_at(word_end);
    let verdict = match word.to_lowercase().as_str() {
        "approved" | "approve" | "ok" | "yes" => Verdict::Approve,
        "rejected" | "reject" | "refused" | "refuse" | "no" => Verdict::Refuse,
        _ => return None,
    };
    let tail = tail
        .trim_start_matches([':', '-', '–', ' ', ',', '.'])
        .trim();
    Some((verdict, (!tail.is_empty()).then(|| tail.to_string())))
}

/// The text of an HTML fragment as one line: tags dropped (`<br>` and block
/// ends read as spaces), entities decoded, runs of whitespace collapsed.
fn flat_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    html_unescape(&out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The feedback of Odoo's "activity done" message (`mail.message_activity_done`),
/// `None` when the body is not such a message or has no feedback. The message
/// opens with a header paragraph, "<type> done", the assignee when someone
/// else marked it done, then ": <summary>". On 16 and 17 the feedback is the
/// unlabelled block right after the header, before the "Original note:"
/// title; from 18 on it is the last block, after the note, behind a
/// "Feedback:" label. The feedback itself is escaped text and `<br>`s, so
/// neither marker can come from what an approver typed.
fn done_feedback(body: &str) -> Option<String> {
    let start = body.find("<p")?;
    let end = start + body[start..].find("</p>")?;
    let header = flat_text(&body[start..end]);
    let done = header.split(' ').any(|w| w == "done" || w == "done:");
    if !done {
        return None;
    }
    let rest = &body[end + "</p>".len()..];
    if let Some(at) = rest.rfind(">Feedback:<") {
        return Some(flat_text(&rest[at + ">Feedback:".len()..])).filter(|t| !t.is_empty());
    }
    let block = rest.trim_start().strip_prefix("<div")?;
    let (open_tag, inner) = block.split_once('>')?;
    if open_tag.contains("o_mail_note_title") {
        return None;
    }
    let inner = &inner[..inner.find("</div>")?];
    Some(flat_text(inner)).filter(|t| !t.is_empty())
}

/// Records, once each, the decisions that do not count (segregation of
/// duties, not an approver) as notes on the RFQ. On ApprovalsApp the refused
/// approver line goes back to "To Approve", so that Odoo's own request status
/// does not claim an approval PlanOps refused. Returns the notes posted now.
pub async fn record_refusals(
    client: &OdooClient,
    pending: &Pending,
    gate: &GateRequest<'_>,
    refused: &[Refused],
) -> Result<usize, ApprovalError> {
    let mut posted = 0;
    for r in refused {
        let d = &r.decision;
        let tag = format!(
            "approval-decision-refused-{}-{}",
            d.uid,
            match d.verdict {
                Verdict::Approve => "approve",
                Verdict::Refuse => "refuse",
            }
        );
        let body = format!(
            "{} by {} on {} was not counted: {}.",
            match d.verdict {
                Verdict::Approve => "Approval",
                Verdict::Refuse => "Refusal",
            },
            html_escape(&d.who),
            html_escape(&pending.rfq_name),
            html_escape(&r.reason)
        );
        if note_once(
            client,
            "purchase.order",
            pending.rfq_id,
            &format!("{} {tag}", pending.fingerprint),
            gate.audit_html(&tag, &body),
        )
        .await?
        {
            posted += 1;
            tracing::info!(fingerprint = %pending.fingerprint, user = %d.who, reason = %r.reason, "approval decision refused");
        }
        if let (Backend::ApprovalsApp, Some(request)) = (pending.backend, pending.request_id) {
            let ids = client
                .search(
                    "approval.approver",
                    &json!([["request_id", "=", request], ["user_id", "=", d.uid]]),
                    &SearchOptions::default(),
                )
                .await
                .map_err(odoo_err("finding a refused approver line"))?;
            let mut vals = Map::new();
            vals.insert("status".into(), json!("pending"));
            client
                .write("approval.approver", &ids, vals)
                .await
                .map_err(odoo_err("resetting a refused approver line"))?;
        }
    }
    Ok(posted)
}

/// The decision to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum FinalDecision {
    Approved { by: Vec<String>, level: String },
    Rejected { by: String, reason: String },
}

/// Purchase's two-step validation: `button_confirm` leaves an order above the
/// company's amount in `to approve` when the user is not a purchase manager.
/// The state is read back; an order waiting there gets `button_approve`, which
/// Odoo applies only where its own rule lets this user approve (so the rule is
/// not repeated here), and an order still waiting afterwards is reported as
/// such rather than as confirmed.
async fn second_approval(
    client: &OdooClient,
    rfq_id: i64,
    called: Option<&str>,
    button: &impl Fn(&'static str) -> Call,
) -> Result<OutcomeReport, ApprovalError> {
    let (_, state) = read_rfq(client, rfq_id).await?;
    if state != "to approve" {
        return Ok(OutcomeReport::Confirmed);
    }
    if called != Some("button_approve") {
        client
            .call(button("button_approve"))
            .await
            .map_err(odoo_err("approving the RFQ (second step)"))?;
        let (_, state) = read_rfq(client, rfq_id).await?;
        if state != "to approve" {
            return Ok(OutcomeReport::Confirmed);
        }
    }
    Ok(OutcomeReport::AwaitingSecondApproval)
}

/// What [`carry_out`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeReport {
    Confirmed,
    /// Confirmed, but the company's two-step validation holds the order in
    /// `to approve` until a purchase manager approves it in Odoo (PlanOps'
    /// user may not).
    AwaitingSecondApproval,
    Cancelled {
        reason: String,
    },
    /// The decision is only recorded (`onApproval`/`onRejection: None`).
    Recorded,
    /// An earlier call already carried the outcome out: nothing was written.
    AlreadyDone {
        state: String,
    },
}

impl OutcomeReport {
    /// How the outcome reads in notes, Events and activity feedback.
    pub fn summary(&self) -> String {
        match self {
            OutcomeReport::Confirmed => "RFQ confirmed".into(),
            OutcomeReport::AwaitingSecondApproval => {
                "RFQ confirmed, waiting in Odoo for a purchase manager's approval (two-step validation)"
                    .into()
            }
            OutcomeReport::Cancelled { .. } => "RFQ cancelled".into(),
            OutcomeReport::Recorded => "decision recorded, RFQ left as is".into(),
            OutcomeReport::AlreadyDone { state } => format!("already carried out (RFQ {state})"),
        }
    }
}

/// The policy's outcome action, with the documented defaults.
pub fn outcome_action(spec: &ApprovalPolicySpec, approved: bool) -> ApprovalOutcomeAction {
    let explicit = if approved {
        spec.on_approval
    } else {
        spec.on_rejection
    };
    explicit.unwrap_or(match (spec.governs, approved) {
        (GovernedAction::EmergencyPurchase, true) => ApprovalOutcomeAction::ConfirmPurchase,
        (GovernedAction::EmergencyPurchase, false) => ApprovalOutcomeAction::CancelPurchase,
        _ => ApprovalOutcomeAction::None,
    })
}

/// Carries out the decision on the RFQ exactly once and leaves the audit note.
/// `button_confirm` / `button_cancel` are safe to repeat in Odoo (it skips
/// orders no longer in draft), so a lost reply is retried; the note is keyed
/// by "fingerprint approval-outcome", whose presence makes a second call a no-op.
pub async fn carry_out(
    client: &OdooClient,
    pending: &Pending,
    gate: &GateRequest<'_>,
    decision: &FinalDecision,
) -> Result<OutcomeReport, ApprovalError> {
    let approved = matches!(decision, FinalDecision::Approved { .. });
    let action = outcome_action(gate.spec, approved);
    let key = format!("{} approval-outcome", pending.fingerprint);
    let (_, state) = read_rfq(client, pending.rfq_id).await?;
    let noted = !client
        .search(
            "mail.message",
            &json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", pending.rfq_id],
                ["body", "ilike", key]
            ]),
            &SearchOptions::limit(1),
        )
        .await
        .map_err(odoo_err("looking for the outcome note"))?
        .is_empty();
    if noted {
        // The note is written only after the button succeeded, so it proves the
        // outcome was carried out, even if someone has since put the RFQ back
        // to draft in Odoo: confirming again would not be "exactly once".
        return Ok(OutcomeReport::AlreadyDone { state });
    }
    let draft = matches!(state.as_str(), "draft" | "sent" | "to approve");
    let (method, report) = match action {
        ApprovalOutcomeAction::ConfirmPurchase => {
            if !draft && state != "purchase" && state != "done" {
                return Err(ApprovalError::RfqState {
                    rfq: pending.rfq_id,
                    state,
                    action: "confirm it",
                });
            }
            (draft.then_some("button_confirm"), OutcomeReport::Confirmed)
        }
        ApprovalOutcomeAction::CancelPurchase => {
            if !draft && state != "cancel" {
                return Err(ApprovalError::RfqState {
                    rfq: pending.rfq_id,
                    state,
                    action: "cancel it",
                });
            }
            let reason = match decision {
                FinalDecision::Rejected { reason, .. } => reason.clone(),
                FinalDecision::Approved { .. } => "approved, cancel configured".into(),
            };
            (
                draft.then_some("button_cancel"),
                OutcomeReport::Cancelled { reason },
            )
        }
        ApprovalOutcomeAction::None => (None, OutcomeReport::Recorded),
    };
    let button = |method: &'static str| {
        Call::new("purchase.order", method)
            .ids(vec![pending.rfq_id])
            .idempotent(true)
    };
    // An order already waiting for the second approval is skipped by
    // `button_confirm`: it can only be approved.
    let method = match method {
        Some("button_confirm") if state == "to approve" => Some("button_approve"),
        other => other,
    };
    if let Some(method) = method {
        client
            .call(button(method))
            .await
            .map_err(odoo_err("carrying out the approval outcome"))?;
    }
    let mut report = report;
    if report == OutcomeReport::Confirmed && method.is_some() {
        report = second_approval(client, pending.rfq_id, method, &button).await?;
    }
    let what = report.summary();
    let body = match decision {
        FinalDecision::Approved { by, level } => format!(
            "Approved by {} (level {}) under policy {}: {}. {}.",
            html_escape(&by.join(", ")),
            html_escape(level),
            html_escape(gate.policy),
            what,
            gate.numbers()
        ),
        FinalDecision::Rejected { by, reason } => format!(
            "Rejected by {} under policy {}: {}. Reason: {}. {}.",
            html_escape(by),
            html_escape(gate.policy),
            what,
            html_escape(reason),
            gate.numbers()
        ),
    };
    note_once(
        client,
        "purchase.order",
        pending.rfq_id,
        &key,
        gate.audit_html("approval-outcome", &body),
    )
    .await?;
    if pending.backend == Backend::Activity {
        close_open_activities(client, pending, &what).await?;
    }
    tracing::info!(fingerprint = %pending.fingerprint, rfq = pending.rfq_id, outcome = %what, "approval outcome carried out");
    if method.is_none() && !matches!(report, OutcomeReport::Recorded) {
        // The RFQ was already in the target state (a crash after the button,
        // before the note): the note is now written, nothing else was.
        return Ok(OutcomeReport::AlreadyDone { state });
    }
    Ok(report)
}

/// The other approvers' activities are closed with a feedback that reads as no
/// decision, so nobody is left with a to-do about a decided request.
async fn close_open_activities(
    client: &OdooClient,
    pending: &Pending,
    what: &str,
) -> Result<(), ApprovalError> {
    let open = client
        .search(
            "mail.activity",
            &json!([
                ["res_id", "=", pending.rfq_id],
                ["note", "ilike", pending.fingerprint]
            ]),
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("reading open approval activities"))?;
    if open.is_empty() {
        return Ok(());
    }
    client
        .call(
            Call::new("mail.activity", "action_feedback")
                .ids(open)
                .kwarg("feedback", format!("closed by PlanOps: {what}")),
        )
        .await
        .map_err(odoo_err("closing open approval activities"))?;
    Ok(())
}

/// The user with this id, for the owner of an RFQ.
pub async fn user_by_id(client: &OdooClient, uid: i64) -> Result<Option<Approver>, ApprovalError> {
    Ok(users_by(client, json!([["id", "=", uid]]))
        .await?
        .into_iter()
        .next())
}

/// What the gate needs to know about a draft RFQ, read back from Odoo so that
/// the controller rebuilds it after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseFacts {
    pub rfq_id: i64,
    pub name: String,
    pub state: String,
    /// The emergency purchase as the matcher sees it.
    pub request: GovernedRequest,
    /// The RFQ's buyer (`user_id`), else its creator: the user who owns the
    /// action and, under segregation of duties, may not approve it.
    pub owner_uid: Option<i64>,
    /// The RFQ's notes as text (the exception's summary, as `proposePurchase` writes it).
    pub notes: String,
}

/// Reads the RFQs, their lines and the products' costs in four calls. The
/// amount is Σ quantity × unit price, valued at the product's cost
/// (`standard_price`) where the line has no price yet, as `proposePurchase`
/// leaves it: the company-currency figure the policy thresholds compare with.
pub async fn read_purchases(
    client: &OdooClient,
    ids: &[i64],
) -> Result<HashMap<i64, PurchaseFacts>, ApprovalError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let notes_field = if client.info().version.major >= 19 {
        "note"
    } else {
        "notes"
    };
    let orders = client
        .read(
            "purchase.order",
            ids,
            &[
                "name",
                "state",
                "partner_id",
                "currency_id",
                "user_id",
                "create_uid",
                notes_field,
            ],
        )
        .await
        .map_err(odoo_err("reading the RFQs"))?;
    let lines = client
        .search_read(
            "purchase.order.line",
            &json!([["order_id", "in", ids]]),
            &["order_id", "product_id", "product_qty", "price_unit"],
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("reading the RFQ lines"))?;
    let products: Vec<i64> = lines
        .iter()
        .filter_map(|l| many2one_id(l, "product_id"))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let cost: HashMap<i64, f64> = if products.is_empty() {
        HashMap::new()
    } else {
        client
            .read("product.product", &products, &["standard_price"])
            .await
            .map_err(odoo_err("reading product costs"))?
            .iter()
            .filter_map(|r| Some((r.id().ok()?, r.number("standard_price").unwrap_or(0.0))))
            .collect()
    };
    let mut amount: HashMap<i64, f64> = HashMap::new();
    let mut product_of: HashMap<i64, i64> = HashMap::new();
    for l in &lines {
        let Some(order) = many2one_id(l, "order_id") else {
            continue;
        };
        let product = many2one_id(l, "product_id");
        let qty = l.number("product_qty").unwrap_or(0.0);
        let price = l.number("price_unit").unwrap_or(0.0);
        let unit = if price > 0.0 {
            price
        } else {
            product.and_then(|p| cost.get(&p)).copied().unwrap_or(0.0)
        };
        *amount.entry(order).or_default() += qty * unit;
        if let Some(p) = product {
            product_of.entry(order).or_insert(p);
        }
    }
    let mut out = HashMap::with_capacity(orders.len());
    for row in &orders {
        let id = row.id().map_err(odoo_err("reading the RFQs"))?;
        let text = |f: &str| {
            row.str_field(f)
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string()
        };
        let currency = row
            .many2one("currency_id")
            .ok()
            .flatten()
            .map(|c| c.name)
            .unwrap_or_default();
        out.insert(
            id,
            PurchaseFacts {
                rfq_id: id,
                name: text("name"),
                state: text("state"),
                request: GovernedRequest {
                    kind: GovernedAction::EmergencyPurchase,
                    amount: amount.get(&id).copied().unwrap_or(0.0),
                    currency,
                    product_id: product_of.get(&id).copied(),
                    partner_id: many2one_id(row, "partner_id"),
                },
                owner_uid: many2one_id(row, "user_id").or_else(|| many2one_id(row, "create_uid")),
                notes: strip_html(&text(notes_field)),
            },
        );
    }
    Ok(out)
}

/// Finds the request [`open`] made for `fingerprint` without writing anything:
/// the `approval.request` (Enterprise only) or else the approval activities on
/// the RFQ. `None`: nothing was opened (or it was deleted in Odoo).
pub async fn find_pending(
    client: &OdooClient,
    fingerprint: &str,
    rfq_id: i64,
    rfq_name: &str,
) -> Result<Option<Pending>, ApprovalError> {
    let pending = |backend, request_id, opened_at| Pending {
        backend,
        fingerprint: fingerprint.to_string(),
        rfq_id,
        rfq_name: rfq_name.to_string(),
        request_id,
        opened_at,
        created: false,
    };
    if client.info().edition == Edition::Enterprise {
        let rows = client
            .search_read(
                "approval.request",
                &json!([["reference", "ilike", fingerprint]]),
                &["id", "create_date"],
                &SearchOptions::limit(1),
            )
            .await
            .map_err(odoo_err("finding the approval request"))?;
        if let Some(row) = rows.first() {
            let id = row.id().map_err(odoo_err("finding the approval request"))?;
            return Ok(Some(pending(
                Backend::ApprovalsApp,
                Some(id),
                opened_at(&rows),
            )));
        }
    }
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    let rows = client
        .with_context(context)
        .search_read(
            "mail.activity",
            &json!([["res_id", "=", rfq_id], ["note", "ilike", fingerprint]]),
            &["create_date"],
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("finding the approval activities"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(pending(Backend::Activity, None, opened_at(&rows))))
}

/// Records, once, that the last level's SLA passed without a decision; true
/// when recorded by this call (the audit trail counts breaches from it).
pub async fn record_breach(
    client: &OdooClient,
    pending: &Pending,
    gate: &GateRequest<'_>,
    level: &str,
    since: Timestamp,
) -> Result<bool, ApprovalError> {
    let tag = "approval-sla-breached";
    let body = format!(
        "No decision on {} within the SLA of the last level ({}), due {since}: the request stays open and is reported as breached.",
        html_escape(&pending.rfq_name),
        html_escape(level),
    );
    note_once(
        client,
        "purchase.order",
        pending.rfq_id,
        &format!("{} {tag}", pending.fingerprint),
        gate.audit_html(tag, &body),
    )
    .await
}

/// Withdraws a pending request (its policy was deleted): the approver lines
/// are cancelled (ApprovalsApp; Odoo then shows the request as cancelled) or
/// the open activities closed (Activity). The RFQ stays a draft for a planner
/// to decide on, which the note says. True when the note was posted now.
pub async fn withdraw(
    client: &OdooClient,
    pending: &Pending,
    gate: &GateRequest<'_>,
    why: &str,
) -> Result<bool, ApprovalError> {
    match (pending.backend, pending.request_id) {
        (Backend::ApprovalsApp, Some(request)) => {
            let open = client
                .search(
                    "approval.approver",
                    &json!([
                        ["request_id", "=", request],
                        ["status", "in", ["new", "pending", "waiting"]]
                    ]),
                    &SearchOptions::default(),
                )
                .await
                .map_err(odoo_err("finding open approver lines"))?;
            if !open.is_empty() {
                let mut vals = Map::new();
                vals.insert("status".into(), json!("cancel"));
                client
                    .write("approval.approver", &open, vals)
                    .await
                    .map_err(odoo_err("cancelling the approval request"))?;
            }
        }
        (Backend::ApprovalsApp, None) => {
            return Err(ApprovalError::Data(
                "pending ApprovalsApp request without an id".into(),
            ));
        }
        (Backend::Activity, _) => {
            close_open_activities(client, pending, "approval withdrawn").await?;
        }
    }
    let tag = "approval-withdrawn";
    let body = format!(
        "Approval request for {} withdrawn: {}. The RFQ stays a draft; confirm or cancel it in Odoo.",
        html_escape(&pending.rfq_name),
        html_escape(why),
    );
    let posted = note_once(
        client,
        "purchase.order",
        pending.rfq_id,
        &format!("{} {tag}", pending.fingerprint),
        gate.audit_html(tag, &body),
    )
    .await?;
    if posted {
        tracing::info!(fingerprint = %pending.fingerprint, rfq = pending.rfq_id, "approval request withdrawn");
    }
    Ok(posted)
}

/// Closes the exception behind a rejected purchase: its open activities
/// (the rule's `activity` action, on the product or order) are marked done
/// with the reason, so the planner sees why and the exception is snoozed
/// like any activity a planner closed. Returns how many were closed.
pub async fn close_exception(
    client: &OdooClient,
    fingerprint: &str,
    reason: &str,
) -> Result<usize, ApprovalError> {
    let open = client
        .search(
            "mail.activity",
            &json!([
                ["note", "ilike", fingerprint],
                ["res_model", "!=", "purchase.order"]
            ]),
            &SearchOptions::default(),
        )
        .await
        .map_err(odoo_err("reading the exception's activities"))?;
    if open.is_empty() {
        return Ok(0);
    }
    let n = open.len();
    client
        .call(
            Call::new("mail.activity", "action_feedback")
                .ids(open)
                .kwarg("feedback", format!("Closed by PlanOps: {reason}"))
                // Marking done twice is harmless: done activities are gone.
                .idempotent(true),
        )
        .await
        .map_err(odoo_err("closing the exception's activities"))?;
    tracing::info!(fingerprint, closed = n, "exception closed after rejection");
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Done" messages as Odoo stores them: on 16/17 the feedback right after
    /// the header, unlabelled; on 18/19 after the note, labelled.
    fn done(version: u32, feedback: &str) -> String {
        let header = "\n    <p>\n        <span class=\"fa fa-tasks fa-fw\"></span><span>To-Do</span> done\n        <span>: </span><span>To approve: P00012 (big-buys, level 1 buyers) planops:x</span>\n    </p>";
        let lines: Vec<String> = feedback
            .split('\n')
            .map(|l| format!("\n            {l}"))
            .collect();
        let lines = lines.join("\n            <br>");
        let note =
            "<div><p>Mark this activity done with feedback <b>approved</b> to approve.</p></div>";
        if version >= 18 {
            let body = format!(
                "{header}\n    \n        <div class=\"o_mail_note_title fw-bold\">Original note:</div>\n        {note}\n    <div>\n        <div class=\"fw-bold\">Feedback:</div>{lines}\n    </div>\n"
            );
            // 19 keeps the template's outer div.
            if version >= 19 {
                format!("<div>{body}</div>")
            } else {
                body
            }
        } else {
            format!(
                "{header}\n    <div>{lines}\n    </div>\n    \n        <div class=\"o_mail_note_title\"><strong>Original note:</strong></div>\n        {note}\n"
            )
        }
    }

    #[test]
    fn feedback_verdicts() {
        for version in [16, 17, 18, 19] {
            let done = |fb: &str| done(version, fb);
            assert_eq!(
                parse_feedback(&done("approved")),
                Some((Verdict::Approve, None)),
                "{version}"
            );
            assert_eq!(
                parse_feedback(&done("OK, go")),
                Some((Verdict::Approve, Some("go".into())))
            );
            assert_eq!(
                parse_feedback(&done("Rejected: price &amp; lead time\ntoo long")),
                Some((Verdict::Refuse, Some("price & lead time too long".into())))
            );
            assert_eq!(
                parse_feedback(&done("closed by PlanOps: RFQ confirmed")),
                None
            );
        }
        // Marked done without feedback: the note's "feedback approved" is no verdict.
        let without = done(17, "x").replace("\n    <div>\n            x\n    </div>", "");
        assert_eq!(parse_feedback(&without), None);
        let without = done(18, "x");
        let without = &without[..without
            .rfind("\n    <div>\n        <div class=\"fw-bold\">")
            .unwrap()];
        assert_eq!(parse_feedback(without), None);
        // Bodies as Odoo 17, 18 and 19 stored them for
        // `action_feedback(feedback="rejected: too dear & late\nask again")`.
        let stored = [
            "\n    <p>\n        <span class=\"fa fa-tasks fa-fw\"></span><span>To-Do</span> done\n        <span>: </span><span>To approve: P &lt;x&gt; planops:0123</span>\n    </p>\n    <div>\n            rejected: too dear &amp; late\n            <br>\n            ask again\n    </div>\n    \n        <div class=\"o_mail_note_title\"><strong>Original note:</strong></div>\n        <div><p>the note <b>b</b></p></div>\n",
            "\n    <p>\n        <span class=\"fa fa-check fa-fw\"></span><span>To-Do</span> done\n        <span>: </span><span>To approve: P &lt;x&gt; planops:0123</span>\n    </p>\n    \n        <div class=\"o_mail_note_title fw-bold\">Original note:</div>\n        <div><p>the note <b>b</b></p></div>\n    <div>\n        <div class=\"fw-bold\">Feedback:</div>\n            rejected: too dear &amp; late\n            <br>\n            ask again\n    </div>\n",
            "<div>\n    <p>\n        <span class=\"fa fa-check fa-fw\"></span><span>To-Do</span> done\n        <span>: </span><span>To approve: P &lt;x&gt; planops:0123</span>\n    </p>\n    \n        <div class=\"o_mail_note_title fw-bold\">Original note:</div>\n        <div><p>the note <b>b</b></p></div>\n    <div>\n        <div class=\"fw-bold\">Feedback:</div>\n            rejected: too dear &amp; late\n            <br>\n            ask again\n    </div>\n</div>",
        ];
        for body in stored {
            assert_eq!(
                parse_feedback(body),
                Some((Verdict::Refuse, Some("too dear & late ask again".into()))),
                "{body}"
            );
        }
        // Marked done by someone else, without feedback (17 as stored).
        let other = "\n    <p>\n        <span class=\"fa fa-tasks fa-fw\"></span><span>To-Do</span> done\n         (originally assigned to <span>Marc Demo</span>)\n        <span>: </span><span>S2</span>\n    </p>\n    \n        <div class=\"o_mail_note_title\"><strong>Original note:</strong></div>\n        <div><p>n2</p></div>\n";
        assert_eq!(parse_feedback(other), None);
        // PlanOps' own notes are no decision, whatever they say.
        assert_eq!(
            parse_feedback("<p>approval-requested Feedback: approved</p>"),
            None
        );
        assert_eq!(
            parse_feedback(
                "<p>Rejected: work not done</p><p><small>planops:x approval-outcome</small></p>"
            ),
            None
        );
    }
}
