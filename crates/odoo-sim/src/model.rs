//! Model and field definitions of the simulated Odoo, per version and edition.

use std::collections::HashMap;
use std::sync::Arc;

use super::value::Val;
use crate::db::{Edition, OdooVersion};

/// Odoo field types (`ttype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Char,
    Text,
    Html,
    Selection,
    Integer,
    Float,
    Monetary,
    Boolean,
    Date,
    Datetime,
    Many2one,
    One2many,
    Many2many,
    Binary,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Char => "char",
            FieldType::Text => "text",
            FieldType::Html => "html",
            FieldType::Selection => "selection",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Monetary => "monetary",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Many2one => "many2one",
            FieldType::One2many => "one2many",
            FieldType::Many2many => "many2many",
            FieldType::Binary => "binary",
        }
    }

    pub fn is_relational(self) -> bool {
        matches!(
            self,
            FieldType::Many2one | FieldType::One2many | FieldType::Many2many
        )
    }

    pub fn is_x2many(self) -> bool {
        matches!(self, FieldType::One2many | FieldType::Many2many)
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Integer | FieldType::Float | FieldType::Monetary
        )
    }

    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Char | FieldType::Text | FieldType::Html | FieldType::Selection
        )
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// A column in the record's value slots.
    Stored(usize),
    /// The record id.
    Id,
    /// Follows a many2one path (`product_tmpl_id.name`); writes go through.
    Related(Vec<String>),
    /// Computed in Rust on read (display_name, stock quantities, …).
    Computed,
    /// one2many: the records of `relation` whose `inverse` points here.
    Inverse(String),
    /// Record metadata (create/write date and uid).
    Meta,
}

/// A default applied on create when the field is not in the values.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    Const(Val),
    Today,
    Now,
    Uid,
    /// The user's company (always the main company here).
    Company,
    /// The company currency.
    Currency,
    /// A sequence-generated name: prefix + zero-padded counter.
    Sequence(&'static str, usize),
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub ftype: FieldType,
    pub string: String,
    pub required: bool,
    pub readonly: bool,
    pub relation: Option<String>,
    pub selection: Vec<(String, String)>,
    pub storage: Storage,
    pub default: Option<DefaultValue>,
    /// Maintain a value → records index (many2one, integer and char columns).
    pub indexed: bool,
    pub help: Option<String>,
    /// What `fields_get` reports where Odoo has a richer type than the simulator
    /// needs (`many2one_reference`: an id whose model another field names).
    pub reported_type: Option<&'static str>,
    /// Computed here on read, but stored by Odoo (so groupable and sortable).
    pub stored_in_odoo: bool,
}

impl FieldDef {
    pub fn is_stored(&self) -> bool {
        matches!(
            self.storage,
            Storage::Stored(_) | Storage::Id | Storage::Meta | Storage::Inverse(_)
        )
    }

    pub fn slot(&self) -> Option<usize> {
        match self.storage {
            Storage::Stored(slot) => Some(slot),
            _ => None,
        }
    }

    pub fn req(&mut self) -> &mut Self {
        self.required = true;
        self
    }

    pub fn ro(&mut self) -> &mut Self {
        self.readonly = true;
        self
    }

    /// The id of a record whose model `res_model` names (`many2one_reference`).
    pub fn reference(&mut self) -> &mut Self {
        self.reported_type = Some("many2one_reference");
        self
    }

    /// A compute Odoo stores (`store=True`), which the simulator does on read.
    pub fn stored_in_odoo(&mut self) -> &mut Self {
        self.stored_in_odoo = true;
        self
    }

    pub fn default(&mut self, value: DefaultValue) -> &mut Self {
        self.default = Some(value);
        self
    }

    pub fn default_val(&mut self, value: Val) -> &mut Self {
        self.default = Some(DefaultValue::Const(value));
        self
    }

    pub fn index(&mut self) -> &mut Self {
        self.indexed = true;
        self
    }

    pub fn help(&mut self, text: &str) -> &mut Self {
        self.help = Some(text.to_string());
        self
    }
}

/// A model (`_name`) and its fields.
#[derive(Debug, Clone)]
pub struct ModelDef {
    pub name: String,
    pub description: String,
    pub fields: Vec<FieldDef>,
    pub by_name: HashMap<String, usize>,
    pub slots: usize,
    /// Field used for display_name and name_search.
    pub rec_name: String,
    /// Default `_order`.
    pub order: String,
    pub has_active: bool,
    pub is_mail_thread: bool,
    pub parent_field: Option<String>,
    pub transient: bool,
}

impl ModelDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.by_name.get(name).map(|&index| &self.fields[index])
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.field(name).and_then(FieldDef::slot)
    }
}

/// Builds a model's field list.
pub struct ModelBuilder {
    def: ModelDef,
}

impl ModelBuilder {
    pub fn new(name: &str, description: &str) -> ModelBuilder {
        let mut builder = ModelBuilder {
            def: ModelDef {
                name: name.to_string(),
                description: description.to_string(),
                fields: Vec::new(),
                by_name: HashMap::new(),
                slots: 0,
                rec_name: "name".to_string(),
                order: "id".to_string(),
                has_active: false,
                is_mail_thread: false,
                parent_field: None,
                transient: false,
            },
        };
        builder
            .add("id", FieldType::Integer, "ID", Storage::Id)
            .ro();
        builder
            .add(
                "display_name",
                FieldType::Char,
                "Display Name",
                Storage::Computed,
            )
            .ro();
        builder
            .add(
                "create_date",
                FieldType::Datetime,
                "Created on",
                Storage::Meta,
            )
            .ro();
        builder
            .add(
                "write_date",
                FieldType::Datetime,
                "Last Updated on",
                Storage::Meta,
            )
            .ro();
        builder
            .add(
                "create_uid",
                FieldType::Many2one,
                "Created by",
                Storage::Meta,
            )
            .ro()
            .relation = Some("res.users".into());
        builder
            .add(
                "write_uid",
                FieldType::Many2one,
                "Last Updated by",
                Storage::Meta,
            )
            .ro()
            .relation = Some("res.users".into());
        builder
    }

    fn add(
        &mut self,
        name: &str,
        ftype: FieldType,
        string: &str,
        storage: Storage,
    ) -> &mut FieldDef {
        if let Some(&index) = self.def.by_name.get(name) {
            // Redefinition (a version-specific override) replaces the field.
            let slot = self.def.fields[index].slot();
            let storage = match (storage, slot) {
                (Storage::Stored(_), Some(old)) => Storage::Stored(old),
                (other, _) => other,
            };
            self.def.fields[index] = new_field(name, ftype, string, storage);
            return &mut self.def.fields[index];
        }
        self.def
            .by_name
            .insert(name.to_string(), self.def.fields.len());
        self.def
            .fields
            .push(new_field(name, ftype, string, storage));
        let last = self.def.fields.len() - 1;
        &mut self.def.fields[last]
    }

    fn stored(&mut self, name: &str, ftype: FieldType, string: &str) -> &mut FieldDef {
        let slot = self.def.slots;
        let replacing = self.def.by_name.contains_key(name)
            && self.def.field(name).and_then(FieldDef::slot).is_some();
        if !replacing {
            self.def.slots += 1;
        }
        self.add(name, ftype, string, Storage::Stored(slot))
    }

