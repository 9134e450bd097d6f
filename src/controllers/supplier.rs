//! SupplierConnector reconciler.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{DEFAULT_RESYNC, Reconciler, settle};
use super::validate::{FieldError, check_json_path};
use super::{Context, Error};
use crate::api::SupplierConnector;
use crate::api::common::{ConditionSet, ConditionStatus, condition_types as ct, reasons};
use crate::api::supplier::SupplierConnectorStatus;

impl Reconciler for SupplierConnector {
    fn validate(&self) -> Vec<FieldError> {
        let mapping = &self.spec.mapping;
        let mut errors = Vec::new();
        for (field, path) in [
            ("spec.mapping.eventType", Some(mapping.event_type.as_str())),
            ("spec.mapping.eventId", mapping.event_id.as_deref()),
            (
                "spec.mapping.purchaseOrderRef",
                Some(mapping.purchase_order_ref.as_str()),
            ),
            ("spec.mapping.lines", mapping.lines.as_deref()),
            ("spec.mapping.productCode", mapping.product_code.as_deref()),
            ("spec.mapping.quantity", mapping.quantity.as_deref()),
            (
                "spec.mapping.promisedDate",
                mapping.promised_date.as_deref(),
            ),
        ] {
            check_json_path(&mut errors, field, path);
        }
        if let Some(poll) = &self.spec.inbound.poll {
            check_json_path(
                &mut errors,
                "spec.inbound.poll.itemsPath",
                poll.items_path.as_deref(),
            );
            check_json_path(
                &mut errors,
                "spec.inbound.poll.nextCursorPath",
                poll.next_cursor_path.as_deref(),
            );
            if let Err(err) = reqwest::Url::parse(&poll.url) {
                errors.push(FieldError::new(
                    "spec.inbound.poll.url",
                    format!("is not a URL: {err}"),
                ));
            }
        }
        if mapping.lines.is_none() && (mapping.product_code.is_some() || mapping.quantity.is_some())
        {
            errors.push(FieldError::new(
                "spec.mapping.lines",
                "productCode and quantity are read per line; set lines too",
            ));
        }
        errors
    }

    async fn evaluate(
        _obj: Arc<Self>,
        _ctx: Arc<Context>,
        conditions: &mut ConditionSet,
        _status: &mut SupplierConnectorStatus,
    ) -> Result<Duration, Error> {
        settle(
            conditions,
            ConditionStatus::True,
            reasons::RECONCILED,
            "spec valid and dependencies ready",
        );
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reasons::NOT_ACTIVE,
            "webhook routes and polling are not active in this build",
        );
        Ok(DEFAULT_RESYNC)
    }
}
