//! Chatter and activities: `message_post` on mail.thread models, and
//! `mail.activity.action_feedback` / `action_done`, per version.

use serde_json::{Map, Value, json};

use super::orm::Ctx;
use super::store::{Store, UserAuth, hash_secret};
use super::value::Val;
use crate::db::{Edition, OdooVersion, OrmError};

/// Keyword arguments of `message_post` the simulator honours.
#[derive(Debug, Clone, Default)]
pub struct PostParams {
    pub body: String,
    pub subject: Option<String>,
    /// Odoo's default is `notification`.
    pub message_type: Option<String>,
    pub subtype_xmlid: Option<String>,
    pub subtype_id: Option<i64>,
    pub author_id: Option<i64>,
    /// Existing `ir.attachment` ids linked to the message.
    pub attachment_ids: Vec<i64>,
    /// The body is HTML already. 17+ escapes a plain string body over RPC
    /// unless the caller passes `body_is_html=True`; Odoo's own posts (the
    /// "done" message) are markup. 16 has no such parameter and stores the
    /// body as given.
    pub body_is_html: bool,
}

/// What the sanitizer leaves of an escaped text: `&`, `<` and `>` stay
/// entities, quotes come back as characters.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message of Odoo's unique key on `mail.followers`, as the RPC layer
/// turns the database's refusal into a `ValidationError`.
const FOLLOW_TWICE: &str =
    "The operation cannot be completed: Error, a partner cannot follow twice the same object.";

/// What `mail.message_activity_done` shows, in the layout of the version.
struct DoneMessage<'a> {
    type_name: &'a str,
    icon: &'a str,
    /// The assignee's name, when someone else marks the activity done.
    assignee: Option<&'a str>,
    summary: &'a str,
    /// Html already (the activity's note field).
    note: Option<&'a str>,
    feedback: Option<&'a str>,
}

impl DoneMessage<'_> {
    /// The template's output as Odoo stores it: the indentation of the
    /// template kept, the whitespace before an element it leaves out dropped,
    /// and the template's outer `<div>` only on 19 (up to 18 the stored body
    /// starts at the header paragraph). A header paragraph; then on 16 and 17
    /// the feedback (lines split by `<br>`, no label) before the original
    /// note, from 18 on the note before a block labelled "Feedback:".
    fn render(&self, version: OdooVersion) -> String {
        let mut out = format!(
            "\n    <p>\n        <span class=\"fa {} fa-fw\"></span><span>{}</span> done\n        ",
            html_escape(self.icon),
            html_escape(self.type_name)
        );
        if let Some(name) = self.assignee {
            out.push_str(&format!(
                " (originally assigned to <span>{}</span>)",
                html_escape(name)
            ));
            if !self.summary.is_empty() {
                out.push_str("\n        ");
            }
        }
        if !self.summary.is_empty() {
            out.push_str(&format!(
                "<span>: </span><span>{}</span>",
                html_escape(self.summary)
            ));
        }
        out.push_str("\n    </p>");
        let feedback = self.feedback.filter(|f| !f.is_empty()).map(|f| {
            let lines: Vec<String> = f
                .split('\n')
                .map(|line| format!("\n            {}", html_escape(line)))
                .collect();
            lines.join("\n            <br>")
        });
        let note = self.note.filter(|n| !n.is_empty() && *n != "<p><br></p>");
        if version >= OdooVersion::V18 {
            out.push_str("\n    ");
            if let Some(note) = note {
                out.push_str(&format!(
                    "\n        <div class=\"o_mail_note_title fw-bold\">Original note:</div>\n        <div>{note}</div>"
                ));
            }
            if let Some(lines) = feedback {
                out.push_str(&format!(
                    "\n    <div>\n        <div class=\"fw-bold\">Feedback:</div>{lines}\n    </div>"
                ));
            }
        } else {
            if let Some(lines) = feedback {
                out.push_str(&format!("\n    <div>{lines}\n    </div>"));
            }
            out.push_str("\n    ");
            if let Some(note) = note {
                out.push_str(&format!(
                    "\n        <div class=\"o_mail_note_title\"><strong>Original note:</strong></div>\n        <div>{note}</div>"
                ));
            }
        }
        out.push('\n');
        if version >= OdooVersion::V19 {
            out = format!("<div>{out}</div>");
        }
        out
    }
}

