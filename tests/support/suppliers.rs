//! A supplier that sends signed webhooks: its purchase orders in Odoo, its
//! `SupplierConnector` (`acme`, Standard Webhooks) and signed deliveries to
//! the connector's gateway route.

use std::collections::HashMap;

use jiff::civil::Date;
use planops::actions::webhook::sign;
use planops::odoo::{OdooClient, RecordExt, Secret};
use serde_json::{Value, json};

use super::odoo::{create, product};
use super::{OperatorProcess, TestCluster, apply, wait_ready};

/// The Standard Webhooks secret of the `acme` connector.
pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Name of the connector [`apply_acme_connector`] applies.
pub const CONNECTOR: &str = "acme";

/// Posts `body` to the `acme` route on `port`, signed as Standard Webhooks
/// with `secret` at `timestamp` and delivery id `id`: the status and the JSON
/// answer, or the error when no HTTP answer came back (refused, reset): a
/// sender does not know then whether the event was applied, and retries.
pub async fn try_deliver(
    port: u16,
    ns: &str,
    id: &str,
    timestamp: i64,
    secret: &str,
    body: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let headers = sign(&Secret::new(secret), id, timestamp, body.as_bytes()).expect("signing");
    let response = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/hooks/suppliers/{ns}/{CONNECTOR}"
        ))
        .header("content-type", "application/json")
        .header("webhook-id", headers.id)
        .header("webhook-timestamp", headers.timestamp.to_string())
        .header("webhook-signature", headers.signature)
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// [`try_deliver`] to a process that must answer.
pub async fn deliver(
    operator: &OperatorProcess,
    ns: &str,
    id: &str,
    timestamp: i64,
    secret: &str,
    body: &str,
) -> (u16, Value) {
    try_deliver(operator.port, ns, id, timestamp, secret, body)
        .await
        .expect("posting to the gateway")
}

/// A confirmed purchase order from Acme for 100 of `E2E-S1`, due in 4 days.
pub struct AcmeOrder {
    pub po: i64,
    pub line: i64,
    pub po_name: String,
    /// The supplier's reference of the order (`ACME-4711`, `ACME-4712`, …).
    pub reference: String,
    pub eta: Date,
}

/// The supplier Acme (`ref` ACME), the product `E2E-S1` it supplies, and one order.
pub async fn acme_order(client: &OdooClient) -> AcmeOrder {
    acme_orders(client, 1).await.remove(0)
}

/// [`acme_order`] with `count` orders, referenced `ACME-4711` onwards.
pub async fn acme_orders(client: &OdooClient, count: usize) -> Vec<AcmeOrder> {
    let acme = create(
        client,
        "res.partner",
        json!({"name": "Acme Supplies", "is_company": true, "supplier_rank": 1, "ref": "ACME"}),
    )
    .await;
    let item = product(client, "E2E-S1", 10.0, Some((acme, 5))).await;
    let eta = planops::engine::inputs::add_days(jiff::Zoned::now().date(), 4);
    let mut orders = Vec::with_capacity(count);
    for n in 0..count {
        let reference = format!("ACME-{}", 4711 + n);
        let po = create(
            client,
            "purchase.order",
            json!({"partner_id": acme, "partner_ref": reference, "state": "purchase"}),
        )
        .await;
        let line = create(
            client,
            "purchase.order.line",
            json!({"order_id": po, "product_id": item, "product_qty": 100.0, "price_unit": 5.0,
                   "date_planned": format!("{eta} 10:00:00")}),
        )
        .await;
        let po_name = client
            .read("purchase.order", &[po], &["name"])
            .await
            .expect("reading the PO")[0]
            .str_field("name")
            .ok()
            .flatten()
            .expect("the PO's name")
            .to_string();
        orders.push(AcmeOrder {
            po,
            line,
            po_name,
            reference,
            eta,
        });
    }
    orders
}

/// The `acme` connector (Standard Webhooks, secret in `acme-hooks`),
/// re-evaluating `reevaluate` after each event, with the route's rate limit
/// when given; waits until it is ready.
pub async fn apply_acme_connector(
    cluster: &TestCluster,
    ns: &str,
    reevaluate: &[&str],
    rate_limit_per_second: Option<u32>,
) {
    apply(
        cluster,
        ns,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "acme-hooks"},
            "stringData": {"secret": SIGNING_SECRET},
        }),
    )
    .await;
    let rules: Vec<Value> = reevaluate.iter().map(|r| json!({"name": r})).collect();
    let mut webhook = json!({
        "auth": {"standardWebhooks": {"secretRefs": [{"name": "acme-hooks", "key": "secret"}]}},
        "maxBodyBytes": 4096,
    });
    if let Some(rate) = rate_limit_per_second {
        webhook["rateLimitPerSecond"] = json!(rate);
    }
    apply(
        cluster,
        ns,
        &json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "SupplierConnector",
            "metadata": {"name": CONNECTOR},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "supplier": {"ref": "ACME"},
                "inbound": {"webhook": webhook},
                "mapping": {
                    "eventType": "$.type",
                    "eventTypeValues": {"order.delayed": "Delay"},
                    "eventId": "$.id",
                    "purchaseOrderRef": "$.po",
                    "lines": "$.lines[*]",
                    "productCode": "$.sku",
                    "promisedDate": "$.eta",
                },
                "effects": {"reevaluateRules": rules},
            },
        }),
    )
    .await;
    wait_ready(
        cluster,
        ns,
        "SupplierConnector",
        CONNECTOR,
        "True",
        "Reconciled",
    )
    .await;
}

/// The chatter notes and payload attachments supplier events left on
/// purchase orders in Odoo, read in two calls, by fingerprint and by name.
pub struct EventEffects {
    notes: HashMap<String, u64>,
    attachments: HashMap<String, u64>,
}

impl EventEffects {
    pub async fn read(client: &OdooClient) -> EventEffects {
        let messages = client
            .search_read_all(
                "mail.message",
                &json!([
                    ["model", "=", "purchase.order"],
                    ["body", "ilike", "planops:"]
                ]),
                &["body"],
                &Default::default(),
            )
            .await
            .expect("reading the notes on purchase orders");
        let mut notes = HashMap::new();
        for message in &messages {
            let body = message.str_field("body").ok().flatten().unwrap_or_default();
            for fingerprint in planops::actions::fingerprints_in(body) {
                *notes.entry(fingerprint).or_default() += 1;
            }
        }
        let files = client
            .search_read_all(
                "ir.attachment",
                &json!([
                    ["res_model", "=", "purchase.order"],
                    ["name", "=like", "supplier-event-%"]
                ]),
                &["name"],
                &Default::default(),
            )
            .await
            .expect("reading the attachments of purchase orders");
        let mut attachments = HashMap::new();
        for file in &files {
            let name = file.str_field("name").ok().flatten().unwrap_or_default();
            *attachments.entry(name.to_string()).or_default() += 1;
        }
        EventEffects { notes, attachments }
    }

    /// `(notes, attachments)` of the event `event_id` of the `acme` connector in `ns`.
    pub fn of(&self, ns: &str, event_id: &str) -> (u64, u64) {
        let fingerprint = planops::supplier::event_fingerprint(ns, CONNECTOR, event_id);
        let attachment = planops::supplier::effects::attachment_name(&fingerprint);
        (
            self.notes.get(&fingerprint).copied().unwrap_or_default(),
            self.attachments
                .get(&attachment)
                .copied()
                .unwrap_or_default(),
        )
    }

    /// Attachments of supplier events, whichever event they belong to.
    pub fn attachments(&self) -> u64 {
        self.attachments.values().sum()
    }
}
