//! SupplierConnector events against the Odoo simulator over HTTP: a delay moves
//! the PO line's promised date, replays and lost replies write nothing twice,
//! events for another supplier's PO or a product not on the PO are rejected
//! with nothing written, and lead-time statistics match a hand computation
//! from the raw records. The last tests run the operator on the real
//! kube-apiserver and poll a supplier API served inside the test.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use jiff::civil::{Date, date};
use planops::api::SupplierConnector;
use planops::odoo::{OdooClient, RecordExt, SearchOptions};
use planops::sim::{DatasetParams, Edition, FaultConfig, OdooVersion, SimConfig, SimServer};
use planops::supplier::{
    ApplyError, Delivery, EventError, Handled, Rejection, SupplierRuntime, handle_event, leadtime,
};
use serde_json::{Value, json};
use support::odoo::{self, connect, count, create};

const TODAY: Date = date(2025, 3, 1);

async fn start() -> SimServer {
    start_with(DatasetParams {
        seed: 7,
        products: 12,
        warehouses: 1,
        history_days: 120,
        ..DatasetParams::default()
    })
    .await
}

async fn start_with(dataset: DatasetParams) -> SimServer {
    let cfg = SimConfig {
        version: OdooVersion::V17,
        edition: Edition::Community,
        dataset,
        today: TODAY,
        ..SimConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SimServer::start(cfg, addr).await.unwrap()
}

/// Two suppliers, three products, and a PO of each supplier.
struct Fixture {
    supplier: i64,
    /// `P…` name of the supplier's PO; its vendor reference is `ACME-4711`.
    order: i64,
    order_name: String,
    /// Lines of `order` for products A and B, planned 2025-03-10 10:00.
    line_a: i64,
    line_b: i64,
    other_order: i64,
    other_order_name: String,
    other_line: i64,
}

async fn product(client: &OdooClient, code: &str) -> i64 {
    odoo::product(client, code, 10.0, None).await
}

async fn order(
    client: &OdooClient,
    partner: i64,
    reference: &str,
    products: &[i64],
) -> (i64, String, Vec<i64>) {
    let po = create(
        client,
        "purchase.order",
        json!({"partner_id": partner, "partner_ref": reference, "state": "purchase",
               "date_order": "2025-02-20 09:00:00"}),
    )
    .await;
    let mut lines = Vec::new();
    for &p in products {
        lines.push(
            create(
                client,
                "purchase.order.line",
                json!({"order_id": po, "product_id": p, "product_qty": 10.0, "price_unit": 5.0,
                       "date_planned": "2025-03-10 10:00:00"}),
            )
            .await,
        );
    }
    let name = client
        .read("purchase.order", &[po], &["name"])
        .await
        .unwrap()[0]
        .str_field("name")
        .unwrap()
        .unwrap()
        .to_string();
    (po, name, lines)
}

async fn fixture(client: &OdooClient) -> Fixture {
    let supplier = create(
        client,
        "res.partner",
        json!({"name": "Acme Supplies", "is_company": true, "supplier_rank": 1, "ref": "ACME"}),
    )
    .await;
    let other = create(
        client,
        "res.partner",
        json!({"name": "Other Supplies", "is_company": true, "supplier_rank": 1}),
    )
    .await;
    let a = product(client, "SUP-A").await;
    let b = product(client, "SUP-B").await;
    product(client, "SUP-C").await;
    let (order, order_name, lines) = order(client, supplier, "ACME-4711", &[a, b]).await;
    let (other_order, other_order_name, other_lines) =
        self::order(client, other, "OTHER-1", &[a]).await;
    Fixture {
        supplier,
        order,
        order_name,
        line_a: lines[0],
        line_b: lines[1],
        other_order,
        other_order_name,
        other_line: other_lines[0],
    }
}

fn connector(effects: Value) -> SupplierConnector {
    let mut c: SupplierConnector = serde_json::from_value(json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "SupplierConnector",
        "metadata": {"name": "acme", "namespace": "purchasing"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "supplier": {"ref": "ACME"},
            "inbound": {"poll": {"url": "http://127.0.0.1:9/events"}},
            "mapping": {
                "eventType": "$.type",
                "eventTypeValues": {"order.delayed": "Delay", "order.confirmed": "Confirmation",
                                    "order.shipped": "Shipment", "order.cancelled": "Cancellation"},
                "eventId": "$.id",
                "purchaseOrderRef": "$.po",
                "lines": "$.lines[*]",
                "productCode": "$.sku",
                "quantity": "$.qty",
                "promisedDate": "$.eta",
            },
        },
    }))
    .unwrap();
    if !effects.is_null() {
        c.spec.effects = Some(serde_json::from_value(effects).unwrap());
    }
    c
}