impl Store {
    /// `res_id` of an external id (`mail.mt_note`), as `_xmlid_to_res_id`.
    pub fn xmlid_res_id(&self, xmlid: &str) -> Option<i64> {
        let (module, name) = xmlid.split_once('.')?;
        let mi = self.model_index("ir.model.data").ok()?;
        let table = &self.tables[mi];
        table.ids().find_map(|id| {
            let matches = self.slot_value(mi, id, "module").as_str() == Some(module)
                && self.slot_value(mi, id, "name").as_str() == Some(name);
            matches
                .then(|| self.slot_value(mi, id, "res_id").as_id())
                .flatten()
        })
    }

    /// The partner of a user: the author of what that user posts.
    fn user_partner(&self, uid: i64) -> Option<i64> {
        let ui = self.model_index("res.users").ok()?;
        self.slot_value(ui, uid, "partner_id").as_id()
    }

    /// `record.message_post(...)`: one `mail.message` on one record; returns its id.
    pub fn message_post(
        &mut self,
        model: &str,
        ids: &[i64],
        params: &PostParams,
        ctx: &Ctx,
    ) -> Result<i64, OrmError> {
        let mi = self.model_index(model)?;
        if !self.tables[mi].def.is_mail_thread {
            return Err(OrmError::UnknownMethod {
                model: model.to_string(),
                method: "message_post".to_string(),
            });
        }
        let [id] = ids else {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            return Err(OrmError::Value(format!(
                "Expected singleton: {model}({})",
                list.join(", ")
            )));
        };
        if !self.tables[mi].exists(*id) {
            return Err(OrmError::Missing(format!(
                "Record does not exist or has been deleted.\n(Record: {model}({id},), User: {})",
                ctx.uid
            )));
        }
        let message_type = params.message_type.as_deref().unwrap_or("notification");
        // Odoo refuses internal-only types through message_post.
        if message_type == "user_notification" {
            return Err(OrmError::Value(
                "Use message_notify to send a notification to an user.".into(),
            ));
        }
        let subtype = match params.subtype_id {
            Some(id) => Some(id),
            None => {
                let xmlid = params.subtype_xmlid.as_deref().unwrap_or("mail.mt_note");
                let xmlid = if xmlid.contains('.') {
                    xmlid.to_string()
                } else {
                    format!("mail.{xmlid}")
                };
                self.xmlid_res_id(&xmlid)
            }
        };
        let author = params.author_id.or_else(|| self.user_partner(ctx.uid));
        let record_name = self.display_name(mi, *id, ctx);
        // 17+ escapes a plain string body, which then reads as one paragraph.
        let body = if self.version >= OdooVersion::V17 && !params.body_is_html {
            format!("<p>{}</p>", html_escape(&params.body))
        } else {
            params.body.clone()
        };
        let mut vals = Map::new();
        vals.insert("model".into(), json!(model));
        vals.insert("res_id".into(), json!(id));
        vals.insert("body".into(), json!(body));
        vals.insert("message_type".into(), json!(message_type));
        vals.insert("record_name".into(), json!(record_name));
        if let Some(subject) = &params.subject {
            vals.insert("subject".into(), json!(subject));
        }
        if let Some(subtype) = subtype {
            vals.insert("subtype_id".into(), json!(subtype));
        }
        if let Some(author) = author {
            vals.insert("author_id".into(), json!(author));
        }
        if !params.attachment_ids.is_empty() {
            vals.insert(
                "attachment_ids".into(),
                json!([[6, 0, params.attachment_ids]]),
            );
        }
        self.create("mail.message", &vals, ctx)
    }

