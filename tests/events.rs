//! The event-driven path end to end: the operator on the real kube-apiserver,
//! the Odoo simulator over HTTP, and the gateway on the operator's listener.
//!
//! - An Odoo sales order confirmed: the automation PlanOps owns in Odoo calls
//!   the rule's gateway route, and the stockout activity for the ordered
//!   product appears without any scheduled scan; another product at risk is
//!   left alone (the scan is focused), and repeated hints write nothing twice.
//! - Odoo 17 posting the hint before its commit: the order confirmed by the
//!   write it reports is acted on once that write can be read.
//! - A signed supplier delay: the promised date moves once, the supplier-delay
//!   rule the connector names raises its activity at once, a replay has no
//!   effect, and bad signatures, stale timestamps, oversize, malformed and
//!   unmappable deliveries are refused with nothing written.
//! - The gateway as its own Deployment: two `planops gateway` replicas check
//!   events and pass them to the leader; the same supplier event through both
//!   has one effect, forgeries stop at the edge, and an Odoo hint that arrives
//!   while no leader answers is held and acted on once one does.

mod support;

use std::time::Instant;

use jiff::civil::Date;
use planops::odoo::{OdooClient, RecordExt};
use planops::sim::{DatasetParams, Edition, FaultConfig, OdooVersion, SimConfig, SimServer};
use serde_json::{Value, json};
use support::odoo::{self, count, create, deliveries, obj, product, vendor, warehouse};
use support::suppliers::{AcmeOrder, SIGNING_SECRET, acme_order, apply_acme_connector, deliver};
use support::*;

fn today() -> Date {
    jiff::Zoned::now().date()
}

async fn start_sim() -> SimServer {
    start_sim_version(OdooVersion::V17).await
}

async fn start_sim_version(version: OdooVersion) -> SimServer {
    let config = SimConfig {
        version,
        edition: Edition::Community,
        dataset: DatasetParams {
            seed: 11,
            products: 5,
            warehouses: 1,
            history_days: 30,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    };
    odoo::start_sim(config).await
}

/// The connection `odoo`, with Odoo calling back to the operator's listener.
async fn connect_operator(
    cluster: &support::TestCluster,
    ns: &str,
    server: &SimServer,
    operator: &OperatorProcess,
) {
    let callback = format!("http://127.0.0.1:{}", operator.port);
    connect_odoo_with(cluster, ns, server, Some(&callback)).await;
}

async fn activities(client: &OdooClient, ns: &str, rule: &str) -> Vec<(String, i64)> {
    client
        .search_read(
            "mail.activity",
            &json!([["note", "ilike", format!("planops-rule {ns}/{rule}")]]),
            &["res_model", "res_id"],
            &Default::default(),
        )
        .await
        .expect("reading activities")
        .iter()
        .map(|r| {
            (
                r.str_field("res_model")
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_string(),
                r.get("res_id").and_then(Value::as_i64).unwrap_or_default(),
            )
        })
        .collect()
}

async fn template_of(client: &OdooClient, product: i64) -> i64 {
    client
        .read("product.product", &[product], &["product_tmpl_id"])
        .await
        .expect("reading the product")[0]
        .many2one("product_tmpl_id")
        .expect("product_tmpl_id")
        .expect("a template")
        .id
}

/// The sum of a gateway metric's samples for one route, from `/metrics`.
async fn gateway_metric(
    operator: &OperatorProcess,
    sample: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> u64 {
    let Some((200, text)) = operator.get("/metrics").await else {
        return 0;
    };
    let labels = format!("kind=\"{kind}\",namespace=\"{ns}\",name=\"{name}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{sample}{{")) && l.contains(&labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Two products at risk of a stockout (the first is the one ordered below);
/// the warehouse and the first product.
async fn stockout_fixture(client: &OdooClient) -> (odoo::TestWarehouse, i64) {
    let wh = warehouse(client).await;
    let acme = vendor(client, "Acme Test Supplies").await;
    let ordered = product(client, "E2E-1", 20.0, Some((acme, 5))).await;
    let bystander = product(client, "E2E-2", 20.0, Some((acme, 5))).await;
    for p in [ordered, bystander] {
        deliveries(client, &wh, p, today(), 60, 3.0, 3.0).await;
    }
    (wh, ordered)
}

/// A draft sales order for 40 of `item`: confirming it makes the stockout.
async fn large_order(client: &OdooClient, wh: &odoo::TestWarehouse, item: i64) -> i64 {
    let customer = create(client, "res.partner", json!({"name": "Test Customer"})).await;
    let order = create(
        client,
        "sale.order",
        json!({"partner_id": customer, "warehouse_id": wh.id}),
    )
    .await;
    create(
        client,
        "sale.order.line",
        json!({"order_id": order, "product_id": item, "name": "E2E-1", "product_uom_qty": 40.0, "price_unit": 30.0}),
    )
    .await;
    order
}

/// `stockout`: no schedule, so whatever it raises comes from the event path.
fn stockout_rule() -> Value {
    json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": "stockout"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "scope": {"productDomain": "[('default_code', '=like', 'E2E-%')]", "warehouses": ["TW1"]},
            "detector": {"projectedStockout": {"horizonDays": 30, "historyDays": 60}},
            "triggers": {"events": {
                "model": "sale.order",
                "operations": ["Write"],
                "watchedFields": ["state"],
                "filterDomain": "[('state', '=', 'sale')]",
                "pollIntervalSeconds": 5,
            }},
            "actions": [{"activity": {"assignee": {"user": "admin"}}}],
        },
    })
}

