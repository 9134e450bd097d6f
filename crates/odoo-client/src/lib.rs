//! Client for Odoo's external API.
//!
//! [`OdooClient::connect`] probes the server version, picks the protocol
//! (JSON-RPC on 16–18, JSON-2 on 19+ unless forced), authenticates with the
//! login and API key, and detects the edition. Every request goes through
//! the connection's rate limiter and is counted; transient failures are
//! retried with jittered exponential backoff (ambiguous ones only for
//! idempotent calls). Errors are typed ([`ErrorKind`]) and keep Odoo's
//! exception name and message; the API key never appears in them.

pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod group;
pub mod limiter;
pub mod retry;
pub mod secret;
pub mod stats;
pub mod transport;
pub mod users;
pub mod values;
pub mod version;

pub use client::{
    Edition, ExternalId, OdooClient, PageOptions, Pager, Pagination, SearchOptions, ServerInfo,
    UpsertOutcome,
};
pub use config::{OdooConfig, Protocol, RateLimitConfig, RetryConfig};
pub use error::{ErrorKind, OdooError, TransientKind};
pub use group::{Aggregate, AggregateFn, Granularity, Group, GroupBy, GroupKey, ReadGroupSpec};
pub use secret::Secret;
pub use stats::CallsSnapshot;
pub use transport::{Call, Transport};
pub use values::{Many2one, Record, RecordExt};
pub use version::ServerVersion;