    /// `mail.activity.action_feedback(feedback)` / `action_done()`: posts the
    /// "activity done" message on each activity's record (Odoo's
    /// `mail.message_activity_done`: type, summary, the original note and the
    /// feedback, with `mail_activity_type_id`), then deletes the activities,
    /// except on 17 and 18 when their type has `keep_done`, and always on 19:
    /// those are archived with their done date. Returns the first message id, or `false`.
    pub fn activity_done(
        &mut self,
        ids: &[i64],
        feedback: Option<&str>,
        ctx: &Ctx,
    ) -> Result<Value, OrmError> {
        let ai = self.model_index("mail.activity")?;
        // Archived activities can be marked done again (the reader used
        // active_test=False); missing ones cannot.
        let absent: Vec<String> = ids
            .iter()
            .filter(|&&id| !self.tables[ai].exists(id))
            .map(i64::to_string)
            .collect();
        if !absent.is_empty() {
            return Err(OrmError::Missing(format!(
                "Record does not exist or has been deleted.\n(Record: mail.activity({},), User: {})",
                absent.join(", "),
                ctx.uid
            )));
        }
        let mut first_message = None;
        for &id in ids {
            let model = self
                .get(
                    ai,
                    id,
                    &self.tables[ai]
                        .def
                        .field("res_model")
                        .cloned()
                        .ok_or_else(|| OrmError::Value("mail.activity without res_model".into()))?,
                    ctx,
                )
                .as_str()
                .map(str::to_string);
            let res_id = self.slot_value(ai, id, "res_id").as_id();
            let type_id = self.slot_value(ai, id, "activity_type_id").as_id();
            let type_name = type_id
                .and_then(|t| {
                    let ti = self.model_index("mail.activity.type").ok()?;
                    self.slot_value(ti, t, "name").as_str().map(str::to_string)
                })
                .unwrap_or_else(|| "Activity".into());
            let summary = self
                .slot_value(ai, id, "summary")
                .as_str()
                .map(str::to_string)
                .unwrap_or_default();
            let icon = type_id
                .and_then(|t| {
                    let ti = self.model_index("mail.activity.type").ok()?;
                    self.slot_value(ti, t, "icon").as_str().map(str::to_string)
                })
                .unwrap_or_default();
            let note = self.slot_value(ai, id, "note").as_str().map(str::to_string);
            // Odoo names the assignee when someone else marks the activity done.
            let assignee = self
                .slot_value(ai, id, "user_id")
                .as_id()
                .filter(|&user| user != ctx.uid)
                .and_then(|user| {
                    let ui = self.model_index("res.users").ok()?;
                    Some(self.display_name(ui, user, ctx))
                });
            let body = DoneMessage {
                type_name: &type_name,
                icon: &icon,
                assignee: assignee.as_deref(),
                summary: &summary,
                note: note.as_deref(),
                feedback,
            }
            .render(self.version);
            // A record that vanished or is not a thread gets no message, as the
            // activity still has to be closed.
            if let (Some(model), Some(res_id)) = (model, res_id)
                && let Ok(mi) = self.model_index(&model)
                && self.tables[mi].def.is_mail_thread
                && self.tables[mi].exists(res_id)
            {
                let params = PostParams {
                    body,
                    message_type: Some("notification".into()),
                    subtype_xmlid: Some("mail.mt_activities".into()),
                    body_is_html: true,
                    ..PostParams::default()
                };
                let message = self.message_post(&model, &[res_id], &params, ctx)?;
                if let Some(type_id) = type_id {
                    let slot = self.tables[self.model_index("mail.message")?]
                        .def
                        .slot_of("mail_activity_type_id");
                    if let Some(slot) = slot {
                        let msg_mi = self.model_index("mail.message")?;
                        self.set_slot(msg_mi, message, slot, Val::Id(type_id));
                    }
                }
                first_message.get_or_insert(message);
            }
            let keep_done = self.version >= OdooVersion::V19
                || self.version >= OdooVersion::V17
                    && type_id.is_some_and(|t| {
                        self.model_index("mail.activity.type").is_ok_and(|ti| {
                            matches!(self.slot_value(ti, t, "keep_done"), Val::Bool(true))
                        })
                    });
            if keep_done {
                let mut vals = Map::new();
                vals.insert("active".into(), json!(false));
                vals.insert(
                    "date_done".into(),
                    json!(super::value::format_date(self.today)),
                );
                self.write("mail.activity", &[id], &vals, ctx)?;
            } else {
                self.unlink("mail.activity", &[id], ctx)?;
            }
        }
        Ok(first_message.map_or(Value::Bool(false), |m| json!(m)))
    }
}

impl Store {
    /// The `ir.model` id of a model name.
    pub(super) fn ir_model_id(&self, model: &str) -> Option<i64> {
        let mi = self.model_index("ir.model").ok()?;
        self.tables[mi]
            .ids()
            .find(|&id| self.slot_value(mi, id, "model").as_str() == Some(model))
    }

    /// Whether `partner` follows `model`(`res_id`).
    fn follows(&self, model: &str, res_id: i64, partner: i64) -> bool {
        let Ok(fi) = self.model_index("mail.followers") else {
            return false;
        };
        let table = &self.tables[fi];
        let candidates: Vec<i64> = match table.def.slot_of("partner_id") {
            Some(slot) => match table.lookup(slot, partner) {
                Some(ids) => ids.to_vec(),
                None => table.ids().collect(),
            },
            None => return false,
        };
        candidates.into_iter().any(|f| {
            self.slot_value(fi, f, "partner_id").as_id() == Some(partner)
                && self.slot_value(fi, f, "res_id").as_id() == Some(res_id)
                && self.slot_value(fi, f, "res_model").as_str() == Some(model)
        })
    }

