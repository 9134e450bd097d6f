//! Approval gate for risky planning actions (issue 6, library half).
//!
//! A governed action (an emergency purchase's draft RFQ, a forecast override,
//! ...) waits for the accountable people in Odoo. The flow, which the
//! `ApprovalPolicy` controller drives:
//!
//! 1. [`matching::select`] picks the governing policy and explains the choice
//!    (pure; domains are answered by Odoo through [`odoo_io::domain_membership`]).
//! 2. [`odoo_io::open`] asks for approval in Odoo, on the backend the policy
//!    names ([`odoo_io::resolve_backend`] resolves `Auto` from the edition).
//! 3. [`odoo_io::poll`] reads the decisions in one call; [`levels::evaluate`]
//!    (pure, clock as argument) says wait / escalate / approved / rejected /
//!    last-level SLA breached and sets aside decisions that do not count
//!    (segregation of duties); [`odoo_io::escalate`] and
//!    [`odoo_io::record_refusals`] write that back.
//! 4. [`odoo_io::carry_out`] confirms or cancels the RFQ exactly once.
//! 5. [`trail::read_trail`] reads the policy's history back from the notes:
//!    the controller finds its pending requests there after a restart
//!    ([`odoo_io::find_pending`]), counts for the status, and `planops audit`
//!    prints it.
//!
//! Every record written carries the exception's fingerprint, and every write
//! searches by it first, so retries, lost replies and restarts create nothing
//! twice:
//!
//! | backend | record | key |
//! |---|---|---|
//! | `ApprovalsApp` | `approval.request` | `reference` = fingerprint |
//! | `ApprovalsApp` | `approval.approver` | (request, user) |
//! | `Activity` | `mail.activity` on the RFQ, one per approver | fingerprint in `note`, user |
//! | both | chatter note on the RFQ per automated write | "fingerprint + tag" in the body |
//!
//! Restarts: nothing needs to survive in memory. Calling [`odoo_io::open`]
//! again finds the request by fingerprint, writes nothing, and returns the
//! same [`Pending`] with `opened_at` read from Odoo's `create_date`, so the SLA
//! clock does not restart; [`odoo_io::Observed::level`] recovers the level
//! from the approvers Odoo already involves (a level whose approvers are all
//! also approvers of an earlier level cannot be told apart; it reads as the
//! earlier one until the clock escalates it again, which writes nothing new).
//!
//! `Activity` convention (Community has no approvals model): each approver of
//! the level gets a "To approve" activity whose summary carries the fingerprint.
//! The approver marks it done with feedback starting with `approved` (or `ok`)
//! to approve, or `rejected` / `refused` followed by the reason to refuse. Odoo
//! posts "<type> done: <summary> · Feedback: <text>" on the RFQ, authored by the
//! approver; that message is what [`odoo_io::poll`] reads, so the decision
//! survives Odoo 16 deleting and 17+ archiving done activities. Done without a
//! recognised verdict counts as no decision.

pub use planops_engine::approval::{levels, matching};
pub mod gate;
pub mod odoo_io;
pub mod trail;

use odoo_client::OdooError;

pub use levels::{
    Approver, Decision, Evaluation, PendingState, Refused, ResolvedLevel, Step, Verdict, evaluate,
};
pub use matching::{Candidate, DomainMembership, GovernedRequest, Selection, select};
pub use odoo_io::{
    Backend, FinalDecision, GateRequest, Observed, OutcomeReport, Pending, carry_out, escalate,
    open, poll, record_refusals, resolve_backend, resolve_levels,
};

/// Why an approval step could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Odoo refused or failed a call.
    #[error("{what}: {error}")]
    Odoo {
        /// What was being done.
        what: &'static str,
        /// The client's error, already redacted.
        #[source]
        error: OdooError,
    },
    /// A policy's domain does not parse.
    #[error("policy {policy}: invalid {field}: {message}")]
    Domain {
        policy: String,
        field: &'static str,
        message: String,
    },
    /// `ApprovalsApp` asked of a database without the Approvals app.
    #[error(
        "backend ApprovalsApp needs Odoo Enterprise's approval.request, which this database does not have; use Activity or Auto"
    )]
    BackendUnavailable,
    /// No login or group of a level resolved to an active user.
    #[error("level {level}: no approver found in Odoo for users {users:?} and groups {groups:?}")]
    NoApprovers {
        level: String,
        users: Vec<String>,
        groups: Vec<String>,
    },
    /// Odoo answered with data PlanOps cannot use.
    #[error("unexpected data from Odoo: {0}")]
    Data(String),
    /// The RFQ is in a state where the outcome cannot be carried out (e.g.
    /// someone cancelled it in Odoo before it was approved).
    #[error("RFQ {rfq} is in state {state:?}; cannot {action}")]
    RfqState {
        rfq: i64,
        state: String,
        action: &'static str,
    },
}

pub(crate) fn odoo_err(what: &'static str) -> impl FnOnce(OdooError) -> ApprovalError {
    move |error| ApprovalError::Odoo { what, error }
}