async fn send(
    client: &OdooClient,
    runtime: &SupplierRuntime,
    payload: &Value,
) -> Result<Handled, EventError> {
    let raw = serde_json::to_vec(payload).unwrap();
    handle_event(
        client,
        runtime,
        Delivery {
            payload,
            raw: &raw,
            delivery_id: None,
        },
    )
    .await
}

async fn planned(client: &OdooClient, line: i64) -> String {
    client
        .read("purchase.order.line", &[line], &["date_planned"])
        .await
        .unwrap()[0]
        .str_field("date_planned")
        .unwrap()
        .unwrap_or_default()
        .to_string()
}

/// Notes and attachments PlanOps wrote on a PO.
async fn evidence(client: &OdooClient, order: i64) -> (u64, u64) {
    (
        count(
            client,
            "mail.message",
            json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", order],
                ["body", "ilike", "planops:"]
            ]),
        )
        .await,
        count(
            client,
            "ir.attachment",
            json!([
                ["res_model", "=", "purchase.order"],
                ["res_id", "=", order],
                ["name", "=like", "supplier-event-%"]
            ]),
        )
        .await,
    )
}

#[tokio::test]
async fn a_delay_moves_the_promised_date_once() {
    let server = start().await;
    let client = connect(&server).await;
    let f = fixture(&client).await;
    let runtime = SupplierRuntime::new(&connector(Value::Null), f.supplier).unwrap();

    // Referenced by the supplier's own reference, one line delayed.
    let delay = json!({"id": "evt-1", "type": "order.delayed", "po": "ACME-4711",
                       "lines": [{"sku": "SUP-A", "qty": 10, "eta": "2025-03-18T09:00:00+02:00"}]});
    let calls = client.requests_made();
    let started = std::time::Instant::now();
    let handled = send(&client, &runtime, &delay).await.unwrap();
    let first_calls = client.requests_made() - calls;
    let first_time = started.elapsed();
    let applied = &handled.applied;
    assert_eq!(applied.purchase_order_id, f.order);
    assert_eq!(applied.purchase_order_name, f.order_name);
    assert_eq!(applied.lines_updated, 1);
    assert!(applied.note_posted && !applied.duplicate);
    assert_eq!(applied.product_ids.len(), 1);
    // The date moved, keeping the line's time of day; the other line did not.
    assert_eq!(planned(&client, f.line_a).await, "2025-03-18 10:00:00");
    assert_eq!(planned(&client, f.line_b).await, "2025-03-10 10:00:00");
    assert_eq!(evidence(&client, f.order).await, (1, 1));

    // The note carries the payload as an attachment with the original bytes.
    let notes = client
        .search_read(
            "mail.message",
            &json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", f.order],
                ["body", "ilike", "planops:"]
            ]),
            &["body", "attachment_ids"],
            &SearchOptions::default(),
        )
        .await
        .unwrap();
    let body = notes[0].str_field("body").unwrap().unwrap();
    assert!(body.contains(&applied.fingerprint), "{body}");
    assert!(body.contains("2025-03-10 → 2025-03-18"), "{body}");
    let attachments = notes[0].ids("attachment_ids").unwrap();
    assert_eq!(attachments.len(), 1);
    let att = &client
        .read(
            "ir.attachment",
            &attachments,
            &["name", "datas", "res_model", "res_id"],
        )
        .await
        .unwrap()[0];
    assert_eq!(att.str_field("res_model").unwrap(), Some("purchase.order"));
    assert_eq!(att.get("res_id").and_then(Value::as_i64), Some(f.order));
    use base64::Engine as _;
    let datas = base64::engine::general_purpose::STANDARD
        .decode(att.str_field("datas").unwrap().unwrap())
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&datas).unwrap(), delay);

    // The same event again: nothing new.
    let calls = client.requests_made();
    let before = client.calls_made();
    let started = std::time::Instant::now();
    let again = send(&client, &runtime, &delay).await.unwrap();
    let replay_calls = client.requests_made() - calls;
    let replay_methods = client.calls_made().since(&before).by_method;
    println!(
        "first delivery: {first_calls} Odoo calls in {first_time:?}; replay: {replay_calls} calls in {:?}",
        started.elapsed()
    );
    assert!(again.applied.duplicate);
    assert_eq!(again.applied.lines_updated, 0);
    assert!(!again.applied.note_posted);
    // A replay only reads: PO, lines, products, attachment, note.
    assert_eq!(replay_calls, 5);
    let writes: Vec<&String> = replay_methods
        .keys()
        .filter(|key| {
            let method = key.rsplit('/').next().unwrap_or_default();
            !matches!(method, "search_read" | "read" | "search" | "search_count")
        })
        .collect();
    assert!(
        writes.is_empty(),
        "a replay called {writes:?}: {replay_methods:?}"
    );
    assert!(first_calls > replay_calls);
    assert_eq!(evidence(&client, f.order).await, (1, 1));

    // A later event moves it again; replaying the first one then does not
    // undo the later date.
    let later = json!({"id": "evt-2", "type": "order.delayed", "po": f.order_name,
                       "lines": [{"sku": "SUP-A", "eta": "2025-03-25"}]});
    assert_eq!(
        send(&client, &runtime, &later)
            .await
            .unwrap()
            .applied
            .lines_updated,
        1
    );
    send(&client, &runtime, &delay).await.unwrap();
    assert_eq!(planned(&client, f.line_a).await, "2025-03-25 10:00:00");
    assert_eq!(evidence(&client, f.order).await, (2, 2));

    // A confirmation of both lines: the line already on its date is not written.
    let confirm = json!({"id": "evt-3", "type": "order.confirmed", "po": "ACME-4711",
                         "lines": [{"sku": "SUP-A", "eta": "2025-03-25"}, {"sku": "SUP-B", "eta": "2025-03-26"}]});
    let handled = send(&client, &runtime, &confirm).await.unwrap();
    assert_eq!(handled.applied.lines_updated, 1);
    assert_eq!(handled.applied.product_ids.len(), 2);
    assert_eq!(planned(&client, f.line_b).await, "2025-03-26 10:00:00");
    server.shutdown().await;
}

