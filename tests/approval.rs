//! The approval gate against the Odoo simulator over HTTP, for both backends
//! (Enterprise `approval.request`, Community "To approve" activities): an
//! emergency purchase above the threshold opens one request and leaves the RFQ
//! in draft; the approver's decision, taken in Odoo as that user, confirms the
//! RFQ exactly once or cancels it with the reason; the requester's own approval
//! is refused and recorded; retries and lost replies create nothing twice; an
//! unanswered level escalates once.

mod support;

use std::net::SocketAddr;

use jiff::SignedDuration;
use jiff::civil::{Date, date};
use planops::api::approval::{
    ApprovalBackend, ApprovalLevel, ApprovalMatch, ApprovalPolicySpec, GovernedAction,
};
use planops::api::common::LocalObjectRef;
use planops::approval::odoo_io::{self, FinalDecision, domain_membership, user_by_login};
use planops::approval::{
    Approver, Backend, Candidate, GateRequest, GovernedRequest, OutcomeReport, Pending,
    PendingState, ResolvedLevel, Step, carry_out, escalate, evaluate, open, poll, record_refusals,
    resolve_backend, resolve_levels, select,
};
use planops::odoo::{Call, OdooClient, RecordExt, SearchOptions, Secret};
use planops::sim::{DatasetParams, Edition, FaultConfig, OdooVersion, SimConfig, SimServer};
use serde_json::{Map, Value, json};

const TODAY: Date = date(2025, 3, 1);

async fn start(edition: Edition) -> SimServer {
    start_on(edition, OdooVersion::V17).await
}