#[tokio::test]
async fn a_confirmed_sales_order_raises_the_stockout_activity_through_the_odoo_automation() {
    confirmed_order_raises_the_stockout_activity(OdooVersion::V17).await;
}

/// Odoo 16 has no webhook action: the rule polls `sale.order` on `write_date`
/// and the same focused re-evaluation follows.
#[tokio::test]
async fn on_odoo_16_the_write_date_poll_raises_the_stockout_activity() {
    confirmed_order_raises_the_stockout_activity(OdooVersion::V16).await;
}

async fn confirmed_order_raises_the_stockout_activity(version: OdooVersion) {
    let webhooks = version != OdooVersion::V16;
    let (cluster, ns) = setup("ev-odoo").await;
    let server = start_sim_version(version).await;
    let client = odoo::connect(&server).await;
    let (wh, ordered) = stockout_fixture(&client).await;

    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_operator(cluster, &ns, &server, &operator).await;
    // No schedule: whatever appears in Odoo comes from the event path.
    apply(cluster, &ns, &stockout_rule()).await;
    let expected = if webhooks {
        ("True".to_string(), "InSync".to_string())
    } else {
        ("False".to_string(), "PollingFallback".to_string())
    };
    eventually("the rule's automation in sync", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "stockout").await?;
        (condition(&obj, "Synced")? == expected).then_some(())
    })
    .await;

    let order = large_order(&client, &wh, ordered).await;
    assert!(activities(&client, &ns, "stockout").await.is_empty());

    let confirmed = Instant::now();
    client
        .write("sale.order", &[order], obj(json!({"state": "sale"})))
        .await
        .expect("confirming the order");
    let found = eventually("the stockout activity", || async {
        let found = activities(&client, &ns, "stockout").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let latency = confirmed.elapsed();
    eprintln!(
        "Odoo {version:?}: order confirmed -> activity in Odoo: {} ms ({})",
        latency.as_millis(),
        if webhooks {
            "Odoo webhook, gateway, focused scan, activity write"
        } else {
            "write_date poll every 5 s, focused scan, activity write"
        }
    );
    let subjects = [ordered, template_of(&client, ordered).await];
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        subjects.contains(&found[0].1),
        "{found:?} is not on {subjects:?}"
    );

    if !webhooks {
        assert_eq!(count(&client, "base.automation", json!([])).await, 0);
        server.shutdown().await;
        return;
    }
    // Odoo calls again each time the watched state really changes into the
    // filter; nothing is written twice and the bystander, though at risk
    // too, is not the event's business.
    for _ in 0..2 {
        for state in ["sent", "sale"] {
            client
                .write("sale.order", &[order], obj(json!({"state": state})))
                .await
                .expect("writing the order again");
        }
    }
    // An identical hint that arrives while another waits joins it (duplicate).
    eventually("three hints handled or joined", || async {
        let mut settled = 0;
        for sample in [
            "planops_gateway_event_duration_seconds_count",
            "planops_gateway_events_duplicate_total",
        ] {
            settled += gateway_metric(&operator, sample, "odoo", &ns, "stockout").await;
        }
        (settled >= 3).then_some(())
    })
    .await;
    assert_eq!(activities(&client, &ns, "stockout").await.len(), 1);

    // A wrong token is refused without saying why.
    // The path `planops plan` prints and the automation's webhook calls.
    let url = format!(
        "http://127.0.0.1:{}{}?token=wrong",
        operator.port,
        planops::automation::hook_path(&ns, "stockout")
    );
    let refused = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"_model": "sale.order", "_id": order}).to_string())
        .send()
        .await
        .expect("posting to the gateway");
    assert_eq!(refused.status().as_u16(), 401);
    server.shutdown().await;
}

