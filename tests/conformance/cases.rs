//! The cases: the calls PlanOps makes, with assertions on Odoo's answers and on
//! what a planner then sees. Each case builds its own records (see `world`).

use planops::actions::{self, ActionContext, NoSecrets, WriteOutcome};
use planops::api::rule::ExceptionRuleSpec;
use planops::engine::{ExceptionNumbers, RuleRef};
use planops::odoo::{Call, RecordExt};
use planops::scan::{ScanMemory, ScanOptions};
use serde_json::{Map, Value, json};

use crate::shape::{Entry, Recorder};
use crate::target::{Target, must};
use crate::world::{self, Warehouse};

/// What every case shares: the run's tag, two warehouses and the customers.
struct World {
    tag: String,
    a: Warehouse,
    b: Warehouse,
    customers: i64,
}

/// Runs every case against `t` and returns what Odoo answered.
pub async fn run_all(t: &Target) -> Vec<Entry> {
    let mut rec = Recorder::default();
    let tag = world::run_tag();
    eprintln!("conformance: {} (Odoo {}), run {tag}", t.label, t.major());
    fields_planops_relies_on(t, &mut rec).await;
    let w = World {
        a: world::warehouse(&t.client, &format!("{}A", &tag[1..])).await,
        b: world::warehouse(&t.client, &format!("{}B", &tag[1..])).await,
        customers: world::location_of_usage(&t.client, "customer").await,
        tag,
    };
    stock_figures_per_warehouse(t, &w, &mut rec).await;
    scan_and_act_writes_what_a_planner_can_use(t, &w, &mut rec).await;
    write_answers(t, &w, &mut rec).await;
    done_activity_message(t, &w, &mut rec).await;
    every_detector_reads(t, &w, &mut rec).await;
    supplier_delay_lands_once(t, &w, &mut rec).await;
    approval_through_an_activity(t, &w, &mut rec).await;
    if t.major() >= 17 {
        automation_settles_and_repairs_in_one_sync(t, &w, &mut rec).await;
    }
    group_members_include_implied_users(t, &w, &mut rec).await;
    rec.into_entries()
}

/// The fields PlanOps reads or writes, model by model: which exist in this
/// version and with which type.
const FIELDS: &[(&str, &[&str])] = &[
    (
        "product.product",
        &[
            "default_code",
            "product_tmpl_id",
            "uom_id",
            "qty_available",
            "virtual_available",
            "standard_price",
            "seller_ids",
            "is_storable",
            "type",
            "detailed_type",
            "write_date",
        ],
    ),
    ("product.template", &["uom_id", "uom_po_id", "write_date"]),
    (
        "product.supplierinfo",
        &[
            "partner_id",
            "product_tmpl_id",
            "product_id",
            "min_qty",
            "price",
            "delay",
            "product_uom",
            "product_uom_id",
        ],
    ),
    (
        "stock.warehouse",
        &["code", "lot_stock_id", "view_location_id", "in_type_id"],
    ),
    (
        "stock.move",
        &[
            "product_id",
            "product_qty",
            "product_uom_qty",
            "product_uom",
            "quantity",
            "quantity_done",
            "date",
            "state",
            "location_id",
            "location_dest_id",
            "write_date",
        ],
    ),
    (
        "stock.warehouse.orderpoint",
        &[
            "product_id",
            "warehouse_id",
            "product_min_qty",
            "product_max_qty",
            "qty_multiple",
            "qty_forecast",
            "qty_to_order",
            "trigger",
        ],
    ),
    (
        "purchase.order",
        &[
            "partner_id",
            "origin",
            "notes",
            "note",
            "state",
            "picking_type_id",
            "date_order",
        ],
    ),
    (
        "purchase.order.line",
        &[
            "order_id",
            "product_id",
            "product_qty",
            "product_uom",
            "product_uom_id",
            "price_unit",
            "date_planned",
            "qty_received",
        ],
    ),
    ("sale.order", &["state", "locked", "warehouse_id"]),
    (
        "sale.order.line",
        &["product_uom_qty", "qty_delivered", "order_id"],
    ),
    (
        "mail.activity",
        &[
            "res_model_id",
            "res_id",
            "user_id",
            "note",
            "summary",
            "date_deadline",
            "activity_type_id",
            "active",
            "date_done",
        ],
    ),
    (
        "mail.message",
        &[
            "body",
            "model",
            "res_id",
            "mail_activity_type_id",
            "date",
            "message_type",
        ],
    ),
    ("res.groups", &["users", "user_ids", "all_user_ids"]),
    (
        "res.partner",
        &[
            "name",
            "country_id",
            "comment",
            "is_company",
            "email",
            "phone",
            "street",
            "city",
            "zip",
        ],
    ),
];

