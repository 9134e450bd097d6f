//! The approval gate over one rule run: every draft RFQ the run wrote (or found)
//! that an `EmergencyPurchase` policy governs is put under approval, once.
//!
//! Which policies exist is the caller's business (the operator lists them through
//! the API, `planops scan -f` reads them from its file): they come in through a
//! [`PolicySource`], asked only when the run has drafts, so the common run without
//! one costs no API call.

use std::collections::HashSet;

use futures::future::BoxFuture;
use odoo_client::{OdooClient, RecordExt, SearchOptions};
use planops_api::ApprovalPolicy;
use planops_api::rule::ExceptionRuleSpec;
use planops_engine::RuleRef;
use serde_json::json;

use super::odoo_io::{PurchaseFacts, domain_membership, read_purchases, user_by_id};
use super::{ApprovalError, Candidate, GateRequest, open, resolve_backend, resolve_levels, select};
use crate::actions::{Acted, WriteKind, WriteOutcome, fingerprints_in};

/// Where a run finds the `ApprovalPolicy` objects that may govern its drafts.
pub trait PolicySource: Sync {
    /// The usable `EmergencyPurchase` policies of the rule's namespace and
    /// connection: valid, not being deleted.
    fn governing<'a>(
        &'a self,
        rule: &'a RuleRef<'a>,
        spec: &'a ExceptionRuleSpec,
    ) -> BoxFuture<'a, Result<Vec<ApprovalPolicy>, String>>;
}

/// No policy governs anything: a run whose drafts need no approval.
pub struct NoPolicies;

impl PolicySource for NoPolicies {
    fn governing<'a>(
        &'a self,
        _: &'a RuleRef<'a>,
        _: &'a ExceptionRuleSpec,
    ) -> BoxFuture<'a, Result<Vec<ApprovalPolicy>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A draft RFQ put under approval (or found there already) by this run.
#[derive(Debug, Clone)]
pub struct RequestedApproval {
    /// The policy that governs it.
    pub policy: ApprovalPolicy,
    pub fingerprint: String,
    pub rfq_id: i64,
    /// The RFQ's name, e.g. `P00042`.
    pub rfq_name: String,
    /// Why this policy governs it.
    pub explanation: String,
    /// Whether this run opened the request (false: an earlier attempt did).
    pub created: bool,
}

/// Why the gate could not put every draft under approval. The drafts stay drafts;
/// the next run tries again.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The policies could not be listed.
    #[error("listing ApprovalPolicies: {0}")]
    Policies(String),
    /// Odoo refused or failed a step.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// What the gate did in one run.
#[derive(Debug, Default)]
pub struct GateReport {
    /// Drafts under approval after this run, in the order of the run's writes.
    pub requested: Vec<RequestedApproval>,
    /// The first failure, when some draft could not be put under approval.
    pub error: Option<GateError>,
}

/// Puts the run's draft RFQs under approval where a policy governs them.
pub async fn gate_drafts(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    spec: &ExceptionRuleSpec,
    acted: &Acted,
    policies: &dyn PolicySource,
) -> GateReport {
    let mut report = GateReport::default();
    if let Err(error) = gate(client, rule, spec, acted, policies, &mut report).await {
        report.error.get_or_insert(error);
    }
    report
}

