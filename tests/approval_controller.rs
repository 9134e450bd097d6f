//! The approval gate wired into the operator: a real `planops operator`
//! process against the real kube-apiserver and the Odoo simulator.
//!
//! A rule's `proposePurchase` creates a draft RFQ above a policy's threshold;
//! the gate asks for approval in Odoo (Approvals app on Enterprise, "To
//! approve" activities on Community) and the RFQ stays a draft; the approver's
//! decision, taken in Odoo as that user, confirms the RFQ exactly once or
//! cancels it and closes the exception. Escalation, refused self-approval,
//! policy edits and deletions while a request waits, an operator restart, the
//! policy's status and `planops audit` are checked against what the simulator
//! and the API server hold.

mod support;

use std::path::Path;

use jiff::civil::Date;
use planops::odoo::{Call, OdooClient, RecordExt, SearchOptions, Secret};
use planops::sim::{DatasetParams, Edition, OdooVersion, SimConfig, SimServer};
use serde_json::{Value, json};
use support::odoo::{self, count, deliveries, obj, product, vendor, warehouse};
use support::*;

const POLICY: &str = "big-buys";

fn today() -> Date {
    jiff::Zoned::now().date()
}

async fn start_sim(edition: Edition) -> SimServer {
    let config = SimConfig {
        version: OdooVersion::V17,
        edition,
        dataset: DatasetParams {
            seed: 5,
            products: 3,
            warehouses: 1,
            history_days: 20,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    };
    odoo::start_sim(config).await
}

struct World {
    cluster: &'static support::TestCluster,
    ns: String,
    server: SimServer,
    admin: OdooClient,
    operator: Option<OperatorProcess>,
    edition: Edition,
}

/// A namespace, a simulator with one product heading for a stockout (cost
/// 500, 3 a day, no stock, a vendor with a 5-day lead time), the operator and
/// the connection. Nothing is gated yet.
async fn world(prefix: &str, edition: Edition) -> World {
    let cluster = support::cluster().await;
    cluster
        .install_crds(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cluster.namespace(prefix).await;
    let server = start_sim(edition).await;
    let admin = odoo::connect(&server).await;
    let wh = warehouse(&admin).await;
    let acme = vendor(&admin, "Acme Test Supplies").await;
    let item = product(&admin, "APR-1", 500.0, Some((acme, 5))).await;
    deliveries(&admin, &wh, item, today(), 60, 3.0, 3.0).await;
    let operator = OperatorProcess::simple(cluster, &ns).await;
    connect_odoo(cluster, &ns, &server).await;
    World {
        cluster,
        ns,
        server,
        admin,
        operator: Some(operator),
        edition,
    }
}

fn policy(levels: Value) -> Value {
    json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ApprovalPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "governs": "EmergencyPurchase",
            "match": {"minAmount": 1000},
            "levels": levels,
            "pollIntervalSeconds": 5,
        },
    })
}

fn two_levels() -> Value {
    json!([
        {"name": "buyers", "users": ["buyer.alice", "buyer.bob"], "slaHours": 24},
        {"name": "planning lead", "users": ["buyer.chen"], "slaHours": 24},
    ])
}

/// Scans every 3 s; an activity for the planner and a draft RFQ per stockout.
fn rule() -> Value {
    json!({
        "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
        "metadata": {"name": "stockout"},
        "spec": {
            "connectionRef": {"name": "odoo"},
            "scope": {"productDomain": "[('default_code', '=', 'APR-1')]", "warehouses": ["TW1"]},
            "detector": {"projectedStockout": {"horizonDays": 30, "historyDays": 60}},
            "triggers": {"schedule": {"cron": "*/3 * * * * *"}},
            "actions": [
                {"activity": {"assignee": {"user": "admin"}}},
                {"proposePurchase": {"minSeverity": "Low"}},
            ],
        },
    })
}

impl World {
    async fn apply(&self, manifest: &Value) {
        apply(self.cluster, &self.ns, manifest).await;
    }

    async fn policy_obj(&self) -> Option<Value> {
        get(self.cluster, &self.ns, "ApprovalPolicy", POLICY).await
    }

    /// The policy's status counts once they satisfy `check`.
    async fn wait_counts(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(what, || async {
            let obj = self.policy_obj().await?;
            let counts = &obj["status"]["counts"];
            check(counts).then_some(obj)
        })
        .await
    }