async fn start_on(edition: Edition, version: OdooVersion) -> SimServer {
    let cfg = SimConfig {
        version,
        edition,
        dataset: DatasetParams {
            seed: 7,
            products: 6,
            warehouses: 1,
            history_days: 30,
            ..DatasetParams::default()
        },
        today: TODAY,
        ..SimConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SimServer::start(cfg, addr).await.unwrap()
}

async fn connect_as(server: &SimServer, login: &str, key: String) -> OdooClient {
    support::odoo::connect_to(server, server.db.name(), login, Secret::new(key)).await
}

async fn admin(server: &SimServer) -> OdooClient {
    connect_as(server, "admin", server.db.admin_api_key()).await
}

async fn user(server: &SimServer, login: &str) -> OdooClient {
    let key = server.db.generate_api_key(login).unwrap();
    connect_as(server, login, key).await
}

fn policy(backend: ApprovalBackend) -> ApprovalPolicySpec {
    ApprovalPolicySpec {
        connection_ref: LocalObjectRef {
            name: "odoo".into(),
        },
        governs: GovernedAction::EmergencyPurchase,
        match_: Some(ApprovalMatch {
            min_amount: Some(10_000.0),
            ..ApprovalMatch::default()
        }),
        backend,
        approval_category: Some("PlanOps purchases".into()),
        levels: vec![
            ApprovalLevel {
                name: "buyers".into(),
                // alice raised the purchase: segregation of duties keeps her out.
                users: vec!["buyer.alice".into(), "buyer.bob".into()],
                groups: vec![],
                min_approvals: Some(1),
                sla_hours: Some(4.0),
            },
            ApprovalLevel {
                name: "planning lead".into(),
                users: vec!["buyer.chen".into()],
                groups: vec![],
                min_approvals: Some(1),
                sla_hours: Some(8.0),
            },
        ],
        segregation_of_duties: None,
        on_approval: None,
        on_rejection: None,
        poll_interval_seconds: None,
        suspend: None,
        deletion_policy: None,
    }
}

/// A draft RFQ worth 12 400 (10 × 1 240) from the first vendor.
async fn draft_rfq(client: &OdooClient) -> (i64, i64, i64) {
    let vendor = client
        .search(
            "res.partner",
            &json!([["supplier_rank", ">", 0]]),
            &SearchOptions::limit(1),
        )
        .await
        .unwrap()[0];
    let product = client
        .search("product.product", &json!([]), &SearchOptions::limit(1))
        .await
        .unwrap()[0];
    let order = client
        .create("purchase.order", vec![obj(json!({"partner_id": vendor}))])
        .await
        .unwrap()[0];
    client
        .create(
            "purchase.order.line",
            vec![obj(json!({"order_id": order, "product_id": product, "product_qty": 10.0,
                             "price_unit": 1240.0, "name": "emergency", "date_planned": "2025-03-05 12:00:00"}))],
        )
        .await
        .unwrap();
    (order, vendor, product)
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

struct World {
    server: SimServer,
    admin: OdooClient,
    spec: ApprovalPolicySpec,
    backend: Backend,
    levels: Vec<ResolvedLevel>,
    requester: Approver,
    directory: Vec<Approver>,
    request: GovernedRequest,
    rfq: i64,
    fingerprint: String,
    explanation: String,
}

impl World {
    fn gate(&self) -> GateRequest<'_> {
        GateRequest {
            fingerprint: &self.fingerprint,
            namespace: "plan",
            policy: "big-buys",
            spec: &self.spec,
            rfq_id: self.rfq,
            request: &self.request,
            narrative: "Projected stockout of FURN_0001 in 3 days: on hand 4, demand 2.1/day, lead time 9 days; buy 10.",
            explanation: &self.explanation,
            requester: Some(&self.requester),
            rule: Some("stockouts"),
        }
    }

    fn state(&self, pending: &Pending, level: usize) -> PendingState {
        PendingState {
            opened_at: pending.opened_at,
            level,
            requester_uid: Some(self.requester.uid),
            segregation_of_duties: true,
        }
    }

    async fn count(&self, model: &str, domain: Value) -> u64 {
        let mut context = Map::new();
        context.insert("active_test".into(), json!(false));
        self.admin
            .with_context(context)
            .search_count(model, &domain)
            .await
            .unwrap()
    }

    async fn rfq_state(&self) -> String {
        self.admin
            .read("purchase.order", &[self.rfq], &["state"])
            .await
            .unwrap()[0]
            .str_field("state")
            .unwrap()
            .unwrap()
            .to_string()
    }

    async fn notes(&self, tag: &str) -> u64 {
        self.count(
            "mail.message",
            json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", self.rfq],
                ["body", "ilike", format!("{} {tag}", self.fingerprint)]
            ]),
        )
        .await
    }

    /// Requests (ApprovalsApp) or approval activities (Activity) for this fingerprint.
    async fn requests(&self) -> u64 {
        match self.backend {
            Backend::ApprovalsApp => {
                self.count(
                    "approval.request",
                    json!([["reference", "ilike", self.fingerprint]]),
                )
                .await
            }
            Backend::Activity => {
                self.count(
                    "mail.activity",
                    json!([["note", "ilike", self.fingerprint]]),
                )
                .await
            }
        }
    }

    async fn open(&self) -> Pending {
        open(&self.admin, self.backend, &self.gate(), &self.levels)
            .await
            .unwrap()
    }

    /// `login` decides in Odoo, with their own API key: `action_approve` /
    /// `action_refuse` on the request, or marking their activity done with
    /// feedback.
    async fn decide(&self, pending: &Pending, login: &str, approve: bool, reason: &str) {
        let client = user(&self.server, login).await;
        match self.backend {
            Backend::ApprovalsApp => {
                let method = if approve {
                    "action_approve"
                } else {
                    "action_refuse"
                };
                let request = pending.request_id.unwrap();
                client
                    .call(Call::new("approval.request", method).ids(vec![request]))
                    .await
                    .unwrap();
                if !approve {
                    // The refusal reason goes in the request's chatter (the UI posts comments).
                    client
                        .call(
                            Call::new("approval.request", "message_post")
                                .ids(vec![request])
                                .kwarg("body", reason)
                                .kwarg("message_type", "comment"),
                        )
                        .await
                        .unwrap();
                }
            }
            Backend::Activity => {
                let uid = client.uid();
                let mine = self
                    .admin
                    .search(
                        "mail.activity",
                        &json!([["note", "ilike", self.fingerprint], ["user_id", "=", uid]]),
                        &SearchOptions::default(),
                    )
                    .await
                    .unwrap();
                // The requester has no activity of her own; she marks bob's done.
                let ids = if mine.is_empty() {
                    self.admin
                        .search(
                            "mail.activity",
                            &json!([["note", "ilike", self.fingerprint]]),
                            &SearchOptions::limit(1),
                        )
                        .await
                        .unwrap()
                } else {
                    mine
                };
                let feedback = if approve {
                    "approved".to_string()
                } else {
                    format!("rejected: {reason}")
                };
                client
                    .call(
                        Call::new("mail.activity", "action_feedback")
                            .ids(ids)
                            .kwarg("feedback", feedback),
                    )
                    .await
                    .unwrap();
            }
        }
    }

    async fn step(
        &self,
        pending: &Pending,
        hours_later: i64,
    ) -> (Step, Vec<planops::approval::Refused>) {
        let observed = poll(&self.admin, pending, &self.directory).await.unwrap();
        let level = observed.level(&self.levels, Some(self.requester.uid));
        let e = evaluate(
            &self.levels,
            &self.state(pending, level),
            &observed.decisions,
            pending.opened_at + SignedDuration::from_hours(hours_later),
        );
        (e.step, e.refused)
    }
}

