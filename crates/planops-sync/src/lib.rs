//! Everything PlanOps reads from and writes to Odoo for its resources.
//!
//! - [`scan`]: the reads of one rule (stock, moves, history, with a cache and a
//!   shared stock snapshot), handed to the pure `planops_engine`.
//! - [`actions`]: the idempotent writes a finding asks for (activities, notes,
//!   draft RFQs, signed notifications), each keyed by the exception's fingerprint.
//! - [`approval`]: the approval gate's requests, polls and outcomes in Odoo.
//! - [`automation`]: the Odoo automation rules PlanOps manages.
//! - [`managed`]: the observe → create → observe-again steps every writer shares.
//! - [`supplier`]: supplier confirmations and delays written onto purchase orders.
//! - [`outbound`]: where poll and notify requests may go (no loopback, link-local
//!   or cluster service addresses unless allowed), checked when names resolve.
//! - [`run`]: one rule run (scan, actions, approval gate), the one sequence the
//!   scheduler, the event path and `planops scan` share.

pub mod actions;
pub mod approval;
pub mod automation;
pub mod managed;
pub mod outbound;
pub mod run;
pub mod scan;
pub mod supplier;