async fn fields_planops_relies_on(t: &Target, rec: &mut Recorder) {
    for (model, fields) in FIELDS {
        let known = must(
            t.client.fields_get(model, &["type", "store"]).await,
            "fields_get",
        );
        let mut seen = Map::new();
        for field in *fields {
            let found = known.get(*field).map_or(json!("missing"), |f| {
                // Only the storage of quantities matters to the suite (history
                // sums what is stored); elsewhere the type is enough.
                if *field == "product_qty" {
                    json!([f["type"], f["store"]])
                } else {
                    f["type"].clone()
                }
            });
            seen.insert((*field).to_string(), found);
        }
        rec.value(
            &format!("fields/{model}"),
            json!({"model": model, "method": "fields_get"}),
            Value::Object(seen),
        );
    }
}

fn context_of(key: &str, value: Value) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert(key.into(), value);
    context
}

/// Which context key scopes a product's stock figures to a warehouse.
async fn stock_figures_per_warehouse(t: &Target, w: &World, rec: &mut Recorder) {
    let product = world::storable_product(&t.client, &format!("{}-STK", w.tag), 2.0).await;
    world::count_stock(&t.client, &product, w.a.stock, 10.0).await;
    for key in ["warehouse", "warehouse_id"] {
        let mut figures = Vec::new();
        for wh in [&w.a, &w.b] {
            let rows = must(
                t.client
                    .with_context(context_of(key, json!(wh.id)))
                    .read("product.product", &[product.id], &["qty_available"])
                    .await,
                "reading stock per warehouse",
            );
            figures.push(rows[0]["qty_available"].clone());
        }
        rec.value(
            &format!("stock/qty_available_with_context_{key}"),
            json!({"model": "product.product", "method": "read", "context": key,
                   "stock": "10 in the first warehouse, none in the second"}),
            json!(figures),
        );
    }
}

fn rule(yaml: &str) -> ExceptionRuleSpec {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("rule: {e}\n{yaml}"))
}