    /// The RFQ the rule proposed (origin = the exception's fingerprint),
    /// once there is exactly one and its approval is open.
    async fn gated_rfq(&self) -> (i64, String) {
        let obj = self
            .wait_counts("the approval request", |c| c["pending"] == 1)
            .await;
        assert_eq!(obj["status"]["backend"], json!(self.backend()));
        let rows = self
            .admin
            .search_read(
                "purchase.order",
                &json!([["origin", "=like", "planops:%"]]),
                &["id", "origin", "state"],
                &SearchOptions::default(),
            )
            .await
            .expect("reading RFQs");
        assert_eq!(rows.len(), 1, "{rows:?}");
        let id = rows[0].id().expect("id");
        let fp = rows[0]
            .str_field("origin")
            .expect("origin")
            .expect("origin set")
            .to_string();
        assert_eq!(self.rfq_state(id).await, "draft");
        (id, fp)
    }

    fn backend(&self) -> &'static str {
        match self.edition {
            Edition::Enterprise => "ApprovalsApp",
            Edition::Community => "Activity",
        }
    }

    async fn rfq_state(&self, rfq: i64) -> String {
        self.admin
            .read("purchase.order", &[rfq], &["state"])
            .await
            .expect("reading the RFQ")[0]
            .str_field("state")
            .expect("state")
            .unwrap_or_default()
            .to_string()
    }

    async fn confirmed(&self, fp: &str) -> u64 {
        count(
            &self.admin,
            "purchase.order",
            json!([["origin", "=", fp], ["state", "=", "purchase"]]),
        )
        .await
    }

    async fn count_all(&self, model: &str, domain: Value) -> u64 {
        let mut context = serde_json::Map::new();
        context.insert("active_test".into(), json!(false));
        self.admin
            .with_context(context)
            .search_count(model, &domain)
            .await
            .expect("counting")
    }

    /// Approval requests (ApprovalsApp) or approval activities (Activity) for `fp`.
    async fn requests(&self, fp: &str) -> u64 {
        match self.edition {
            Edition::Enterprise => {
                self.count_all("approval.request", json!([["reference", "ilike", fp]]))
                    .await
            }
            Edition::Community => {
                self.count_all(
                    "mail.activity",
                    json!([["note", "ilike", fp], ["res_model", "=", "purchase.order"]]),
                )
                .await
            }
        }
    }

    async fn notes(&self, rfq: i64, fp: &str, tag: &str) -> u64 {
        count(
            &self.admin,
            "mail.message",
            json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", rfq],
                ["body", "ilike", format!("{fp} {tag}")]
            ]),
        )
        .await
    }

    async fn user(&self, login: &str) -> OdooClient {
        let key = self
            .server
            .db
            .generate_api_key(login)
            .expect("an API key for the user");
        odoo::connect_to(&self.server, self.server.db.name(), login, Secret::new(key)).await
    }

    /// `login` decides in Odoo as that user: `action_approve` / `action_refuse`
    /// on the request (the reason as a chatter comment), or marking their
    /// approval activity done with feedback.
    async fn decide(&self, fp: &str, login: &str, approve: bool, reason: &str) {
        let client = self.user(login).await;
        match self.edition {
            Edition::Enterprise => {
                let request = self
                    .admin
                    .search(
                        "approval.request",
                        &json!([["reference", "ilike", fp]]),
                        &SearchOptions::default(),
                    )
                    .await
                    .expect("finding the request");
                let method = if approve {
                    "action_approve"
                } else {
                    "action_refuse"
                };
                if !approve {
                    client
                        .call(
                            Call::new("approval.request", "message_post")
                                .ids(request.clone())
                                .kwarg("body", reason)
                                .kwarg("message_type", "comment"),
                        )
                        .await
                        .expect("commenting");
                }
                client
                    .call(Call::new("approval.request", method).ids(request))
                    .await
                    .expect("deciding");
            }
            Edition::Community => {
                let mine = self
                    .admin
                    .search(
                        "mail.activity",
                        &json!([
                            ["note", "ilike", fp],
                            ["res_model", "=", "purchase.order"],
                            ["user_id", "=", client.uid()]
                        ]),
                        &SearchOptions::default(),
                    )
                    .await
                    .expect("finding the activity");
                assert!(!mine.is_empty(), "{login} has no approval activity");
                let feedback = if approve {
                    "approved".to_string()
                } else {
                    format!("rejected: {reason}")
                };
                client
                    .call(
                        Call::new("mail.activity", "action_feedback")
                            .ids(mine)
                            .kwarg("feedback", feedback),
                    )
                    .await
                    .expect("marking the activity done");
            }
        }
    }

    async fn wait_event(&self, reason: &str) -> String {
        wait_kube_event(self.cluster, &self.ns, reason).await
    }

    /// Waits for two more scans of the rule, so that what follows has been
    /// through the gate again.
    async fn two_more_scans(&self) {
        for _ in 0..2 {
            let before = get(self.cluster, &self.ns, "ExceptionRule", "stockout")
                .await
                .map(|o| o["status"]["lastScan"]["scheduledTime"].clone())
                .unwrap_or(Value::Null);
            eventually("another scan", || async {
                let obj = get(self.cluster, &self.ns, "ExceptionRule", "stockout").await?;
                let last = &obj["status"]["lastScan"];
                (last["scheduledTime"] != before && last["outcome"] == "Succeeded").then_some(())
            })
            .await;
        }
    }

    async fn metrics(&self) -> String {
        let operator = self.operator.as_ref().expect("a running operator");
        let (status, body) = operator.get("/metrics").await.expect("reading /metrics");
        assert_eq!(status, 200);
        body
    }

    /// The value of one series on `/metrics` (0 when absent).
    async fn counter(&self, series: &str) -> u64 {
        let operator = self.operator.as_ref().expect("a running operator");
        operator.counter(series).await
    }

    async fn restart_operator(&mut self) {
        drop(self.operator.take());
        self.operator = Some(OperatorProcess::simple(self.cluster, &self.ns).await);
    }

    /// `planops audit` as a user would run it, against the test cluster.
    async fn audit(&self, output: &str) -> String {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_planops"))
            .args([
                "audit",
                &format!("{}/{POLICY}", self.ns),
                "--output",
                output,
            ])
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .output()
            .await
            .expect("running planops audit");
        assert!(
            out.status.success(),
            "planops audit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    async fn audit_json(&self) -> Value {
        serde_json::from_str(&self.audit("json").await).expect("audit JSON")
    }
}