    /// `message_subscribe(partner_ids=[partner])` on each record, skipping
    /// those it already follows.
    pub fn subscribe(
        &mut self,
        model: &str,
        res_ids: &[i64],
        partner: i64,
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        for &res_id in res_ids {
            if self.follows(model, res_id, partner) {
                continue;
            }
            let mut vals = Map::new();
            vals.insert("res_model".into(), json!(model));
            vals.insert("res_id".into(), json!(res_id));
            vals.insert("partner_id".into(), json!(partner));
            self.create("mail.followers", &vals, ctx)?;
        }
        Ok(())
    }

    /// A mail thread created over RPC is followed by its creator, as Odoo's
    /// `mail.thread.create` subscribes the current user.
    pub fn subscribe_creator(
        &mut self,
        model: &str,
        ids: &[i64],
        ctx: &Ctx,
    ) -> Result<(), OrmError> {
        let thread = self
            .model_index(model)
            .is_ok_and(|mi| self.tables[mi].def.is_mail_thread);
        match self.user_partner(ctx.uid) {
            Some(partner) if thread => self.subscribe(model, ids, partner, ctx),
            _ => Ok(()),
        }
    }

    /// `mail.activity.create(vals_list)`: creates the activities, then
    /// subscribes each assignee to the records, batched per model and user.
    /// 17 and 18 collect a user's records in a list with repeats, so a batch
    /// holding two activities on one record for a user who does not follow it
    /// yet inserts the same follower twice: the unique key refuses it and the
    /// whole call fails with nothing created. 16 subscribes activity by
    /// activity and 19 collects a set, so both accept such a batch.
    pub fn create_activities(
        &mut self,
        vals_list: &[&Map<String, Value>],
        ctx: &Ctx,
    ) -> Result<Vec<i64>, OrmError> {
        let mut ids = Vec::with_capacity(vals_list.len());
        for vals in vals_list {
            match self.create("mail.activity", vals, ctx) {
                Ok(id) => ids.push(id),
                Err(error) => {
                    self.unlink("mail.activity", &ids, ctx)?;
                    return Err(error);
                }
            }
        }
        match self.subscribe_assignees(&ids, ctx) {
            Ok(()) => Ok(ids),
            Err(error) => {
                // Odoo rolls the transaction back: the activities go too.
                self.unlink("mail.activity", &ids, ctx)?;
                Err(error)
            }
        }
    }

    fn subscribe_assignees(&mut self, ids: &[i64], ctx: &Ctx) -> Result<(), OrmError> {
        let ai = self.model_index("mail.activity")?;
        let res_model = self.tables[ai]
            .def
            .field("res_model")
            .cloned()
            .ok_or_else(|| OrmError::Value("mail.activity without res_model".into()))?;
        // (model, partner) → the records, in creation order, repeats kept.
        let mut per_user: Vec<((String, i64), Vec<i64>)> = Vec::new();
        for &id in ids {
            let model = self
                .get(ai, id, &res_model, ctx)
                .as_str()
                .map(str::to_string);
            let res_id = self.slot_value(ai, id, "res_id").as_id();
            let partner = self
                .slot_value(ai, id, "user_id")
                .as_id()
                .and_then(|user| self.user_partner(user));
            let (Some(model), Some(res_id), Some(partner)) = (model, res_id, partner) else {
                continue;
            };
            let thread = self
                .model_index(&model)
                .is_ok_and(|mi| self.tables[mi].def.is_mail_thread);
            if !thread {
                continue;
            }
            let key = (model, partner);
            match per_user.iter_mut().find(|(k, _)| *k == key) {
                Some((_, records)) => records.push(res_id),
                None => per_user.push((key, vec![res_id])),
            }
        }
        let repeats_fail = matches!(self.version, OdooVersion::V17 | OdooVersion::V18);
        if repeats_fail {
            for ((model, partner), records) in &per_user {
                let mut new: Vec<i64> = records
                    .iter()
                    .copied()
                    .filter(|&r| !self.follows(model, r, *partner))
                    .collect();
                let before = new.len();
                new.sort_unstable();
                new.dedup();
                if new.len() != before {
                    return Err(OrmError::Validation(FOLLOW_TWICE.into()));
                }
            }
        }
        for ((model, partner), records) in per_user {
            self.subscribe(&model, &records, partner, ctx)?;
        }
        Ok(())
    }
}