/// A projectedStockout rule with an activity, a chatter note and an RFQ, run
/// twice: what it writes must be usable as it is, and the second run writes
/// nothing.
async fn scan_and_act_writes_what_a_planner_can_use(t: &Target, w: &World, rec: &mut Recorder) {
    let client = &t.client;
    let code = format!("{}-SO", w.tag);
    let product = world::storable_product(client, &code, 4.0).await;
    let vendor = world::vendor(client, &format!("Conformance vendor {}", w.tag)).await;
    world::supplier_price(client, &product, vendor, 7.5, 5).await;
    world::count_stock(client, &product, w.a.stock, 3.0).await;
    let soon = |days: i64| planops::engine::inputs::add_days(t.today, days).to_string();
    world::open_move(client, &product, w.a.stock, w.customers, 20.0, &soon(2)).await;
    world::open_move(client, &product, w.b.stock, w.customers, 6.0, &soon(3)).await;
    let login = format!("conformance-{}", w.tag.to_lowercase());
    let planner = world::user(client, &login).await;
    let spec = rule(&format!(
        r#"
connectionRef: {{name: odoo}}
scope:
  productDomain: "[('default_code', '=', '{code}')]"
  warehouses: [{a}, {b}]
detector: {{projectedStockout: {{horizonDays: 14, historyDays: 30}}}}
triggers: {{schedule: {{cron: "0 * * * *"}}}}
actions:
  - activity: {{assignee: {{user: {login}}}}}
  - chatterNote: {{}}
  - proposePurchase: {{minSeverity: Low}}
"#,
        a = w.a.code,
        b = w.b.code,
    ));
    let rule_name = format!("stockout-{}", w.tag.to_lowercase());
    let ctx = ActionContext {
        rule: RuleRef {
            namespace: "conformance",
            rule: &rule_name,
        },
        spec: &spec,
        today: t.today,
        secrets: &NoSecrets,
    };
    let run = actions::scan_and_act(client, &ctx, &ScanMemory::default(), ScanOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: the scan failed: {e}", t.label));

    // One exception per short warehouse, with that warehouse's own stock.
    let mut on_hand: Vec<(i64, f64)> = run
        .outcome
        .exceptions
        .iter()
        .filter_map(|e| match &e.numbers {
            ExceptionNumbers::ProjectedStockout(n) => Some((e.subject.ids[1], n.on_hand)),
            _ => None,
        })
        .collect();
    on_hand.sort_by_key(|(wh, _)| *wh);
    assert_eq!(
        on_hand,
        vec![(w.a.id, 3.0), (w.b.id, 0.0)],
        "{}: stock per warehouse as the scan saw it",
        t.label
    );
    // Every write landed, two activities on one record for a new follower included.
    for (write, outcome) in &run.report.results {
        assert!(
            matches!(outcome, WriteOutcome::Created(id) if *id > 0),
            "{}: {write:?} -> {outcome:?}",
            t.label
        );
    }
    assert_eq!(
        run.report.created(),
        6,
        "{}: {:?}",
        t.label,
        run.report.results
    );

    let marker = actions::rule_marker(&ctx.rule);
    let activities = must(
        client
            .search_read(
                "mail.activity",
                &json!([["note", "ilike", marker]]),
                &["res_id", "user_id", "res_model"],
                &Default::default(),
            )
            .await,
        "reading the activities",
    );
    assert_eq!(activities.len(), 2, "{}", t.label);
    for a in &activities {
        assert_eq!(a["res_id"], json!(product.id), "{}", t.label);
        assert_eq!(
            a.many2one("user_id").ok().flatten().map(|u| u.id),
            Some(planner)
        );
    }
    rec.answer(
        "scan_and_act/activities",
        json!({"model": "mail.activity", "method": "search_read", "fields": ["res_id", "user_id", "res_model"]}),
        &Ok(Value::Array(activities.into_iter().map(Value::Object).collect())),
    );

    // Notes render as HTML, not as escaped markup.
    let notes = must(
        client
            .search_read(
                "mail.message",
                &json!([["body", "ilike", marker], ["message_type", "=", "comment"]]),
                &["body"],
                &Default::default(),
            )
            .await,
        "reading the notes",
    );
    assert_eq!(notes.len(), 2, "{}", t.label);
    for n in &notes {
        let body = n.str_field("body").ok().flatten().unwrap_or_default();
        assert!(
            body.starts_with("<p>") && !body.contains("&lt;p&gt;"),
            "{}: {body}",
            t.label
        );
    }

    // RFQs a buyer can confirm: the vendor's price, its lead time, the unit, the
    // short warehouse's receipts.
    let fingerprints: Vec<&str> = run
        .outcome
        .exceptions
        .iter()
        .map(|e| e.fingerprint.as_str())
        .collect();
    let orders = must(
        client
            .search_read(
                "purchase.order",
                &json!([["origin", "in", fingerprints]]),
                &["partner_id", "picking_type_id", "date_order", "order_line"],
                &Default::default(),
            )
            .await,
        "reading the RFQs",
    );
    assert_eq!(orders.len(), 2, "{}", t.label);
    let receipts: Vec<i64> = orders
        .iter()
        .filter_map(|o| o.many2one("picking_type_id").ok().flatten().map(|p| p.id))
        .collect();
    assert!(
        receipts.contains(&w.a.receipts) && receipts.contains(&w.b.receipts),
        "{}: receipt types {receipts:?}",
        t.label
    );
    let unit_field = if t.major() >= 19 {
        "product_uom_id"
    } else {
        "product_uom"
    };
    let lines = must(
        client
            .search_read(
                "purchase.order.line",
                &json!([[
                    "order_id",
                    "in",
                    orders
                        .iter()
                        .filter_map(|o| o.id().ok())
                        .collect::<Vec<_>>()
                ]]),
                &[
                    "order_id",
                    "price_unit",
                    "product_qty",
                    unit_field,
                    "date_planned",
                ],
                &Default::default(),
            )
            .await,
        "reading the RFQ lines",
    );
    assert_eq!(lines.len(), 2, "{}", t.label);
    for line in &lines {
        assert_eq!(line["price_unit"], json!(7.5), "{}: {line:?}", t.label);
        assert_eq!(
            line.many2one(unit_field).ok().flatten().map(|u| u.id),
            Some(product.uom)
        );
        let qty = line.number("product_qty").unwrap_or_default();
        assert!(
            (qty * 100.0 - (qty * 100.0).round()).abs() < 1e-6,
            "{}: qty {qty}",
            t.label
        );
        let order = line.many2one("order_id").ok().flatten().map(|o| o.id);
        let ordered = orders
            .iter()
            .find(|o| o.id().ok() == order)
            .and_then(|o| o.datetime("date_order").ok().flatten())
            .expect("the line's order");
        let planned = line
            .datetime("date_planned")
            .ok()
            .flatten()
            .expect("an expected date");
        let lead = planned.duration_since(ordered).as_secs() / 86_400;
        assert_eq!(lead, 5, "{}: the vendor's lead time", t.label);
    }
    rec.answer(
        "scan_and_act/rfq_lines",
        json!({"model": "purchase.order.line", "method": "search_read",
               "fields": ["order_id", "price_unit", "product_qty", "<unit>", "date_planned"]}),
        &Ok(Value::Array(lines.into_iter().map(Value::Object).collect())),
    );

    // Again: nothing new.
    let again = actions::scan_and_act(client, &ctx, &ScanMemory::default(), ScanOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: the second scan failed: {e}", t.label));
    assert_eq!(
        again.report.created(),
        0,
        "{}: {:?}",
        t.label,
        again.report.results
    );
    assert_eq!(
        must(
            client
                .search_count("mail.activity", &json!([["note", "ilike", marker]]))
                .await,
            "count"
        ),
        2
    );
    assert_eq!(
        must(
            client
                .search_count("purchase.order", &json!([["origin", "in", fingerprints]]))
                .await,
            "count"
        ),
        2
    );
}

/// The raw answers of the writes PlanOps decodes.
async fn write_answers(t: &Target, w: &World, rec: &mut Recorder) {
    let client = &t.client;
    let product = world::storable_product(client, &format!("{}-RAW", w.tag), 1.0).await;
    let follower = world::user(client, &format!("conformance-raw-{}", w.tag.to_lowercase())).await;
    let model_id = must(
        client
            .search(
                "ir.model",
                &json!([["model", "=", "product.template"]]),
                &Default::default(),
            )
            .await,
        "ir.model",
    )[0];
    let activity = |summary: &str| {
        world::obj(
            json!({"res_model_id": model_id, "res_id": product.template, "user_id": follower,
                          "summary": summary, "note": "<p>conformance</p>"}),
        )
    };
    let batch = client
        .create("mail.activity", vec![activity("one"), activity("two")])
        .await
        .map(|ids| json!(ids));
    rec.answer(
        "writes/mail.activity.create_two_on_one_record_for_a_new_follower",
        json!({"model": "mail.activity", "method": "create", "vals_list": 2}),
        &batch,
    );

    let body = "<p>Hello <b>x</b> &lt;y&gt;</p>";
    let mut variants = vec![("plain", false)];
    if t.major() >= 17 {
        variants.push(("body_is_html", true));
    }
    for (name, as_html) in variants {
        let mut call = Call::new("product.template", "message_post")
            .ids(vec![product.template])
            .kwarg("body", body)
            .kwarg("message_type", "comment")
            .kwarg("subtype_xmlid", "mail.mt_note");
        if as_html {
            call = call.kwarg("body_is_html", true);
        }
        let answer = client.call(call).await;
        rec.answer(
            &format!("writes/message_post_{name}"),
            json!({"model": "product.template", "method": "message_post", "body_is_html": as_html}),
            &answer,
        );
        let id = planops::odoo::values::returned_id(must(
            answer.as_ref().map_err(Clone::clone),
            "message_post",
        ))
        .unwrap_or_else(|| panic!("{}: message_post answered no id", t.label));
        let stored = must(
            client.read("mail.message", &[id], &["body"]).await,
            "reading the message",
        );
        rec.value(
            &format!("writes/message_post_{name}_stored_body"),
            json!({"model": "mail.message", "method": "read", "body": body}),
            stored[0]["body"].clone(),
        );
    }

    let vendor = world::vendor(client, &format!("Conformance cancel {}", w.tag)).await;
    let order = world::create(client, "purchase.order", json!({"partner_id": vendor})).await;
    let cancel = client
        .call(Call::new("purchase.order", "button_cancel").ids(vec![order]))
        .await;
    rec.answer(
        "writes/purchase.order.button_cancel",
        json!({"model": "purchase.order", "method": "button_cancel"}),
        &cancel,
    );
}

/// A buyer in the purchase manager group only, which implies the user group: a
/// rule assigning to `purchase.group_purchase_user` must find them.
async fn group_members_include_implied_users(t: &Target, w: &World, rec: &mut Recorder) {
    let client = &t.client;
    let manager = must(
        client
            .resolve_external_id(
                &planops::odoo::ExternalId::new("purchase", "group_purchase_manager")
                    .expect("an xmlid"),
            )
            .await,
        "finding the purchase manager group",
    )
    .map(|(_, id)| id)
    .expect("the purchase manager group exists");
    let groups_field = if t.major() >= 19 {
        "group_ids"
    } else {
        "groups_id"
    };
    let mut vals = json!({"name": format!("Conformance buyer {}", w.tag),
                          "login": format!("conformance-buyer-{}", w.tag.to_lowercase())});
    vals[groups_field] = json!([[4, manager]]);
    let buyer = world::create(client, "res.users", vals).await;
    let members = must(
        planops::odoo::users::group_member_ids(client, "purchase.group_purchase_user").await,
        "reading the group's members",
    );
    let found = members.contains(&buyer);
    rec.value(
        "groups/purchase_user_members_include_a_manager",
        json!({"group": "purchase.group_purchase_user", "member_through": "purchase.group_purchase_manager"}),
        json!(found),
    );
    assert!(
        found,
        "{}: members {members:?} lack the manager {buyer}",
        t.label
    );
}

/// What Odoo posts when an activity is marked done with feedback, which PlanOps
/// reads for snoozes and approval decisions.
async fn done_activity_message(t: &Target, w: &World, rec: &mut Recorder) {
    let client = &t.client;
    let product = world::storable_product(client, &format!("{}-DONE", w.tag), 1.0).await;
    let model_id = must(
        client
            .search(
                "ir.model",
                &json!([["model", "=", "product.product"]]),
                &Default::default(),
            )
            .await,
        "ir.model",
    )[0];
    let fingerprint = format!(
        "planops:{:032x}",
        u128::from_str_radix(&w.tag[1..], 16).unwrap_or(7)
    );
    let note = format!(
        "<p>Check the stock</p><p><small>{fingerprint} · planops-rule conformance/{}</small></p>",
        w.tag
    );
    let todo = must(
        client
            .search(
                "mail.activity.type",
                &json!([["name", "=", "To-Do"]]),
                &Default::default(),
            )
            .await,
        "finding the To-Do type",
    )[0];
    let activity = world::create(
        client,
        "mail.activity",
        json!({"res_model_id": model_id, "res_id": product.id, "user_id": client.uid(),
               "activity_type_id": todo, "summary": "Conformance", "note": note}),
    )
    .await;
    let answer = client
        .call(
            Call::new("mail.activity", "action_feedback")
                .ids(vec![activity])
                .kwarg("feedback", "Approved by conformance"),
        )
        .await;
    rec.answer(
        "done/action_feedback",
        json!({"model": "mail.activity", "method": "action_feedback"}),
        &answer,
    );
    let messages = must(
        client
            .search_read(
                "mail.message",
                &json!([
                    ["body", "ilike", fingerprint],
                    ["mail_activity_type_id", "!=", false]
                ]),
                &["body"],
                &Default::default(),
            )
            .await,
        "reading the done message",
    );
    assert_eq!(messages.len(), 1, "{}", t.label);
    let body = messages[0]
        .str_field("body")
        .ok()
        .flatten()
        .unwrap_or_default();
    assert_eq!(
        actions::fingerprints_in(body),
        vec![fingerprint.clone()],
        "{}: {body}",
        t.label
    );
    rec.value(
        "done/message_markup",
        json!({"model": "mail.message", "method": "search_read", "of": "the done message"}),
        json!(markup_outline(body)),
    );
    let mut with_archived = Map::new();
    with_archived.insert("active_test".into(), json!(false));
    let kept = must(
        client
            .with_context(with_archived)
            .search_count("mail.activity", &json!([["id", "=", activity]]))
            .await,
        "looking for the done activity",
    );
    rec.value(
        "done/activity_kept",
        json!({"model": "mail.activity", "method": "search_count", "active_test": false}),
        json!(kept),
    );
}

/// The tags of an HTML fragment with their classes, text left out: what a
/// parser of the markup relies on.
fn markup_outline(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let tag = &rest[start + 1..start + len];
        let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
        let class = tag
            .split("class=\"")
            .nth(1)
            .and_then(|c| c.split('"').next())
            .map(|c| format!(".{}", c.split_whitespace().collect::<Vec<_>>().join(".")))
            .unwrap_or_default();
        out.push('<');
        out.push_str(&name);
        out.push_str(&class);
        out.push('>');
        rest = &rest[start + len + 1..];
    }
    out
}

/// The automation PlanOps manages for a rule's event trigger: created once, in
/// sync on the next pass, a spec change settles in one sync, and a person's edit
/// is repaired, with no false drift from fields Odoo recomputes.
async fn automation_settles_and_repairs_in_one_sync(t: &Target, w: &World, rec: &mut Recorder) {
    use planops::automation::{self, AutomationSpec, SyncMode};
    use planops::odoo::Secret;

    let client = &t.client;
    let rule = format!("events-{}", w.tag.to_lowercase());
    let events = |domain: &str| -> planops::api::rule::EventTriggerSpec {
        serde_yaml_ng::from_str(&format!(
            "{{model: purchase.order, operations: [Write], watchedFields: [state], filterDomain: \"{domain}\"}}"
        ))
        .expect("an event trigger")
    };
    // Nothing listens there: the suite checks the records, not deliveries.
    let url = Secret::new(format!(
        "http://127.0.0.1:9{}?token=conformance",
        automation::hook_path("conformance", &rule)
    ));
    let spec_for = |domain: &str| {
        AutomationSpec::for_rule("conformance", &rule, &events(domain), url.clone())
            .expect("a valid spec")
    };
    let sync = |spec: AutomationSpec| async move {
        automation::sync(client, &spec, SyncMode::Apply)
            .await
            .unwrap_or_else(|e| panic!("{}: automation sync: {e}", t.label))
    };
    let first = sync(spec_for("[('state', '=', 'purchase')]")).await;
    assert!(first.applied && !first.in_sync(), "{}: {first:?}", t.label);
    let settled = sync(spec_for("[('state', '=', 'purchase')]")).await;
    assert!(
        settled.in_sync(),
        "{}: drift right after creating: {:?}",
        t.label,
        settled.changes
    );

    let changed = sync(spec_for("[('state', 'in', ['purchase', 'done'])]")).await;
    assert!(!changed.in_sync(), "{}", t.label);
    let after_change = sync(spec_for("[('state', 'in', ['purchase', 'done'])]")).await;
    assert!(
        after_change.in_sync(),
        "{}: a spec change took two syncs: {:?}",
        t.label,
        after_change.changes
    );

    let automation_id = after_change.automation_id.expect("the automation exists");
    must(
        client
            .write(
                "base.automation",
                &[automation_id],
                world::obj(json!({"filter_domain": "[('state', '=', 'draft')]"})),
            )
            .await,
        "editing the automation by hand",
    );
    let repaired = sync(spec_for("[('state', 'in', ['purchase', 'done'])]")).await;
    assert!(!repaired.in_sync(), "{}: a hand edit went unseen", t.label);
    let after_repair = sync(spec_for("[('state', 'in', ['purchase', 'done'])]")).await;
    assert!(
        after_repair.in_sync(),
        "{}: {:?}",
        t.label,
        after_repair.changes
    );

    let automation = must(
        client
            .read(
                "base.automation",
                &[automation_id],
                &[
                    "trigger",
                    "trigger_field_ids",
                    "filter_domain",
                    "action_server_ids",
                ],
            )
            .await,
        "reading the automation",
    );
    let action_id = after_repair.action_id.expect("the webhook action exists");
    let action = must(
        client
            .read(
                "ir.actions.server",
                &[action_id],
                &["name", "state", "webhook_field_ids"],
            )
            .await,
        "reading the webhook action",
    );
    rec.answer(
        "automation/record",
        json!({"model": "base.automation", "method": "read",
               "fields": ["trigger", "trigger_field_ids", "filter_domain", "action_server_ids"]}),
        &Ok(Value::Object(automation[0].clone())),
    );
    rec.value(
        "automation/action_named_by_odoo",
        json!({"model": "ir.actions.server", "method": "read", "field": "name"}),
        json!(action[0]["name"] == json!("Send Webhook Notification")),
    );
    rec.value(
        "automation/action_state",
        json!({"model": "ir.actions.server", "method": "read", "field": "state"}),
        action[0]["state"].clone(),
    );
    let removed = automation::remove(
        client,
        &automation::AutomationKey::for_rule("conformance", &rule),
    )
    .await;
    assert!(
        removed.is_ok(),
        "{}: removing the automation: {removed:?}",
        t.label
    );
}

/// Every detector's reads, scoped to records of this run: each scan must
/// complete on this Odoo and see exactly the subjects the run made.
async fn every_detector_reads(t: &Target, w: &World, rec: &mut Recorder) {
    let client = &t.client;
    let code = format!("{}-DET", w.tag);
    let product = world::storable_product(client, &code, 250.0).await;
    world::count_stock(client, &product, w.a.stock, 5.0).await;
    let soon = planops::engine::inputs::add_days(t.today, 3).to_string();
    world::open_move(client, &product, w.a.stock, w.customers, 2.0, &soon).await;
    let scope = format!(
        "scope:\n  productDomain: \"[('default_code', '=', '{code}')]\"\n  warehouses: [{}, {}]\n",
        w.a.code, w.b.code
    );
    let detectors = [
        (
            "projectedStockout",
            "{projectedStockout: {horizonDays: 14, historyDays: 30}}",
        ),
        (
            "demandSpike",
            "{demandSpike: {recentDays: 7, baselineDays: 28}}",
        ),
        ("supplierDelay", "{supplierDelay: {graceDays: 2}}"),
        ("orderAtRisk", "{orderAtRisk: {windowDays: 14}}"),
    ];
    let mut specs: Vec<(&str, String)> = detectors
        .iter()
        .map(|(name, detector)| (*name, format!("{scope}detector: {detector}\n")))
        .collect();
    specs.push((
        "fieldThreshold",
        format!(
            "detector:\n  fieldThreshold:\n    model: product.product\n    domain: \"[('default_code', '=', '{code}')]\"\n    field: standard_price\n    comparison: Gt\n    value: 100\n"
        ),
    ));
    for (name, body) in specs {
        let spec = rule(&format!(
            "connectionRef: {{name: odoo}}\ntriggers: {{schedule: {{cron: \"0 * * * *\"}}}}\n{body}"
        ));
        let rule_name = format!("{}-{}", name.to_lowercase(), w.tag.to_lowercase());
        let outcome = planops::scan::run_scan(
            client,
            &RuleRef {
                namespace: "conformance",
                rule: &rule_name,
            },
            &spec,
            t.today,
            &ScanMemory::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: the {name} scan failed: {e}", t.label));
        rec.value(
            &format!("detectors/{name}_subjects_evaluated"),
            json!({"detector": name, "scope": "one product of this run, two warehouses"}),
            json!(outcome.subjects_evaluated),
        );
    }
}

/// A supplier's delay notice on a purchase order: the promised date written on
/// its line, the payload attached as evidence, a chatter note a buyer can read;
/// the same event again writes nothing.
async fn supplier_delay_lands_once(t: &Target, w: &World, rec: &mut Recorder) {
    use planops::api::supplier::{EffectsSpec, SupplierEventType};
    use planops::supplier::{self, ConnectorTarget, EventLine, SupplierEvent};

    let client = &t.client;
    let code = format!("{}-SUP", w.tag);
    let product = world::storable_product(client, &code, 3.0).await;
    let vendor = world::vendor(client, &format!("Conformance supplier {}", w.tag)).await;
    let order = world::create(
        client,
        "purchase.order",
        json!({"partner_id": vendor, "order_line": [[0, 0, {
            "product_id": product.id, "name": code, "product_qty": 10.0, "price_unit": 3.0}]]}),
    )
    .await;
    let name = must(
        client.read("purchase.order", &[order], &["name"]).await,
        "reading the PO",
    )[0]
    .str_field("name")
    .ok()
    .flatten()
    .unwrap_or_default()
    .to_string();
    let promised = planops::engine::inputs::add_days(t.today, 10);
    let target = ConnectorTarget {
        namespace: "conformance".into(),
        name: format!("supplier-{}", w.tag.to_lowercase()),
        partner_id: vendor,
        effects: EffectsSpec::default(),
    };
    let event = SupplierEvent {
        kind: SupplierEventType::Delay,
        event_id: Some(format!("delay-{}", w.tag)),
        purchase_order_ref: name.clone(),
        promised_date: None,
        lines: vec![EventLine {
            product_code: code.clone(),
            quantity: Some(10.0),
            promised_date: Some(promised),
        }],
    };
    let fingerprint =
        supplier::event_fingerprint("conformance", &target.name, &format!("delay-{}", w.tag));
    let evidence = format!("{{\"po\": \"{name}\", \"sku\": \"{code}\", \"date\": \"{promised}\"}}");
    let apply =
        || supplier::effects::apply(client, &target, &event, &fingerprint, evidence.as_bytes());
    let first = apply()
        .await
        .unwrap_or_else(|e| panic!("{}: applying the delay: {e}", t.label));
    assert_eq!(first.lines_updated, 1, "{}: {first:?}", t.label);
    assert!(
        first.note_posted && first.note_id.is_some(),
        "{}: {first:?}",
        t.label
    );
    let again = apply()
        .await
        .unwrap_or_else(|e| panic!("{}: applying the delay again: {e}", t.label));
    assert!(
        again.duplicate && again.lines_updated == 0 && !again.note_posted,
        "{}: {again:?}",
        t.label
    );

    let lines = must(
        client
            .search_read(
                "purchase.order.line",
                &json!([["order_id", "=", order]]),
                &["date_planned"],
                &Default::default(),
            )
            .await,
        "reading the PO line",
    );
    let planned = lines[0]
        .datetime("date_planned")
        .ok()
        .flatten()
        .expect("a promised date");
    assert_eq!(
        planned.to_zoned(jiff::tz::TimeZone::UTC).date(),
        promised,
        "{}",
        t.label
    );
    let attachments = must(
        client
            .search_count(
                "ir.attachment",
                &json!([[
                    "name",
                    "=",
                    supplier::effects::attachment_name(&fingerprint)
                ]]),
            )
            .await,
        "counting the evidence",
    );
    assert_eq!(attachments, 1, "{}", t.label);
    let note = must(
        client
            .read(
                "mail.message",
                &[first.note_id.unwrap_or_default()],
                &["body"],
            )
            .await,
        "reading the note",
    );
    let body = note[0].str_field("body").ok().flatten().unwrap_or_default();
    assert!(
        body.contains(&fingerprint) && !body.contains("&lt;p&gt;"),
        "{}: {body}",
        t.label
    );
    rec.value(
        "supplier/delay_applied_then_duplicate",
        json!({"effects": ["date_planned", "ir.attachment", "message_post"], "applied": 2}),
        json!([
            first.lines_updated,
            first.note_posted,
            again.duplicate,
            attachments
        ]),
    );
}

/// The approval gate on Community (the "To approve" activity): an RFQ raised by
/// a buyer is put to the admin, who marks the activity done with feedback; the
/// gate reads the decision from Odoo's done message and confirms the RFQ once.
async fn approval_through_an_activity(t: &Target, w: &World, rec: &mut Recorder) {
    use planops::api::approval::{
        ApprovalBackend, ApprovalLevel, ApprovalPolicySpec, GovernedAction,
    };
    use planops::api::common::LocalObjectRef;
    use planops::approval::odoo_io::{FinalDecision, user_by_login};
    use planops::approval::{
        Backend, GateRequest, GovernedRequest, OutcomeReport, Step, carry_out, evaluate, open,
        poll, resolve_backend, resolve_levels,
    };

    let client = &t.client;
    let code = format!("{}-APR", w.tag);
    let product = world::storable_product(client, &code, 5.0).await;
    let vendor = world::vendor(client, &format!("Conformance approval {}", w.tag)).await;
    let buyer_login = format!("conformance-requester-{}", w.tag.to_lowercase());
    world::user(client, &buyer_login).await;
    let rfq = world::create(
        client,
        "purchase.order",
        json!({"partner_id": vendor, "order_line": [[0, 0, {
            "product_id": product.id, "name": code, "product_qty": 4.0, "price_unit": 5.0}]]}),
    )
    .await;
    let admin_login = must(
        client.read("res.users", &[client.uid()], &["login"]).await,
        "admin",
    )[0]
    .str_field("login")
    .ok()
    .flatten()
    .unwrap_or("admin")
    .to_string();
    let spec = ApprovalPolicySpec {
        connection_ref: LocalObjectRef {
            name: "odoo".into(),
        },
        governs: GovernedAction::EmergencyPurchase,
        match_: None,
        backend: ApprovalBackend::Activity,
        approval_category: None,
        levels: vec![ApprovalLevel {
            name: "planning lead".into(),
            users: vec![admin_login.clone()],
            groups: vec![],
            min_approvals: Some(1),
            sla_hours: Some(8.0),
        }],
        segregation_of_duties: None,
        on_approval: None,
        on_rejection: None,
        poll_interval_seconds: None,
        suspend: None,
        deletion_policy: None,
    };
    let backend = resolve_backend(spec.backend, client.info()).expect("a backend");
    assert_eq!(backend, Backend::Activity);
    let levels = must_approval(
        resolve_levels(client, &spec.levels).await,
        t,
        "resolving levels",
    );
    let requester = must_approval(
        user_by_login(client, &buyer_login).await,
        t,
        "the requester",
    )
    .expect("the requester exists");
    let fingerprint = format!(
        "planops:{:032x}",
        0xa9_u128 << 64 | u128::from_str_radix(&w.tag[1..], 16).unwrap_or(1)
    );
    let request = GovernedRequest {
        kind: GovernedAction::EmergencyPurchase,
        amount: 20.0,
        currency: "EUR".into(),
        product_id: Some(product.id),
        partner_id: Some(vendor),
    };
    let gate = GateRequest {
        fingerprint: &fingerprint,
        namespace: "conformance",
        policy: "lead",
        spec: &spec,
        rfq_id: rfq,
        request: &request,
        narrative: "Conformance: an emergency purchase to approve.",
        explanation: "the only policy",
        requester: Some(&requester),
        rule: Some("conformance"),
    };
    let pending = must_approval(
        open(client, backend, &gate, &levels).await,
        t,
        "opening the request",
    );
    assert!(pending.created, "{}", t.label);
    let again = must_approval(
        open(client, backend, &gate, &levels).await,
        t,
        "opening it again",
    );
    assert!(!again.created, "{}: a second request", t.label);

    let todo = must(
        client
            .search(
                "mail.activity",
                &json!([["note", "ilike", fingerprint]]),
                &Default::default(),
            )
            .await,
        "finding the approval activity",
    );
    assert_eq!(todo.len(), 1, "{}", t.label);
    must(
        client
            .call(
                Call::new("mail.activity", "action_feedback")
                    .ids(todo)
                    .kwarg("feedback", "approved, go ahead"),
            )
            .await,
        "approving in Odoo",
    );
    let directory = vec![requester.clone()];
    let observed = must_approval(poll(client, &pending, &directory).await, t, "polling");
    let state = planops::approval::PendingState {
        opened_at: pending.opened_at,
        level: observed.level(&levels, Some(requester.uid)),
        requester_uid: Some(requester.uid),
        segregation_of_duties: true,
    };
    let step = evaluate(&levels, &state, &observed.decisions, pending.opened_at).step;
    let Step::Approved { level, by } = step else {
        panic!(
            "{}: the decision in Odoo's done message was not read: {step:?}",
            t.label
        )
    };
    let decision = FinalDecision::Approved {
        by,
        level: levels[level].name.clone(),
    };
    let outcome = must_approval(
        carry_out(client, &pending, &gate, &decision).await,
        t,
        "confirming",
    );
    assert_eq!(outcome, OutcomeReport::Confirmed, "{}", t.label);
    let second = must_approval(
        carry_out(client, &pending, &gate, &decision).await,
        t,
        "confirming again",
    );
    assert!(
        matches!(second, OutcomeReport::AlreadyDone { .. }),
        "{}: {second:?}",
        t.label
    );
    let state = must(
        client.read("purchase.order", &[rfq], &["state"]).await,
        "reading the RFQ",
    )[0]["state"]
        .clone();
    assert_eq!(state, json!("purchase"), "{}", t.label);
    rec.value(
        "approval/activity_decision_confirms_once",
        json!({"backend": "Activity", "decided_by": "the level's approver, through action_feedback"}),
        json!([format!("{outcome:?}"), state]),
    );
}

fn must_approval<T>(
    result: Result<T, planops::approval::ApprovalError>,
    t: &Target,
    what: &str,
) -> T {
    result.unwrap_or_else(|e| panic!("{}: {what}: {e}", t.label))
}
