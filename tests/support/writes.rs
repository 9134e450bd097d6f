//! What a rule's scans wrote in the Odoo simulator, counted record by record,
//! for the tests that break something mid-scan (chaos, shards) and check that
//! nothing was written twice or left out.

use std::collections::{BTreeMap, BTreeSet};

use planops::odoo::{OdooClient, RecordExt};
use planops::sim::{DatasetParams, FaultConfig, SimConfig, SimServer};
use serde_json::{Value, json};

use super::eventually;
use super::odoo::{self, count};

/// A simulator with `products` products, one warehouse and 30 days of history.
pub async fn sim(products: usize) -> SimServer {
    odoo::start_sim(SimConfig {
        dataset: DatasetParams {
            seed: 29,
            products,
            warehouses: 1,
            history_days: 30,
            ..DatasetParams::default()
        },
        ..SimConfig::default()
    })
    .await
}

/// Every `latency_ms`, the simulator's answer to each call comes that much later.
pub fn slow(server: &SimServer, latency_ms: u64) {
    server
        .set_faults(FaultConfig {
            latency_ms,
            ..FaultConfig::default()
        })
        .expect("setting the simulator's latency");
}

/// Products with a cost: each is one exception of [`cost_rule`].
pub async fn priced_products(client: &OdooClient) -> usize {
    count(
        client,
        "product.product",
        json!([["standard_price", ">", 0]]),
    )
    .await as usize
}

/// `support::cost_rule` on `cron` that also posts a chatter note per product:
/// two records per product, each carrying the exception's fingerprint. The
/// notes are posted one call each, so against a slow Odoo the scan spends
/// seconds writing them.
pub fn noted_cost_rule(name: &str, cron: &str) -> Value {
    let mut rule = super::cost_rule(name, json!({"cron": cron}));
    rule["spec"]["actions"]
        .as_array_mut()
        .expect("actions")
        .push(json!({"chatterNote": {}}));
    rule
}

/// What a rule wrote in Odoo, by record: `(model, id)` → the fingerprints in
/// the activities (`mail.activity`) or notes (`mail.message`) it left there.
#[derive(Debug, Default)]
pub struct Written {
    pub activities: BTreeMap<(String, i64), Vec<String>>,
    pub notes: BTreeMap<(String, i64), Vec<String>>,
}

impl Written {
    pub async fn read(client: &OdooClient, ns: &str, rule: &str) -> Written {
        let marker = format!("planops-rule {ns}/{rule}");
        let group = |rows: Vec<planops::odoo::Record>, model: &str, text: &str| {
            let mut out: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
            for row in rows {
                let key = (
                    row.str_field(model)
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                        .to_string(),
                    row.get("res_id")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                );
                let body = row.str_field(text).ok().flatten().unwrap_or_default();
                out.entry(key)
                    .or_default()
                    .extend(planops::actions::fingerprints_in(body));
            }
            out
        };
        let activities = client
            .search_read_all(
                "mail.activity",
                &json!([["note", "ilike", marker]]),
                &["res_model", "res_id", "note"],
                &Default::default(),
            )
            .await
            .expect("reading the rule's activities");
        let notes = client
            .search_read_all(
                "mail.message",
                &json!([["body", "ilike", marker]]),
                &["model", "res_id", "body"],
                &Default::default(),
            )
            .await
            .expect("reading the rule's notes");
        Written {
            activities: group(activities, "res_model", "note"),
            notes: group(notes, "model", "body"),
        }
    }

    pub fn notes_written(&self) -> usize {
        self.notes.values().map(Vec::len).sum()
    }

    /// Exactly one activity and one note on each of `subjects` records, every
    /// fingerprint once: nothing missing, nothing twice.
    pub fn assert_once(&self, subjects: usize, context: &str) {
        for (what, records) in [("activity", &self.activities), ("note", &self.notes)] {
            let twice: Vec<_> = records.iter().filter(|(_, fps)| fps.len() != 1).collect();
            assert!(
                twice.is_empty(),
                "{context}: records with other than one {what}: {twice:?}"
            );
            let fingerprints: BTreeSet<&String> = records.values().flatten().collect();
            assert_eq!(
                (records.len(), fingerprints.len()),
                (subjects, subjects),
                "{context}: one {what} per exception, each with its own fingerprint"
            );
        }
    }
}

/// Waits until the rule has written some of its notes but not all: the scan
/// is in the middle of its writes. Returns how many were there.
pub async fn mid_write(client: &OdooClient, ns: &str, rule: &str, subjects: usize) -> usize {
    let written = eventually("the scan half-way through its notes", || async {
        let n = Written::read(client, ns, rule).await.notes_written();
        (n > 0).then_some(n)
    })
    .await;
    assert!(
        written < subjects,
        "the scan wrote all {subjects} notes before it could be interrupted; \
         raise the simulator's latency"
    );
    written
}
