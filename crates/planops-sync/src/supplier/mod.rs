//! Supplier events: a `SupplierConnector`'s payloads (webhook deliveries or
//! polled items) mapped to normalised events and applied to the supplier's
//! purchase orders in Odoo, exactly once per event; and the supplier's
//! measured lead time.
//!
//! [`handle_event`] is the one entry point of the webhook route and the poller.

pub mod effects;
pub mod leadtime;
pub mod mapping;
pub mod poll;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use effects::{Applied, ApplyError, ConnectorTarget, Rejection, event_fingerprint};
pub use mapping::{CompileError, CompiledMapping, EventLine, MappingError, SupplierEvent};
use odoo_client::OdooClient;
use planops_api::SupplierConnector;

/// Everything needed to handle a connector's events, built once per spec.
#[derive(Debug, Clone)]
pub struct SupplierRuntime {
    pub mapping: CompiledMapping,
    pub target: ConnectorTarget,
}

impl SupplierRuntime {
    /// Compiles the connector's mapping for the resolved supplier `partner_id`.
    pub fn new(
        connector: &SupplierConnector,
        partner_id: i64,
    ) -> Result<SupplierRuntime, CompileError> {
        Ok(SupplierRuntime {
            mapping: CompiledMapping::compile(&connector.spec.mapping)?,
            target: ConnectorTarget {
                namespace: connector.metadata.namespace.clone().unwrap_or_default(),
                name: connector.metadata.name.clone().unwrap_or_default(),
                partner_id,
                effects: connector.spec.effects.clone().unwrap_or_default(),
            },
        })
    }
}

/// One payload as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub payload: &'a Value,
    /// The bytes as received, attached in Odoo as evidence.
    pub raw: &'a [u8],
    /// A transport-level id (the `webhook-id` header), used when the mapping
    /// has no `eventId`.
    pub delivery_id: Option<&'a str>,
}

/// What handling an event did.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub event: SupplierEvent,
    /// The id the fingerprint was derived from: the payload's (`eventId`), the
    /// delivery's, or `sha256:<hex>` of the raw body.
    pub event_id: String,
    pub applied: Applied,
}

/// Why an event was not applied, with the HTTP status a webhook answers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The payload does not map (422): sending it again will not help.
    #[error("payload does not map: {0}")]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl EventError {
    /// The sender's fault: counted as rejected, never retried.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self,
            EventError::Mapping(_) | EventError::Apply(ApplyError::Rejected(_))
        )
    }

    /// 422 for a rejected event, 503 (retry later) for anything on our side.
    pub fn http_status(&self) -> u16 {
        if self.is_rejected() { 422 } else { 503 }
    }
}

/// Maps `delivery` with the connector's mapping and applies it in Odoo.
/// Safe to call again with the same event (webhook retries, re-polled pages):
/// the second call writes nothing and reports `duplicate`.
pub async fn handle_event(
    client: &OdooClient,
    runtime: &SupplierRuntime,
    delivery: Delivery<'_>,
) -> Result<Handled, EventError> {
    let event = runtime.mapping.map(delivery.payload)?;
    let event_id = match (&event.event_id, delivery.delivery_id) {
        (Some(id), _) => id.clone(),
        (None, Some(id)) if !id.is_empty() => id.to_string(),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(delivery.raw))),
    };
    let fingerprint = event_fingerprint(&runtime.target.namespace, &runtime.target.name, &event_id);
    let applied =
        effects::apply(client, &runtime.target, &event, &fingerprint, delivery.raw).await?;
    Ok(Handled {
        event,
        event_id,
        applied,
    })
}
