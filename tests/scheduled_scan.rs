//! Scheduled scans: the operator (a real process against the real kube-apiserver)
//! runs ExceptionRules on their cron in their time zone against the Odoo
//! simulator, acts exactly once, honours concurrency policy and suspension, and
//! writes the status once per scan.
//!
//! Every test has a simulator of its own, so counting records in it proves what
//! the rule under test wrote and nothing else.

mod support;

use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::watcher;
use planops::odoo::{OdooClient, OdooConfig, Secret};
use planops::sim::{DatasetParams, FaultConfig, SimConfig, SimServer};
use serde_json::{Value, json};
use support::odoo::count;
use support::*;

const ZONE: &str = "Asia/Kathmandu";

async fn private_odoo() -> SimServer {
    let config = SimConfig {
        dataset: DatasetParams {
            products: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    SimServer::start(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("starting the Odoo simulator")
}

async fn odoo_client(server: &SimServer) -> OdooClient {
    let config = OdooConfig::new(
        &server.url,
        server.db.name(),
        "admin",
        Secret::new(server.db.admin_api_key()),
    );
    OdooClient::connect(config)
        .await
        .expect("connecting to the simulator")
}

/// Activities this rule wrote: each carries the rule's marker in its note.
fn marker(ns: &str, rule: &str) -> Value {
    json!([["note", "ilike", format!("planops-rule {ns}/{rule}")]])
}

/// Every 5 s during this hour and the next in `ZONE`, so the cron fires only if
/// the zone is honoured (Kathmandu is UTC+05:45: its hours are nobody else's).
fn zoned_schedule() -> (Value, [i8; 2]) {
    let hour = Timestamp::now().to_zoned(tz(ZONE)).hour();
    let hours = [hour, (hour + 1) % 24];
    let cron = format!("*/5 * {},{} * * *", hours[0], hours[1]);
    (json!({"cron": cron, "timeZone": ZONE}), hours)
}

fn tz(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).expect("a known time zone")
}

#[tokio::test]
async fn scheduled_scans_run_on_time_act_once_and_survive_a_restart() {
    let (cluster, ns) = setup("sched").await;
    let server = private_odoo().await;
    let client = odoo_client(&server).await;
    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    let products = count(
        &client,
        "product.product",
        json!([["standard_price", ">", 0]]),
    )
    .await;
    assert!(products > 0, "the data set prices its products");

    let (schedule, hours) = zoned_schedule();
    apply(cluster, &ns, &cost_rule("cost", schedule)).await;
    let obj = wait_scan_after(cluster, &ns, "cost", None).await;
    assert_eq!(
        condition(&obj, "Scheduled"),
        Some(("True".into(), "Scheduled".into()))
    );
    assert_eq!(condition(&obj, "Ready").map(|c| c.0), Some("True".into()));
    let last = &obj["status"]["lastScan"];
    let scheduled = timestamp(&last["scheduledTime"]).expect("scheduledTime");
    let in_zone = scheduled.to_zoned(tz(ZONE));
    assert!(
        in_zone.second() % 5 == 0 && in_zone.subsec_nanosecond() == 0,
        "{in_zone}"
    );
    assert!(
        hours.contains(&in_zone.hour()),
        "{in_zone} not in {hours:?}"
    );
    let started = timestamp(&last["startTime"]).expect("startTime");
    assert!(started >= scheduled, "started {started} before {scheduled}");
    let next = timestamp(&obj["status"]["nextScanTime"]).expect("nextScanTime");
    assert!(next > scheduled);
    assert_eq!(last["subjectsEvaluated"], json!(products));
    assert_eq!(last["exceptionsOpen"], json!(products));
    assert!(last["odooCalls"].as_u64().is_some_and(|n| n >= 2), "{last}");
    assert!(
        obj["status"]["topExceptions"]
            .as_array()
            .is_some_and(|top| !top.is_empty() && top.len() <= 5)
    );
    assert_eq!(obj["status"]["detector"], "fieldThreshold");

    // Whichever scan opened them, there is one activity per exception.
    let activities = eventually("one activity per product", || async {
        let n = count(&client, "mail.activity", marker(&ns, "cost")).await;
        (n == products).then_some(n)
    })
    .await;

    // Watch the rule across two further scans: every write must carry a new scan.
    let api = planops_api(cluster, &ns, "ExceptionRule");
    let config = watcher::Config::default().fields("metadata.name=cost");
    let stream = watcher::watcher(api, config);
    tokio::pin!(stream);
    let mut seen: Vec<(String, Value)> = Vec::new();
    let mut scans = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + SETTLE;
    while scans.len() < 3 {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("two more scans within the deadline");
        if let Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) = event {
            let o = serde_json::to_value(o).expect("JSON");
            let version = o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let scan = o["status"]["lastScan"]["scheduledTime"].clone();
            if seen.last().is_none_or(|(v, _)| *v != version) {
                seen.push((version, scan.clone()));
            }
            scans.insert(scan.to_string());
        }
    }
    for pair in seen.windows(2) {
        assert_ne!(
            pair[0].1, pair[1].1,
            "the rule was written without a new scan: {seen:?}"
        );
    }
    let obj = get(cluster, &ns, "ExceptionRule", "cost")
        .await
        .expect("rule");
    assert_eq!(obj["status"]["lastScan"]["exceptionsOpened"], 0);
    assert_eq!(
        count(&client, "mail.activity", marker(&ns, "cost")).await,
        activities,
        "a later scan wrote again"
    );

    let metrics = operator.get("/metrics").await.expect("metrics").1;
    for needle in [
        "planops_scans_total{outcome=\"succeeded\"}",
        "planops_scan_duration_seconds_count{",
        &format!("planops_odoo_calls_total{{namespace=\"{ns}\",connection=\"odoo\"}}"),
        &format!("planops_exceptions_open{{namespace=\"{ns}\",rule=\"cost\",severity=\"Low\"}}"),
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }

    // A restarted operator picks up the schedule and still creates nothing twice.
    let before_restart = timestamp(&obj["status"]["lastScan"]["scheduledTime"]);
    drop(operator);
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    let obj = wait_scan_after(cluster, &ns, "cost", before_restart).await;
    assert_eq!(obj["status"]["lastScan"]["exceptionsOpened"], 0);
    assert_eq!(
        count(&client, "mail.activity", marker(&ns, "cost")).await,
        activities
    );
    server.shutdown().await;
}

#[tokio::test]
async fn dry_run_scans_and_writes_nothing() {
    let (cluster, ns) = setup("sched-dry").await;
    let server = private_odoo().await;
    let client = odoo_client(&server).await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    let activities = count(&client, "mail.activity", json!([])).await;
    let orders = count(&client, "purchase.order", json!([])).await;
    let before = server.stats().model_calls;

    let mut rule = cost_rule("dry", json!({"cron": "*/3 * * * * *"}));
    rule["spec"]["mode"] = json!("DryRun");
    rule["spec"]["actions"]
        .as_array_mut()
        .expect("actions")
        .extend([
            json!({"proposePurchase": {"minSeverity": "Low"}}),
            json!({"chatterNote": {}}),
        ]);
    apply(cluster, &ns, &rule).await;
    let first = wait_scan_after(cluster, &ns, "dry", None).await;
    let after = timestamp(&first["status"]["lastScan"]["scheduledTime"]);
    let obj = wait_scan_after(cluster, &ns, "dry", after).await;
    assert!(obj["status"]["lastScan"]["exceptionsOpen"].as_u64() > Some(0));
    assert_eq!(count(&client, "mail.activity", json!([])).await, activities);
    assert_eq!(count(&client, "purchase.order", json!([])).await, orders);
    // Not only no activity or RFQ: no call that could change anything at all
    // (the rule's chatter notes included).
    const READS: [&str; 8] = [
        "search_read",
        "read",
        "search",
        "search_count",
        "read_group",
        "fields_get",
        "check_access_rights",
        "context_get",
    ];
    let mutating: Vec<(String, u64)> = server
        .stats()
        .model_calls
        .into_iter()
        .filter(|(key, calls)| {
            let method = key.rsplit('/').next().unwrap_or_default();
            *calls > before.get(key).copied().unwrap_or(0) && !READS.contains(&method)
        })
        .collect();
    assert!(mutating.is_empty(), "a DryRun rule called {mutating:?}");
    server.shutdown().await;
}

/// A rule scanning every 2 s under `policy` against an Odoo whose every call
/// takes `latency_ms`, so that each tick finds the previous scan running.
async fn overlapping_scans(
    prefix: &str,
    rule: &str,
    policy: &str,
    latency_ms: u64,
) -> (
    &'static support::TestCluster,
    String,
    SimServer,
    OperatorProcess,
) {
    let (cluster, ns) = setup(prefix).await;
    let server = private_odoo().await;
    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    server
        .set_faults(FaultConfig {
            latency_ms,
            ..Default::default()
        })
        .expect("latency");
    apply(
        cluster,
        &ns,
        &cost_rule(
            rule,
            json!({"cron": "*/2 * * * * *", "concurrencyPolicy": policy}),
        ),
    )
    .await;
    (cluster, ns, server, operator)
}

#[tokio::test]
async fn forbid_skips_a_run_while_the_previous_scan_is_slow() {
    // Each call takes 2 s: a scan with its actions outlasts the 2 s period.
    let (cluster, ns, server, _operator) =
        overlapping_scans("sched-forbid", "slow", "Forbid", 2000).await;
    wait_kube_event(cluster, &ns, "ScanSkipped").await;
    // The running scan still finishes and reports.
    server
        .set_faults(FaultConfig::default())
        .expect("no faults");
    let mut reported = Vec::new();
    let mut after = None;
    for _ in 0..3 {
        let obj = wait_scan_after(cluster, &ns, "slow", after).await;
        after = timestamp(&obj["status"]["lastScan"]["scheduledTime"]);
        reported.extend(after);
    }
    // A skipped run did not run: no scan reported under a skipped time.
    let skipped: Vec<Timestamp> = kube_events(cluster, &ns)
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "ScanSkipped")
        .filter_map(|(_, message)| {
            message
                .strip_prefix("scan scheduled for ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(!skipped.is_empty(), "ScanSkipped events name their time");
    for time in &reported {
        assert!(
            !skipped.contains(time),
            "{time} was skipped and yet reported"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_suspended_schedule_does_not_run_until_resumed() {
    let (cluster, ns) = setup("sched-susp").await;
    let server = private_odoo().await;
    let client = odoo_client(&server).await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;

    apply(
        cluster,
        &ns,
        &cost_rule("held", json!({"cron": "*/2 * * * * *", "suspend": true})),
    )
    .await;
    let obj = eventually("Scheduled=False Suspended", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "held").await?;
        (condition(&obj, "Scheduled") == Some(("False".into(), "Suspended".into()))).then_some(obj)
    })
    .await;
    assert!(obj["status"]["nextScanTime"].is_null());
    // Several periods pass without a scan. Only absence is checked, so a slow
    // machine cannot make this fail.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let obj = get(cluster, &ns, "ExceptionRule", "held")
        .await
        .expect("rule");
    assert!(obj["status"]["lastScan"].is_null(), "{}", obj["status"]);
    assert_eq!(
        count(&client, "mail.activity", marker(&ns, "held")).await,
        0
    );

    // Resuming starts it.
    apply(
        cluster,
        &ns,
        &cost_rule("held", json!({"cron": "*/2 * * * * *", "suspend": false})),
    )
    .await;
    wait_scan_after(cluster, &ns, "held", None).await;
    server.shutdown().await;
}

/// Applies the ExceptionRule `rule` of `examples/<file>` (and the Secrets of that
/// file) on a 5-second schedule, and returns the rule's status after its first
/// scan with the exceptions the same scan finds when run directly.
async fn run_example(
    prefix: &str,
    file: &str,
    rule: &str,
) -> (
    Value,
    Vec<planops::engine::PlanningException>,
    OdooClient,
    SimServer,
) {
    let (cluster, ns) = setup(prefix).await;
    let server = SimServer::start(
        SimConfig::default(),
        "127.0.0.1:0".parse().expect("loopback"),
    )
    .await
    .expect("starting the Odoo simulator");
    let client = odoo_client(&server).await;
    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("reading the example");
    let mut spec = None;
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut doc: Value = serde::Deserialize::deserialize(document).expect("YAML");
        match doc["kind"].as_str() {
            Some("Secret") => apply(cluster, &ns, &doc).await,
            Some("ExceptionRule") if doc["metadata"]["name"] == rule => {
                // The example's own cron would have the test wait hours.
                doc["spec"]["triggers"]["schedule"]["cron"] = json!("*/5 * * * * *");
                apply(cluster, &ns, &doc).await;
                spec = Some(doc);
            }
            _ => {}
        }
    }
    let doc = spec.expect("the rule is in the example");
    let obj = wait_scan_after(cluster, &ns, rule, None).await;

    let spec: planops::api::rule::ExceptionRuleSpec =
        serde_json::from_value(doc["spec"].clone()).expect("spec");
    let zone = doc["spec"]["triggers"]["schedule"]["timeZone"]
        .as_str()
        .unwrap_or("UTC");
    let today = Timestamp::now().to_zoned(tz(zone)).date();
    let rule_ref = planops::engine::RuleRef {
        namespace: &ns,
        rule,
    };
    let expected = planops::scan::run_scan(
        &client,
        &rule_ref,
        &spec,
        today,
        &planops::scan::ScanMemory::default(),
    )
    .await
    .expect("scanning directly")
    .exceptions;
    drop(operator);
    (obj, expected, client, server)
}

/// Every expected exception has an activity of the rule carrying its fingerprint.
async fn assert_activities(
    client: &OdooClient,
    ns: &str,
    rule: &str,
    expected: &[planops::engine::PlanningException],
) {
    assert!(
        !expected.is_empty(),
        "the data set has exceptions for {rule}"
    );
    let notes: Vec<String> = eventually("an activity per exception", || async {
        let rows = client
            .search_read(
                "mail.activity",
                &marker(ns, rule),
                &["note"],
                &Default::default(),
            )
            .await
            .ok()?;
        let notes: Vec<String> = rows
            .iter()
            .filter_map(|r| r["note"].as_str().map(str::to_string))
            .collect();
        expected
            .iter()
            .all(|e| notes.iter().any(|n| n.contains(&e.fingerprint)))
            .then_some(notes)
    })
    .await;
    assert_eq!(notes.len(), expected.len(), "one activity per exception");
}

#[tokio::test]
async fn example_orders_at_risk_opens_an_activity_per_order() {
    let (obj, expected, client, server) = run_example(
        "ex-oar",
        "supplier-delays/orders-at-risk.yaml",
        "orders-at-risk",
    )
    .await;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    assert_eq!(
        obj["status"]["lastScan"]["exceptionsOpen"],
        json!(expected.len())
    );
    assert_activities(&client, &ns, "orders-at-risk", &expected).await;
    server.shutdown().await;
}

#[tokio::test]
async fn example_low_free_stock_reports_without_writing() {
    let (obj, expected, client, server) = run_example(
        "ex-lfs",
        "multi-warehouse-rebalancing/low-free-stock.yaml",
        "low-free-stock",
    )
    .await;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    assert!(
        !expected.is_empty(),
        "the data set has products low on free stock"
    );
    assert_eq!(
        obj["status"]["lastScan"]["exceptionsOpen"],
        json!(expected.len())
    );
    // The example is DryRun: nothing in Odoo names the rule.
    assert_eq!(
        count(
            &client,
            "mail.message",
            json!([["body", "ilike", format!("planops-rule {ns}/low-free-stock")]])
        )
        .await,
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn example_supplier_delay_opens_an_activity_per_late_line() {
    let (obj, expected, client, server) = run_example(
        "ex-sd",
        "supplier-delays/supplier-delay.yaml",
        "supplier-delay",
    )
    .await;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    assert_activities(&client, &ns, "supplier-delay", &expected).await;
    server.shutdown().await;
}

#[tokio::test]
async fn example_service_level_risk_opens_an_activity_per_stockout() {
    let (obj, expected, client, server) = run_example(
        "ex-slr",
        "multi-warehouse-rebalancing/service-level-risk.yaml",
        "service-level-risk",
    )
    .await;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    assert_activities(&client, &ns, "service-level-risk", &expected).await;
    server.shutdown().await;
}

#[tokio::test]
async fn example_stockout_seasonal_opens_activities_and_rfqs() {
    let (obj, expected, client, server) = run_example(
        "ex-sos",
        "seasonal-replenishment/stockout-seasonal.yaml",
        "seasonal-stockout",
    )
    .await;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    assert_activities(&client, &ns, "seasonal-stockout", &expected).await;
    // proposePurchase (minSeverity High): one draft RFQ per High or Critical exception
    // with a quantity to order, its origin the fingerprint.
    let urgent: Vec<&str> = expected
        .iter()
        .filter(|e| e.severity <= planops::engine::Severity::High)
        .map(|e| e.fingerprint.as_str())
        .collect();
    assert!(!urgent.is_empty(), "the data set has urgent stockouts");
    // Exactly the urgent ones with a quantity and a vendor to order from get
    // one RFQ each: none missing, none twice, none for the others.
    let orderable: Vec<&str> = expected
        .iter()
        .filter(|e| e.severity <= planops::engine::Severity::High)
        .filter(|e| match &e.numbers {
            planops::engine::ExceptionNumbers::ProjectedStockout(n) => {
                n.suggested_order_qty > 0.0 && n.supplier_id.is_some()
            }
            _ => false,
        })
        .map(|e| e.fingerprint.as_str())
        .collect();
    assert!(
        !orderable.is_empty(),
        "the data set has orderable stockouts"
    );
    let all: Vec<&str> = expected.iter().map(|e| e.fingerprint.as_str()).collect();
    let rfqs = count(&client, "purchase.order", json!([["origin", "in", all]])).await;
    assert_eq!(rfqs as usize, orderable.len(), "RFQs for {orderable:?}");
    for fingerprint in orderable {
        let one = count(
            &client,
            "purchase.order",
            json!([["origin", "=", fingerprint]]),
        )
        .await;
        assert_eq!(one, 1, "{fingerprint}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn example_demand_spike_opens_an_activity_per_spike() {
    let (obj, expected, client, server) = run_example(
        "ex-dsp",
        "seasonal-replenishment/demand-spike.yaml",
        "demand-spike",
    )
    .await;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    // The example's activity has `minSeverity: Medium`: lower spikes get none.
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|e| e.severity <= planops::engine::Severity::Medium) // Critical sorts first
        .collect();
    assert_activities(&client, &ns, "demand-spike", &expected).await;
    server.shutdown().await;
}

async fn cronjob(cluster: &support::TestCluster, ns: &str, name: &str) -> Option<Value> {
    let api: kube::Api<k8s_openapi::api::batch::v1::CronJob> =
        kube::Api::namespaced(cluster.client(), ns);
    api.get_opt(name)
        .await
        .expect("reading the CronJob")
        .map(|c| serde_json::to_value(c).expect("CronJob to JSON"))
}

#[tokio::test]
async fn cronjob_execution_materialises_an_owned_cronjob_whose_command_scans_with_the_scan_role() {
    let (cluster, ns) = setup("cronjob").await;
    let server = private_odoo().await;
    let client = odoo_client(&server).await;
    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    let products = count(
        &client,
        "product.product",
        json!([["standard_price", ">", 0]]),
    )
    .await;

    // Every minute: were the operator to schedule it in process too, a scan
    // would run within the test (checked further down).
    let applied_at = Timestamp::now();
    let mut rule = cost_rule(
        "nightly",
        json!({"cron": "* * * * *", "timeZone": ZONE, "concurrencyPolicy": "Replace", "startingDeadlineSeconds": 120}),
    );
    rule["spec"]["execution"] = json!("CronJob");
    apply(cluster, &ns, &rule).await;
    let name = "planops-scan-nightly";
    let job = eventually("the rule's CronJob", || cronjob(cluster, &ns, name)).await;
    let obj = get(cluster, &ns, "ExceptionRule", "nightly")
        .await
        .expect("rule");
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ExceptionRule");
    assert_eq!(owner["name"], "nightly");
    assert_eq!(owner["uid"], obj["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    let spec = &job["spec"];
    assert_eq!(spec["schedule"], "* * * * *");
    assert_eq!(spec["timeZone"], ZONE);
    assert_eq!(spec["concurrencyPolicy"], "Replace");
    assert_eq!(spec["startingDeadlineSeconds"], 120);
    assert_eq!(spec["suspend"], false);
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "planops-scan");
    assert_eq!(pod["containers"][0]["image"], TEST_IMAGE);
    assert_eq!(
        pod["containers"][0]["args"],
        json!(["scan", format!("{ns}/nightly")])
    );
    // The scan's notify requests obey the operator's --allow-outbound.
    assert_eq!(
        pod["containers"][0]["env"],
        json!([{"name": "PLANOPS_ALLOW_OUTBOUND", "value": "127.0.0.0/8"}])
    );
    let obj = eventually("Scheduled=True naming the CronJob", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "nightly").await?;
        let scheduled = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Scheduled")?
            .clone();
        (scheduled["status"] == "True"
            && scheduled["message"]
                .as_str()?
                .starts_with("execution CronJob: CronJob planops-scan-nightly"))
        .then_some(obj)
    })
    .await;
    assert!(obj["status"]["nextScanTime"].is_null());

    // Editing the schedule updates the CronJob.
    rule["spec"]["triggers"]["schedule"]["cron"] = json!("*/10 * * * *");
    apply(cluster, &ns, &rule).await;
    eventually("the new schedule on the CronJob", || async {
        let job = cronjob(cluster, &ns, name).await?;
        (job["spec"]["schedule"] == "*/10 * * * *").then_some(())
    })
    .await;
    rule["spec"]["triggers"]["schedule"]["cron"] = json!("* * * * *");
    apply(cluster, &ns, &rule).await;

    // Drift is repaired, and a CronJob deleted by hand comes back.
    let api: kube::Api<k8s_openapi::api::batch::v1::CronJob> =
        kube::Api::namespaced(cluster.client(), &ns);
    eventually("the schedule restored", || async {
        let job = cronjob(cluster, &ns, name).await?;
        (job["spec"]["schedule"] == "* * * * *").then_some(())
    })
    .await;
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"concurrencyPolicy": "Allow"}})),
    )
    .await
    .expect("editing the CronJob by hand");
    eventually("the edited CronJob repaired", || async {
        let job = cronjob(cluster, &ns, name).await?;
        (job["spec"]["concurrencyPolicy"] == "Replace").then_some(())
    })
    .await;
    let old_uid = cronjob(cluster, &ns, name).await.expect("CronJob")["metadata"]["uid"].clone();
    api.delete(name, &Default::default())
        .await
        .expect("deleting the CronJob by hand");
    let settled = eventually("the deleted CronJob recreated", || async {
        let job = cronjob(cluster, &ns, name).await?;
        (job["metadata"]["uid"] != old_uid).then_some(job)
    })
    .await;

    // No kubelet runs the Job here: run its command as the chart's scan
    // ServiceAccount, with exactly the chart's planops-scan Role.
    let objects = chart_rbac(&ns, &["--show-only=templates/scan-serviceaccount.yaml"]).await;
    assert_eq!(objects.len(), 3, "ServiceAccount, Role, RoleBinding");
    let dir = apply_rendered(cluster, &objects).await;
    let kubeconfig = service_account_kubeconfig(cluster, &ns, "planops-scan", &dir).await;
    let out = planops_scan(&kubeconfig, &format!("{ns}/nightly")).await;
    assert!(
        out.status.success(),
        "planops scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(
        printed["exceptions"].as_array().map(Vec::len),
        Some(products as usize)
    );
    assert_eq!(
        count(&client, "mail.activity", marker(&ns, "nightly")).await,
        products
    );
    let obj = get(cluster, &ns, "ExceptionRule", "nightly")
        .await
        .expect("rule");
    let last = &obj["status"]["lastScan"];
    assert_eq!(last["outcome"], "Succeeded", "{last}");
    assert_eq!(last["subjectsEvaluated"], json!(products));
    assert_eq!(last["exceptionsOpen"], json!(products));
    assert_eq!(last["exceptionsOpened"], json!(products));
    assert!(last["scheduledTime"].is_null(), "{last}");
    assert!(last["odooCalls"].as_u64().is_some_and(|n| n >= 2), "{last}");
    assert!(
        !obj["status"]["topExceptions"]
            .as_array()
            .expect("top")
            .is_empty()
    );
    assert_eq!(
        condition(&obj, "Ready"),
        Some(("True".into(), "Reconciled".into()))
    );

    // The scan owns lastScan; the operator's status writes leave it alone.
    let owners = |obj: &Value, field: &str| -> Vec<String> {
        obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| !m["fieldsV1"]["f:status"][field].is_null())
            .filter_map(|m| m["manager"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        owners(&obj, "f:lastScan"),
        ["planops-scan"],
        "{}",
        obj["metadata"]
    );
    assert!(owners(&obj, "f:conditions").contains(&"planops".to_string()));

    // Again: nothing twice in Odoo; the status shows a scan that opened nothing.
    let out = planops_scan(&kubeconfig, &format!("{ns}/nightly")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(&client, "mail.activity", marker(&ns, "nightly")).await,
        products
    );
    let obj = get(cluster, &ns, "ExceptionRule", "nightly")
        .await
        .expect("rule");
    assert_eq!(obj["status"]["lastScan"]["exceptionsOpened"], 0);
    assert_eq!(obj["status"]["lastScan"]["exceptionsOpen"], json!(products));

    // Clear errors; a rule whose connection is missing records a failed scan
    // and a ScanFailed Event (both within the scan Role).
    let out = planops_scan(&kubeconfig, &format!("{ns}/absent")).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("ExceptionRule {ns}/absent not found")),
        "{stderr}"
    );
    let mut orphan = cost_rule("orphan", json!({"cron": "0 6 * * *"}));
    orphan["spec"]["execution"] = json!("CronJob");
    orphan["spec"]["connectionRef"]["name"] = json!("elsewhere");
    apply(cluster, &ns, &orphan).await;
    let out = planops_scan(&kubeconfig, &format!("{ns}/orphan")).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("OdooConnection {ns}/elsewhere not found");
    assert!(stderr.contains(&expected), "{stderr}");
    let obj = get(cluster, &ns, "ExceptionRule", "orphan")
        .await
        .expect("rule");
    assert_eq!(obj["status"]["lastScan"]["outcome"], "Failed");
    assert!(
        obj["status"]["lastScan"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&expected)),
        "{}",
        obj["status"]
    );
    assert!(
        kube_events(cluster, &ns)
            .await
            .iter()
            .any(|(reason, message)| reason == "ScanFailed" && message.contains(&expected)),
        "a ScanFailed Event"
    );

    // The operator itself never scanned the CronJob rule, though a minute
    // boundary passed since it was applied.
    let boundary = applied_at
        .checked_add(jiff::SignedDuration::from_secs(65))
        .expect("time");
    if let Ok(wait) = Duration::try_from(boundary.duration_since(Timestamp::now())) {
        tokio::time::sleep(wait).await;
    }
    // Reconciles (status writes, CronJob events) since the repair wrote nothing
    // to a CronJob that matches the rule.
    let job = cronjob(cluster, &ns, name).await.expect("CronJob");
    assert_eq!(
        job["metadata"]["resourceVersion"], settled["metadata"]["resourceVersion"],
        "the CronJob was written without a change"
    );
    let metrics = operator.get("/metrics").await.expect("metrics").1;
    assert!(
        !metrics.contains("planops_scans_total{outcome=\"succeeded\"}"),
        "the operator ran a scan of a CronJob rule:\n{metrics}"
    );
    let obj = get(cluster, &ns, "ExceptionRule", "nightly")
        .await
        .expect("rule");
    assert!(obj["status"]["lastScan"]["scheduledTime"].is_null());

    // Suspending the rule suspends its CronJob; resuming resumes it.
    rule["spec"]["suspend"] = json!(true);
    apply(cluster, &ns, &rule).await;
    eventually("the CronJob suspended", || async {
        let job = cronjob(cluster, &ns, name).await?;
        (job["spec"]["suspend"] == true).then_some(())
    })
    .await;
    rule["spec"]["suspend"] = json!(false);
    apply(cluster, &ns, &rule).await;
    eventually("the CronJob resumed", || async {
        let job = cronjob(cluster, &ns, name).await?;
        (job["spec"]["suspend"] == false).then_some(())
    })
    .await;

    // Back in process: the CronJob goes and the operator schedules the rule.
    rule["spec"]["execution"] = json!("InProcess");
    apply(cluster, &ns, &rule).await;
    eventually("the CronJob deleted", || async {
        cronjob(cluster, &ns, name).await.is_none().then_some(())
    })
    .await;
    eventually("Scheduled=True in process", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "nightly").await?;
        let scheduled = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Scheduled")?
            .clone();
        (scheduled["status"] == "True"
            && scheduled["message"]
                .as_str()?
                .starts_with("execution InProcess")
            && !obj["status"]["nextScanTime"].is_null())
        .then_some(())
    })
    .await;
    server.shutdown().await;
}