/// `at-risk`: a confirmed order the stock cannot cover, seen only through
/// the event path. Whether the order counts depends on its state, so the hint
/// must be read after Odoo committed the confirmation.
fn at_risk_rule() -> Value {
    json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": "at-risk"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "scope": {"productDomain": "[('default_code', '=like', 'E2E-%')]", "warehouses": ["TW1"]},
            "detector": {"orderAtRisk": {"windowDays": 14}},
            "triggers": {"events": {
                "model": "sale.order",
                "operations": ["Write"],
                "watchedFields": ["state"],
                "filterDomain": "[('state', '=', 'sale')]",
            }},
            "actions": [{"activity": {"assignee": {"user": "admin"}}}],
        },
    })
}

/// Odoo 17 posts the webhook before it commits, and here the rest of its
/// transaction takes 1.5 s: a re-read at once would still see the order in
/// draft and find nothing at risk. The hint waits for the write it reports.
#[tokio::test]
async fn a_hint_sent_before_odoos_commit_is_acted_on_once_the_write_is_visible() {
    let (cluster, ns) = setup("ev-commit").await;
    let server = start_sim_version(OdooVersion::V17).await;
    let client = odoo::connect(&server).await;
    let wh = warehouse(&client).await;
    let item = product(&client, "E2E-R", 20.0, None).await;
    let customer = create(&client, "res.partner", json!({"name": "Test Customer"})).await;
    let promised = today()
        .checked_add(jiff::Span::new().days(5))
        .expect("a date");
    let order = create(
        &client,
        "sale.order",
        json!({"partner_id": customer, "warehouse_id": wh.id,
               "commitment_date": format!("{promised} 09:00:00")}),
    )
    .await;
    create(
        &client,
        "sale.order.line",
        json!({"order_id": order, "product_id": item, "name": "E2E-R", "product_uom_qty": 10.0,
               "qty_delivered": 0.0, "price_unit": 100.0}),
    )
    .await;

    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_operator(cluster, &ns, &server, &operator).await;
    apply(cluster, &ns, &at_risk_rule()).await;
    eventually("the rule's automation in sync", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "at-risk").await?;
        (condition(&obj, "Synced")? == ("True".to_string(), "InSync".to_string())).then_some(())
    })
    .await;
    server
        .set_faults(FaultConfig {
            webhook_commit_delay_ms: 1500,
            ..FaultConfig::default()
        })
        .expect("setting faults");
    client
        .write("sale.order", &[order], obj(json!({"state": "sale"})))
        .await
        .expect("confirming the order");
    let found = eventually("the order-at-risk activity", || async {
        let found = activities(&client, &ns, "at-risk").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(found, vec![("sale.order".to_string(), order)]);
    server.shutdown().await;
}

async fn planned(client: &OdooClient, line: i64) -> String {
    client
        .read("purchase.order.line", &[line], &["date_planned"])
        .await
        .expect("reading the line")[0]
        .str_field("date_planned")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_signed_supplier_delay_moves_the_date_once_and_raises_the_delay_at_once() {
    let (cluster, ns) = setup("ev-supplier").await;
    let server = start_sim().await;
    let client = odoo::connect(&server).await;
    let AcmeOrder {
        po,
        line,
        po_name,
        eta,
        ..
    } = acme_order(&client).await;

    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_operator(cluster, &ns, &server, &operator).await;
    // The delay rule scans every minute: its first scan remembers the
    // promised date, so a later push-back is news.
    apply(
        cluster,
        &ns,
        &json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
            "metadata": {"name": "late-supply"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "scope": {"productDomain": "[('default_code', '=like', 'E2E-%')]"},
                "detector": {"supplierDelay": {"minSlipDays": 3}},
                "triggers": {"schedule": {"cron": "* * * * *"}},
                "actions": [{"activity": {"assignee": {"user": "admin"}}}],
            },
        }),
    )
    .await;
    apply_acme_connector(cluster, &ns, &["late-supply"], None).await;
    eventually("the delay rule's first scan", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "late-supply").await?;
        obj["status"]["lastScan"]["startTime"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
            .then_some(())
    })
    .await;
    assert!(activities(&client, &ns, "late-supply").await.is_empty());

    let late = planops::engine::inputs::add_days(today(), 20);
    let delay = json!({"id": "evt-1", "type": "order.delayed", "po": "ACME-4711",
                       "lines": [{"sku": "E2E-S1", "eta": late.to_string()}]})
    .to_string();
    let now = jiff::Timestamp::now().as_second();

    // Refused, with nothing written: a wrong secret, a stale timestamp, an
    // oversize body, a body that is not JSON, and a PO that does not exist.
    let wrong = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        deliver(&operator, &ns, "m-1", now, wrong, &delay).await.0,
        401
    );
    assert_eq!(
        deliver(&operator, &ns, "m-1", now - 3600, SIGNING_SECRET, &delay)
            .await
            .0,
        401
    );
    let oversize = json!({"pad": "x".repeat(8192)}).to_string();
    assert_eq!(
        deliver(&operator, &ns, "m-2", now, SIGNING_SECRET, &oversize)
            .await
            .0,
        413
    );
    let (status, answer) = deliver(&operator, &ns, "m-3", now, SIGNING_SECRET, "{\"id\": ").await;
    assert_eq!(status, 400, "{answer}");
    let unknown_po = json!({"id": "evt-2", "type": "order.delayed", "po": "NOPE-1",
                            "lines": [{"sku": "E2E-S1", "eta": late.to_string()}]})
    .to_string();
    let (status, answer) = deliver(&operator, &ns, "m-4", now, SIGNING_SECRET, &unknown_po).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(planned(&client, line).await, format!("{eta} 10:00:00"));

    // The delay itself.
    let (status, answer) = deliver(&operator, &ns, "m-5", now, SIGNING_SECRET, &delay).await;
    assert_eq!(status, 200, "{answer}");
    assert!(planned(&client, line).await.starts_with(&late.to_string()));
    assert_eq!(
        answer["detail"]["purchaseOrder"],
        json!(po_name),
        "{answer}"
    );
    let rules = answer["detail"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 1, "{answer}");
    assert_eq!(rules[0]["rule"], "late-supply", "{answer}");
    assert_eq!(
        rules[0]["opened"], 1,
        "the delay rule saw the push-back at once: {answer}"
    );
    let raised = activities(&client, &ns, "late-supply").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    let notes = || {
        count(
            &client,
            "mail.message",
            json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", po],
                ["body", "ilike", "planops:"]
            ]),
        )
    };
    assert_eq!(notes().await, 1);

    // A replay (same event, new delivery id and timestamp) has no effect.
    let again = jiff::Timestamp::now().as_second();
    let (status, answer) = deliver(&operator, &ns, "m-6", again, SIGNING_SECRET, &delay).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], true, "{answer}");
    assert_eq!(notes().await, 1);
    assert_eq!(activities(&client, &ns, "late-supply").await.len(), 1);

    // The connector's status counts what the gateway settled.
    let status = eventually("the connector's event counts", || async {
        let obj = get(cluster, &ns, "SupplierConnector", "acme").await?;
        let events = obj["status"]["events"].clone();
        (events["accepted"] == 1 && events["rejected"] == 1).then_some(obj)
    })
    .await;
    assert_eq!(
        status["status"]["routePath"],
        json!(format!("/hooks/suppliers/{ns}/acme"))
    );
    server.shutdown().await;
}