    pub fn char(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Char, string)
    }
    pub fn text(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Text, string)
    }
    pub fn html(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Html, string)
    }
    pub fn int(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Integer, string)
            .default_val(Val::Int(0))
    }
    pub fn float(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Float, string)
            .default_val(Val::Float(0.0))
    }
    pub fn monetary(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Monetary, string)
            .default_val(Val::Float(0.0))
    }
    pub fn boolean(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Boolean, string)
            .default_val(Val::Bool(false))
    }
    pub fn date(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Date, string)
    }
    pub fn datetime(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Datetime, string)
    }
    pub fn binary(&mut self, name: &str, string: &str) -> &mut FieldDef {
        self.stored(name, FieldType::Binary, string)
    }
    pub fn selection(
        &mut self,
        name: &str,
        string: &str,
        options: &[(&str, &str)],
    ) -> &mut FieldDef {
        let field = self.stored(name, FieldType::Selection, string);
        field.selection = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        field
    }
    pub fn m2o(&mut self, name: &str, string: &str, relation: &str) -> &mut FieldDef {
        let field = self.stored(name, FieldType::Many2one, string);
        field.relation = Some(relation.to_string());
        field
    }
    pub fn m2m(&mut self, name: &str, string: &str, relation: &str) -> &mut FieldDef {
        let field = self.stored(name, FieldType::Many2many, string);
        field.relation = Some(relation.to_string());
        field
    }
    pub fn o2m(
        &mut self,
        name: &str,
        string: &str,
        relation: &str,
        inverse: &str,
    ) -> &mut FieldDef {
        let field = self.add(
            name,
            FieldType::One2many,
            string,
            Storage::Inverse(inverse.to_string()),
        );
        field.relation = Some(relation.to_string());
        field
    }
    pub fn related(
        &mut self,
        name: &str,
        ftype: FieldType,
        string: &str,
        path: &str,
    ) -> &mut FieldDef {
        self.add(
            name,
            ftype,
            string,
            Storage::Related(path.split('.').map(str::to_string).collect()),
        )
    }
    pub fn related_rel(
        &mut self,
        name: &str,
        ftype: FieldType,
        string: &str,
        path: &str,
        relation: &str,
    ) -> &mut FieldDef {
        let field = self.related(name, ftype, string, path);
        field.relation = Some(relation.to_string());
        field
    }
    pub fn computed(&mut self, name: &str, ftype: FieldType, string: &str) -> &mut FieldDef {
        self.add(name, ftype, string, Storage::Computed).ro()
    }
    pub fn computed_rel(
        &mut self,
        name: &str,
        ftype: FieldType,
        string: &str,
        relation: &str,
    ) -> &mut FieldDef {
        let field = self.computed(name, ftype, string);
        field.relation = Some(relation.to_string());
        field
    }
    pub fn computed_sel(
        &mut self,
        name: &str,
        string: &str,
        options: &[(&str, &str)],
    ) -> &mut FieldDef {
        let field = self.computed(name, FieldType::Selection, string);
        field.selection = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        field
    }

    pub fn active(&mut self) -> &mut Self {
        self.boolean("active", "Active")
            .default_val(Val::Bool(true));
        self.def.has_active = true;
        self
    }
    pub fn name_field(&mut self, field: &str) -> &mut Self {
        self.def.rec_name = field.to_string();
        self
    }
    pub fn order(&mut self, order: &str) -> &mut Self {
        self.def.order = order.to_string();
        self
    }
    pub fn mail_thread(&mut self) -> &mut Self {
        self.def.is_mail_thread = true;
        self.o2m("message_ids", "Messages", "mail.message", "res_id");
        self.o2m("activity_ids", "Activities", "mail.activity", "res_id");
        self
    }
    pub fn parent(&mut self, field: &str) -> &mut Self {
        self.def.parent_field = Some(field.to_string());
        self
    }
    pub fn remove(&mut self, name: &str) -> &mut Self {
        // Keeps slots stable: the column simply becomes unreachable.
        if let Some(index) = self.def.by_name.remove(name) {
            self.def.fields.remove(index);
            self.def.by_name = self
                .def
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.clone(), i))
                .collect();
        }
        self
    }

    pub fn build(self) -> ModelDef {
        self.def
    }
}

fn new_field(name: &str, ftype: FieldType, string: &str, storage: Storage) -> FieldDef {
    FieldDef {
        name: name.to_string(),
        ftype,
        string: string.to_string(),
        required: false,
        readonly: false,
        relation: None,
        selection: Vec::new(),
        storage,
        default: None,
        indexed: false,
        help: None,
        reported_type: None,
        stored_in_odoo: false,
    }
}

/// All models of one simulated server.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub models: Vec<Arc<ModelDef>>,
    pub by_name: HashMap<String, usize>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<ModelDef>> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }
}

