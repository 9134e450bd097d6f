//! `planops plan` on the built binary: schedules, owned records and actions from
//! the manifests alone, and `--evaluate` against a simulator this test owns, so
//! it can count the records in it and prove the plan wrote nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use planops::odoo::{OdooClient, OdooConfig, Secret};
use planops::sim::{SimConfig, SimServer};
use serde_json::{Value, json};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn planops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_planops"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running planops")
}

fn rule<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no rule {name} in {doc:#}"))
}

#[test]
fn plan_lists_schedule_owned_records_and_actions() {
    let out = planops(&[
        "plan",
        "-f",
        "examples/supplier-delays",
        "--now",
        "2026-11-28T12:00:00Z",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let delay = rule(&doc, "supplier-delay");
    // "0 7,13 * * 1-5" in Amsterdam after Saturday noon UTC: Monday 07:00 and 13:00, Tuesday 07:00.
    assert_eq!(
        delay["schedule"]["nextRuns"],
        json!([
            "2026-11-30 07:00:00 CET (+01:00)",
            "2026-11-30 13:00:00 CET (+01:00)",
            "2026-12-01 07:00:00 CET (+01:00)"
        ])
    );
    assert_eq!(delay["events"]["model"], "purchase.order.line");
    assert_eq!(delay["events"]["trigger"], "on_write");
    // The route the gateway serves (tests/events.rs posts to the same path).
    assert_eq!(
        delay["events"]["webhookUrl"],
        format!(
            "http://127.0.0.1:8080{}",
            planops::automation::hook_path("default", "supplier-delay")
        )
    );
    let models: Vec<&str> = delay["odooRecords"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["model"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(models, ["base.automation", "ir.actions.server"]);
    assert_eq!(delay["actions"].as_array().map(Vec::len), Some(2));
    assert_eq!(doc["rules"].as_array().map(Vec::len), Some(2));

    // --connection narrows to the rules of one connection, by name or URL.
    let out = planops(&[
        "plan",
        "-f",
        "examples",
        "--connection",
        "no-such-connection",
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["rules"], json!([]));
    let out = planops(&[
        "plan",
        "-f",
        "examples",
        "--connection",
        "http://127.0.0.1:8069",
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["rules"].as_array().map(Vec::len), Some(6));
}

#[test]
fn invalid_manifests_are_not_planned() {
    let out = planops(&[
        "plan",
        "-f",
        "tests/manifests/invalid/offline/exr-time-zone.yaml",
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("spec.triggers.schedule.timeZone"), "{text}");
}

async fn count(client: &OdooClient, model: &str) -> u64 {
    client
        .search_count(model, &json!([]))
        .await
        .unwrap_or_else(|e| panic!("counting {model}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_runs_the_scan_in_dry_run_and_writes_nothing() {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = SimConfig::default();
    let today = config.today;
    let server = SimServer::start(config, addr).await.expect("simulator");
    let key = server.db.admin_api_key();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{key}\n")).expect("key file");
    let mut cfg = OdooConfig::new(&server.url, server.db.name(), "admin", Secret::new(key));
    cfg.timeout = Duration::from_secs(30);
    let client = OdooClient::connect(cfg).await.expect("client");

    const MODELS: [&str; 5] = [
        "mail.activity",
        "mail.message",
        "purchase.order",
        "purchase.order.line",
        "base.automation",
    ];
    let mut before = Vec::new();
    for model in MODELS {
        before.push(count(&client, model).await);
    }
    server.reset_stats();

    // The supplier-delay example is in Enforce mode: a scan would write.
    let url = server.url.clone();
    let db = server.db.name().to_string();
    let key_path = key_file.to_string_lossy().to_string();
    let today_arg = today.to_string();
    let out = tokio::task::spawn_blocking(move || {
        planops(&[
            "plan",
            "-f",
            "examples/supplier-delays",
            "--evaluate",
            "--odoo-url",
            &url,
            "--db",
            &db,
            "--login",
            "admin",
            "--api-key-file",
            &key_path,
            "--today",
            &today_arg,
            "-o",
            "json",
        ])
    })
    .await
    .expect("joining");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let delay = &rule(&doc, "supplier-delay")["evaluation"];
    assert!(
        delay["exceptions"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{delay:#}"
    );
    let writes = delay["writes"].as_array().expect("writes");
    assert!(
        writes.iter().any(|w| w["kind"] == "activity"),
        "the plan should show the activities it would create: {delay:#}"
    );
    assert!(delay["odooCalls"].as_u64().is_some_and(|n| n > 0));

    // Nothing was written: no mutating ORM call reached the simulator, and
    // every record count is what it was.
    let stats = server.stats();
    let mutating: Vec<&String> = stats
        .model_calls
        .keys()
        .filter(|k| {
            [
                "create",
                "write",
                "unlink",
                "message_post",
                "action_feedback",
                "button_confirm",
            ]
            .iter()
            .any(|m| k.ends_with(&format!("/{m}")))
        })
        .collect();
    assert!(mutating.is_empty(), "mutating calls: {mutating:?}");
    assert!(!stats.model_calls.is_empty(), "the plan read nothing");
    for (model, n) in MODELS.iter().zip(before) {
        assert_eq!(count(&client, model).await, n, "{model} changed");
    }
    server.shutdown().await;
}

#[test]
fn evaluate_with_the_built_in_simulator() {
    let out = planops(&[
        "plan",
        "-f",
        "examples/supplier-delays/supplier-delay.yaml",
        "--evaluate",
        "--sim",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would write (DryRun: nothing is written)"),
        "{text}"
    );
    assert!(
        text.ends_with("1 rules planned from 1 PlanOps resources; evaluated in DryRun: nothing was written to Odoo\n"),
        "{text}"
    );

    // What the evaluation found and would write, not just that it ran.
    let out = planops(&[
        "plan",
        "-f",
        "examples/supplier-delays/supplier-delay.yaml",
        "--evaluate",
        "--sim",
        "-o",
        "json",
    ]);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan -o json");
    let evaluation = &plan["rules"][0]["evaluation"];
    let exceptions = evaluation["exceptions"].as_array().expect("exceptions");
    // The simulator's data set has late lines and a vendor whose lead time slipped.
    assert!(exceptions.len() >= 2, "{evaluation}");
    assert!(
        evaluation["subjectsEvaluated"].as_u64() >= Some(exceptions.len() as u64),
        "{evaluation}"
    );
    let reasons: std::collections::BTreeSet<&str> = exceptions
        .iter()
        .filter_map(|e| e["numbers"]["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["Late", "LeadTimeDeterioration"].into_iter().collect(),
        "{evaluation}"
    );
    // Both actions (an activity and a chatter note, minimum severity Low)
    // apply to every exception, once each.
    let writes = evaluation["writes"].as_array().expect("writes");
    for exception in exceptions {
        let fingerprint = &exception["fingerprint"];
        let kinds: Vec<&str> = writes
            .iter()
            .filter(|w| &w["fingerprint"] == fingerprint)
            .filter_map(|w| w["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["activity", "chatter note"], "{fingerprint}");
    }
    assert_eq!(writes.len(), 2 * exceptions.len());
}