/// Message subtypes, purchase/stock groups and the buyers in them, with their
/// external ids: what activity assignment "to the members of a group" and
/// `message_post(subtype_xmlid=...)` resolve. Returns the logins to add.
pub(super) fn seed_mail_and_groups(store: &mut Store, ctx: &Ctx) -> Vec<UserAuth> {
    let mut xmlids: Vec<(String, &str, i64)> = Vec::new();
    let create = |store: &mut Store, model: &str, vals: Value| -> Option<i64> {
        let vals = vals.as_object().cloned().unwrap_or_default();
        match store.create(model, &vals, ctx) {
            Ok(id) => Some(id),
            Err(error) => {
                tracing::error!(%model, %error, "seeding the simulator failed");
                None
            }
        }
    };
    for (xmlid, name, internal) in [
        ("mail.mt_comment", "Discussions", false),
        ("mail.mt_note", "Note", true),
        ("mail.mt_activities", "Activities", true),
    ] {
        if let Some(id) = create(
            store,
            "mail.message.subtype",
            json!({"name": name, "internal": internal}),
        ) {
            xmlids.push((xmlid.to_string(), "mail.message.subtype", id));
        }
    }
    // The To-Do type's icon changed in 18.
    let todo_icon = if store.version >= OdooVersion::V18 {
        "fa-check"
    } else {
        "fa-tasks"
    };
    if let Some(id) = create(
        store,
        "mail.activity.type",
        json!({"name": "To-Do", "icon": todo_icon}),
    ) {
        xmlids.push((
            "mail.mail_activity_data_todo".into(),
            "mail.activity.type",
            id,
        ));
    }
    // The Approvals app's own type, for the to-dos `action_confirm` schedules.
    if store.edition == Edition::Enterprise
        && let Some(id) = create(
            store,
            "mail.activity.type",
            json!({"name": "Approval", "icon": "fa-check", "res_model": "approval.request"}),
        )
    {
        xmlids.push((
            "approvals.mail_activity_data_approval".into(),
            "mail.activity.type",
            id,
        ));
    }
    // Buyers: partner + user each; login doubles as password, like `planner`.
    let mut buyers = Vec::new();
    let mut auths = Vec::new();
    for (login, name) in [
        ("buyer.alice", "Alice Buyer"),
        ("buyer.bob", "Bob Buyer"),
        ("buyer.chen", "Chen Planner"),
    ] {
        let Some(partner) = create(
            store,
            "res.partner",
            json!({"name": name, "email": format!("{login}@example.com")}),
        ) else {
            continue;
        };
        if let Some(uid) = create(
            store,
            "res.users",
            json!({"login": login, "partner_id": partner}),
        ) {
            buyers.push(uid);
            auths.push(UserAuth {
                uid,
                login: login.into(),
                password_hash: hash_secret(login),
                is_admin: false,
            });
        }
    }
    let (users_field, groups_field) = if store.version >= OdooVersion::V19 {
        ("user_ids", "group_ids")
    } else {
        ("users", "groups_id")
    };
    for (xmlid, name, category, members) in [
        (
            "purchase.group_purchase_user",
            "User",
            "Purchase",
            buyers.clone(),
        ),
        (
            "purchase.group_purchase_manager",
            "Administrator",
            "Purchase",
            buyers[..buyers.len().min(1)].to_vec(),
        ),
        (
            "stock.group_stock_user",
            "User",
            "Inventory",
            buyers.clone(),
        ),
    ] {
        if let Some(id) = create(
            store,
            "res.groups",
            json!({"name": name, "category_name": category, users_field: [[6, 0, members]]}),
        ) {
            xmlids.push((xmlid.to_string(), "res.groups", id));
            for &uid in &members {
                let mut vals = Map::new();
                vals.insert(groups_field.into(), json!([[4, id]]));
                if let Err(error) = store.write("res.users", &[uid], &vals, ctx) {
                    tracing::error!(%error, "seeding group membership failed");
                }
            }
        }
    }
    // As in Odoo, a purchase administrator holds the purchase user group
    // through it.
    let group = |wanted: &str| {
        xmlids
            .iter()
            .find(|(xmlid, _, _)| xmlid == wanted)
            .map(|&(_, _, id)| id)
    };
    if let (Some(user), Some(manager)) = (
        group("purchase.group_purchase_user"),
        group("purchase.group_purchase_manager"),
    ) {
        let mut vals = Map::new();
        vals.insert("implied_ids".into(), json!([[4, user]]));
        if let Err(error) = store.write("res.groups", &[manager], &vals, ctx) {
            tracing::error!(%error, "seeding implied groups failed");
        }
    }
    for (xmlid, model, res_id) in xmlids {
        let Some((module, name)) = xmlid.split_once('.') else {
            continue;
        };
        create(
            store,
            "ir.model.data",
            json!({"module": module, "name": name, "model": model, "res_id": res_id, "noupdate": true}),
        );
    }
    auths
}
