//! PlanOps: demand-planning coordination for Odoo as Kubernetes resources.
//!
//! This package is the operator: the controllers that tie the custom resources to
//! the Kubernetes API, the webhook gateway and the command line. The rest lives in
//! the workspace's crates, re-exported here under their short names (see
//! `docs/design.md`):
//!
//! | name | crate | what |
//! |---|---|---|
//! | [`api`] | `planops-api` | the custom resources and their whole schema |
//! | [`engine`], [`schedule`] | `planops-engine` | pure planning logic, no I/O |
//! | [`odoo`] | `odoo-client` | Odoo's external API |
//! | [`scan`], [`actions`], [`automation`], [`approval`], [`supplier`], [`outbound`] | `planops-sync` | reads and writes in Odoo, and where outbound requests may go |
//! | `sim` | `odoo-sim` | the Odoo simulator (feature `simulator`, on by default) |
//!
//! The Odoo behaviours PlanOps relies on are in `docs/odoo.md`.

/// The version line of `planops --version`: the package version and the git
/// commit it was built from (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PLANOPS_GIT_COMMIT"),
    ")"
);

pub mod cli;
pub mod controllers;
pub mod errors;
pub mod gateway;

pub use odoo_client as odoo;
#[cfg(feature = "simulator")]
pub use odoo_sim as sim;
pub use planops_api as api;
pub use planops_engine as engine;
pub use planops_engine::schedule;
pub use planops_sync::{actions, approval, automation, outbound, run, scan, supplier};
