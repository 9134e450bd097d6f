//! Prometheus metrics of the operator, served as text on `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub namespace: String,
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub namespace: String,
    pub rule: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub namespace: String,
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub namespace: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub namespace: String,
    pub policy: String,
    /// approved, rejected, refused (a decision set aside), escalated.
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    pub shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// The severities, as the `severity` label spells them.
pub const SEVERITIES: [&str; 4] = ["Critical", "High", "Medium", "Low"];

/// The operator's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub reconciliations: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub status_writes: Family<KindLabels, Counter>,
    pub resource_ready: Family<ObjectLabels, Gauge>,
    pub leader: Gauge,
    /// 1 for each shard this replica holds (and acts on), 0 for the others.
    pub shard_held: Family<ShardLabels, Gauge>,
    /// Wall time of scheduled scans (scan and actions), by rule.
    pub scan_duration: Family<RuleLabels, Histogram>,
    /// Open exceptions after the last scan, by rule and severity.
    pub exceptions_open: Family<SeverityLabels, Gauge>,
    /// Calls made to Odoo by scheduled scans, by connection.
    pub odoo_calls: Family<ConnectionLabels, Counter>,
    /// Scheduled scans that failed on an Odoo error, by connection.
    pub odoo_errors: Family<ConnectionLabels, Counter>,
    /// Scheduled scans by outcome: succeeded, failed, skipped, replaced.
    pub scans: Family<OutcomeLabels, Counter>,
    /// Time from approval request to carried-out decision, by policy.
    pub approval_cycle: Family<PolicyLabels, Histogram>,
    /// Approval decisions carried out or set aside, and escalations, by policy.
    pub approval_decisions: Family<DecisionLabels, Counter>,
    /// Requests whose last level's SLA passed without a decision, by policy.
    pub approval_sla_breaches: Family<PolicyLabels, Counter>,
    /// The reason currently exported per object, so a changed reason replaces
    /// its series instead of leaving a stale one behind.
    ready_reasons: Mutex<HashMap<(String, String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("planops");
        let reconciliations = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations run, by kind",
            reconciliations.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by kind and error",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 12))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation, by kind",
            reconcile_duration.clone(),
        );
        let status_writes = Family::<KindLabels, Counter>::default();
        registry.register(
            "status_writes",
            "Status patches sent to the API server, by kind",
            status_writes.clone(),
        );
        let resource_ready = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "resource_ready",
            "1 when the resource's Ready condition is True, else 0; the reason label carries Ready's reason",
            resource_ready.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let shard_held = Family::<ShardLabels, Gauge>::default();
        registry.register(
            "shard_held",
            "1 while this replica holds the shard's Lease and acts on its objects, else 0",
            shard_held.clone(),
        );
        let scan_duration = Family::<RuleLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 14))
        });
        registry.register(
            "scan_duration_seconds",
            "Wall time of one scheduled scan with its actions, by rule",
            scan_duration.clone(),
        );
        let exceptions_open = Family::<SeverityLabels, Gauge>::default();
        registry.register(
            "exceptions_open",
            "Open exceptions after the rule's last scan, by rule and severity",
            exceptions_open.clone(),
        );
        let odoo_calls = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "odoo_calls",
            "Calls scheduled scans made to Odoo, by connection",
            odoo_calls.clone(),
        );
        let odoo_errors = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "odoo_errors",
            "Scheduled scans that failed on an Odoo error, by connection",
            odoo_errors.clone(),
        );
        let scans = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "scans",
            "Scheduled scans by outcome (succeeded, failed, skipped, replaced)",
            scans.clone(),
        );
        let approval_cycle = Family::<PolicyLabels, Histogram>::new_with_constructor(|| {
            // 1 s to about 18 days: tests decide in seconds, people in hours or days.
            Histogram::new(exponential_buckets(1.0, 3.0, 15))
        });
        registry.register(
            "approval_cycle_seconds",
            "Time from approval request to the carried-out decision, by policy",
            approval_cycle.clone(),
        );
        let approval_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "approval_decisions",
            "Approval decisions by policy and kind (approved, rejected, refused, escalated)",
            approval_decisions.clone(),
        );
        let approval_sla_breaches = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "approval_sla_breaches",
            "Approval requests whose last level's SLA passed without a decision, by policy",
            approval_sla_breaches.clone(),
        );
        Metrics {
            registry,
            approval_cycle,
            approval_decisions,
            approval_sla_breaches,
            scan_duration,
            exceptions_open,
            odoo_calls,
            odoo_errors,
            scans,
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            status_writes,
            resource_ready,
            leader,
            shard_held,
            ready_reasons: Mutex::new(HashMap::new()),
        }
    }

    /// Records whether this replica holds `shard`.
    pub fn set_shard_held(&self, shard: u32, held: bool) {
        self.shard_held
            .get_or_create(&ShardLabels {
                shard: shard.to_string(),
            })
            .set(i64::from(held));
    }

    /// Adds the webhook gateway's families (`planops_gateway_*`) to what `/metrics` renders.
    pub fn register_gateway(&mut self, gateway: &crate::gateway::Gateway) {
        gateway.register_metrics(&mut self.registry);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn reconcile_timer(&self, kind: &str) -> ReconcileTimer<'_> {
        self.reconciliations
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
        ReconcileTimer {
            metrics: self,
            kind: kind.to_string(),
            start: Instant::now(),
        }
    }

    pub fn set_ready(&self, kind: &str, namespace: &str, name: &str, ready: bool, reason: &str) {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        let mut reasons = self
            .ready_reasons
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old) = reasons.insert(key, reason.to_string())
            && old != reason
        {
            self.resource_ready.remove(&ObjectLabels {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                reason: old,
            });
        }
        self.resource_ready
            .get_or_create(&ObjectLabels {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                reason: reason.into(),
            })
            .set(i64::from(ready));
    }

    pub fn forget(&self, kind: &str, namespace: &str, name: &str) {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        let mut reasons = self
            .ready_reasons
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old) = reasons.remove(&key) {
            self.resource_ready.remove(&ObjectLabels {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                reason: old,
            });
        }
    }
}

