//! PlanOps: demand-planning coordination for Odoo as Kubernetes resources.
//!
//! The crate is one package with a folder per component (see `DESIGN.md` in the
//! project's shared notes): `api` holds the custom resources, `odoo` the client,
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