/// The distinct scans the rule's status reported while a test polled it:
/// `(startTime, durationMillis)` by scheduled time.
type Seen = std::collections::BTreeMap<Timestamp, (Timestamp, i64)>;

fn record_scan(seen: &mut Seen, obj: &Value) {
    let last = &obj["status"]["lastScan"];
    if let (Some(scheduled), Some(start), Some(millis)) = (
        timestamp(&last["scheduledTime"]),
        timestamp(&last["startTime"]),
        last["durationMillis"].as_i64(),
    ) && last["outcome"] == "Succeeded"
    {
        seen.insert(scheduled, (start, millis));
    }
}

#[tokio::test]
async fn replace_cancels_the_running_scan_for_the_new_one() {
    let (cluster, ns, server, operator) =
        overlapping_scans("sched-replace", "replaced", "Replace", 2000).await;
    wait_kube_event(cluster, &ns, "ScanReplaced").await;
    // A cancelled scan stops calling Odoo. Every call takes 2 s and a scan is
    // replaced every 2 s, so each gets about one call in; scans that went on
    // after their cancellation would pile up and multiply the calls.
    // Counted by the metric: Events of one reason are aggregated.
    let replacements = || operator.counter("planops_scans_total{outcome=\"replaced\"}");
    let (first, calls_before) = (replacements().await, server.stats().total_requests);
    let last = eventually("four more replacements", || async {
        let now = replacements().await;
        (now >= first + 4).then_some(now)
    })
    .await;
    let calls = server.stats().total_requests - calls_before;
    let replaced = (last - first) as u64;
    eprintln!("{calls} Odoo calls over {replaced} replacements");
    assert!(
        calls <= 2 * (replaced + 1),
        "{calls} Odoo calls over {replaced} replacements: cancelled scans went on"
    );
    let metrics = operator.get("/metrics").await.expect("metrics").1;
    assert!(
        metrics.contains("planops_scans_total{outcome=\"replaced\"}"),
        "{metrics}"
    );
    // Replaced scans never reach the status: no scan has finished while every
    // one was cancelled by the next.
    let obj = get(cluster, &ns, "ExceptionRule", "replaced")
        .await
        .expect("rule");
    assert!(obj["status"]["lastScan"].is_null(), "{}", obj["status"]);
    assert!(
        !kube_events(cluster, &ns)
            .await
            .iter()
            .any(|(reason, _)| reason == "ScanSkipped")
    );
    // Once Odoo is quick again a scan finishes within the period and reports.
    server
        .set_faults(FaultConfig::default())
        .expect("no faults");
    wait_scan_after(cluster, &ns, "replaced", None).await;
    server.shutdown().await;
}

