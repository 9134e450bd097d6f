//! The pure half of the approval gate: which policy governs an action
//! ([`matching`]) and the levels, SLAs and escalation state machine ([`levels`]).
//! Reading and writing approvals in Odoo is `planops_sync::approval`.

pub mod levels;
pub mod matching;
