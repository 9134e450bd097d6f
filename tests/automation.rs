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
    Call, OdooClient, OdooConfig, Protocol, RateLimitConfig, RetryConfig, SearchOptions, Secret,
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

        let requests = client.requests_made();
        let started = Instant::now();
        let outcome = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("sync");
        eprintln!(
            "{version:?}: first sync {} requests, {:?}",
            client.requests_made() - requests,
            started.elapsed()
        );
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

        // Twice: nothing more, no change, no write: five reads.
        let requests = client.requests_made();
        let started = Instant::now();
        let again = automation::sync(&client, &spec, SyncMode::Apply)
            .await
            .expect("second sync");
        eprintln!(
            "{version:?}: in-sync check {} requests, {:?}",
            client.requests_made() - requests,
            started.elapsed()
        );
        assert_eq!(client.requests_made() - requests, 5, "{version:?}");
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

        // Odoo recomputes some automation fields from a field written alone
        // (the rule here watches two fields): they differ too, and are
        // written back together with it.
        let automation = |fields: &[&'static str]| -> Vec<Change> {
            fields
                .iter()
                .map(|&field| Change::Field {
                    record: Record::Automation,
                    field,
                })
                .collect()
        };
        let recomputing = version >= OdooVersion::V18;
        let cases: Vec<(&str, &str, Value, Vec<Change>)> = vec![
            (
                "ir.actions.server",
                "webhook_url",
                json!("https://attacker.example/steal"),
                vec![Change::Field {
                    record: Record::Action,
                    field: "webhook_url",
                }],
            ),
            (
                "base.automation",
                "filter_domain",
                json!("[('id', '=', 1)]"),
                if recomputing {
                    // 18+: an on-update rule's trigger fields follow its domain.
                    automation(&["trigger_field_ids", "filter_domain"])
                } else {
                    automation(&["filter_domain"])
                },
            ),
            (
                "base.automation",
                "active",
                json!(false),
                automation(&["active"]),
            ),
            (
                "base.automation",
                "trigger",
                json!("on_create"),
                if recomputing {
                    automation(&["trigger", "trigger_field_ids", "filter_domain"])
                } else {
                    // 17 keeps the domain of a rule watching two fields.
                    automation(&["trigger"])
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
            assert_eq!(dry.changes, expected, "{version:?} {field}");
            let repaired = automation::sync(&client, &spec, SyncMode::Apply)
                .await
                .expect("repair");
            assert_eq!(repaired.changes, expected, "{version:?} {field}");
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
struct Received(Arc<Mutex<Vec<Delivery>>>);

/// Route (`ns/rule`), `token` query parameter, JSON body.
type Delivery = (String, Option<String>, Value);

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

        // A write to a field that is not watched does not fire.
        let seen = received.0.lock().unwrap().len();
        let mut unwatched = Map::new();
        unwatched.insert("name".into(), json!("renamed line"));
        client
            .write(MODEL, &[line], unwatched)
            .await
            .expect("write");
        // Proven silent by a later write that fires, not by a pause: 17 and
        // 18 post before the write returns; 19 starts sending when the write
        // commits, so a misfire would be under way before the marker.
        let marker = |date: &str| {
            let mut vals = Map::new();
            vals.insert("date_planned".into(), json!(date));
            vals
        };
        client
            .write(MODEL, &[line], marker("2031-01-03 08:00:00"))
            .await
            .expect("write");
        wait_for_deliveries(&received, seen + 1).await;
        let new: Vec<Value> = received.0.lock().unwrap()[seen..]
            .iter()
            .map(|(_, _, b)| b["date_planned"].clone())
            .collect();
        assert_eq!(
            new,
            [json!("2031-01-03 08:00:00")],
            "{version:?}: an unwatched field fired the webhook"
        );

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
        client
            .write(MODEL, &[line], marker("2031-01-04 08:00:00"))
            .await
            .expect("write");
        wait_for_deliveries(&received, seen + 1).await;
        let after: Vec<i64> = received.0.lock().unwrap()[seen..]
            .iter()
            .filter_map(|(_, _, b)| b["_id"].as_i64())
            .collect();
        assert_eq!(
            after,
            [line],
            "{version:?}: the line outside the domain fired"
        );
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

// ------------------------------------------------------ operator on kube-apiserver

mod support;

mod operator {
    use super::*;
    use k8s_openapi::api::core::v1::Secret as KubeSecret;
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::{DeleteParams, ListParams};
    use support::*;

    async fn connect_odoo(cluster: &support::TestCluster, ns: &str, server: &SimServer) {
        connect_odoo_with(
            cluster,
            ns,
            server,
            Some("http://planops-gateway.example:8081/"),
        )
        .await;
    }

    fn event_rule(name: &str, policy: &str) -> Value {
        json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
            "metadata": {"name": name},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "detector": {"supplierDelay": {}},
                "triggers": {"events": {
                    "model": MODEL,
                    "operations": ["Write"],
                    "watchedFields": ["date_planned"],
                    "filterDomain": "[('state', '=', 'purchase')]",
                }},
                "deletionPolicy": policy,
            },
        })
    }

    async fn wait_synced(
        cluster: &support::TestCluster,
        ns: &str,
        name: &str,
        status: &str,
        reason: &str,
    ) -> Value {
        eventually(&format!("{name} Synced={status}/{reason}"), || async {
            let obj = get(cluster, ns, "ExceptionRule", name).await?;
            let (s, r) = condition(&obj, "Synced")?;
            (s == status && r == reason).then_some(obj)
        })
        .await
    }

    async fn owned(client: &OdooClient, ns: &str, rule: &str) -> (Option<i64>, Option<i64>) {
        let key = AutomationKey::for_rule(ns, rule);
        let id = |r: Option<(String, i64)>| r.map(|(_, id)| id);
        (
            id(client.resolve_external_id(&key.automation).await.unwrap()),
            id(client.resolve_external_id(&key.action).await.unwrap()),
        )
    }

    async fn delete_and_wait(cluster: &support::TestCluster, ns: &str, name: &str) {
        planops_api(cluster, ns, "ExceptionRule")
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleting the rule");
        eventually(&format!("{name} deleted"), || async {
            get(cluster, ns, "ExceptionRule", name)
                .await
                .is_none()
                .then_some(())
        })
        .await;
    }

    #[tokio::test]
    async fn operator_owns_repairs_and_removes_the_automation() {
        let (cluster, ns) = setup("auto").await;
        let server = start(OdooVersion::V17).await;
        let client = connect(&server).await;
        let _operator = OperatorProcess::simple(cluster, &ns).await;
        connect_odoo(cluster, &ns, &server).await;

        apply(cluster, &ns, &event_rule("late-po", "Delete")).await;
        let obj = wait_synced(cluster, &ns, "late-po", "True", "InSync").await;
        assert_eq!(condition(&obj, "Ready").unwrap().0, "True", "{obj}");
        let (Some(automation_id), Some(action_id)) = owned(&client, &ns, "late-po").await else {
            panic!("no automation records in Odoo");
        };
        assert_eq!(counts(&client).await.0, 1);

        // The token lives in a Secret owned by the rule, and only there and in Odoo.
        let secrets: Api<KubeSecret> = Api::namespaced(cluster.client(), &ns);
        let secret = secrets
            .get(&automation::hook_secret_name("late-po"))
            .await
            .expect("the hook Secret");
        let owner = &secret.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ExceptionRule", "late-po")
        );
        let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
        assert!(token.len() >= 40);
        let action = read(&client, "ir.actions.server", action_id, &["webhook_url"]).await;
        assert_eq!(
            action["webhook_url"],
            format!("http://planops-gateway.example:8081/hooks/odoo/{ns}/late-po?token={token}")
        );
        assert!(
            !obj.to_string().contains(&token),
            "the token leaked into the resource"
        );

        // Someone disables the automation in Odoo; an on-demand reconcile repairs it.
        let mut vals = Map::new();
        vals.insert("active".into(), json!(false));
        client
            .write("base.automation", &[automation_id], vals)
            .await
            .expect("disabling");
        let mut rule = event_rule("late-po", "Delete");
        rule["metadata"]["annotations"] =
            json!({"reconcile.fluxcd.io/requestedAt": "2026-11-28T22:00:00Z"});
        apply(cluster, &ns, &rule).await;
        let events: Api<Event> = Api::namespaced(cluster.client(), &ns);
        let note = eventually("a Repaired event", || async {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("Repaired")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("late-po")
                })
                .and_then(|e| e.note)
        })
        .await;
        assert!(
            note.contains("re-enabled the disabled automation"),
            "{note}"
        );
        let active = read(&client, "base.automation", automation_id, &["active"]).await;
        assert_eq!(active["active"], true);
        wait_synced(cluster, &ns, "late-po", "True", "InSync").await;
        assert_eq!(counts(&client).await.0, 1, "repair created nothing");
        // Settled again: no write loop between Repaired and InSync.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let version = |o: Value| o["metadata"]["resourceVersion"].clone();
        let settled = version(get(cluster, &ns, "ExceptionRule", "late-po").await.unwrap());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            version(get(cluster, &ns, "ExceptionRule", "late-po").await.unwrap()),
            settled,
            "the rule's status keeps being rewritten"
        );

        // Deleting the token's Secret makes a new token at once (the
        // controller watches it): Odoo's action gets the new URL.
        secrets
            .delete(
                &automation::hook_secret_name("late-po"),
                &DeleteParams::default(),
            )
            .await
            .expect("deleting the hook Secret");
        let new_token = eventually("a new token", || async {
            let secret = secrets
                .get_opt(&automation::hook_secret_name("late-po"))
                .await
                .ok()??;
            let new = String::from_utf8(secret.data?["token"].0.clone()).ok()?;
            (new != token).then_some(new)
        })
        .await;
        eventually("Odoo's action calls with the new token", || async {
            let action = read(&client, "ir.actions.server", action_id, &["webhook_url"]).await;
            action["webhook_url"]
                .as_str()?
                .ends_with(&format!("?token={new_token}"))
                .then_some(())
        })
        .await;
        assert_eq!(counts(&client).await.0, 1, "the rotation created nothing");

        // Deleting the rule removes both records and their external ids.
        delete_and_wait(cluster, &ns, "late-po").await;
        assert_eq!(owned(&client, &ns, "late-po").await, (None, None));
        assert_eq!(counts(&client).await, (0, 0, 0));

        // deletionPolicy: Orphan leaves them.
        apply(cluster, &ns, &event_rule("kept", "Orphan")).await;
        wait_synced(cluster, &ns, "kept", "True", "InSync").await;
        delete_and_wait(cluster, &ns, "kept").await;
        let (automation, action) = owned(&client, &ns, "kept").await;
        assert!(automation.is_some() && action.is_some());
        assert_eq!(counts(&client).await, (1, 1, 2));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn removing_triggers_events_removes_the_records() {
        let (cluster, ns) = setup("auto-rm").await;
        let server = start(OdooVersion::V18).await;
        let client = connect(&server).await;
        let _operator = OperatorProcess::simple(cluster, &ns).await;
        connect_odoo(cluster, &ns, &server).await;
        apply(cluster, &ns, &event_rule("r", "Delete")).await;
        wait_synced(cluster, &ns, "r", "True", "InSync").await;
        assert_eq!(counts(&client).await, (1, 1, 2));

        // Suspended, the rule compares nothing but remembers it may own records.
        let mut rule = event_rule("r", "Delete");
        rule["spec"]["suspend"] = json!(true);
        apply(cluster, &ns, &rule).await;
        wait_ready(cluster, &ns, "ExceptionRule", "r", "False", "Suspended").await;
        wait_synced(cluster, &ns, "r", "Unknown", "Suspended").await;

        // The events go while suspended; resuming removes the records.
        rule["spec"]["triggers"] = json!({"schedule": {"cron": "0 6 * * *"}});
        apply(cluster, &ns, &rule).await;
        wait_synced(cluster, &ns, "r", "Unknown", "Suspended").await;
        rule["spec"]["suspend"] = json!(false);
        apply(cluster, &ns, &rule).await;
        eventually("records removed", || async {
            (counts(&client).await == (0, 0, 0)).then_some(())
        })
        .await;
        let obj = get(cluster, &ns, "ExceptionRule", "r").await.unwrap();
        assert_eq!(condition(&obj, "Synced"), None, "{obj}");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_connection_without_callback_url_stalls_until_it_gets_one() {
        let (cluster, ns) = setup("auto-cb").await;
        let server = start(OdooVersion::V19).await;
        let client = connect(&server).await;
        let _operator = OperatorProcess::simple(cluster, &ns).await;
        connect_odoo_with(cluster, &ns, &server, None).await;
        apply(cluster, &ns, &event_rule("r", "Delete")).await;
        wait_ready(cluster, &ns, "ExceptionRule", "r", "False", "NoCallbackUrl").await;
        wait_synced(cluster, &ns, "r", "False", "NoCallbackUrl").await;
        assert_eq!(
            cluster
                .kstatus("planops.io/v1alpha1/ExceptionRule", &ns, "r")
                .await
                .status,
            "Failed"
        );
        assert_eq!(counts(&client).await, (0, 0, 0));

        // The connection's change reconciles the rule; no restart, no annotation.
        let mut conn = connection("odoo", "odoo-credentials", &server.url);
        conn["spec"]["callbackBaseUrl"] = json!("https://gw.example");
        apply(cluster, &ns, &conn).await;
        wait_synced(cluster, &ns, "r", "True", "InSync").await;
        wait_ready(cluster, &ns, "ExceptionRule", "r", "True", "Reconciled").await;
        assert_eq!(counts(&client).await, (1, 1, 2));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn odoo_16_reports_polling_fallback() {
        let (cluster, ns) = setup("auto-16").await;
        let server = start(OdooVersion::V16).await;
        let client = connect(&server).await;
        let _operator = OperatorProcess::simple(cluster, &ns).await;
        connect_odoo(cluster, &ns, &server).await;
        apply(cluster, &ns, &event_rule("old", "Delete")).await;
        let obj = wait_synced(cluster, &ns, "old", "False", "PollingFallback").await;
        let synced = obj["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Synced")
            .unwrap()
            .clone();
        assert!(
            synced["message"].as_str().unwrap().contains("every 60s"),
            "{synced}"
        );
        assert_eq!(condition(&obj, "Ready").unwrap().0, "True", "{obj}");
        assert_eq!(counts(&client).await, (0, 0, 0));
        server.shutdown().await;
    }
}

/// What a receiver saw of the record a webhook named: the state read at once,
/// how waiting for the hinted write ended, and the state read after that.
#[derive(Debug, Clone)]
struct Look {
    payload: Value,
    at_once: String,
    wait: automation::Visibility,
    after_wait: String,
}

#[derive(Clone)]
struct Looker {
    client: OdooClient,
    looks: Arc<Mutex<Vec<Look>>>,
}

async fn state_of(client: &OdooClient, model: &str, id: i64) -> String {
    client
        .read(model, &[id], &["state"])
        .await
        .expect("reading the hinted record")[0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A gateway stand-in that answers at once, as PlanOps' does, and then
/// looks at the hinted record from a task of its own.
async fn looking_receiver(client: OdooClient) -> (String, Arc<Mutex<Vec<Look>>>) {
    async fn hook(State(looker): State<Looker>, body: String) -> &'static str {
        let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        tokio::spawn(async move {
            let Ok(hint) = automation::HintedRecord::from_payload(&payload, None) else {
                return;
            };
            let at_once = state_of(&looker.client, &hint.model, hint.id).await;
            let wait = automation::await_hinted_write(&looker.client, &hint)
                .await
                .expect("waiting for the hinted write");
            let after_wait = state_of(&looker.client, &hint.model, hint.id).await;
            if let Ok(mut looks) = looker.looks.lock() {
                looks.push(Look {
                    payload,
                    at_once,
                    wait,
                    after_wait,
                });
            }
        });
        "ok"
    }
    let looks = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hooks/odoo/{ns}/{rule}", post(hook))
        .with_state(Looker {
            client,
            looks: looks.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the receiver");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, looks)
}

/// A purchase order of the data set, put back to draft.
async fn draft_order(client: &OdooClient) -> i64 {
    let order = client
        .search(
            "purchase.order",
            &json!([["state", "!=", "cancel"]]),
            &SearchOptions::limit(1),
        )
        .await
        .expect("searching orders")
        .first()
        .copied()
        .expect("the data set has purchase orders");
    let mut draft = Map::new();
    draft.insert("state".into(), json!("draft"));
    client
        .write("purchase.order", &[order], draft)
        .await
        .expect("back to draft");
    order
}

fn confirmed_orders_spec(url: &str) -> AutomationSpec {
    let events = EventTriggerSpec {
        model: "purchase.order".into(),
        operations: vec![RecordOperation::Write],
        watched_fields: vec!["state".into()],
        filter_domain: Some("[('state', '=', 'purchase')]".into()),
        poll_interval_seconds: None,
    };
    AutomationSpec::for_rule("shop", "confirmed", &events, Secret::new(url)).expect("a valid spec")
}

async fn wait_for_looks(looks: &Arc<Mutex<Vec<Look>>>, count: usize) -> Vec<Look> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = looks.lock().unwrap().clone();
        if seen.len() >= count {
            return seen;
        }
        assert!(Instant::now() < deadline, "{} of {count} looks", seen.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Odoo 17 and 18 post the webhook from inside the transaction and commit
/// afterwards: a re-read at once sees the order still in draft. Waiting for
/// the payload's `write_date` (to the microsecond) sees it confirmed. 19
/// posts after its commit: nothing to wait for.
#[tokio::test]
async fn a_hint_is_read_once_odoo_committed_the_write_it_reports() {
    for version in webhook_versions() {
        let server = start(version).await;
        let client = connect(&server).await;
        // The rest of Odoo's transaction after the POST.
        server
            .set_faults(FaultConfig {
                webhook_commit_delay_ms: 700,
                ..FaultConfig::default()
            })
            .expect("setting faults");
        let (base, looks) = looking_receiver(connect(&server).await).await;
        let url = automation::hook_url(&base, "shop", "confirmed", "s3cret");
        let synced = automation::sync(&client, &confirmed_orders_spec(&url), SyncMode::Apply)
            .await
            .expect("sync");
        let order = draft_order(&client).await;

        // A server method's write fires the rule as a client's write does.
        client
            .call(Call::new("purchase.order", "button_confirm").ids([order]))
            .await
            .expect("confirming the order");
        let look = wait_for_looks(&looks, 1).await.remove(0);
        let payload = &look.payload;
        assert_eq!(payload["_model"], "purchase.order", "{version:?}");
        assert_eq!(payload["_id"], order);
        assert_eq!(payload["id"], order);
        assert_eq!(payload["state"], "purchase");
        let action = synced.action_id.expect("action id");
        let action_name = if version == OdooVersion::V19 {
            "PlanOps webhook: shop/confirmed".to_string()
        } else {
            "Send Webhook Notification".to_string()
        };
        assert_eq!(payload["_action"], format!("{action_name}(#{action})"));
        // Python's str(datetime): the microseconds are there.
        let written = payload["write_date"].as_str().expect("write_date");
        assert_eq!(
            written.len(),
            "2026-01-02 03:04:05.123456".len(),
            "{written}"
        );
        let before_commit = version != OdooVersion::V19;
        if before_commit {
            assert_eq!(look.at_once, "draft", "{version:?}: {look:?}");
            assert!(
                matches!(look.wait, automation::Visibility::Visible { retries } if retries > 0),
                "{version:?}: {look:?}"
            );
        } else {
            assert_eq!(look.at_once, "purchase", "{version:?}: {look:?}");
            assert_eq!(look.wait, automation::Visibility::NotNeeded);
        }
        assert_eq!(look.after_wait, "purchase", "{version:?}: {look:?}");
        server.shutdown().await;
    }
}

async fn wait_for_deliveries(received: &Received, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.0.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "fewer than {count} webhooks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A rule with trigger fields fires only when one of their values really
/// changes, whether a client or a server method (`button_confirm`) writes.
#[tokio::test]
async fn a_rule_fires_only_when_a_watched_value_really_changes() {
    for version in webhook_versions() {
        let server = start(version).await;
        let client = connect(&server).await;
        let (base, received) = receiver().await;
        let url = automation::hook_url(&base, "shop", "confirmed", "s3cret");
        automation::sync(&client, &confirmed_orders_spec(&url), SyncMode::Apply)
            .await
            .expect("sync");
        let order = draft_order(&client).await;
        let write = |vals: Value| {
            let client = client.clone();
            async move {
                let vals = vals.as_object().cloned().expect("values");
                client
                    .write("purchase.order", &[order], vals)
                    .await
                    .expect("writing the order");
            }
        };

        client
            .call(Call::new("purchase.order", "button_confirm").ids([order]))
            .await
            .expect("confirming the order");
        wait_for_deliveries(&received, 1).await;
        // The same state again, alone or with another field: nothing changed
        // that the rule watches.
        write(json!({"state": "purchase"})).await;
        write(json!({"state": "purchase", "partner_ref": "checked"})).await;
        write(json!({"partner_ref": "checked again"})).await;
        // Proven silent by the change below, which fires after them (17 and
        // 18 post before the write returns; 19 starts sending when the write
        // commits, so a misfire would be under way before the marker..
        let bodies: Vec<Value> = received
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, body)| body.clone())
            .collect();
        assert_eq!(bodies.len(), 1, "{version:?}: {bodies:?}");
        assert_eq!(bodies[0]["state"], "purchase");
        // A real change out of the domain and back in fires again, and is
        // the only delivery after the first.
        write(json!({"state": "sent"})).await;
        write(json!({"state": "purchase"})).await;
        wait_for_deliveries(&received, 2).await;
        assert_eq!(received.0.lock().unwrap().len(), 2, "{version:?}");
        server.shutdown().await;
    }
}

/// What PlanOps writes settles in one sync on every version: Odoo's own
/// recomputes (the action's generated name on 17 and 18; trigger fields and
/// domains emptied when the trigger or model is written alone) are no drift,
/// so the next sync finds nothing to do and writes nothing.
#[tokio::test]
async fn spec_changes_settle_in_one_sync_on_every_version() {
    for version in webhook_versions() {
        let server = start(version).await;
        let client = connect(&server).await;
        let url = "http://127.0.0.1:9/hooks/odoo/shop/settle?token=one";
        let base = spec("settle", url);
        let first = automation::sync(&client, &base, SyncMode::Apply)
            .await
            .expect("sync");
        let action_id = first.action_id.expect("action id");
        let mut specs = Vec::new();
        // On creation and update, then create only, then back.
        let mut both = base.clone();
        both.trigger = Trigger::OnCreateOrWrite;
        specs.push(("trigger", both));
        specs.push(("trigger back", base.clone()));
        let mut fewer = base.clone();
        fewer.watched_fields = vec!["product_qty".into()];
        specs.push(("watched fields", fewer));
        let mut filter = base.clone();
        filter.filter_domain = Some(Domain::parse("[('product_qty', '>', 5)]").unwrap());
        specs.push(("filter", filter.clone()));
        let mut rotated = filter;
        rotated.webhook_url = Secret::new("http://127.0.0.1:9/hooks/odoo/shop/settle?token=two");
        specs.push(("token", rotated));
        for (what, spec) in specs {
            let applied = automation::sync(&client, &spec, SyncMode::Apply)
                .await
                .expect("sync");
            assert!(!applied.in_sync(), "{version:?} {what}");
            let requests = client.requests_made();
            let again = automation::sync(&client, &spec, SyncMode::Apply)
                .await
                .expect("sync again");
            assert!(again.in_sync(), "{version:?} {what}: {:?}", again.changes);
            assert_eq!(client.requests_made() - requests, 5, "{version:?} {what}");
        }
        // Odoo names the action itself on 17 and 18; 19 keeps PlanOps' name.
        let action = read(&client, "ir.actions.server", action_id, &["name"]).await;
        let expected = if version == OdooVersion::V19 {
            "PlanOps webhook: shop/settle"
        } else {
            "Send Webhook Notification"
        };
        assert_eq!(action["name"], expected, "{version:?}");
        server.shutdown().await;
    }
}
