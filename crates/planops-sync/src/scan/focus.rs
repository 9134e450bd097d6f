//! A scan narrowed to the records an event names.
//!
//! An Odoo automation callback says "these records of this model changed". Re-running
//! the whole scope for it would cost a full scan per keystroke in Odoo; instead the
//! event is turned into a [`Focus`]: the products (or, for a field-threshold rule on
//! the same model, the records) the change can affect. The scan then runs the same
//! fetch and detectors over that narrow scope, so an event can only find what a full
//! scan would find for those subjects.

use serde_json::{Value, json};

use super::ScanError;
use odoo_client::{OdooClient, PageOptions, RecordExt};
use planops_engine::DetectorKind;

/// Records that cannot be mapped to products in one event: more and the event is a
/// bulk change, which the scheduled scan handles better than a focused one.
pub const MAX_FOCUS_RECORDS: usize = 1000;

/// The subjects one focused scan evaluates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Focus {
    /// `product.product` ids; the scope's product domain is narrowed to them.
    pub products: Vec<i64>,
    /// Record ids of the field-threshold detector's model.
    pub records: Vec<i64>,
}

impl Focus {
    /// Whether the focus names nothing, so the scan has nothing to evaluate.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty() && self.records.is_empty()
    }

    /// `domain` narrowed to `ids` (a domain's top-level terms are implicitly ANDed,
    /// so appending one term narrows whatever the domain says).
    pub(crate) fn narrow(domain: &Value, ids: &[i64]) -> Value {
        let mut terms = domain.as_array().cloned().unwrap_or_default();
        terms.push(json!(["id", "in", ids]));
        Value::Array(terms)
    }
}

/// Why an event cannot be narrowed to products.
#[derive(Debug, thiserror::Error)]
pub enum FocusError {
    /// The model has no known path to products.
    #[error(
        "records of {model} do not name products; watch a model with a product_id field, an order, a picking or the product itself"
    )]
    UnrelatedModel { model: String },
    /// The event names more records than a focused scan should take.
    #[error(
        "the event names {count} records (more than {MAX_FOCUS_RECORDS}); the scheduled scan covers bulk changes"
    )]
    TooMany { count: usize },
    /// Reading the records failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// The focus of an event on `ids` of `model` for a rule with `detector` (and, for a
/// field-threshold rule, its model).
pub async fn focus_for(
    client: &OdooClient,
    detector: DetectorKind,
    threshold_model: Option<&str>,
    model: &str,
    ids: &[i64],
) -> Result<Focus, FocusError> {
    if ids.len() > MAX_FOCUS_RECORDS {
        return Err(FocusError::TooMany { count: ids.len() });
    }
    if detector == DetectorKind::FieldThreshold {
        return if threshold_model == Some(model) {
            Ok(Focus {
                records: ids.to_vec(),
                ..Focus::default()
            })
        } else {
            Err(FocusError::UnrelatedModel {
                model: model.to_string(),
            })
        };
    }
    let products = match model {
        "product.product" => ids.to_vec(),
        "product.template" => {
            product_ids_where(client, "product.product", "product_tmpl_id", ids, "id").await?
        }
        "sale.order" => {
            product_ids_where(client, "sale.order.line", "order_id", ids, "product_id").await?
        }
        "purchase.order" => {
            product_ids_where(client, "purchase.order.line", "order_id", ids, "product_id").await?
        }
        "stock.picking" => {
            product_ids_where(client, "stock.move", "picking_id", ids, "product_id").await?
        }
        "sale.order.line"
        | "purchase.order.line"
        | "stock.move"
        | "stock.move.line"
        | "stock.quant"
        | "stock.warehouse.orderpoint"
        | "product.supplierinfo" => {
            let field = if model == "product.supplierinfo" {
                // A vendor price list line names the template; its variants are affected.
                let templates =
                    product_ids_where(client, model, "id", ids, "product_tmpl_id").await?;
                return Ok(Focus {
                    products: product_ids_where(
                        client,
                        "product.product",
                        "product_tmpl_id",
                        &templates,
                        "id",
                    )
                    .await?,
                    ..Focus::default()
                });
            } else {
                "product_id"
            };
            product_ids_where(client, model, "id", ids, field).await?
        }
        other => {
            return Err(FocusError::UnrelatedModel {
                model: other.to_string(),
            });
        }
    };
    Ok(Focus {
        products,
        ..Focus::default()
    })
}

/// Distinct ids held by `field` (a many2one, or `id`) of the `model` records whose
/// `key` is in `ids`, sorted.
async fn product_ids_where(
    client: &OdooClient,
    model: &str,
    key: &str,
    ids: &[i64],
    field: &str,
) -> Result<Vec<i64>, ScanError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let domain = json!([[key, "in", ids]]);
    let rows = client
        .search_read_all(model, &domain, &["id", field], &PageOptions::keyset(500))
        .await
        .map_err(ScanError::odoo("the records an event names"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = if field == "id" {
            Some(
                row.id()
                    .map_err(ScanError::odoo("the records an event names"))?,
            )
        } else {
            row.many2one(field)
                .map_err(ScanError::odoo("the records an event names"))?
                .map(|m| m.id)
        };
        out.extend(id);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_appends_one_term() {
        let scope = json!([
            "|",
            ["categ_id.name", "=", "A"],
            ["categ_id.name", "=", "B"]
        ]);
        let narrowed = Focus::narrow(&scope, &[3, 5]);
        assert_eq!(
            narrowed,
            json!([
                "|",
                ["categ_id.name", "=", "A"],
                ["categ_id.name", "=", "B"],
                ["id", "in", [3, 5]]
            ])
        );
        assert_eq!(Focus::narrow(&json!([]), &[1]), json!([["id", "in", [1]]]));
    }
}