#[tokio::test]
async fn allow_starts_the_next_scan_while_the_previous_one_runs() {
    let (cluster, ns, server, _operator) =
        overlapping_scans("sched-allow", "allowed", "Allow", 1500).await;
    // Two reported scans overlap: the later one started before the earlier
    // one ended. (Scans of one rule take turns at Odoo's writes, so the
    // later one's duration includes its wait.)
    let mut seen = Seen::new();
    let deadline = std::time::Instant::now() + SETTLE;
    let overlap = loop {
        if let Some(obj) = get(cluster, &ns, "ExceptionRule", "allowed").await {
            record_scan(&mut seen, &obj);
        }
        let scans: Vec<_> = seen.values().copied().collect();
        let found = scans.windows(2).find_map(|pair| {
            let (start, millis) = pair[0];
            let end = start
                .checked_add(jiff::SignedDuration::from_millis(millis))
                .ok()?;
            (pair[1].0 < end).then_some((pair[0], pair[1]))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no two overlapping scans among {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(overlap.0.0 < overlap.1.0);
    assert!(
        !kube_events(cluster, &ns)
            .await
            .iter()
            .any(|(reason, _)| reason == "ScanSkipped" || reason == "ScanReplaced"),
        "Allow neither skips nor replaces"
    );
    server
        .set_faults(FaultConfig::default())
        .expect("no faults");
    server.shutdown().await;
}

#[tokio::test]
async fn receiving_the_goods_resolves_the_stockout_at_the_next_scan() {
    use support::odoo::{create, deliveries, product, vendor, warehouse};
    let (cluster, ns) = setup("sched-receive").await;
    let server = private_odoo().await;
    let client = support::odoo::connect(&server).await;
    // The chart mounts a volume here: the operator keeps its demand history there.
    let cache = tempfile::tempdir().expect("cache directory");
    let cache_dir = cache.path().to_str().expect("UTF-8 path");
    let _operator = OperatorProcess::start_with_env(
        cluster,
        OperatorOptions {
            namespace: &ns,
            identity: "solo",
            leader_election: false,
            lease_duration_seconds: 15,
            kubeconfig: None,
            label_leader_pod: false,
        },
        &[("PLANOPS_CACHE_DIR", cache_dir)],
    )
    .await;
    connect_odoo(cluster, &ns, &server).await;

    // A product selling 3 a day with nothing on hand: a projected stockout.
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let wh = warehouse(&client).await;
    let acme = vendor(&client, "Acme Receiving").await;
    let item = product(&client, "RCV-1", 20.0, Some((acme, 5))).await;
    deliveries(&client, &wh, item, today, 60, 3.0, 3.0).await;
    let rule = json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": "stockout"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "detector": {"projectedStockout": {"horizonDays": 30, "historyDays": 60}},
            "scope": {"productDomain": "[('default_code', '=', 'RCV-1')]", "warehouses": ["TW1"]},
            "triggers": {"schedule": {"cron": "*/3 * * * * *"}},
            "actions": [{"activity": {"assignee": {"user": "admin"}}}],
        },
    });
    apply(cluster, &ns, &rule).await;
    let opened = eventually("the stockout opened", || async {
        let obj = wait_scan_after(cluster, &ns, "stockout", None).await;
        (obj["status"]["lastScan"]["exceptionsOpen"] == 1).then_some(obj)
    })
    .await;
    let activities = marker(&ns, "stockout");
    eventually("its activity", || async {
        (count(&client, "mail.activity", activities.clone()).await == 1).then_some(())
    })
    .await;
    // The scan read its history through the operator's cache of this connection.
    let cached = cache.path().join(format!("history-{ns}_odoo.json"));
    assert!(cached.exists(), "{} missing", cached.display());
    let fingerprint = opened["status"]["topExceptions"][0]["fingerprint"]
        .as_str()
        .expect("the open exception's fingerprint")
        .to_string();

    // The goods arrive: the receipt is validated, which moves them into stock
    // (Odoo's validation makes the done move and the quant; so does this).
    let after = timestamp(&opened["status"]["lastScan"]["scheduledTime"]);
    create(
        &client,
        "stock.move",
        json!({
            "name": "IN", "product_id": item, "product_uom_qty": 500.0, "quantity": 500.0,
            "state": "done", "date": format!("{today} 08:00:00"),
            "location_id": wh.vendors, "location_dest_id": wh.stock,
        }),
    )
    .await;
    create(
        &client,
        "stock.quant",
        json!({"product_id": item, "location_id": wh.stock, "quantity": 500.0}),
    )
    .await;

    let resolved = eventually("the stockout resolved", || async {
        let obj = wait_scan_after(cluster, &ns, "stockout", after).await;
        (obj["status"]["lastScan"]["exceptionsResolved"] == 1).then_some(obj)
    })
    .await;
    assert_eq!(resolved["status"]["lastScan"]["exceptionsOpen"], 0);
    assert_eq!(count(&client, "mail.activity", activities).await, 0);
    // Marked done with PlanOps' note, which Odoo's done message quotes.
    let done = count(
        &client,
        "mail.message",
        json!([
            ["body", "ilike", "Resolved by PlanOps"],
            ["body", "ilike", fingerprint]
        ]),
    )
    .await;
    assert_eq!(done, 1, "one done message for the resolved activity");
    server.shutdown().await;
}

#[tokio::test]
async fn a_cronjob_rule_without_an_image_to_run_is_stalled() {
    let (cluster, ns) = setup("cronjob-noimage").await;
    let server = private_odoo().await;
    // An operator not told its image (PLANOPS_IMAGE empty, as without the chart).
    let _operator = OperatorProcess::start_with_env(
        cluster,
        OperatorOptions {
            namespace: &ns,
            identity: "solo",
            leader_election: false,
            lease_duration_seconds: 15,
            kubeconfig: None,
            label_leader_pod: false,
        },
        &[("PLANOPS_IMAGE", "")],
    )
    .await;
    connect_odoo(cluster, &ns, &server).await;
    let mut rule = cost_rule("imageless", json!({"cron": "0 6 * * *"}));
    rule["spec"]["execution"] = json!("CronJob");
    apply(cluster, &ns, &rule).await;
    let obj = wait_ready(
        cluster,
        &ns,
        "ExceptionRule",
        "imageless",
        "False",
        "NoScanImage",
    )
    .await;
    assert_eq!(
        condition(&obj, "Stalled"),
        Some(("True".into(), "NoScanImage".into()))
    );
    assert_eq!(
        condition(&obj, "Scheduled"),
        Some(("False".into(), "NoScanImage".into()))
    );
    assert!(
        cronjob(cluster, &ns, "planops-scan-imageless")
            .await
            .is_none()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_cronjob_scan_that_leaves_writes_undone_exits_2_and_the_rule_is_not_ready() {
    let (cluster, ns) = setup("cronjob-partial").await;
    let server = private_odoo().await;
    let client = odoo_client(&server).await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    let acme = support::odoo::vendor(&client, "Acme Refusals").await;
    for code in ["T-N1", "T-N2"] {
        support::odoo::product(&client, code, 20.0, Some((acme, 5))).await;
    }
    // Vendor price lines have no chatter: Odoo refuses each note.
    let rule = json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": "notes"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "execution": "CronJob",
            "detector": {"fieldThreshold": {
                "model": "product.supplierinfo",
                "domain": format!("[('partner_id', '=', {acme})]"),
                "field": "delay",
                "comparison": "Gt",
                "value": 0,
            }},
            "triggers": {"schedule": {"cron": "0 6 * * *"}},
            "actions": [{"chatterNote": {}}],
        },
    });
    apply(cluster, &ns, &rule).await;
    wait_ready(cluster, &ns, "ExceptionRule", "notes", "True", "Reconciled").await;

    let out = planops_scan(&cluster.kubeconfig, &format!("{ns}/notes")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("scan {ns}/notes: writing 2/2")),
        "{stderr}"
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(printed["summary"]["failed"], 2);

    let obj = wait_ready(
        cluster,
        &ns,
        "ExceptionRule",
        "notes",
        "False",
        "PartialFailure",
    )
    .await;
    let last = &obj["status"]["lastScan"];
    assert_eq!(last["outcome"], "Succeeded", "{last}");
    assert_eq!(last["writesFailed"], 2, "{last}");
    assert!(
        last["writesUnknown"].is_null(),
        "zero counts stay out: {last}"
    );
    let ready = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("2 writes failed and 0 are unknown")
            && message.contains("Odoo refused message_post"),
        "{message}"
    );

    // Nothing changed in Odoo: a second run finds the same, and the status
    // keeps its Ready condition as it was.
    let transition = ready["lastTransitionTime"].clone();
    let out = planops_scan(&cluster.kubeconfig, &format!("{ns}/notes")).await;
    assert_eq!(out.status.code(), Some(2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let obj = get(cluster, &ns, "ExceptionRule", "notes")
        .await
        .expect("rule");
    let ready = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_eq!(ready["reason"], "PartialFailure");
    assert_eq!(ready["lastTransitionTime"], transition);
    server.shutdown().await;
}
