//! Subcommands of the `planops` binary that are not a component of their own.

pub mod audit;
pub mod crdgen;
pub mod demo;
pub mod plan;
pub mod scan;
pub mod validate;