async fn world(edition: Edition) -> World {
    world_on(edition, OdooVersion::V17).await
}

async fn world_on(edition: Edition, version: OdooVersion) -> World {
    let server = start_on(edition, version).await;
    let admin = admin(&server).await;
    let spec = policy(ApprovalBackend::Auto);
    let backend = resolve_backend(spec.backend, admin.info()).unwrap();
    let (rfq, vendor, product) = draft_rfq(&admin).await;
    let request = GovernedRequest {
        kind: GovernedAction::EmergencyPurchase,
        amount: 12_400.0,
        currency: "EUR".into(),
        product_id: Some(product),
        partner_id: Some(vendor),
    };
    let small = ApprovalPolicySpec {
        match_: Some(ApprovalMatch {
            min_amount: Some(1_000.0),
            ..ApprovalMatch::default()
        }),
        ..spec.clone()
    };
    let selection = select(
        &request,
        &[
            Candidate {
                name: "small-buys",
                spec: &small,
                membership: Default::default(),
            },
            Candidate {
                name: "big-buys",
                spec: &spec,
                membership: Default::default(),
            },
        ],
    )
    .unwrap();
    assert_eq!(selection.policy, "big-buys");
    let levels = resolve_levels(&admin, &spec.levels).await.unwrap();
    let requester = user_by_login(&admin, "buyer.alice").await.unwrap().unwrap();
    let mut directory: Vec<Approver> = levels.iter().flat_map(|l| l.approvers.clone()).collect();
    directory.push(requester.clone());
    World {
        server,
        admin,
        spec,
        backend,
        levels,
        requester,
        directory,
        request,
        rfq,
        fingerprint: format!("planops:{:032x}", 0x6a_u128 + rfq as u128),
        explanation: selection.explanation,
    }
}

fn backend_of(edition: Edition) -> Backend {
    match edition {
        Edition::Enterprise => Backend::ApprovalsApp,
        Edition::Community => Backend::Activity,
    }
}

async fn approval_confirms_once(edition: Edition) {
    let w = world(edition).await;
    assert_eq!(w.backend, backend_of(edition));
    let pending = w.open().await;
    assert!(pending.created);
    // Retries (the controller's next poll, a restart) open nothing new.
    let again = w.open().await;
    assert!(!again.created);
    assert_eq!(again.request_id, pending.request_id);
    assert_eq!(again.opened_at, pending.opened_at);
    // One request, or one activity: bob's (alice raised the purchase).
    assert_eq!(w.requests().await, 1);
    assert_eq!(w.notes("approval-requested").await, 1);
    assert_eq!(w.rfq_state().await, "draft");
    assert!(matches!(
        w.step(&pending, 1).await.0,
        Step::Wait { level: 0, .. }
    ));

    w.decide(&pending, "buyer.bob", true, "").await;
    let (step, refused) = w.step(&pending, 1).await;
    assert!(refused.is_empty());
    let Step::Approved { level, by } = step else {
        panic!("expected approval, got {step:?}")
    };
    assert_eq!(by, vec!["buyer.bob".to_string()]);
    let decision = FinalDecision::Approved {
        by,
        level: w.levels[level].name.clone(),
    };
    let first = carry_out(&w.admin, &pending, &w.gate(), &decision)
        .await
        .unwrap();
    assert_eq!(first, OutcomeReport::Confirmed);
    let second = carry_out(&w.admin, &pending, &w.gate(), &decision)
        .await
        .unwrap();
    assert_eq!(
        second,
        OutcomeReport::AlreadyDone {
            state: "purchase".into()
        }
    );
    assert_eq!(w.rfq_state().await, "purchase");
    assert_eq!(w.notes("approval-outcome").await, 1);
    assert_eq!(
        w.count(
            "purchase.order",
            json!([["id", "=", w.rfq], ["state", "=", "purchase"]])
        )
        .await,
        1
    );
    if w.backend == Backend::Activity {
        // Nobody is left with a to-do about a decided request.
        assert_eq!(
            w.admin
                .search_count("mail.activity", &json!([["note", "ilike", w.fingerprint]]))
                .await
                .unwrap(),
            0
        );
    }
}