/// The gateway as its own Deployment (`planops gateway`, two replicas) in
/// front of the operator: what each replica accepts reaches the leader, which
/// alone acts, so the same event through two replicas has one effect; what a
/// replica refuses never reaches the leader; while no leader answers,
/// suppliers are told to retry and Odoo's hints wait at the edge.
#[tokio::test]
async fn edge_gateway_replicas_pass_events_to_the_leader_and_nothing_happens_twice() {
    let (cluster, ns) = setup("ev-edge").await;
    let server = start_sim().await;
    let client = odoo::connect(&server).await;
    let (wh, ordered) = stockout_fixture(&client).await;
    let AcmeOrder { po, line, .. } = acme_order(&client).await;

    let mut operator = OperatorProcess::simple(cluster, &ns).await;
    let leader_port = operator.port;
    let edge_a = OperatorProcess::edge(cluster, &ns, leader_port).await;
    let edge_b = OperatorProcess::edge(cluster, &ns, leader_port).await;
    // Odoo calls the edge (in a cluster: the gateway Service).
    let callback = format!("http://127.0.0.1:{}", edge_a.port);
    connect_odoo_with(cluster, &ns, &server, Some(&callback)).await;
    apply(cluster, &ns, &stockout_rule()).await;
    apply_acme_connector(cluster, &ns, &[], None).await;
    apply(
        cluster,
        &ns,
        &json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ApprovalPolicy",
            "metadata": {"name": "rfq-approval"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "governs": "EmergencyPurchase",
                "levels": [{"name": "buyers", "users": ["buyer.alice"]}],
            },
        }),
    )
    .await;
    eventually("the rule's automation in sync", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "stockout").await?;
        (condition(&obj, "Synced")? == ("True".into(), "InSync".into())).then_some(())
    })
    .await;
    let wrong = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let wrong_token = |port: u16, path: String| async move {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}{path}?token=wrong"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    };
    // 401, not 404: each replica has the route, with its token or secret.
    for edge in [&edge_a, &edge_b] {
        eventually("the three kinds of routes served by the edge", || async {
            let now = jiff::Timestamp::now().as_second();
            let rule = wrong_token(edge.port, format!("/hooks/odoo/{ns}/stockout")).await?;
            let policy =
                wrong_token(edge.port, format!("/hooks/approvals/{ns}/rfq-approval")).await?;
            let supplier = deliver(edge, &ns, "probe", now, wrong, "{}").await.0;
            (rule == 401 && policy == 401 && supplier == 401).then_some(())
        })
        .await;
    }

    // One supplier event through both replicas, and a forgery.
    let received = "planops_gateway_events_received_total";
    let at_leader_before = gateway_metric(&operator, received, "suppliers", &ns, "acme").await;
    let late = planops::engine::inputs::add_days(today(), 20);
    let delay = json!({"id": "evt-edge-1", "type": "order.delayed", "po": "ACME-4711",
                       "lines": [{"sku": "E2E-S1", "eta": late.to_string()}]})
    .to_string();
    let now = jiff::Timestamp::now().as_second();
    assert_eq!(
        deliver(&edge_a, &ns, "m-1", now, wrong, &delay).await.0,
        401
    );
    let (status, answer) = deliver(&edge_b, &ns, "m-2", now, SIGNING_SECRET, &delay).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["detail"]["linesUpdated"], 1, "{answer}");
    assert!(planned(&client, line).await.starts_with(&late.to_string()));
    let (status, answer) = deliver(&edge_a, &ns, "m-3", now, SIGNING_SECRET, &delay).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["detail"]["duplicate"], true, "{answer}");
    let notes = count(
        &client,
        "mail.message",
        json!([
            ["model", "=", "purchase.order"],
            ["res_id", "=", po],
            ["body", "ilike", "planops:"]
        ]),
    )
    .await;
    assert_eq!(notes, 1, "one chatter note for one event");
    let at_leader = gateway_metric(&operator, received, "suppliers", &ns, "acme").await;
    assert_eq!(
        at_leader - at_leader_before,
        2,
        "the two authentic deliveries reached the leader, the forgery did not"
    );

    // No leader: the supplier is told to retry; Odoo's hint waits at the edge.
    operator.child.kill().await.expect("stopping the operator");
    let stale = json!({"id": "evt-edge-2", "type": "order.delayed", "po": "ACME-4711",
                       "lines": [{"sku": "E2E-S1", "eta": late.to_string()}]})
    .to_string();
    let now = jiff::Timestamp::now().as_second();
    eventually("the edge answers 503 without a leader", || async {
        let (status, _) = deliver(&edge_b, &ns, "m-4", now, SIGNING_SECRET, &stale).await;
        (status == 503).then_some(())
    })
    .await;
    let order = large_order(&client, &wh, ordered).await;
    let confirmed = Instant::now();
    client
        .write("sale.order", &[order], obj(json!({"state": "sale"})))
        .await
        .expect("confirming the order");
    eventually("Odoo's hint accepted by the edge", || async {
        let accepted = gateway_metric(
            &edge_a,
            "planops_gateway_events_accepted_total",
            "odoo",
            &ns,
            "stockout",
        )
        .await;
        (accepted >= 1).then_some(())
    })
    .await;
    assert!(activities(&client, &ns, "stockout").await.is_empty());
    let _operator = OperatorProcess::simple_on(cluster, &ns, leader_port).await;
    let found = eventually("the stockout activity after the leader is back", || async {
        let found = activities(&client, &ns, "stockout").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    eprintln!(
        "order confirmed with no leader -> activity once a leader answered: {} ms",
        confirmed.elapsed().as_millis()
    );
    assert_eq!(found.len(), 1, "{found:?}");
    server.shutdown().await;
}