async fn gate(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    spec: &ExceptionRuleSpec,
    acted: &Acted,
    policies: &dyn PolicySource,
    report: &mut GateReport,
) -> Result<(), GateError> {
    // (action index, fingerprint, RFQ) of every draft this run wrote or found.
    let drafts: Vec<(usize, &str, i64)> = acted
        .report
        .results
        .iter()
        .filter(|(w, _)| w.kind == WriteKind::PurchaseDraft)
        .filter_map(|(w, o)| match o {
            WriteOutcome::Created(id) | WriteOutcome::Existing(id) => {
                Some((w.action, w.fingerprint.as_str(), *id))
            }
            _ => None,
        })
        .collect();
    if drafts.is_empty() {
        return Ok(());
    }
    let policies = policies
        .governing(rule, spec)
        .await
        .map_err(GateError::Policies)?;
    if policies.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = drafts.iter().map(|(_, _, id)| *id).collect();
    // One read finds the RFQs already under approval: most runs find only those.
    let requested: HashSet<String> = client
        .search_read(
            "mail.message",
            &json!([
                ["model", "=", "purchase.order"],
                ["res_id", "in", ids],
                ["body", "ilike", "approval-requested"]
            ]),
            &["body"],
            &SearchOptions::default(),
        )
        .await
        .map_err(|error| ApprovalError::Odoo {
            what: "reading earlier approval requests",
            error,
        })?
        .iter()
        .filter_map(|r| r.str_field("body").ok().flatten().map(str::to_string))
        .flat_map(|body| fingerprints_in(&body))
        .collect();
    let todo: Vec<(usize, &str, i64)> = drafts
        .into_iter()
        .filter(|(_, fp, _)| !requested.contains(*fp))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let facts = read_purchases(
        client,
        &todo.iter().map(|(_, _, id)| *id).collect::<Vec<_>>(),
    )
    .await?;
    for (action, fingerprint, rfq) in todo {
        let Some(facts) = facts.get(&rfq) else {
            continue;
        };
        if facts.state != "draft" {
            continue;
        }
        let wanted = spec
            .actions
            .get(action)
            .and_then(|a| a.propose_purchase.as_ref())
            .and_then(|p| p.approval_policy_ref.as_ref());
        let candidates: Vec<&ApprovalPolicy> = policies
            .iter()
            .filter(|p| wanted.is_none_or(|w| p.metadata.name.as_deref() == Some(w.name.as_str())))
            .collect();
        if let (Some(w), true) = (wanted, candidates.is_empty()) {
            tracing::warn!(namespace = %rule.namespace, rule = %rule.rule, policy = %w.name, fingerprint, "approvalPolicyRef names no usable EmergencyPurchase policy on this connection; the RFQ stays a draft without approval");
            continue;
        }
        let narrative = acted
            .outcome
            .exceptions
            .iter()
            .find(|e| e.fingerprint == fingerprint)
            .map(|e| {
                if e.narrative.is_empty() {
                    e.summary.clone()
                } else {
                    e.narrative.clone()
                }
            })
            .unwrap_or_else(|| facts.notes.clone());
        match open_one(client, rule, &candidates, facts, fingerprint, &narrative).await {
            Ok(Some(requested)) => report.requested.push(requested),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(namespace = %rule.namespace, rule = %rule.rule, fingerprint, rfq, error = %error, "could not put a draft RFQ under approval");
                report.error.get_or_insert(error);
            }
        }
    }
    Ok(())
}

async fn open_one(
    client: &OdooClient,
    rule: &RuleRef<'_>,
    policies: &[&ApprovalPolicy],
    facts: &PurchaseFacts,
    fingerprint: &str,
    narrative: &str,
) -> Result<Option<RequestedApproval>, GateError> {
    let names: Vec<String> = policies
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut candidates = Vec::with_capacity(policies.len());
    for (p, name) in policies.iter().zip(&names) {
        let membership = domain_membership(client, name, &p.spec, &facts.request).await?;
        candidates.push(Candidate {
            name,
            spec: &p.spec,
            membership,
        });
    }
    let Some(selection) = select(&facts.request, &candidates) else {
        return Ok(None);
    };
    let Some(policy) = policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(selection.policy.as_str()))
    else {
        return Ok(None);
    };
    let backend = resolve_backend(policy.spec.backend, client.info())?;
    let levels = resolve_levels(client, &policy.spec.levels).await?;
    let requester = match facts.owner_uid {
        Some(uid) => user_by_id(client, uid).await?,
        None => None,
    };
    let gate = GateRequest {
        fingerprint,
        namespace: rule.namespace,
        policy: &selection.policy,
        spec: &policy.spec,
        rfq_id: facts.rfq_id,
        request: &facts.request,
        narrative,
        explanation: &selection.explanation,
        requester: requester.as_ref(),
        rule: Some(rule.rule),
    };
    let pending = open(client, backend, &gate, &levels).await?;
    tracing::info!(
        fingerprint,
        namespace = %rule.namespace,
        rule = %rule.rule,
        policy = %selection.policy,
        rfq = facts.rfq_id,
        created = pending.created,
        explanation = %selection.explanation,
        "emergency purchase put under approval"
    );
    Ok(Some(RequestedApproval {
        policy: (*policy).clone(),
        fingerprint: fingerprint.to_string(),
        rfq_id: facts.rfq_id,
        rfq_name: facts.name.clone(),
        explanation: selection.explanation.clone(),
        created: pending.created,
    }))
}