#[tokio::test]
async fn shipments_and_cancellations_are_recorded_without_touching_the_order() {
    let server = start().await;
    let client = connect(&server).await;
    let f = fixture(&client).await;
    let runtime = SupplierRuntime::new(&connector(Value::Null), f.supplier).unwrap();
    for (id, kind) in [("s-1", "order.shipped"), ("c-1", "order.cancelled")] {
        let event = json!({"id": id, "type": kind, "po": "ACME-4711",
                           "lines": [{"sku": "SUP-B", "qty": 4, "eta": "2025-04-30"}]});
        let handled = send(&client, &runtime, &event).await.unwrap();
        assert_eq!(handled.applied.lines_updated, 0, "{kind}");
        assert!(handled.applied.note_posted);
    }
    assert_eq!(planned(&client, f.line_b).await, "2025-03-10 10:00:00");
    let state = client
        .read("purchase.order", &[f.order], &["state"])
        .await
        .unwrap()[0]
        .str_field("state")
        .unwrap()
        .map(str::to_string);
    assert_eq!(
        state.as_deref(),
        Some("purchase"),
        "a cancellation does not cancel the PO"
    );
    assert_eq!(evidence(&client, f.order).await, (2, 2));

    // With updatePromisedDates and chatterNote off, a delay only leaves its
    // evidence, and a replay still finds it.
    let quiet = SupplierRuntime::new(
        &connector(json!({"updatePromisedDates": false, "chatterNote": false})),
        f.supplier,
    )
    .unwrap();
    let delay = json!({"id": "q-1", "type": "order.delayed", "po": "ACME-4711",
                       "lines": [{"sku": "SUP-B", "eta": "2025-05-01"}]});
    let first = send(&client, &quiet, &delay).await.unwrap();
    assert!(!first.applied.duplicate && !first.applied.note_posted);
    assert!(
        send(&client, &quiet, &delay)
            .await
            .unwrap()
            .applied
            .duplicate
    );
    assert_eq!(planned(&client, f.line_b).await, "2025-03-10 10:00:00");
    assert_eq!(evidence(&client, f.order).await, (2, 3));
    server.shutdown().await;
}

