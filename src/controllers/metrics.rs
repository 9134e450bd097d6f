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

/// The operator's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub reconciliations: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub status_writes: Family<KindLabels, Counter>,
    pub resource_ready: Family<ObjectLabels, Gauge>,
    pub leader: Gauge,
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
        Metrics {
            registry,
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            status_writes,
            resource_ready,
            leader,
            ready_reasons: Mutex::new(HashMap::new()),
        }
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