/// Above the threshold: one request, the RFQ stays a draft through scans and
/// an operator restart; bob's approval confirms it exactly once; status,
/// Events and `planops audit` tell the story.
async fn approval_confirms_once_across_a_restart(edition: Edition) {
    let mut w = world("apc-ok", edition).await;
    w.apply(&policy(two_levels())).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    assert_eq!(
        w.requests(&fp).await,
        match edition {
            Edition::Enterprise => 1,
            // alice and bob each get a "To approve" activity.
            Edition::Community => 2,
        }
    );
    let opened = w.requests(&fp).await;
    assert_eq!(w.notes(rfq, &fp, "approval-requested").await, 1);
    w.wait_event("ApprovalRequested").await;

    // Neither more scans nor a restart duplicate the request or the RFQ.
    w.restart_operator().await;
    w.two_more_scans().await;
    assert_eq!(w.requests(&fp).await, opened);
    assert_eq!(w.notes(rfq, &fp, "approval-requested").await, 1);
    assert_eq!(
        count(&w.admin, "purchase.order", json!([["origin", "=", fp]])).await,
        1
    );
    assert_eq!(w.rfq_state(rfq).await, "draft");

    // bob decides while the operator is down: the decision is not lost.
    drop(w.operator.take());
    w.decide(&fp, "buyer.bob", true, "").await;
    assert_eq!(w.rfq_state(rfq).await, "draft");
    w.operator = Some(OperatorProcess::simple(w.cluster, &w.ns).await);
    let obj = w
        .wait_counts("the approval carried out", |c| {
            c["approved"] == 1 && c["pending"] == 0
        })
        .await;
    assert_eq!(w.confirmed(&fp).await, 1);
    assert!(obj["status"]["medianCycleTimeSeconds"].as_f64() > Some(0.0));
    assert_eq!(
        condition(&obj, "Ready"),
        Some(("True".into(), "Reconciled".into()))
    );
    assert_eq!(
        condition(&obj, "Synced"),
        Some(("True".into(), "Polled".into()))
    );
    let approved = w.wait_event("Approved").await;
    assert!(approved.contains("buyer.bob"), "{approved}");
    let metrics = w.metrics().await;
    let labels = format!("namespace=\"{}\",policy=\"{POLICY}\"", w.ns);
    assert!(
        metrics.contains(&format!(
            "planops_approval_cycle_seconds_count{{{labels}}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "planops_approval_decisions_total{{{labels},decision=\"approved\"}} 1"
        )),
        "{metrics}"
    );

    // Later polls and scans carry nothing out again.
    w.restart_operator().await;
    w.two_more_scans().await;
    assert_eq!(w.confirmed(&fp).await, 1);
    assert_eq!(w.notes(rfq, &fp, "approval-outcome").await, 1);
    match edition {
        Edition::Enterprise => assert_eq!(w.requests(&fp).await, 1),
        // Done activities are gone (Odoo deletes them unless the type keeps
        // them): none was created again, and alice's was closed with the outcome.
        Edition::Community => assert_eq!(
            count(
                &w.admin,
                "mail.activity",
                json!([["note", "ilike", fp], ["res_model", "=", "purchase.order"]]),
            )
            .await,
            0
        ),
    }

    let audit = w.audit_json().await;
    assert_eq!(audit["approved"], 1, "{audit}");
    let row = &audit["requests"][0];
    assert_eq!(row["fingerprint"], json!(fp));
    assert_eq!(row["status"], "approved");
    assert_eq!(row["decidedBy"], "buyer.bob");
    assert!(row["cycleTimeSeconds"].as_f64() > Some(0.0), "{row}");
    let table = w.audit("table").await;
    let line = table
        .lines()
        .find(|l| l.contains(&fp))
        .unwrap_or_else(|| panic!("no row for {fp} in:\n{table}"));
    assert!(
        line.contains("approved") && line.contains("buyer.bob"),
        "{line}"
    );
    assert!(
        table.contains("1 requests: 0 pending, 1 approved, 0 rejected"),
        "{table}"
    );
    w.server.shutdown().await;
}

#[tokio::test]
async fn approvals_app_approval_confirms_the_rfq_once_across_a_restart() {
    approval_confirms_once_across_a_restart(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_approval_confirms_the_rfq_once_across_a_restart() {
    approval_confirms_once_across_a_restart(Edition::Community).await;
}

/// A refusal cancels the RFQ and closes the exception's activity with the reason.
async fn rejection_cancels(edition: Edition) {
    let w = world("apc-no", edition).await;
    w.apply(&policy(two_levels())).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    let open_exception = || {
        count(
            &w.admin,
            "mail.activity",
            json!([["note", "ilike", fp], ["res_model", "!=", "purchase.order"]]),
        )
    };
    assert_eq!(open_exception().await, 1);
    w.decide(&fp, "buyer.bob", false, "price too high").await;
    w.wait_counts("the rejection carried out", |c| {
        c["rejected"] == 1 && c["pending"] == 0
    })
    .await;
    assert_eq!(w.rfq_state(rfq).await, "cancel");
    assert_eq!(w.confirmed(&fp).await, 0);
    assert_eq!(open_exception().await, 0);
    let closed = count(
        &w.admin,
        "mail.message",
        json!([
            ["body", "ilike", "price too high"],
            ["body", "ilike", "Closed by PlanOps"]
        ]),
    )
    .await;
    assert_eq!(
        closed, 1,
        "the exception's activity was closed once, with the reason"
    );
    let rejected = w.wait_event("Rejected").await;
    assert!(rejected.contains("price too high"), "{rejected}");
    // The cancelled RFQ is neither re-proposed nor re-gated.
    w.two_more_scans().await;
    assert_eq!(
        count(&w.admin, "purchase.order", json!([["origin", "=", fp]])).await,
        1
    );
    assert_eq!(w.notes(rfq, &fp, "approval-requested").await, 1);
    w.server.shutdown().await;
}

#[tokio::test]
async fn approvals_app_rejection_cancels_the_rfq_and_closes_the_exception() {
    rejection_cancels(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_rejection_cancels_the_rfq_and_closes_the_exception() {
    rejection_cancels(Edition::Community).await;
}

/// With SLAs of about a second, level 1 escalates to level 2 (chen gets the
/// request), then level 2's breach is recorded in status, once.
#[tokio::test]
async fn an_unanswered_request_escalates_and_the_last_level_breach_is_recorded() {
    let w = world("apc-esc", Edition::Community).await;
    w.apply(&policy(json!([
        {"name": "buyers", "users": ["buyer.bob"], "slaHours": 0.0003},
        {"name": "planning lead", "users": ["buyer.chen"], "slaHours": 0.0003},
    ])))
    .await;
    w.apply(&rule()).await;
    let obj = w
        .wait_counts("escalation and breach", |c| {
            c["escalated"] == 1 && c["slaBreaches"] == 1
        })
        .await;
    assert_eq!(obj["status"]["counts"]["pending"], 1);
    let rfq = w
        .admin
        .search(
            "purchase.order",
            &json!([["origin", "=like", "planops:%"]]),
            &SearchOptions::default(),
        )
        .await
        .expect("the RFQ")[0];
    let chen = w.user("buyer.chen").await.uid();
    assert_eq!(
        w.count_all(
            "mail.activity",
            json!([
                ["res_id", "=", rfq],
                ["user_id", "=", chen],
                ["res_model", "=", "purchase.order"]
            ])
        )
        .await,
        1
    );
    let escalated = w.wait_event("Escalated").await;
    assert!(escalated.contains("level 2 (planning lead)"), "{escalated}");
    w.wait_event("SlaBreached").await;
    let metrics = w.metrics().await;
    assert!(
        metrics.contains(&format!(
            "planops_approval_sla_breaches_total{{namespace=\"{}\",policy=\"{POLICY}\"}} 1",
            w.ns
        )),
        "{metrics}"
    );
    // A late answer from the first level still counts.
    let fp = w.gated_rfq().await.1;
    assert_eq!(w.notes(rfq, &fp, "approval-sla-breached").await, 1);
    w.decide(&fp, "buyer.bob", true, "").await;
    w.wait_counts("the late approval", |c| c["approved"] == 1)
        .await;
    assert_eq!(w.confirmed(&fp).await, 1);
    w.server.shutdown().await;
}

/// The RFQ's buyer is the requester: when alice owns it and approves it
/// herself, her approval is refused, recorded (note + Event) and the RFQ
/// stays a draft until bob approves.
#[tokio::test]
async fn the_requester_approving_her_own_purchase_is_refused_and_recorded() {
    let w = world("apc-self", Edition::Enterprise).await;
    w.apply(&policy(two_levels())).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    let alice = w.user("buyer.alice").await.uid();
    w.admin
        .write("purchase.order", &[rfq], obj(json!({"user_id": alice})))
        .await
        .expect("making alice the buyer");
    w.decide(&fp, "buyer.alice", true, "").await;
    let refused = w.wait_event("DecisionRefused").await;
    assert!(refused.contains("segregation of duties"), "{refused}");
    assert_eq!(
        w.notes(
            rfq,
            &fp,
            &format!("approval-decision-refused-{alice}-approve")
        )
        .await,
        1
    );
    w.two_more_scans().await;
    assert_eq!(w.rfq_state(rfq).await, "draft");
    assert_eq!(w.confirmed(&fp).await, 0);
    let obj = w.policy_obj().await.expect("policy");
    assert_eq!(obj["status"]["counts"]["pending"], 1);
    assert_eq!(obj["status"]["counts"]["approved"], 0);
    // Polls that find nothing new write no status: no churn on the API server.
    let writes = w
        .counter("planops_status_writes_total{kind=\"ApprovalPolicy\"}")
        .await;
    let polls = w
        .counter("planops_reconciliations_total{kind=\"ApprovalPolicy\"}")
        .await;
    eventually("two more polls", || async {
        let now = w
            .counter("planops_reconciliations_total{kind=\"ApprovalPolicy\"}")
            .await;
        (now >= polls + 2).then_some(())
    })
    .await;
    assert_eq!(
        w.counter("planops_status_writes_total{kind=\"ApprovalPolicy\"}")
            .await,
        writes
    );
    let again = w.policy_obj().await.expect("policy");
    assert_eq!(
        again["metadata"]["resourceVersion"],
        obj["metadata"]["resourceVersion"]
    );
    w.decide(&fp, "buyer.bob", true, "").await;
    w.wait_counts("bob's approval", |c| c["approved"] == 1)
        .await;
    assert_eq!(w.confirmed(&fp).await, 1);
    w.server.shutdown().await;
}

/// Edited while pending: the request follows the new levels from its current
/// level (the new first-level approver is asked and can decide).
#[tokio::test]
async fn a_policy_edited_while_pending_applies_its_new_levels() {
    let w = world("apc-edit", Edition::Community).await;
    w.apply(&policy(json!([{"name": "buyers", "users": ["buyer.bob"]}])))
        .await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    w.apply(&policy(json!([{"name": "leads", "users": ["buyer.chen"]}])))
        .await;
    let chen = w.user("buyer.chen").await.uid();
    eventually("chen asked for approval", || async {
        (w.count_all(
            "mail.activity",
            json!([
                ["note", "ilike", fp],
                ["user_id", "=", chen],
                ["res_id", "=", rfq]
            ]),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    w.decide(&fp, "buyer.chen", true, "").await;
    w.wait_counts("chen's approval", |c| c["approved"] == 1)
        .await;
    assert_eq!(w.confirmed(&fp).await, 1);
    w.server.shutdown().await;
}

/// Deleted while pending, `deletionPolicy: Delete` (the default): the request
/// is withdrawn in Odoo (approver lines cancelled), the RFQ stays a draft
/// with a note, and the policy goes away.
#[tokio::test]
async fn a_policy_deleted_while_pending_withdraws_its_requests() {
    let w = world("apc-del", Edition::Enterprise).await;
    w.apply(&policy(two_levels())).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    planops_api(w.cluster, &w.ns, "ApprovalPolicy")
        .delete(POLICY, &Default::default())
        .await
        .expect("deleting the policy");
    eventually("the policy gone", || async {
        w.policy_obj().await.is_none().then_some(())
    })
    .await;
    let status = w
        .admin
        .search_read(
            "approval.request",
            &json!([["reference", "ilike", fp]]),
            &["request_status"],
            &SearchOptions::default(),
        )
        .await
        .expect("reading the request");
    assert_eq!(status[0]["request_status"], json!("cancel"));
    assert_eq!(w.notes(rfq, &fp, "approval-withdrawn").await, 1);
    w.two_more_scans().await;
    assert_eq!(w.rfq_state(rfq).await, "draft");
    assert_eq!(w.requests(&fp).await, 1);
    w.server.shutdown().await;
}

/// `deletionPolicy: Orphan`: the request is left in Odoo as it is.
#[tokio::test]
async fn an_orphaned_policy_leaves_its_pending_requests() {
    let w = world("apc-orph", Edition::Community).await;
    let mut p = policy(two_levels());
    p["spec"]["deletionPolicy"] = json!("Orphan");
    w.apply(&p).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    let open_before = count(
        &w.admin,
        "mail.activity",
        json!([["note", "ilike", fp], ["res_model", "=", "purchase.order"]]),
    )
    .await;
    assert_eq!(open_before, 2);
    planops_api(w.cluster, &w.ns, "ApprovalPolicy")
        .delete(POLICY, &Default::default())
        .await
        .expect("deleting the policy");
    eventually("the policy gone", || async {
        w.policy_obj().await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        count(
            &w.admin,
            "mail.activity",
            json!([["note", "ilike", fp], ["res_model", "=", "purchase.order"]]),
        )
        .await,
        open_before
    );
    assert_eq!(w.notes(rfq, &fp, "approval-withdrawn").await, 0);
    assert_eq!(w.rfq_state(rfq).await, "draft");
    w.server.shutdown().await;
}

/// Below every policy's threshold nothing is gated: the RFQ is a plain draft.
#[tokio::test]
async fn below_the_threshold_the_rfq_is_not_gated() {
    let w = world("apc-low", Edition::Community).await;
    let mut p = policy(two_levels());
    p["spec"]["match"]["minAmount"] = json!(100_000_000);
    w.apply(&p).await;
    w.apply(&rule()).await;
    w.two_more_scans().await;
    let rfqs = w
        .admin
        .search(
            "purchase.order",
            &json!([["origin", "=like", "planops:%"]]),
            &SearchOptions::default(),
        )
        .await
        .expect("RFQs");
    assert_eq!(rfqs.len(), 1);
    assert_eq!(w.rfq_state(rfqs[0]).await, "draft");
    assert_eq!(
        count(
            &w.admin,
            "mail.message",
            json!([["body", "ilike", "approval-requested"]])
        )
        .await,
        0
    );
    w.server.shutdown().await;
}

/// A buyer confirms the RFQ in Odoo by hand before anyone decides: the
/// request is withdrawn (note, no longer pending) and nothing is confirmed twice.
#[tokio::test]
async fn an_rfq_confirmed_by_hand_meanwhile_is_no_longer_gated() {
    let w = world("apc-hand", Edition::Community).await;
    w.apply(&policy(two_levels())).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    w.admin
        .call(Call::new("purchase.order", "button_confirm").ids(vec![rfq]))
        .await
        .expect("confirming by hand");
    w.wait_counts("the request withdrawn", |c| c["pending"] == 0)
        .await;
    assert_eq!(w.notes(rfq, &fp, "approval-withdrawn").await, 1);
    assert_eq!(w.notes(rfq, &fp, "approval-outcome").await, 0);
    let withdrawn = w.wait_event("Withdrawn").await;
    assert!(withdrawn.contains("state purchase"), "{withdrawn}");
    assert_eq!(w.confirmed(&fp).await, 1);
    assert_eq!(
        count(
            &w.admin,
            "mail.activity",
            json!([["note", "ilike", fp], ["res_model", "=", "purchase.order"]]),
        )
        .await,
        0
    );
    w.server.shutdown().await;
}

/// A level whose users do not exist in Odoo stalls the policy (kstatus
/// Failed) with a reason that names the level, before any purchase needs it.
#[tokio::test]
async fn a_level_naming_nobody_in_odoo_stalls_the_policy() {
    let w = world("apc-nobody", Edition::Community).await;
    w.apply(&policy(
        json!([{"name": "ghosts", "users": ["nobody.here"]}]),
    ))
    .await;
    let obj = wait_ready(
        w.cluster,
        &w.ns,
        "ApprovalPolicy",
        POLICY,
        "False",
        "NoApprovers",
    )
    .await;
    assert_eq!(
        condition(&obj, "Stalled"),
        Some(("True".into(), "NoApprovers".into()))
    );
    let message = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("ghosts") && message.contains("nobody.here"),
        "{message}"
    );
    w.server.shutdown().await;
}

/// A kind of decision no PlanOps action makes yet: the policy says it has
/// nothing to govern instead of looking idle and in effect, and it is stalled,
/// which kstatus reads as Failed and Argo CD's health check as Degraded.
#[tokio::test]
async fn a_policy_for_a_kind_no_action_makes_says_it_governs_nothing() {
    let w = world("apc-kind", Edition::Community).await;
    let mut forecast = policy(two_levels());
    forecast["spec"]["governs"] = json!("ForecastOverride");
    w.apply(&forecast).await;
    let obj = wait_ready(
        w.cluster,
        &w.ns,
        "ApprovalPolicy",
        POLICY,
        "False",
        "NotActive",
    )
    .await;
    for (kind, expected) in [("Synced", "False"), ("Stalled", "True")] {
        let (status, reason) = condition(&obj, kind).expect("the condition");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            (expected, "NotActive"),
            "{kind}: {obj}"
        );
    }
    assert_eq!(
        w.cluster
            .kstatus("planops.io/v1alpha1/ApprovalPolicy", &w.ns, POLICY)
            .await
            .status,
        "Failed",
        "kstatus reads a policy that governs nothing as failed"
    );
    assert!(
        obj.to_string()
            .contains("no PlanOps action makes ForecastOverride decisions"),
        "{obj}"
    );
    w.server.shutdown().await;
}

/// With a callback URL, a managed Odoo automation calls the policy's gateway
/// route when a request changes state: the decision is carried out long
/// before the (hour-long) poll interval, and the delivery shows in the
/// simulator's webhook log. Deleting the policy removes the automation.
async fn callback_picks_up_the_decision(edition: Edition) {
    let w = world("apc-cb", edition).await;
    let port = w.operator.as_ref().expect("operator").port;
    connect_odoo_with(
        w.cluster,
        &w.ns,
        &w.server,
        Some(&format!("http://127.0.0.1:{port}")),
    )
    .await;
    let mut p = policy(two_levels());
    p["spec"]["pollIntervalSeconds"] = json!(3600);
    w.apply(&p).await;
    w.apply(&rule()).await;
    let (rfq, fp) = w.gated_rfq().await;
    eventually("the callback automation in sync", || async {
        let obj = w.policy_obj().await?;
        let synced = obj["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Synced")?
            .clone();
        (synced["status"] == "True"
            && synced["message"]
                .as_str()
                .is_some_and(|m| m.contains("Odoo calls back")))
        .then_some(())
    })
    .await;
    assert_eq!(
        w.count_all(
            "base.automation",
            json!([["name", "ilike", format!("{}/{POLICY}", w.ns)]])
        )
        .await,
        1
    );
    let delivered_before = w.server.webhook_log().delivered;
    w.decide(&fp, "buyer.bob", true, "").await;
    w.wait_counts("the approval carried out", |c| c["approved"] == 1)
        .await;
    assert_eq!(w.confirmed(&fp).await, 1);
    let log = w.server.webhook_log();
    assert!(
        log.delivered > delivered_before
            && log.recent.iter().any(|d| d
                .url
                .contains(&format!("/hooks/approvals/{}/{POLICY}", w.ns))
                && d.status == Some(202)),
        "{log:?}"
    );
    assert_eq!(w.notes(rfq, &fp, "approval-outcome").await, 1);

    planops_api(w.cluster, &w.ns, "ApprovalPolicy")
        .delete(POLICY, &Default::default())
        .await
        .expect("deleting the policy");
    eventually("the policy gone", || async {
        w.policy_obj().await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        w.count_all(
            "base.automation",
            json!([["name", "ilike", format!("{}/{POLICY}", w.ns)]])
        )
        .await,
        0
    );
    w.server.shutdown().await;
}

#[tokio::test]
async fn approvals_app_decisions_arrive_by_odoo_callback() {
    callback_picks_up_the_decision(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_decisions_arrive_by_odoo_callback() {
    callback_picks_up_the_decision(Edition::Community).await;
}

/// `approvalPolicyRef` picks the policy even when another one matches too,
/// and the request explains the choice (ApprovalsApp `reason`).
#[tokio::test]
async fn approval_policy_ref_chooses_the_policy_and_the_request_explains_it() {
    let w = world("apc-ref", Edition::Enterprise).await;
    w.apply(&policy(two_levels())).await;
    let mut other = policy(json!([{"name": "leads", "users": ["buyer.chen"]}]));
    other["metadata"]["name"] = json!("lead-buys");
    other["spec"]["approvalCategory"] = json!("Lead purchases");
    w.apply(&other).await;
    let mut r = rule();
    r["spec"]["actions"][1]["proposePurchase"]["approvalPolicyRef"] = json!({"name": "lead-buys"});
    w.apply(&r).await;
    let lead = eventually("the request under lead-buys", || async {
        let obj = get(w.cluster, &w.ns, "ApprovalPolicy", "lead-buys").await?;
        (obj["status"]["counts"]["pending"] == 1).then_some(obj)
    })
    .await;
    assert_eq!(
        condition(&lead, "Ready"),
        Some(("True".into(), "Reconciled".into()))
    );
    let requests = w
        .admin
        .search_read(
            "approval.request",
            &json!([["reference", "ilike", "planops:"]]),
            &["reason", "category_id"],
            &SearchOptions::default(),
        )
        .await
        .expect("reading requests");
    assert_eq!(requests.len(), 1);
    let reason = requests[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("policy lead-buys governs this emergency purchase")
            && reason.contains("amount"),
        "{reason}"
    );
    assert_eq!(requests[0]["category_id"][1], json!("Lead purchases"));
    let big = w.wait_counts("big-buys' counts", |c| c.is_object()).await;
    assert_eq!(big["status"]["counts"]["pending"], 0);
    w.server.shutdown().await;
}

/// `execution: CronJob` runs the same rule run as the operator's scheduler: the
/// Job's command (`planops scan <ns>/<rule>`, as the chart's scan
/// ServiceAccount) puts its draft RFQ under the policy, once across runs, and
/// the operator's policy then carries the approval out.
#[tokio::test]
async fn a_cronjob_scan_puts_its_draft_rfq_under_approval_once() {
    let w = world("apc-cron", Edition::Community).await;
    w.apply(&policy(two_levels())).await;
    let mut cron_rule = rule();
    cron_rule["spec"]["execution"] = json!("CronJob");
    cron_rule["spec"]["triggers"]["schedule"]["cron"] = json!("0 3 * * *");
    w.apply(&cron_rule).await;
    eventually("the rule's CronJob", || async {
        let api: kube::Api<k8s_openapi::api::batch::v1::CronJob> =
            kube::Api::namespaced(w.cluster.client(), &w.ns);
        api.get_opt("planops-scan-stockout")
            .await
            .expect("reading the CronJob")
    })
    .await;

    let objects = chart_rbac(&w.ns, &["--show-only=templates/scan-serviceaccount.yaml"]).await;
    let dir = apply_rendered(w.cluster, &objects).await;
    let kubeconfig = service_account_kubeconfig(w.cluster, &w.ns, "planops-scan", &dir).await;
    let scan = || async {
        let out = planops_scan(&kubeconfig, &format!("{}/stockout", w.ns)).await;
        assert!(
            out.status.success(),
            "planops scan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON output")
    };

    let printed = scan().await;
    assert_eq!(printed["approvalError"], Value::Null, "{printed}");
    let approvals = printed["approvals"].as_array().expect("approvals");
    assert_eq!(approvals.len(), 1, "{printed}");
    assert_eq!(approvals[0]["policy"], POLICY);
    assert_eq!(approvals[0]["created"], true);
    let fp = approvals[0]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    let rfq = w
        .admin
        .search(
            "purchase.order",
            &json!([["origin", "=", fp]]),
            &SearchOptions::default(),
        )
        .await
        .expect("RFQs");
    assert_eq!(rfq.len(), 1);
    let rfq = rfq[0];
    assert_eq!(w.rfq_state(rfq).await, "draft");
    // alice and bob, the first level, each get a "To approve" activity.
    assert_eq!(w.requests(&fp).await, 2);
    assert_eq!(w.notes(rfq, &fp, "approval-requested").await, 1);

    // The next run finds the request and opens nothing more.
    let again = scan().await;
    assert_eq!(again["approvals"], json!([]), "{again}");
    assert_eq!(w.requests(&fp).await, 2);
    assert_eq!(w.notes(rfq, &fp, "approval-requested").await, 1);
    assert_eq!(
        count(&w.admin, "purchase.order", json!([["origin", "=", fp]])).await,
        1
    );

    // The operator's policy finds the request the Job opened and carries out
    // the decision taken in Odoo.
    w.wait_counts("the request the Job opened", |c| c["pending"] == 1)
        .await;
    w.decide(&fp, "buyer.bob", true, "").await;
    w.wait_counts("the approval carried out", |c| {
        c["approved"] == 1 && c["pending"] == 0
    })
    .await;
    assert_eq!(w.confirmed(&fp).await, 1);
    w.server.shutdown().await;
}