#[tokio::test]
async fn lost_replies_then_retries_leave_one_note_and_one_attachment() {
    let server = start().await;
    let client = connect(&server).await;
    let f = fixture(&client).await;
    let runtime = SupplierRuntime::new(&connector(Value::Null), f.supplier).unwrap();
    let mut dropped = 0;
    for n in 0..4 {
        let delay = json!({"id": format!("lossy-{n}"), "type": "order.delayed", "po": "ACME-4711",
                           "lines": [{"sku": "SUP-A", "eta": format!("2025-04-0{}", n + 1)}]});
        // Half the ORM calls commit and lose their reply; the sender retries
        // until it gets an answer, as a webhook sender does on 503.
        server
            .set_faults(FaultConfig {
                drop_reply_rate: 0.5,
                seed: Some(40 + n),
                ..FaultConfig::default()
            })
            .unwrap();
        let mut outcome = None;
        for _ in 0..30 {
            match send(&client, &runtime, &delay).await {
                Ok(h) => {
                    outcome = Some(h);
                    break;
                }
                Err(e) => assert_eq!(e.http_status(), 503, "{e}"),
            }
        }
        server.set_faults(FaultConfig::default()).unwrap();
        assert!(outcome.is_some(), "event {n} never applied");
        dropped = server.stats().faults_injected.dropped_replies;
        // Once the reply gets through, everything is there exactly once.
        let again = send(&client, &runtime, &delay).await.unwrap();
        assert!(again.applied.duplicate);
        assert_eq!(
            planned(&client, f.line_a).await,
            format!("2025-04-0{} 10:00:00", n + 1)
        );
        assert_eq!(evidence(&client, f.order).await, (n + 1, n + 1));
    }
    assert!(dropped > 0, "the fault injector dropped no reply");
    server.shutdown().await;
}

#[tokio::test]
async fn events_for_another_suppliers_order_or_unknown_products_write_nothing() {
    let server = start().await;
    let client = connect(&server).await;
    let f = fixture(&client).await;
    let runtime = SupplierRuntime::new(&connector(Value::Null), f.supplier).unwrap();
    let messages = count(&client, "mail.message", json!([])).await;
    let attachments = count(&client, "ir.attachment", json!([])).await;

    // The other supplier's PO, by name and by its vendor reference.
    for reference in [f.other_order_name.as_str(), "OTHER-1", "P-NOPE"] {
        let event = json!({"id": "x-1", "type": "order.delayed", "po": reference,
                           "lines": [{"sku": "SUP-A", "eta": "2025-06-01"}]});
        let err = send(&client, &runtime, &event).await.unwrap_err();
        assert_eq!(err.http_status(), 422);
        assert!(
            matches!(
                err,
                EventError::Apply(ApplyError::Rejected(
                    Rejection::PurchaseOrderNotFound { .. }
                ))
            ),
            "{err}"
        );
    }
    assert_eq!(planned(&client, f.other_line).await, "2025-03-10 10:00:00");
    assert_eq!(evidence(&client, f.other_order).await, (0, 0));

    // One good line and one product the PO does not have: nothing at all.
    let event = json!({"id": "x-2", "type": "order.delayed", "po": "ACME-4711",
                       "lines": [{"sku": "SUP-A", "eta": "2025-06-01"}, {"sku": "SUP-C", "eta": "2025-06-02"}]});
    let err = send(&client, &runtime, &event).await.unwrap_err();
    match &err {
        EventError::Apply(ApplyError::Rejected(Rejection::ProductNotOnOrder { codes, .. })) => {
            assert_eq!(codes, &vec!["SUP-C".to_string()])
        }
        other => panic!("expected ProductNotOnOrder, got {other}"),
    }
    assert_eq!(planned(&client, f.line_a).await, "2025-03-10 10:00:00");

    // A payload that does not map is rejected before Odoo is asked anything.
    let calls = client.requests_made();
    let err = send(
        &client,
        &runtime,
        &json!({"id": "x-3", "type": "order.delayed", "po": "ACME-4711",
                                             "lines": [{"sku": "SUP-A", "qty": -2}]}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EventError::Mapping(_)), "{err}");
    assert_eq!(err.http_status(), 422);
    assert_eq!(client.requests_made(), calls);

    assert_eq!(count(&client, "mail.message", json!([])).await, messages);
    assert_eq!(
        count(&client, "ir.attachment", json!([])).await,
        attachments
    );
    assert_eq!(evidence(&client, f.order).await, (0, 0));
    server.shutdown().await;
}