#[tokio::test]
async fn approvals_app_approval_confirms_the_rfq_exactly_once() {
    approval_confirms_once(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_approval_confirms_the_rfq_exactly_once() {
    approval_confirms_once(Edition::Community).await;
}

async fn rejection_cancels(edition: Edition) {
    let w = world(edition).await;
    let pending = w.open().await;
    w.decide(&pending, "buyer.bob", false, "price too high")
        .await;
    let (step, _) = w.step(&pending, 2).await;
    let Step::Rejected { by, reason } = step else {
        panic!("expected rejection, got {step:?}")
    };
    assert_eq!(by, "buyer.bob");
    assert_eq!(reason, "price too high");
    let decision = FinalDecision::Rejected {
        by,
        reason: reason.clone(),
    };
    let first = carry_out(&w.admin, &pending, &w.gate(), &decision)
        .await
        .unwrap();
    assert_eq!(first, OutcomeReport::Cancelled { reason });
    let second = carry_out(&w.admin, &pending, &w.gate(), &decision)
        .await
        .unwrap();
    assert_eq!(
        second,
        OutcomeReport::AlreadyDone {
            state: "cancel".into()
        }
    );
    assert_eq!(w.rfq_state().await, "cancel");
    assert_eq!(w.notes("approval-outcome").await, 1);
}

#[tokio::test]
async fn approvals_app_rejection_cancels_the_rfq() {
    rejection_cancels(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_rejection_cancels_the_rfq() {
    rejection_cancels(Edition::Community).await;
}

async fn self_approval_refused(edition: Edition) {
    let w = world(edition).await;
    let pending = w.open().await;
    if w.backend == Backend::ApprovalsApp {
        // PlanOps never lists the requester; someone adds her by hand in Odoo.
        w.admin
            .create(
                "approval.approver",
                vec![obj(json!({"request_id": pending.request_id, "user_id": w.requester.uid, "status": "pending"}))],
            )
            .await
            .unwrap();
    }
    w.decide(&pending, "buyer.alice", true, "").await;
    let (step, refused) = w.step(&pending, 1).await;
    assert!(matches!(step, Step::Wait { .. }), "{step:?}");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .reason
            .starts_with("segregation of duties: buyer.alice"),
        "{}",
        refused[0].reason
    );
    let posted = record_refusals(&w.admin, &pending, &w.gate(), &refused)
        .await
        .unwrap();
    assert_eq!(posted, 1);
    let (_, refused_again) = w.step(&pending, 1).await;
    let posted = record_refusals(&w.admin, &pending, &w.gate(), &refused_again)
        .await
        .unwrap();
    assert_eq!(posted, 0, "the refusal is recorded once");
    assert_eq!(
        w.notes(&format!("approval-decision-refused-{}", w.requester.uid))
            .await,
        1
    );
    assert_eq!(w.rfq_state().await, "draft");
    if w.backend == Backend::ApprovalsApp {
        // Odoo's own status does not claim the refused approval.
        let status = w
            .admin
            .read(
                "approval.request",
                &[pending.request_id.unwrap()],
                &["request_status"],
            )
            .await
            .unwrap();
        assert_eq!(
            status[0].str_field("request_status").unwrap(),
            Some("pending")
        );
    }
}

#[tokio::test]
async fn approvals_app_self_approval_is_refused_and_recorded() {
    self_approval_refused(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_self_approval_is_refused_and_recorded() {
    self_approval_refused(Edition::Community).await;
}

async fn lost_replies(edition: Edition) {
    let w = world(edition).await;
    // Half the ORM calls commit and lose their reply; the controller retries
    // the whole step until it gets through.
    w.server
        .set_faults(FaultConfig {
            drop_reply_rate: 0.5,
            seed: Some(11),
            ..FaultConfig::default()
        })
        .unwrap();
    let mut pending = None;
    for _ in 0..40 {
        if let Ok(p) = open(&w.admin, w.backend, &w.gate(), &w.levels).await {
            pending = Some(p);
            break;
        }
    }
    w.server.set_faults(FaultConfig::default()).unwrap();
    assert!(w.server.stats().faults_injected.dropped_replies > 0);
    let pending = pending.expect("open never got through");
    assert_eq!(w.requests().await, 1);
    assert_eq!(w.notes("approval-requested").await, 1);
    if w.backend == Backend::ApprovalsApp {
        assert_eq!(
            w.count(
                "approval.approver",
                json!([["request_id", "=", pending.request_id]])
            )
            .await,
            1
        );
    }
    w.decide(&pending, "buyer.bob", true, "").await;
    let (step, _) = w.step(&pending, 1).await;
    let Step::Approved { by, .. } = step else {
        panic!("{step:?}")
    };
    let decision = FinalDecision::Approved {
        by,
        level: "buyers".into(),
    };
    w.server
        .set_faults(FaultConfig {
            drop_reply_rate: 0.5,
            seed: Some(12),
            ..FaultConfig::default()
        })
        .unwrap();
    let mut done = false;
    for _ in 0..40 {
        if carry_out(&w.admin, &pending, &w.gate(), &decision)
            .await
            .is_ok()
        {
            done = true;
            break;
        }
    }
    w.server.set_faults(FaultConfig::default()).unwrap();
    assert!(done);
    assert_eq!(w.rfq_state().await, "purchase");
    assert_eq!(w.notes("approval-outcome").await, 1);
    assert!(matches!(
        carry_out(&w.admin, &pending, &w.gate(), &decision)
            .await
            .unwrap(),
        OutcomeReport::AlreadyDone { .. }
    ));
}

#[tokio::test]
async fn approvals_app_lost_replies_create_one_request() {
    lost_replies(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_lost_replies_create_one_request() {
    lost_replies(Edition::Community).await;
}

async fn escalation(edition: Edition) {
    let w = world(edition).await;
    let pending = w.open().await;
    let (step, _) = w.step(&pending, 5).await;
    let Step::Escalate { to, note } = step else {
        panic!("{step:?}")
    };
    assert_eq!(to, 1);
    escalate(&w.admin, &pending, &w.gate(), &w.levels, to, &note)
        .await
        .unwrap();
    escalate(&w.admin, &pending, &w.gate(), &w.levels, to, &note)
        .await
        .unwrap();
    assert_eq!(w.notes("approval-escalated-2").await, 1);
    if let Some(request) = pending.request_id {
        // The escalated approver is submitted through `action_confirm`,
        // which is what gives him his to-do in the Approvals app.
        let chen = w.levels[1].approvers[0].uid;
        let todos = w
            .count(
                "mail.activity",
                json!([
                    ["res_model", "=", "approval.request"],
                    ["res_id", "=", request],
                    ["user_id", "=", chen]
                ]),
            )
            .await;
        assert_eq!(todos, 1);
        let lines = w
            .count(
                "approval.approver",
                json!([["request_id", "=", request], ["status", "=", "pending"]]),
            )
            .await;
        assert_eq!(lines, 2, "bob and chen wait for a decision");
        let status = w
            .admin
            .read("approval.request", &[request], &["request_status"])
            .await
            .unwrap();
        assert_eq!(
            status[0].str_field("request_status").unwrap(),
            Some("pending")
        );
    }
    let observed = poll(&w.admin, &pending, &w.directory).await.unwrap();
    assert_eq!(observed.level(&w.levels, Some(w.requester.uid)), 1);
    assert!(matches!(
        w.step(&pending, 5).await.0,
        Step::Wait { level: 1, .. }
    ));
    assert!(matches!(
        w.step(&pending, 13).await.0,
        Step::LastLevelBreached { level: 1, .. }
    ));
    w.decide(&pending, "buyer.chen", true, "").await;
    assert!(matches!(
        w.step(&pending, 13).await.0,
        Step::Approved { level: 1, .. }
    ));
}

#[tokio::test]
async fn approvals_app_escalation_adds_the_next_level_once() {
    escalation(Edition::Enterprise).await;
}

#[tokio::test]
async fn activity_escalation_adds_the_next_level_once() {
    escalation(Edition::Community).await;
}

#[tokio::test]
async fn policy_domains_are_answered_by_odoo() {
    let server = start(Edition::Community).await;
    let admin = admin(&server).await;
    let (_, vendor, product) = draft_rfq(&admin).await;
    let mut spec = policy(ApprovalBackend::ApprovalsApp);
    // Community has no Approvals app: asking for it is an error, not a fallback.
    assert!(resolve_backend(spec.backend, admin.info()).is_err());
    spec.match_ = Some(ApprovalMatch {
        min_amount: Some(1_000.0),
        product_domain: Some(format!("[('id', '=', {product})]")),
        partner_domain: Some(format!("[('id', '!=', {vendor})]")),
        ..ApprovalMatch::default()
    });
    let request = GovernedRequest {
        kind: GovernedAction::EmergencyPurchase,
        amount: 12_400.0,
        currency: "EUR".into(),
        product_id: Some(product),
        partner_id: Some(vendor),
    };
    let m = domain_membership(&admin, "scoped", &spec, &request)
        .await
        .unwrap();
    assert_eq!((m.product, m.partner), (Some(true), Some(false)));
    assert!(
        select(
            &request,
            &[Candidate {
                name: "scoped",
                spec: &spec,
                membership: m
            }]
        )
        .is_none()
    );
    spec.match_.as_mut().unwrap().partner_domain = Some("[('supplier_rank', '>', 0)]".into());
    let m = domain_membership(&admin, "scoped", &spec, &request)
        .await
        .unwrap();
    let s = select(
        &request,
        &[Candidate {
            name: "scoped",
            spec: &spec,
            membership: m,
        }],
    )
    .unwrap();
    assert!(
        s.explanation
            .contains(&format!("partner {vendor} in [('supplier_rank', '>', 0)]")),
        "{}",
        s.explanation
    );
    spec.match_.as_mut().unwrap().product_domain = Some("[('id', '=', ".into());
    assert!(
        domain_membership(&admin, "scoped", &spec, &request)
            .await
            .is_err()
    );
    let _ = odoo_io::outcome_action(&spec, true);
}

/// A crash after `button_confirm` and before the audit note: the next call
/// writes the note and confirms nothing again; a restarted controller's
/// `open` finds the same request and writes nothing.
#[tokio::test]
async fn restart_between_confirm_and_note_neither_duplicates_nor_loses_the_outcome() {
    let w = world(Edition::Enterprise).await;
    let pending = w.open().await;
    w.decide(&pending, "buyer.bob", true, "").await;
    w.admin
        .call(Call::new("purchase.order", "button_confirm").ids(vec![w.rfq]))
        .await
        .unwrap();
    let calls_before = w.server.db.call_count();
    let reopened = w.open().await;
    assert!(!reopened.created);
    assert_eq!(reopened.request_id, pending.request_id);
    assert!(w.server.db.call_count() > calls_before);
    assert_eq!(w.requests().await, 1);
    let (step, _) = w.step(&reopened, 1).await;
    let Step::Approved { by, .. } = step else {
        panic!("{step:?}")
    };
    let decision = FinalDecision::Approved {
        by,
        level: "buyers".into(),
    };
    let report = carry_out(&w.admin, &reopened, &w.gate(), &decision)
        .await
        .unwrap();
    assert_eq!(
        report,
        OutcomeReport::AlreadyDone {
            state: "purchase".into()
        }
    );
    assert_eq!(w.notes("approval-outcome").await, 1);
    let report = carry_out(&w.admin, &reopened, &w.gate(), &decision)
        .await
        .unwrap();
    assert_eq!(
        report,
        OutcomeReport::AlreadyDone {
            state: "purchase".into()
        }
    );
    assert_eq!(w.notes("approval-outcome").await, 1);
}

/// Someone puts the confirmed RFQ back to draft in Odoo: the approval was
/// already carried out, so PlanOps does not confirm it a second time.
#[tokio::test]
async fn an_rfq_reset_to_draft_after_the_outcome_is_not_confirmed_again() {
    let w = world(Edition::Community).await;
    let pending = w.open().await;
    w.decide(&pending, "buyer.bob", true, "").await;
    let (step, _) = w.step(&pending, 1).await;
    let Step::Approved { by, .. } = step else {
        panic!("{step:?}")
    };
    let decision = FinalDecision::Approved {
        by,
        level: "buyers".into(),
    };
    assert_eq!(
        carry_out(&w.admin, &pending, &w.gate(), &decision)
            .await
            .unwrap(),
        OutcomeReport::Confirmed
    );
    w.admin
        .write("purchase.order", &[w.rfq], obj(json!({"state": "draft"})))
        .await
        .unwrap();
    assert_eq!(
        carry_out(&w.admin, &pending, &w.gate(), &decision)
            .await
            .unwrap(),
        OutcomeReport::AlreadyDone {
            state: "draft".into()
        }
    );
    assert_eq!(w.rfq_state().await, "draft");
}

/// The decision is read from the "done" message Odoo renders from its
/// template on each version (16/17: unlabelled feedback before the note;
/// 18/19: a "Feedback:" block after it), approval and refusal with reason.
#[tokio::test]
async fn activity_decisions_are_read_from_odoos_done_message_on_every_version() {
    for version in [
        OdooVersion::V16,
        OdooVersion::V17,
        OdooVersion::V18,
        OdooVersion::V19,
    ] {
        let w = world_on(Edition::Community, version).await;
        let pending = w.open().await;
        w.decide(&pending, "buyer.bob", false, "price & lead time")
            .await;
        let (step, refused) = w.step(&pending, 1).await;
        assert!(refused.is_empty(), "{version:?}: {refused:?}");
        let Step::Rejected { by, reason } = step else {
            panic!("{version:?}: expected a rejection, got {step:?}")
        };
        assert_eq!(by, "buyer.bob");
        assert_eq!(reason, "price & lead time", "{version:?}");

        let w = world_on(Edition::Community, version).await;
        let pending = w.open().await;
        w.decide(&pending, "buyer.bob", true, "").await;
        let (step, _) = w.step(&pending, 1).await;
        assert!(
            matches!(step, Step::Approved { level: 0, .. }),
            "{version:?}: {step:?}"
        );
    }
}

/// Sets the company's purchase approval to two steps above `amount`.
async fn two_step(w: &World, amount: f64) {
    let company = w
        .admin
        .search("res.company", &json!([]), &SearchOptions::limit(1))
        .await
        .unwrap()[0];
    w.admin
        .write(
            "res.company",
            &[company],
            obj(json!({"po_double_validation": "two_step", "po_double_validation_amount": amount})),
        )
        .await
        .unwrap();
}

fn approved_by_bob() -> FinalDecision {
    FinalDecision::Approved {
        by: vec!["buyer.bob".into()],
        level: "buyers".into(),
    }
}

/// PlanOps' user is no purchase manager and the RFQ is above the two-step
/// amount: `button_confirm` leaves it in "to approve", which PlanOps reports
/// as waiting for Odoo's second approval, not as confirmed.
#[tokio::test]
async fn two_step_validation_is_reported_as_waiting_for_odoo() {
    let w = world(Edition::Community).await;
    two_step(&w, 5_000.0).await;
    let pending = w.open().await;
    let planops = user(&w.server, "buyer.chen").await;
    let report = carry_out(&planops, &pending, &w.gate(), &approved_by_bob())
        .await
        .unwrap();
    assert_eq!(report, OutcomeReport::AwaitingSecondApproval);
    assert_eq!(w.rfq_state().await, "to approve");
    let waiting = w
        .count(
            "mail.message",
            json!([
                ["model", "=", "purchase.order"],
                ["res_id", "=", w.rfq],
                ["body", "ilike", "waiting in Odoo for a purchase manager"],
                ["body", "ilike", "approval-outcome"]
            ]),
        )
        .await;
    assert_eq!(waiting, 1, "the outcome note says so");
    // Done once: the next call finds the note and writes nothing.
    let again = carry_out(&planops, &pending, &w.gate(), &approved_by_bob())
        .await
        .unwrap();
    assert_eq!(
        again,
        OutcomeReport::AlreadyDone {
            state: "to approve".into()
        }
    );
}

/// An RFQ already waiting in "to approve" (a buyer confirmed it) is approved
/// with `button_approve` when PlanOps' user may, as the administrator may.
#[tokio::test]
async fn an_rfq_waiting_for_approval_is_approved_where_the_user_may() {
    let w = world(Edition::Community).await;
    two_step(&w, 5_000.0).await;
    let pending = w.open().await;
    let buyer = user(&w.server, "buyer.chen").await;
    buyer
        .call(Call::new("purchase.order", "button_confirm").ids(vec![w.rfq]))
        .await
        .unwrap();
    assert_eq!(w.rfq_state().await, "to approve");
    let report = carry_out(&w.admin, &pending, &w.gate(), &approved_by_bob())
        .await
        .unwrap();
    assert_eq!(report, OutcomeReport::Confirmed);
    assert_eq!(w.rfq_state().await, "purchase");
}