/// Builds the registry for a version and edition.
pub fn registry(version: OdooVersion, edition: Edition) -> Registry {
    let v = version.major();
    let mut models: Vec<ModelDef> = Vec::new();
    use FieldType as T;

    // --- base ---
    let mut m = ModelBuilder::new("res.currency", "Currency");
    m.char("name", "Currency").req();
    m.char("symbol", "Symbol").req();
    m.float("rate", "Current Rate").default_val(Val::Float(1.0));
    m.active();
    models.push(m.build());

    let mut m = ModelBuilder::new("res.company", "Companies");
    m.char("name", "Company Name").req();
    m.m2o("currency_id", "Currency", "res.currency")
        .default(DefaultValue::Currency);
    m.m2o("partner_id", "Partner", "res.partner");
    m.active().order("sequence, name");
    m.int("sequence", "Sequence").default_val(Val::Int(10));
    if v >= 19 {
        m.int("horizon_days", "Replenishment Horizon")
            .default_val(Val::Int(365));
    }
    // Purchase's approval settings: above the amount, a two-step company
    // sends an RFQ confirmed by a non-manager to "to approve".
    m.selection(
        "po_double_validation",
        "Levels of Approvals",
        &[
            ("one_step", "Confirm purchase orders in one step"),
            (
                "two_step",
                "Get 2 levels of approvals to confirm a purchase order",
            ),
        ],
    )
    .default_val(Val::str("one_step"));
    m.monetary("po_double_validation_amount", "Double validation amount")
        .default_val(Val::Float(5000.0));
    models.push(m.build());

    let mut m = ModelBuilder::new("res.country", "Country");
    m.char("name", "Country Name").req();
    m.char("code", "Country Code");
    m.order("name, id");
    models.push(m.build());

    let mut m = ModelBuilder::new("res.partner", "Contact");
    m.char("name", "Name");
    m.boolean("is_company", "Is a Company");
    m.m2o("parent_id", "Related Company", "res.partner").index();
    m.o2m("child_ids", "Contact", "res.partner", "parent_id");
    m.char("email", "Email");
    m.char("phone", "Phone");
    if v < 19 {
        m.char("mobile", "Mobile");
    }
    m.char("ref", "Reference").index();
    m.char("street", "Street");
    m.char("street2", "Street2");
    m.char("zip", "Zip");
    m.char("city", "City");
    m.m2o("country_id", "Country", "res.country");
    m.html("comment", "Notes");
    m.char("website", "Website Link");
    m.char("vat", "Tax ID").index();
    m.char("function", "Job Position");
    m.int("supplier_rank", "Supplier Rank");
    m.int("customer_rank", "Customer Rank");
    m.m2o("company_id", "Company", "res.company");
    m.char("lang", "Language").default_val(Val::str("en_US"));
    m.active().order("complete_name ASC, id DESC").mail_thread();
    m.computed("complete_name", T::Char, "Complete Name");
    models.push(m.build());

    let mut m = ModelBuilder::new("res.groups", "Access Groups");
    m.char("name", "Name").req();
    m.computed("full_name", T::Char, "Group Name");
    m.char("category_name", "Application");
    // Up to 18 `users` also lists members through implied groups (they are
    // written in); 19 keeps direct members in `user_ids` and computes the
    // rest into `all_user_ids`.
    m.m2m("implied_ids", "Inherits", "res.groups");
    if v >= 19 {
        m.m2m("user_ids", "Users", "res.users");
        m.computed_rel(
            "all_user_ids",
            T::Many2many,
            "Users and implied users",
            "res.users",
        );
        m.computed_rel(
            "all_implied_ids",
            T::Many2many,
            "Transitively Implied Groups",
            "res.groups",
        );
        m.computed_rel(
            "all_implied_by_ids",
            T::Many2many,
            "Transitively Implying Groups",
            "res.groups",
        );
    } else {
        m.m2m("users", "Users", "res.users");
        m.computed_rel(
            "trans_implied_ids",
            T::Many2many,
            "Transitively inherits",
            "res.groups",
        );
    }
    if v >= 18 {
        m.int("api_key_duration", "API Keys maximum duration days");
    }
    m.order("name");
    models.push(m.build());

    let mut m = ModelBuilder::new("res.users", "User");
    m.char("login", "Login").req();
    m.m2o("partner_id", "Related Partner", "res.partner").req();
    m.related("name", T::Char, "Name", "partner_id.name");
    m.related("email", T::Char, "Email", "partner_id.email");
    m.m2o("company_id", "Company", "res.company")
        .default(DefaultValue::Company);
    m.m2m("company_ids", "Companies", "res.company");
    m.boolean("share", "Share User");
    m.char("tz", "Timezone")
        .default_val(Val::str("Europe/Brussels"));
    m.char("lang", "Language").default_val(Val::str("en_US"));
    if v >= 19 {
        m.m2m("group_ids", "Groups", "res.groups");
        m.computed_rel(
            "all_group_ids",
            T::Many2many,
            "Groups and implied groups",
            "res.groups",
        );
    } else {
        m.m2m("groups_id", "Groups", "res.groups");
    }
    m.active().order("name, login").name_field("name");
    models.push(m.build());

    let mut m = ModelBuilder::new("res.users.apikeys", "Users API Keys");
    m.char("name", "Description").req();
    m.m2o("user_id", "User", "res.users").req().index();
    m.char("scope", "Scope");
    if v >= 18 {
        m.datetime("expiration_date", "Expiration Date");
    }
    models.push(m.build());

    let mut m = ModelBuilder::new("ir.model", "Models");
    m.char("model", "Model").req();
    m.char("name", "Model Description").req();
    m.selection(
        "state",
        "Type",
        &[("manual", "Custom Object"), ("base", "Base Object")],
    )
    .default_val(Val::str("manual"));
    m.boolean("transient", "Transient Model");
    m.boolean("is_mail_thread", "Has Mail Thread");
    m.o2m("field_id", "Fields", "ir.model.fields", "model_id");
    m.order("model");
    models.push(m.build());

    let mut m = ModelBuilder::new("ir.model.fields", "Fields");
    m.char("name", "Field Name").req();
    m.char("field_description", "Field Label").req();
    m.m2o("model_id", "Model", "ir.model").req().index();
    m.char("model", "Model Name");
    m.char("ttype", "Field Type").req();
    m.char("relation", "Related Model");
    m.boolean("required", "Required");
    m.boolean("readonly", "Readonly");
    m.boolean("store", "Stored").default_val(Val::Bool(true));
    m.order("name");
    models.push(m.build());

    let mut m = ModelBuilder::new("ir.model.fields.selection", "Fields Selection");
    m.m2o("field_id", "Field", "ir.model.fields").req().index();
    m.char("value", "Value").req();
    m.char("name", "Name").req();
    m.int("sequence", "Sequence");
    m.order("sequence, id");
    models.push(m.build());

    let mut m = ModelBuilder::new("ir.model.data", "Model Data");
    m.char("name", "External Identifier").req();
    m.char("module", "Module").req().default_val(Val::str(""));
    m.char("model", "Model Name").req();
    m.int("res_id", "Record ID");
    m.boolean("noupdate", "Non Updatable");
    m.computed("complete_name", T::Char, "Complete ID");
    m.name_field("complete_name").order("module, model, name");
    models.push(m.build());

    // System parameters; `database.uuid` tells a restored or recreated
    // database from the one a client cached data from.
    let mut m = ModelBuilder::new("ir.config_parameter", "System Parameter");
    m.char("key", "Key").req().index();
    m.text("value", "Value").req();
    m.name_field("key").order("key");
    models.push(m.build());

    let mut m = ModelBuilder::new("ir.attachment", "Attachment");
    m.char("name", "Name").req();
    m.char("res_model", "Resource Model");
    m.int("res_id", "Resource ID");
    m.binary("datas", "File Content (base64)");
    m.char("mimetype", "Mime Type");
    m.selection("type", "Type", &[("url", "URL"), ("binary", "File")])
        .default_val(Val::str("binary"));
    m.char("url", "Url");
    m.order("id desc");
    models.push(m.build());

    let server_states: Vec<(&str, &str)> = if v >= 17 {
        vec![
            ("object_write", "Update Record"),
            ("object_create", "Create Record"),
            ("code", "Execute Code"),
            ("webhook", "Send Webhook Notification"),
            ("multi", "Execute Existing Actions"),
            ("mail_post", "Send email"),
            ("followers", "Add followers"),
            ("remove_followers", "Remove followers"),
            ("next_activity", "Create Activity"),
        ]
    } else {
        vec![
            ("code", "Execute Python Code"),
            ("object_create", "Create a new Record"),
            ("object_write", "Update the Record"),
            ("multi", "Execute several actions"),
            ("email", "Send Email"),
            ("followers", "Add Followers"),
            ("next_activity", "Create Next Activity"),
        ]
    };
    let mut m = ModelBuilder::new("ir.actions.server", "Server Actions");
    m.char("name", "Action Name").req();
    m.m2o("model_id", "Model", "ir.model").req();
    m.related("model_name", T::Char, "Model Name", "model_id.model");
    m.selection("state", "Type", &server_states)
        .req()
        .default_val(Val::str(if v >= 17 { "object_write" } else { "code" }));
    m.text("code", "Python Code");
    m.int("sequence", "Sequence").default_val(Val::Int(5));
    m.selection(
        "usage",
        "Usage",
        &[
            ("ir_actions_server", "Server Action"),
            ("ir_cron", "Scheduled Action"),
            ("base_automation", "Automation Rule"),
        ],
    )
    .default_val(Val::str("ir_actions_server"));
    m.m2o("binding_model_id", "Binding Model", "ir.model");
    if v >= 17 {
        m.char("webhook_url", "Webhook URL");
        m.m2m("webhook_field_ids", "Webhook Fields", "ir.model.fields");
        m.computed("webhook_sample_payload", T::Text, "Sample Payload");
        m.m2o("base_automation_id", "Automation Rule", "base.automation")
            .index();
        m.char("update_path", "Field to Update Path");
        m.m2o("update_field_id", "Field to Update", "ir.model.fields");
        m.text("value", "Value");
        m.selection(
            "evaluation_type",
            "Value Type",
            &[("value", "Update"), ("equation", "Compute")],
        )
        .default_val(Val::str("value"));
    }
    if v >= 19 {
        m.m2m("group_ids", "Allowed Groups", "res.groups");
    } else {
        m.m2m("groups_id", "Groups", "res.groups");
    }
    m.m2o("activity_type_id", "Activity Type", "mail.activity.type");
    m.char("activity_summary", "Activity Summary");
    m.order("sequence,name");
    models.push(m.build());

    let mut m = ModelBuilder::new("ir.cron", "Scheduled Actions");
    m.m2o("ir_actions_server_id", "Server action", "ir.actions.server");
    m.char("cron_name", "Name");
    m.char("name", "Action Name").req();
    m.m2o("model_id", "Model", "ir.model").req();
    m.selection("state", "Type", &server_states)
        .default_val(Val::str("code"));
    m.text("code", "Python Code");
    m.m2o("user_id", "Scheduler User", "res.users")
        .default(DefaultValue::Uid)
        .req();
    m.int("interval_number", "Interval Number")
        .default_val(Val::Int(1));
    m.selection(
        "interval_type",
        "Interval Unit",
        &[
            ("minutes", "Minutes"),
            ("hours", "Hours"),
            ("days", "Days"),
            ("weeks", "Weeks"),
            ("months", "Months"),
        ],
    )
    .default_val(Val::str("months"));
    m.datetime("nextcall", "Next Execution Date")
        .req()
        .default(DefaultValue::Now);
    m.datetime("lastcall", "Last Execution Date");
    m.int("priority", "Priority").default_val(Val::Int(5));
    if v <= 17 {
        m.int("numbercall", "Number of Calls")
            .default_val(Val::Int(1));
        m.boolean("doall", "Repeat Missed");
    } else {
        m.int("failure_count", "Failure Count");
        m.datetime("first_failure_date", "First Failure Date");
    }
    m.active();
    m.order("cron_name");
    models.push(m.build());

    let triggers: Vec<(&str, &str)> = if v >= 17 {
        vec![
            ("on_stage_set", "Stage is set to"),
            ("on_user_set", "User is set"),
            ("on_tag_set", "Tag is added"),
            ("on_state_set", "State is set to"),
            ("on_priority_set", "Priority is set to"),
            ("on_archive", "On archived"),
            ("on_unarchive", "On unarchived"),
            ("on_create_or_write", "On save"),
            ("on_create", "On creation"),
            ("on_write", "On update"),
            ("on_unlink", "On deletion"),
            ("on_change", "On UI change"),
            ("on_time", "Based on date field"),
            ("on_time_created", "After creation"),
            ("on_time_updated", "After last update"),
            ("on_message_received", "On incoming message"),
            ("on_message_sent", "On outgoing message"),
            ("on_webhook", "On webhook"),
        ]
    } else {
        vec![
            ("on_create", "On Creation"),
            ("on_write", "On Update"),
            ("on_create_or_write", "On Creation & Update"),
            ("on_unlink", "On Deletion"),
            ("on_change", "Based on Form Modification"),
            ("on_time", "Based on Timed Condition"),
        ]
    };
    let mut m = ModelBuilder::new("base.automation", "Automation Rule");
    if v >= 17 {
        m.char("name", "Automation Rule Name").req();
        m.m2o("model_id", "Model", "ir.model").req();
        m.related("model_name", T::Char, "Model Name", "model_id.model");
        m.o2m(
            "action_server_ids",
            "Actions",
            "ir.actions.server",
            "base_automation_id",
        );
        m.html("description", "Description");
        m.char("webhook_uuid", "Webhook UUID");
        m.computed("url", T::Char, "URL");
        m.text("record_getter", "Record Getter")
            .default_val(Val::str(
                "model.env[payload.get('_model')].browse(int(payload.get('_id')))",
            ));
        m.boolean("log_webhook_calls", "Log Calls");
        m.m2o(
            "trg_selection_field_id",
            "Trigger Field",
            "ir.model.fields.selection",
        );
        m.int("trg_field_ref", "Trigger Reference");
    } else {
        // 16: the rule delegates to a server action (_inherits).
        m.m2o("action_server_id", "Server Actions", "ir.actions.server")
            .req();
        m.related("name", T::Char, "Name", "action_server_id.name");
        m.related_rel(
            "model_id",
            T::Many2one,
            "Model",
            "action_server_id.model_id",
            "ir.model",
        );
        m.related(
            "model_name",
            T::Char,
            "Model Name",
            "action_server_id.model_id.model",
        );
        m.related(
            "state",
            T::Selection,
            "Action To Do",
            "action_server_id.state",
        );
        m.related("code", T::Text, "Python Code", "action_server_id.code");
    }
    m.selection("trigger", "Trigger", &triggers).req();
    m.m2m("trigger_field_ids", "Trigger Fields", "ir.model.fields");
    m.m2m(
        "on_change_field_ids",
        "On Change Fields Trigger",
        "ir.model.fields",
    );
    m.char("filter_pre_domain", "Before Update Domain");
    m.char("filter_domain", "Apply on");
    m.m2o("trg_date_id", "Trigger Date", "ir.model.fields");
    m.int("trg_date_range", "Delay after trigger date");
    m.selection(
        "trg_date_range_type",
        "Delay type",
        &[
            ("minutes", "Minutes"),
            ("hour", "Hours"),
            ("day", "Days"),
            ("month", "Months"),
        ],
    )
    .default_val(Val::str(if v >= 17 { "hour" } else { "day" }));
    if v >= 19 {
        m.selection(
            "trg_date_range_mode",
            "Delay mode",
            &[("after", "After"), ("before", "Before")],
        )
        .default_val(Val::str("after"));
        m.mail_thread();
    }
    m.datetime("last_run", "Last Run");
    m.active();
    models.push(m.build());

    // --- mail ---
    let mut m = ModelBuilder::new("mail.activity.type", "Activity Type");
    m.char("name", "Name").req();
    m.char("summary", "Default Summary");
    m.selection(
        "category",
        "Action",
        &[
            ("default", "None"),
            ("upload_file", "Upload Document"),
            ("phonecall", "Phonecall"),
            ("meeting", "Meeting"),
        ],
    )
    .default_val(Val::str("default"));
    m.int("delay_count", "Schedule");
    m.selection(
        "delay_unit",
        "Delay units",
        &[("days", "days"), ("weeks", "weeks"), ("months", "months")],
    )
    .default_val(Val::str("days"));
    m.char("res_model", "Model");
    // Font Awesome class the "done" message shows before the type's name.
    m.char("icon", "Icon");
    m.m2o("default_user_id", "Default User", "res.users");
    m.selection(
        "chaining_type",
        "Chaining Type",
        &[
            ("suggest", "Suggest Next Activity"),
            ("trigger", "Trigger Next Activity"),
        ],
    )
    .default_val(Val::str("suggest"));
    m.int("sequence", "Sequence").default_val(Val::Int(10));
    if matches!(version, OdooVersion::V17 | OdooVersion::V18) {
        // 17 and 18: done activities of such a type are archived instead of
        // deleted (19 archives every done activity and dropped the flag).
        m.boolean("keep_done", "Keep Done")
            .default_val(Val::Bool(false));
    }
    m.active().order("sequence, id");
    models.push(m.build());

    let mut m = ModelBuilder::new("mail.activity", "Activity");
    m.m2o("res_model_id", "Document Model", "ir.model").req();
    m.related(
        "res_model",
        T::Char,
        "Related Document Model",
        "res_model_id.model",
    );
    m.int("res_id", "Related Document ID").req().reference();
    m.computed("res_name", T::Char, "Document Name");
    m.m2o("activity_type_id", "Activity Type", "mail.activity.type");
    m.related(
        "activity_category",
        T::Selection,
        "Action",
        "activity_type_id.category",
    );
    m.m2o("user_id", "Assigned to", "res.users")
        .default(DefaultValue::Uid);
    m.char("summary", "Summary");
    m.html("note", "Note");
    m.date("date_deadline", "Due Date")
        .req()
        .default(DefaultValue::Today);
    m.date("date_done", "Done Date");
    m.computed_sel(
        "state",
        "State",
        &[
            ("overdue", "Overdue"),
            ("today", "Today"),
            ("planned", "Planned"),
            ("done", "Done"),
        ],
    );
    m.active()
        .order("date_deadline ASC, id ASC")
        .name_field("summary");
    models.push(m.build());

    // Who follows which record: activities subscribe their assignee, and
    // Odoo's unique key on (model, record, partner) is what a batch naming the
    // same record twice for a new follower trips over on 17 and 18.
    let mut m = ModelBuilder::new("mail.followers", "Document Followers");
    m.char("res_model", "Related Document Model Name").req();
    m.int("res_id", "Related Document ID").index().reference();
    m.m2o("partner_id", "Related Partner", "res.partner")
        .req()
        .index();
    m.name_field("partner_id");
    models.push(m.build());

    let mut m = ModelBuilder::new("mail.message.subtype", "Message subtypes");
    m.char("name", "Message Type").req();
    m.text("description", "Description");
    m.boolean("internal", "Internal Only");
    m.char("res_model", "Model");
    m.int("sequence", "Sequence").default_val(Val::Int(1));
    m.order("sequence, id");
    models.push(m.build());

    let mut m = ModelBuilder::new("mail.message", "Message");
    m.char("subject", "Subject");
    m.html("body", "Contents").default_val(Val::str(""));
    m.char("model", "Related Document Model");
    m.int("res_id", "Related Document ID").index().reference();
    m.char("record_name", "Message Record Name");
    m.selection(
        "message_type",
        "Type",
        &[
            ("email", "Incoming Email"),
            ("comment", "Comment"),
            ("email_outgoing", "Outgoing Email"),
            ("notification", "System notification"),
            ("auto_comment", "Automated Targeted Notification"),
            ("user_notification", "User Specific Notification"),
        ],
    )
    .default_val(Val::str("comment"));
    m.m2o("author_id", "Author", "res.partner");
    m.m2o("subtype_id", "Subtype", "mail.message.subtype");
    m.m2o(
        "mail_activity_type_id",
        "Mail Activity Type",
        "mail.activity.type",
    );
    m.datetime("date", "Date").default(DefaultValue::Now);
    m.m2m("attachment_ids", "Attachments", "ir.attachment");
    m.m2m("partner_ids", "Recipients", "res.partner");
    m.order("id desc").name_field("subject");
    models.push(m.build());

    // --- product ---
    let mut m = ModelBuilder::new("uom.category", "Product UoM Categories");
    m.char("name", "Unit of Measure Category").req();
    models.push(m.build());

    let mut m = ModelBuilder::new("uom.uom", "Product Unit of Measure");
    m.char("name", "Unit of Measure").req();
    m.m2o("category_id", "Category", "uom.category");
    // Up to 18 `factor` is how many of this unit make one reference unit (a
    // dozen: 1/12); 19 states a unit as `relative_factor` times another and
    // computes `factor` as its size in the root unit (a dozen: 12).
    if v >= 19 {
        m.float("relative_factor", "Contains")
            .default_val(Val::Float(1.0));
        m.m2o("relative_uom_id", "Reference Unit", "uom.uom");
        m.computed("factor", T::Float, "Absolute Quantity");
    } else {
        m.float("factor", "Ratio").default_val(Val::Float(1.0));
    }
    m.float("rounding", "Rounding Precision")
        .default_val(Val::Float(0.01));
    m.selection(
        "uom_type",
        "Type",
        &[
            ("bigger", "Bigger than the reference Unit of Measure"),
            ("reference", "Reference Unit of Measure for this category"),
            ("smaller", "Smaller than the reference Unit of Measure"),
        ],
    )
    .default_val(Val::str("reference"));
    m.active().order(if v >= 19 {
        "relative_uom_id, id"
    } else {
        "factor DESC, id"
    });
    models.push(m.build());

    let mut m = ModelBuilder::new("product.category", "Product Category");
    m.char("name", "Name").req();
    m.m2o("parent_id", "Parent Category", "product.category")
        .index();
    m.o2m(
        "child_id",
        "Child Categories",
        "product.category",
        "parent_id",
    );
    m.computed("complete_name", T::Char, "Complete Name");
    m.int("product_count", "# Products");
    m.parent("parent_id")
        .name_field("complete_name")
        .order("complete_name");
    models.push(m.build());

    let type_options: Vec<(&str, &str)> = if v >= 18 {
        vec![
            ("consu", "Goods"),
            ("service", "Service"),
            ("combo", "Combo"),
        ]
    } else {
        vec![
            ("consu", "Consumable"),
            ("service", "Service"),
            ("product", "Storable Product"),
        ]
    };
    let template_fields = |m: &mut ModelBuilder, stored: bool| {
        // product.product reads these through product_tmpl_id.
        let add = |m: &mut ModelBuilder, name: &str, t: FieldType, s: &str| -> usize {
            if stored {
                match t {
                    T::Char => m.char(name, s),
                    T::Text => m.text(name, s),
                    T::Float => m.float(name, s),
                    T::Boolean => m.boolean(name, s),
                    _ => m.char(name, s),
                };
            } else {
                m.related(name, t, s, &format!("product_tmpl_id.{name}"));
            }
            0
        };
        add(m, "name", T::Char, "Name");
        add(m, "description", T::Text, "Description");
        add(m, "list_price", T::Float, "Sales Price");
        add(m, "standard_price", T::Float, "Cost");
        add(m, "sale_ok", T::Boolean, "Can be Sold");
        add(m, "purchase_ok", T::Boolean, "Can be Purchased");
        add(m, "weight", T::Float, "Weight");
        add(m, "volume", T::Float, "Volume");
        add(m, "sale_delay", T::Float, "Customer Lead Time");
    };

    let mut m = ModelBuilder::new("product.template", "Product");
    template_fields(&mut m, true);
    m.fields_mut("name").req();
    m.fields_mut("sale_ok").default_val(Val::Bool(true));
    m.fields_mut("purchase_ok").default_val(Val::Bool(true));
    m.fields_mut("list_price").default_val(Val::Float(1.0));
    m.char("default_code", "Internal Reference").index();
    m.char("barcode", "Barcode");
    m.selection("type", "Product Type", &type_options)
        .req()
        .default_val(Val::str("consu"));
    if v == 17 {
        m.selection("detailed_type", "Product Type", &type_options)
            .req()
            .default_val(Val::str("consu"));
    }
    if v >= 18 {
        m.boolean("is_storable", "Track Inventory");
    }
    m.m2o("categ_id", "Product Category", "product.category")
        .req()
        .index();
    m.m2o("uom_id", "Unit of Measure", "uom.uom").req();
    if v <= 18 {
        m.m2o("uom_po_id", "Purchase Unit of Measure", "uom.uom")
            .req();
    } else {
        m.m2m("uom_ids", "Packagings", "uom.uom");
    }
    m.m2o("company_id", "Company", "res.company");
    m.m2m("route_ids", "Routes", "stock.route");
    m.o2m(
        "seller_ids",
        "Vendors",
        "product.supplierinfo",
        "product_tmpl_id",
    );
    m.o2m(
        "product_variant_ids",
        "Products",
        "product.product",
        "product_tmpl_id",
    );
    m.computed_rel(
        "product_variant_id",
        T::Many2one,
        "Product",
        "product.product",
    );
    m.computed("qty_available", T::Float, "Quantity On Hand");
    m.computed("virtual_available", T::Float, "Forecasted Quantity");
    m.computed("incoming_qty", T::Float, "Incoming");
    m.computed("outgoing_qty", T::Float, "Outgoing");
    m.computed("nbr_reordering_rules", T::Integer, "Reordering Rules");
    m.computed("reordering_min_qty", T::Float, "Min");
    m.computed("reordering_max_qty", T::Float, "Max");
    m.active().order("priority desc, name").mail_thread();
    m.selection(
        "priority",
        "Favorite",
        &[("0", "Normal"), ("1", "Favorite")],
    )
    .default_val(Val::str("0"));
    models.push(m.build());

    let mut m = ModelBuilder::new("product.product", "Product Variant");
    m.m2o("product_tmpl_id", "Product Template", "product.template")
        .req()
        .index();
    template_fields(&mut m, false);
    m.char("default_code", "Internal Reference").index();
    m.char("barcode", "Barcode");
    m.related("type", T::Selection, "Product Type", "product_tmpl_id.type")
        .selection = type_options
        .iter()
        .map(|(k, l)| (k.to_string(), l.to_string()))
        .collect();
    if v == 17 {
        m.related(
            "detailed_type",
            T::Selection,
            "Product Type",
            "product_tmpl_id.detailed_type",
        )
        .selection = type_options
            .iter()
            .map(|(k, l)| (k.to_string(), l.to_string()))
            .collect();
    }
    if v >= 18 {
        m.related(
            "is_storable",
            T::Boolean,
            "Track Inventory",
            "product_tmpl_id.is_storable",
        );
    }
    m.related_rel(
        "categ_id",
        T::Many2one,
        "Product Category",
        "product_tmpl_id.categ_id",
        "product.category",
    );
    m.related_rel(
        "uom_id",
        T::Many2one,
        "Unit of Measure",
        "product_tmpl_id.uom_id",
        "uom.uom",
    );
    if v <= 18 {
        m.related_rel(
            "uom_po_id",
            T::Many2one,
            "Purchase Unit of Measure",
            "product_tmpl_id.uom_po_id",
            "uom.uom",
        );
    }
    m.related_rel(
        "company_id",
        T::Many2one,
        "Company",
        "product_tmpl_id.company_id",
        "res.company",
    );
    m.related_rel(
        "seller_ids",
        T::One2many,
        "Vendors",
        "product_tmpl_id.seller_ids",
        "product.supplierinfo",
    );
    m.related_rel(
        "route_ids",
        T::Many2many,
        "Routes",
        "product_tmpl_id.route_ids",
        "stock.route",
    );
    m.computed("qty_available", T::Float, "Quantity On Hand");
    m.computed("virtual_available", T::Float, "Forecasted Quantity");
    m.computed("incoming_qty", T::Float, "Incoming");
    m.computed("outgoing_qty", T::Float, "Outgoing");
    m.computed("free_qty", T::Float, "Free To Use Quantity");
    m.computed("nbr_reordering_rules", T::Integer, "Reordering Rules");
    m.computed("reordering_min_qty", T::Float, "Min");
    m.computed("reordering_max_qty", T::Float, "Max");
    m.o2m("stock_move_ids", "Stock Move", "stock.move", "product_id");
    m.o2m(
        "stock_quant_ids",
        "Stock Quant",
        "stock.quant",
        "product_id",
    );
    m.active().order("default_code, name, id").mail_thread();
    models.push(m.build());

    let mut m = ModelBuilder::new("product.supplierinfo", "Supplier Pricelist");
    m.m2o("partner_id", "Vendor", "res.partner").req();
    m.char("product_name", "Vendor Product Name");
    m.char("product_code", "Vendor Product Code");
    m.int("sequence", "Sequence").default_val(Val::Int(1));
    m.float("min_qty", "Quantity");
    m.float("price", "Price");
    m.m2o("currency_id", "Currency", "res.currency")
        .default(DefaultValue::Currency);
    m.m2o("company_id", "Company", "res.company")
        .default(DefaultValue::Company);
    m.date("date_start", "Start Date");
    m.date("date_end", "End Date");
    m.m2o("product_id", "Product Variant", "product.product");
    m.m2o("product_tmpl_id", "Product Template", "product.template")
        .index();
    m.int("delay", "Delivery Lead Time")
        .req()
        .default_val(Val::Int(1));
    if v >= 19 {
        m.related_rel(
            "product_uom_id",
            T::Many2one,
            "Unit",
            "product_tmpl_id.uom_id",
            "uom.uom",
        );
    } else {
        m.related_rel(
            "product_uom",
            T::Many2one,
            "Unit of Measure",
            "product_tmpl_id.uom_po_id",
            "uom.uom",
        );
    }
    m.order("sequence, min_qty DESC, price, id")
        .name_field("partner_id");
    models.push(m.build());

    // --- stock ---
    let mut m = ModelBuilder::new("stock.route", "Inventory Routes");
    m.char("name", "Route").req();
    m.int("sequence", "Sequence");
    m.active().order("sequence");
    models.push(m.build());

    let mut m = ModelBuilder::new("stock.location", "Inventory Locations");
    m.char("name", "Location Name").req();
    m.computed("complete_name", T::Char, "Full Location Name");
    m.m2o("location_id", "Parent Location", "stock.location")
        .index();
    m.o2m("child_ids", "Contains", "stock.location", "location_id");
    m.selection(
        "usage",
        "Location Type",
        &[
            ("supplier", "Vendor Location"),
            ("view", "View"),
            ("internal", "Internal Location"),
            ("customer", "Customer Location"),
            ("inventory", "Inventory Loss"),
            ("production", "Production"),
            ("transit", "Transit Location"),
        ],
    )
    .req()
    .default_val(Val::str("internal"));
    m.m2o("warehouse_id", "Warehouse", "stock.warehouse");
    m.m2o("company_id", "Company", "res.company");
    m.active()
        .parent("location_id")
        .name_field("complete_name")
        .order("complete_name, id");
    models.push(m.build());

    let mut m = ModelBuilder::new("stock.warehouse", "Warehouse");
    m.char("name", "Warehouse").req();
    m.char("code", "Short Name").req();
    m.m2o("company_id", "Company", "res.company")
        .req()
        .default(DefaultValue::Company);
    m.m2o("partner_id", "Address", "res.partner");
    m.m2o("view_location_id", "View Location", "stock.location");
    m.m2o("lot_stock_id", "Location Stock", "stock.location");
    m.m2o("in_type_id", "In Type", "stock.picking.type");
    m.m2o("out_type_id", "Out Type", "stock.picking.type");
    m.int("sequence", "Sequence").default_val(Val::Int(10));
    m.active().order("sequence,id");
    models.push(m.build());

    let mut m = ModelBuilder::new("stock.picking.type", "Picking Type");
    m.char("name", "Operation Type").req();
    m.selection(
        "code",
        "Type of Operation",
        &[
            ("incoming", "Receipt"),
            ("outgoing", "Delivery"),
            ("internal", "Internal Transfer"),
        ],
    )
    .req();
    m.char("sequence_code", "Sequence Prefix");
    m.m2o("warehouse_id", "Warehouse", "stock.warehouse");
    m.m2o(
        "default_location_src_id",
        "Default Source Location",
        "stock.location",
    );
    m.m2o(
        "default_location_dest_id",
        "Default Destination Location",
        "stock.location",
    );
    m.active().order("sequence, id");
    m.int("sequence", "Sequence");
    models.push(m.build());

    let mut m = ModelBuilder::new("stock.quant", "Quants");
    m.m2o("product_id", "Product", "product.product")
        .req()
        .index();
    m.m2o("location_id", "Location", "stock.location").req();
    m.related_rel(
        "warehouse_id",
        T::Many2one,
        "Warehouse",
        "location_id.warehouse_id",
        "stock.warehouse",
    );
    m.m2o("lot_id", "Lot/Serial Number", "stock.lot");
    m.m2o("package_id", "Package", "stock.quant.package");
    m.m2o("owner_id", "Owner", "res.partner");
    m.float("quantity", "Quantity").ro();
    m.float("reserved_quantity", "Reserved Quantity").ro();
    m.computed("available_quantity", T::Float, "Available Quantity");
    m.float("inventory_quantity", "Counted Quantity");
    m.datetime("in_date", "Incoming Date")
        .default(DefaultValue::Now);
    m.m2o("company_id", "Company", "res.company")
        .default(DefaultValue::Company);
    m.name_field("product_id");
    models.push(m.build());

    let picking_states: &[(&str, &str)] = &[
        ("draft", "Draft"),
        ("waiting", "Waiting Another Operation"),
        ("confirmed", "Waiting"),
        ("assigned", "Ready"),
        ("done", "Done"),
        ("cancel", "Cancelled"),
    ];
    let mut m = ModelBuilder::new("stock.picking", "Transfer");
    m.char("name", "Reference")
        .default(DefaultValue::Sequence("WH/IN/", 5));
    m.char("origin", "Source Document").index();
    m.selection("state", "Status", picking_states)
        .default_val(Val::str("draft"));
    m.datetime("scheduled_date", "Scheduled Date")
        .default(DefaultValue::Now);
    m.datetime("date_deadline", "Deadline");
    m.datetime("date_done", "Date of Transfer");
    m.m2o("partner_id", "Contact", "res.partner");
    m.m2o("picking_type_id", "Operation Type", "stock.picking.type")
        .req();
    m.related(
        "picking_type_code",
        T::Selection,
        "Type of Operation",
        "picking_type_id.code",
    );
    m.m2o("location_id", "Source Location", "stock.location")
        .req();
    m.m2o("location_dest_id", "Destination Location", "stock.location")
        .req();
    m.o2m("move_ids", "Stock Moves", "stock.move", "picking_id");
    m.m2o("purchase_id", "Purchase Orders", "purchase.order")
        .index();
    m.m2o("sale_id", "Sales Order", "sale.order").index();
    m.m2o("company_id", "Company", "res.company")
        .default(DefaultValue::Company);
    m.order("priority desc, scheduled_date asc, id desc")
        .mail_thread();
    m.selection("priority", "Priority", &[("0", "Normal"), ("1", "Urgent")])
        .default_val(Val::str("0"));
    models.push(m.build());

    let mut m = ModelBuilder::new("stock.move", "Stock Move");
    m.char("name", "Description").default_val(Val::str("/"));
    m.char("reference", "Reference");
    m.m2o("product_id", "Product", "product.product")
        .req()
        .index();
    m.float("product_uom_qty", "Demand").req();
    // In the move's own unit (`product_uom`); `product_qty` is the same
    // quantity in the product's unit, stored in Odoo.
    m.computed("product_qty", T::Float, "Real Quantity")
        .stored_in_odoo();
    if v >= 17 {
        m.float("quantity", "Quantity");
    } else {
        m.float("quantity_done", "Quantity Done");
    }
    // Defaults to the product's unit when a create leaves it out.
    m.m2o("product_uom", "UoM", "uom.uom");
    m.selection(
        "state",
        "Status",
        &[
            ("draft", "New"),
            ("waiting", "Waiting Another Move"),
            ("confirmed", "Waiting Availability"),
            ("partially_available", "Partially Available"),
            ("assigned", "Available"),
            ("done", "Done"),
            ("cancel", "Cancelled"),
        ],
    )
    .default_val(Val::str("draft"));
    m.datetime("date", "Date Scheduled")
        .req()
        .default(DefaultValue::Now);
    m.datetime("date_deadline", "Deadline");
    m.m2o("location_id", "Source Location", "stock.location")
        .req();
    m.m2o("location_dest_id", "Destination Location", "stock.location")
        .req();
    m.m2o("picking_id", "Transfer", "stock.picking").index();
    m.m2o("picking_type_id", "Operation Type", "stock.picking.type");
    m.related(
        "picking_code",
        T::Selection,
        "Type of Operation",
        "picking_type_id.code",
    );
    m.m2o("warehouse_id", "Warehouse", "stock.warehouse");
    m.char("origin", "Source Document").index();
    m.m2o(
        "purchase_line_id",
        "Purchase Order Line",
        "purchase.order.line",
    )
    .index();
    m.m2o("sale_line_id", "Sale Line", "sale.order.line")
        .index();
    m.m2o("partner_id", "Destination Address", "res.partner");
    m.m2o("company_id", "Company", "res.company")
        .default(DefaultValue::Company);
    m.order("sequence, id");
    m.int("sequence", "Sequence").default_val(Val::Int(10));
    models.push(m.build());

    let mut m = ModelBuilder::new("stock.warehouse.orderpoint", "Minimum Inventory Rule");
    m.char("name", "Name")
        .req()
        .default(DefaultValue::Sequence("OP/", 5));
    m.selection(
        "trigger",
        "Trigger",
        &[("auto", "Auto"), ("manual", "Manual")],
    )
    .default_val(Val::str("auto"));
    // Indexed: replenishment reads orderpoints by warehouse.
    m.m2o("warehouse_id", "Warehouse", "stock.warehouse")
        .req()
        .index();
    m.m2o("location_id", "Location", "stock.location").req();
    m.m2o("product_id", "Product", "product.product")
        .req()
        .index();
    m.related_rel(
        "product_tmpl_id",
        T::Many2one,
        "Product Template",
        "product_id.product_tmpl_id",
        "product.template",
    );
    m.related_rel(
        "product_uom",
        T::Many2one,
        "Unit of Measure",
        "product_id.uom_id",
        "uom.uom",
    );
    m.float("product_min_qty", "Min Quantity").req();
    m.float("product_max_qty", "Max Quantity").req();
    m.m2o("company_id", "Company", "res.company")
        .req()
        .default(DefaultValue::Company);
    m.m2o("route_id", "Route", "stock.route");
    m.date("snoozed_until", "Snoozed");
    m.computed("qty_on_hand", T::Float, "On Hand");
    m.computed("qty_forecast", T::Float, "Forecast");
    m.float("qty_to_order", "To Order");
    m.m2o("supplier_id", "Product Supplier", "product.supplierinfo");
    m.computed_rel("vendor_id", T::Many2one, "Vendor", "res.partner");
    if v <= 18 {
        m.float("qty_multiple", "Multiple Quantity")
            .default_val(Val::Float(1.0));
        m.computed("lead_days_date", T::Date, "Lead Days Date");
        m.int("visibility_days", "Visibility Days");
        m.m2o("group_id", "Procurement Group", "procurement.group");
    } else {
        m.m2o("replenishment_uom_id", "Multiple", "uom.uom");
        m.computed("lead_horizon_date", T::Date, "Lead Horizon Date");
        m.computed("lead_days", T::Float, "Lead Days");
        m.date("deadline_date", "Deadline");
        m.float("qty_to_order_computed", "To Order Computed");
        m.float("qty_to_order_manual", "To Order Manual");
        m.int("days_to_order", "Days to Order");
    }
    m.active().order("location_id,company_id,id");
    models.push(m.build());

    // --- purchase ---
    let mut po_states = vec![
        ("draft", "RFQ"),
        ("sent", "RFQ Sent"),
        ("to approve", "To Approve"),
        ("purchase", "Purchase Order"),
    ];
    if v <= 18 {
        po_states.push(("done", "Locked"));
    }
    po_states.push(("cancel", "Cancelled"));
    let mut m = ModelBuilder::new("purchase.order", "Purchase Order");
    m.char("name", "Order Reference")
        .req()
        .default(DefaultValue::Sequence("P", 5));
    m.m2o("partner_id", "Vendor", "res.partner").req().index();
    m.char("partner_ref", "Vendor Reference");
    m.char("origin", "Source Document").index();
    m.datetime("date_order", "Order Deadline")
        .req()
        .default(DefaultValue::Now);
    m.datetime("date_approve", "Confirmation Date").ro();
    m.datetime("date_planned", "Expected Arrival");
    m.datetime("effective_date", "Arrival").ro();
    m.selection("state", "Status", &po_states)
        .default_val(Val::str("draft"));
    m.computed("amount_untaxed", T::Monetary, "Untaxed Amount");
    m.computed("amount_tax", T::Monetary, "Taxes");
    m.computed("amount_total", T::Monetary, "Total");
    m.m2o("currency_id", "Currency", "res.currency")
        .req()
        .default(DefaultValue::Currency);
    m.o2m(
        "order_line",
        "Order Lines",
        "purchase.order.line",
        "order_id",
    );
    m.m2o("user_id", "Buyer", "res.users")
        .default(DefaultValue::Uid);
    m.m2o("company_id", "Company", "res.company")
        .req()
        .default(DefaultValue::Company);
    m.m2o("picking_type_id", "Deliver To", "stock.picking.type");
    m.computed_sel(
        "invoice_status",
        "Billing Status",
        &[
            ("no", "Nothing to Bill"),
            ("to invoice", "Waiting Bills"),
            ("invoiced", "Fully Billed"),
        ],
    );
    m.computed_sel(
        "receipt_status",
        "Receipt Status",
        &[
            ("pending", "Not Received"),
            ("partial", "Partially Received"),
            ("full", "Fully Received"),
        ],
    );
    m.o2m("picking_ids", "Receptions", "stock.picking", "purchase_id");
    if v >= 19 {
        m.boolean("locked", "Locked");
        m.boolean("acknowledged", "Acknowledged");
        m.html("note", "Terms and Conditions");
    } else {
        m.html("notes", "Terms and Conditions");
    }
    m.selection("priority", "Priority", &[("0", "Normal"), ("1", "Urgent")])
        .default_val(Val::str("0"));
    m.order("priority desc, id desc").mail_thread();
    models.push(m.build());

    let mut m = ModelBuilder::new("purchase.order.line", "Purchase Order Line");
    m.char("name", "Description");
    m.m2o("order_id", "Order Reference", "purchase.order")
        .req()
        .index();
    m.m2o("product_id", "Product", "product.product").index();
    m.float("product_qty", "Quantity")
        .req()
        .default_val(Val::Float(1.0));
    if v >= 19 {
        m.m2o("product_uom_id", "Unit", "uom.uom");
    } else {
        m.m2o("product_uom", "Unit of Measure", "uom.uom");
    }
    m.float("price_unit", "Unit Price").req();
    m.datetime("date_planned", "Expected Arrival");
    m.float("qty_received", "Received Qty");
    m.float("qty_invoiced", "Billed Qty").ro();
    m.computed("price_subtotal", T::Monetary, "Subtotal");
    m.related_rel(
        "partner_id",
        T::Many2one,
        "Partner",
        "order_id.partner_id",
        "res.partner",
    );
    m.related("state", T::Selection, "Status", "order_id.state")
        .selection = po_states
        .iter()
        .map(|(k, l)| (k.to_string(), l.to_string()))
        .collect();
    m.m2o("orderpoint_id", "Orderpoint", "stock.warehouse.orderpoint");
    m.o2m("move_ids", "Reservation", "stock.move", "purchase_line_id");
    m.selection(
        "display_type",
        "Display Type",
        &[("line_section", "Section"), ("line_note", "Note")],
    );
    m.related_rel(
        "company_id",
        T::Many2one,
        "Company",
        "order_id.company_id",
        "res.company",
    );
    m.order("order_id, sequence, id");
    m.int("sequence", "Sequence").default_val(Val::Int(10));
    models.push(m.build());

    // --- sale ---
    let so_states: Vec<(&str, &str)> = if v >= 17 {
        vec![
            ("draft", "Quotation"),
            ("sent", "Quotation Sent"),
            ("sale", "Sales Order"),
            ("cancel", "Cancelled"),
        ]
    } else {
        vec![
            ("draft", "Quotation"),
            ("sent", "Quotation Sent"),
            ("sale", "Sales Order"),
            ("done", "Locked"),
            ("cancel", "Cancelled"),
        ]
    };
    let mut m = ModelBuilder::new("sale.order", "Sales Order");
    m.char("name", "Order Reference")
        .req()
        .default(DefaultValue::Sequence("S", 5));
    m.m2o("partner_id", "Customer", "res.partner").req().index();
    m.datetime("date_order", "Order Date")
        .req()
        .default(DefaultValue::Now);
    m.datetime("commitment_date", "Delivery Date");
    m.computed("expected_date", T::Datetime, "Expected Date");
    m.selection("state", "Status", &so_states)
        .default_val(Val::str("draft"));
    if v >= 17 {
        m.boolean("locked", "Locked");
    }
    m.computed("amount_untaxed", T::Monetary, "Untaxed Amount");
    m.computed("amount_total", T::Monetary, "Total");
    m.m2o("warehouse_id", "Warehouse", "stock.warehouse");
    m.o2m("order_line", "Order Lines", "sale.order.line", "order_id");
    m.o2m("picking_ids", "Transfers", "stock.picking", "sale_id");
    m.m2o("user_id", "Salesperson", "res.users")
        .default(DefaultValue::Uid);
    m.m2o("company_id", "Company", "res.company")
        .req()
        .default(DefaultValue::Company);
    m.m2o("currency_id", "Currency", "res.currency")
        .default(DefaultValue::Currency);
    m.char("client_order_ref", "Customer Reference");
    m.char("origin", "Source Document").index();
    m.computed_sel(
        "invoice_status",
        "Invoice Status",
        &[
            ("upselling", "Upselling Opportunity"),
            ("invoiced", "Fully Invoiced"),
            ("to invoice", "To Invoice"),
            ("no", "Nothing to Invoice"),
        ],
    );
    if v >= 17 {
        m.computed_sel(
            "delivery_status",
            "Delivery Status",
            &[
                ("pending", "Not Delivered"),
                ("started", "Started"),
                ("partial", "Partially Delivered"),
                ("full", "Fully Delivered"),
            ],
        );
    }
    m.order("date_order desc, id desc").mail_thread();
    models.push(m.build());

    let mut m = ModelBuilder::new("sale.order.line", "Sales Order Line");
    m.char("name", "Description");
    m.m2o("order_id", "Order Reference", "sale.order")
        .req()
        .index();
    m.m2o("product_id", "Product", "product.product").index();
    m.float("product_uom_qty", "Quantity")
        .req()
        .default_val(Val::Float(1.0));
    if v >= 19 {
        m.m2o("product_uom_id", "Unit", "uom.uom");
    } else {
        m.m2o("product_uom", "Unit of Measure", "uom.uom");
    }
    m.float("qty_delivered", "Delivery Quantity");
    m.float("qty_invoiced", "Invoiced Quantity").ro();
    m.computed("qty_to_invoice", T::Float, "Quantity To Invoice");
    m.float("price_unit", "Unit Price").req();
    m.computed("price_subtotal", T::Monetary, "Subtotal");
    m.float("customer_lead", "Lead Time");
    m.related("state", T::Selection, "Order Status", "order_id.state")
        .selection = so_states
        .iter()
        .map(|(k, l)| (k.to_string(), l.to_string()))
        .collect();
    m.related_rel(
        "order_partner_id",
        T::Many2one,
        "Customer",
        "order_id.partner_id",
        "res.partner",
    );
    m.o2m("move_ids", "Stock Moves", "stock.move", "sale_line_id");
    m.selection(
        "display_type",
        "Display Type",
        &[("line_section", "Section"), ("line_note", "Note")],
    );
    m.related_rel(
        "company_id",
        T::Many2one,
        "Company",
        "order_id.company_id",
        "res.company",
    );
    m.order("order_id, sequence, id");
    m.int("sequence", "Sequence").default_val(Val::Int(10));
    models.push(m.build());

    // --- approvals (Enterprise) ---
    if edition == Edition::Enterprise {
        let requirement: &[(&str, &str)] = &[
            ("required", "Required"),
            ("optional", "Optional"),
            ("no", "None"),
        ];
        let mut m = ModelBuilder::new("approval.category", "Approval Category");
        m.char("name", "Name").req();
        m.selection(
            "approval_type",
            "Approval Type",
            &[("purchase", "Create RFQ's")],
        );
        m.int("approval_minimum", "Minimum Approval")
            .default_val(Val::Int(1));
        m.boolean("manager_approval", "Employee's Manager");
        for field in [
            "has_date",
            "has_period",
            "has_quantity",
            "has_amount",
            "has_reference",
            "has_partner",
            "has_product",
        ] {
            m.selection(field, field, requirement)
                .default_val(Val::str("no"));
        }
        m.o2m(
            "approver_ids",
            "Approvers",
            "approval.category.approver",
            "category_id",
        );
        m.m2o("company_id", "Company", "res.company")
            .default(DefaultValue::Company);
        m.boolean("automated_sequence", "Automated Sequence?");
        m.active().order("sequence, id");
        m.int("sequence", "Sequence");
        models.push(m.build());

        let mut m = ModelBuilder::new("approval.category.approver", "Approval Type Approver");
        m.m2o("category_id", "Approval Type", "approval.category")
            .req()
            .index();
        m.m2o("user_id", "User", "res.users").req();
        m.boolean("required", "Required");
        m.int("sequence", "Sequence").default_val(Val::Int(10));
        m.name_field("user_id");
        models.push(m.build());

        let statuses: &[(&str, &str)] = &[
            ("new", "To Submit"),
            ("pending", "Submitted"),
            ("approved", "Approved"),
            ("refused", "Refused"),
            ("cancel", "Cancel"),
        ];
        let mut m = ModelBuilder::new("approval.request", "Approval Request");
        m.char("name", "Approval Subject")
            .default_val(Val::str("New"));
        m.m2o("category_id", "Category", "approval.category").req();
        m.m2o("request_owner_id", "Request Owner", "res.users")
            .default(DefaultValue::Uid);
        m.o2m(
            "approver_ids",
            "Approvers",
            "approval.approver",
            "request_id",
        );
        m.datetime("date", "Date");
        m.datetime("date_start", "Date start");
        m.datetime("date_end", "Date end");
        m.float("quantity", "Quantity");
        m.float("amount", "Amount");
        m.char("reference", "Reference");
        m.m2o("partner_id", "Contact", "res.partner");
        m.html("reason", "Description");
        m.o2m(
            "product_line_ids",
            "Products",
            "approval.product.line",
            "approval_request_id",
        );
        m.m2o("company_id", "Company", "res.company")
            .default(DefaultValue::Company);
        // Stored here; Odoo computes it from approvers, which the actions below mirror.
        m.selection("request_status", "Request Status", statuses)
            .ro()
            .default_val(Val::str("new"));
        m.computed_sel(
            "user_status",
            "User Status",
            &[
                ("new", "New"),
                ("pending", "To Approve"),
                ("waiting", "Waiting"),
                ("approved", "Approved"),
                ("refused", "Refused"),
                ("cancel", "Cancel"),
            ],
        );
        m.order("name").mail_thread();
        models.push(m.build());

        let mut m = ModelBuilder::new("approval.approver", "Approver");
        m.m2o("request_id", "Request", "approval.request")
            .req()
            .index();
        m.m2o("user_id", "User", "res.users").req();
        m.selection(
            "status",
            "Status",
            &[
                ("new", "New"),
                ("pending", "To Approve"),
                ("waiting", "Waiting"),
                ("approved", "Approved"),
                ("refused", "Refused"),
                ("cancel", "Cancel"),
            ],
        )
        .default_val(Val::str("new"));
        m.boolean("required", "Required");
        m.name_field("user_id");
        models.push(m.build());

        let mut m = ModelBuilder::new("approval.product.line", "Product Line");
        m.m2o(
            "approval_request_id",
            "Approval Request",
            "approval.request",
        )
        .req()
        .index();
        m.char("description", "Description").req();
        m.m2o("product_id", "Products", "product.product");
        m.float("quantity", "Quantity").default_val(Val::Float(1.0));
        m.m2o("product_uom_id", "Unit of Measure", "uom.uom");
        m.m2o("po_uom_qty", "Purchase UoM Quantity", "uom.uom");
        m.name_field("description");
        models.push(m.build());
    }

    // Stubs for relations that exist in Odoo but carry no behaviour here.
    for (name, description) in [
        ("stock.lot", "Lot/Serial"),
        ("stock.quant.package", "Packages"),
        ("procurement.group", "Procurement Group"),
    ] {
        let mut m = ModelBuilder::new(name, description);
        m.char("name", "Name").req();
        models.push(m.build());
    }

    let mut registry = Registry::default();
    for model in models {
        registry
            .by_name
            .insert(model.name.clone(), registry.models.len());
        registry.models.push(Arc::new(model));
    }
    registry
}

impl ModelBuilder {
    fn fields_mut(&mut self, name: &str) -> &mut FieldDef {
        let index = self.def.by_name[name];
        &mut self.def.fields[index]
    }
}