/// p-quantile by linear interpolation between order statistics (the definition
/// numpy and R type 7 use), written out here independently of the engine.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn utc_day(text: &str) -> Date {
    text[..10].parse().unwrap()
}

#[tokio::test]
async fn lead_time_statistics_match_a_hand_computation() {
    // Few suppliers for many products: each has a history of receipts.
    let server = start_with(DatasetParams {
        seed: 5,
        products: 60,
        warehouses: 1,
        suppliers: 3,
        history_days: 365,
        ..DatasetParams::default()
    })
    .await;
    let client = connect(&server).await;
    // Raw records: every done move of a purchase line, its line and its order.
    let moves = client
        .search_read(
            "stock.move",
            &json!([["state", "=", "done"], ["purchase_line_id", "!=", false]]),
            &["purchase_line_id", "date"],
            &SearchOptions::default(),
        )
        .await
        .unwrap();
    let lines = client
        .search_read(
            "purchase.order.line",
            &json!([]),
            &["order_id", "date_planned"],
            &SearchOptions::default(),
        )
        .await
        .unwrap();
    let orders = client
        .search_read(
            "purchase.order",
            &json!([]),
            &["partner_id", "date_approve", "date_order"],
            &SearchOptions::default(),
        )
        .await
        .unwrap();
    let line_of: HashMap<i64, (i64, String)> = lines
        .iter()
        .map(|l| {
            (
                l.id().unwrap(),
                (
                    l.many2one("order_id").unwrap().unwrap().id,
                    l.str_field("date_planned").unwrap().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let order_of: HashMap<i64, (i64, String)> = orders
        .iter()
        .map(|o| {
            (
                o.id().unwrap(),
                (
                    o.many2one("partner_id").unwrap().unwrap().id,
                    o.str_field("date_approve")
                        .unwrap()
                        .or(o.str_field("date_order").unwrap())
                        .unwrap()
                        .to_string(),
                ),
            )
        })
        .collect();
    // (partner) → [(done date, lead days, on time)]
    let mut by_partner: HashMap<i64, Vec<(Date, f64, bool)>> = HashMap::new();
    for m in &moves {
        let line = m.many2one("purchase_line_id").unwrap().unwrap().id;
        let (order, planned) = &line_of[&line];
        let (partner, approved) = &order_of[order];
        let done = utc_day(m.str_field("date").unwrap().unwrap());
        let days = (done - utc_day(approved)).get_days() as f64;
        by_partner
            .entry(*partner)
            .or_default()
            .push((done, days, done <= utc_day(planned)));
    }
    let (&partner, _) = by_partner
        .iter()
        .max_by_key(|(id, v)| (v.len(), **id))
        .expect("the data set has done receipts");

    for window in [3650u32, 60] {
        let since = TODAY - jiff::Span::new().days(window);
        let mut samples: Vec<(f64, bool)> = by_partner[&partner]
            .iter()
            .filter(|(done, _, _)| *done >= since)
            .map(|(_, d, on)| (*d, *on))
            .collect();
        let stats = leadtime::measure(&client, partner, window, TODAY)
            .await
            .unwrap();
        if samples.is_empty() {
            assert_eq!(stats, None);
            continue;
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let days: Vec<f64> = samples.iter().map(|s| s.0).collect();
        let on_time = samples.iter().filter(|s| s.1).count() as f64 / samples.len() as f64;
        let stats = stats.expect("stats");
        assert_eq!(stats.samples as usize, samples.len(), "window {window}");
        assert!(
            (stats.p50_days - percentile(&days, 0.5)).abs() < 0.006,
            "{stats:?} {days:?}"
        );
        assert!(
            (stats.p90_days - percentile(&days, 0.9)).abs() < 0.006,
            "{stats:?} {days:?}"
        );
        assert!((stats.on_time_rate - on_time).abs() < 0.0001, "{stats:?}");
        println!("window {window} d: partner {partner}: {stats:?}");
    }
    // A partner without receipts has no statistics.
    let nobody = create(&client, "res.partner", json!({"name": "New Vendor"})).await;
    assert_eq!(
        leadtime::measure(&client, nobody, 365, TODAY)
            .await
            .unwrap(),
        None
    );
    server.shutdown().await;
}

// ------------------------------------------------------------- operator + poll

/// A supplier API serving events from a list in pages of `PAGE`, cursor = index
/// of the next event; requires `Authorization: Bearer <TOKEN>`.
const PAGE: usize = 2;
const TOKEN: &str = "supplier-token-6c1d9e4f";

#[derive(Clone, Default)]
struct FeedState {
    events: Arc<Mutex<Vec<Value>>>,
    /// Cursors asked for, in order.
    requests: Arc<Mutex<Vec<Option<String>>>>,
}

async fn supplier_api(state: FeedState) -> String {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    async fn page(
        State(state): State<FeedState>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, String>>,
    ) -> Result<axum::Json<Value>, StatusCode> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth != format!("Bearer {TOKEN}") {
            return Err(StatusCode::UNAUTHORIZED);
        }
        let cursor = query.get("cursor").cloned();
        state.requests.lock().unwrap().push(cursor.clone());
        let from: usize = cursor.as_deref().unwrap_or("0").parse().unwrap_or(0);
        let events = state.events.lock().unwrap();
        let to = (from + PAGE).min(events.len());
        let items: Vec<Value> = events.get(from..to).unwrap_or_default().to_vec();
        Ok(axum::Json(
            json!({"events": items, "nextCursor": to.max(from).to_string()}),
        ))
    }
    let app = axum::Router::new()
        .route("/v1/events", axum::routing::get(page))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    format!("http://{addr}/v1/events")
}

fn confirmation(n: usize, reference: &str, eta: &str) -> Value {
    json!({"id": format!("conf-{n}"), "type": "order.confirmed", "po": reference,
           "lines": [{"sku": "SUP-A", "qty": 10, "eta": eta}]})
}

#[tokio::test]
async fn the_operator_polls_applies_each_confirmation_once_and_resumes_after_a_restart() {
    use support::*;
    let cluster = support::cluster().await;
    cluster
        .install_crds(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cluster.namespace("supplier-poll").await;
    let server = start().await;
    let client = connect(&server).await;
    let f = fixture(&client).await;
    // Three more orders of the supplier, one confirmation each.
    let mut orders = vec![(f.order, "ACME-4711".to_string())];
    for n in 0..3 {
        let a = client
            .search(
                "product.product",
                &json!([["default_code", "=", "SUP-A"]]),
                &SearchOptions::limit(1),
            )
            .await
            .unwrap()[0];
        let reference = format!("ACME-50{n}");
        let (po, _, _) = order(&client, f.supplier, &reference, &[a]).await;
        orders.push((po, reference));
    }
    let feed = FeedState::default();
    feed.events.lock().unwrap().extend([
        confirmation(0, &orders[0].1, "2025-03-12"),
        confirmation(1, &orders[1].1, "2025-03-13"),
        // Not this supplier's order: rejected, skipped, not retried.
        confirmation(2, "OTHER-1", "2025-03-14"),
    ]);
    let url = supplier_api(feed.clone()).await;

    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    apply(
        cluster,
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "acme-api"},
            "stringData": {"token": TOKEN},
        }),
    )
    .await;
    let mut manifest = serde_json::to_value(connector(Value::Null)).unwrap();
    manifest["metadata"] = json!({"name": "acme"});
    manifest["spec"]["inbound"] = json!({
        "poll": {"url": url, "intervalSeconds": 10,
                 "bearerTokenRef": {"name": "acme-api", "key": "token"}},
        "webhook": {"auth": {"bearer": {"secretRef": {"name": "acme-api", "key": "token"}}}},
    });
    apply(cluster, &ns, &manifest).await;

    let obj = eventually("the first confirmations applied", || async {
        let obj = get(cluster, &ns, "SupplierConnector", "acme").await?;
        (obj["status"]["pollCursor"] == "3").then_some(obj)
    })
    .await;
    let status = &obj["status"];
    assert_eq!(
        condition(&obj, "Ready").map(|c| c.0),
        Some("True".into()),
        "{status}"
    );
    assert_eq!(status["partnerId"], f.supplier);
    assert_eq!(status["routePath"], format!("/hooks/suppliers/{ns}/acme"));
    assert_eq!(status["events"]["accepted"], 2, "{status}");
    assert_eq!(status["events"]["rejected"], 1, "{status}");
    assert!(status["lastEventTime"].is_string());
    let synced = condition(&obj, "Synced").expect("Synced");
    assert_eq!(synced.0, "True", "{obj}");
    assert_eq!(evidence(&client, orders[0].0).await, (1, 1));
    assert_eq!(evidence(&client, orders[1].0).await, (1, 1));
    assert_eq!(evidence(&client, f.other_order).await, (0, 0));
    assert_eq!(planned(&client, f.line_a).await, "2025-03-12 10:00:00");

    // A supplier that does not resolve says so and polls nothing.
    let mut unknown = manifest.clone();
    unknown["metadata"] = json!({"name": "nobody"});
    unknown["spec"]["supplier"] = json!({"name": "No Such Supplier"});
    apply(cluster, &ns, &unknown).await;
    let obj = wait_ready(
        cluster,
        &ns,
        "SupplierConnector",
        "nobody",
        "False",
        "SupplierNotFound",
    )
    .await;
    let ready = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"No Such Supplier\"")),
        "{ready}"
    );
    assert!(obj["status"]["pollCursor"].is_null(), "{obj}");
    assert!(obj["status"]["partnerId"].is_null(), "{obj}");

    // A poll URL at the cloud metadata address is refused before any request.
    let mut metadata = manifest.clone();
    metadata["metadata"] = json!({"name": "metadata"});
    metadata["spec"]["inbound"] =
        json!({"poll": {"url": "http://169.254.169.254/latest/meta-data"}});
    apply(cluster, &ns, &metadata).await;
    let obj = wait_ready(
        cluster,
        &ns,
        "SupplierConnector",
        "metadata",
        "False",
        "InvalidSpec",
    )
    .await;
    let message = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("spec.inbound.poll.url")
            && message.contains("169.254.169.254 is a link-local address")
            && message.contains("--allow-outbound"),
        "{message}"
    );

    // A webhook token too short to resist guessing: refused, never shown.
    apply(
        cluster,
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "weak-hook"},
            "stringData": {"token": "tooShort9"},
        }),
    )
    .await;
    let mut weak = manifest.clone();
    weak["metadata"] = json!({"name": "weak"});
    weak["spec"]["inbound"] = json!({
        "webhook": {"auth": {"bearer": {"secretRef": {"name": "weak-hook", "key": "token"}}}},
    });
    apply(cluster, &ns, &weak).await;
    let obj = wait_ready(
        cluster,
        &ns,
        "SupplierConnector",
        "weak",
        "False",
        "InvalidSecret",
    )
    .await;
    let message = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with(
            "spec.inbound.webhook.auth.bearer.secretRef: the value of key \"token\" in Secret"
        ) && message.ends_with("is shorter than 16 bytes"),
        "{message}"
    );
    assert!(!obj.to_string().contains("tooShort9"), "{obj}");

    // Kill the operator, add confirmations while it is down, start it again.
    drop(operator);
    feed.events.lock().unwrap().extend([
        confirmation(3, &orders[2].1, "2025-03-15"),
        confirmation(4, &orders[3].1, "2025-03-16"),
    ]);
    let seen = feed.requests.lock().unwrap().len();
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    let obj = eventually("the new confirmations applied", || async {
        let obj = get(cluster, &ns, "SupplierConnector", "acme").await?;
        (obj["status"]["pollCursor"] == "5").then_some(obj)
    })
    .await;
    // It resumed from the persisted cursor, not from the start.
    let after: Vec<Option<String>> = feed.requests.lock().unwrap()[seen..].to_vec();
    assert_eq!(after.first(), Some(&Some("3".to_string())), "{after:?}");
    assert!(!after.contains(&None), "{after:?}");
    assert_eq!(obj["status"]["events"]["accepted"], 4, "{}", obj["status"]);
    for (po, _) in &orders {
        assert_eq!(evidence(&client, *po).await, (1, 1), "PO {po}");
    }
    assert_eq!(evidence(&client, f.other_order).await, (0, 0));
    server.shutdown().await;
}