impl Metrics {
    /// Counts one scheduled scan with `outcome`.
    pub fn scan_outcome(&self, outcome: &str) {
        self.scans
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Sets the open-exception gauges of a rule, one series per severity.
    pub fn set_exceptions_open(&self, namespace: &str, rule: &str, counts: [i64; 4]) {
        for (severity, count) in SEVERITIES.iter().zip(counts) {
            self.exceptions_open
                .get_or_create(&SeverityLabels {
                    namespace: namespace.into(),
                    rule: rule.into(),
                    severity: (*severity).into(),
                })
                .set(count);
        }
    }

    /// Drops the series of a deleted rule.
    pub fn forget_rule(&self, namespace: &str, rule: &str) {
        for severity in SEVERITIES {
            self.exceptions_open.remove(&SeverityLabels {
                namespace: namespace.into(),
                rule: rule.into(),
                severity: severity.into(),
            });
        }
        self.scan_duration.remove(&RuleLabels {
            namespace: namespace.into(),
            rule: rule.into(),
        });
    }
}

impl Metrics {
    /// Counts one approval decision (or escalation) of a policy.
    pub fn approval_decision(&self, namespace: &str, policy: &str, decision: &str) {
        self.approval_decisions
            .get_or_create(&DecisionLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                decision: decision.into(),
            })
            .inc();
    }

    /// Drops the series of a deleted policy.
    pub fn forget_policy(&self, namespace: &str, policy: &str) {
        let labels = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        self.approval_cycle.remove(&labels);
        self.approval_sla_breaches.remove(&labels);
        for decision in ["approved", "rejected", "refused", "escalated"] {
            self.approval_decisions.remove(&DecisionLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                decision: decision.into(),
            });
        }
    }
}

/// Observes the reconcile duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: String,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&KindLabels {
                kind: std::mem::take(&mut self.kind),
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_gauge_replaces_series_when_reason_changes() {
        let m = Metrics::new();
        m.set_ready("ExceptionRule", "ns", "r", false, "ConnectionNotFound");
        m.set_ready("ExceptionRule", "ns", "r", true, "Reconciled");
        let text = m.render();
        assert!(text.contains(
            r#"planops_resource_ready{kind="ExceptionRule",namespace="ns",name="r",reason="Reconciled"} 1"#
        ));
        assert!(!text.contains("ConnectionNotFound"));
        m.forget("ExceptionRule", "ns", "r");
        assert!(!m.render().contains(r#"name="r""#));
    }
}
