//! PlanOps: demand-planning coordination for Odoo as Kubernetes resources.
//!
//! The crate is one package with a folder per component (the Odoo behaviours
//! it relies on are in `docs/odoo-versions.md`): `api` holds the custom resources, `odoo` the client,
//! `sim` the Odoo simulator, `engine` the pure planning logic and `controllers`
//! the reconcilers that tie them to the Kubernetes API.

pub mod actions;
pub mod api;
pub mod approval;
pub mod automation;
pub mod cli;
pub mod controllers;
pub mod engine;
pub mod gateway;
pub mod odoo;
pub mod scan;
pub mod schedule;
pub mod sim;
pub mod supplier;
