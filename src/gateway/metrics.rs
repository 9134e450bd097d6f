//! Prometheus metrics of the gateway and the per-route counters that resource
//! status reads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::RoutePath;

/// Why a request was refused; the `reason` label of
/// `planops_gateway_events_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    NotFound,
    TooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unauthorized,
    Malformed,
    Unmappable,
    Transient,
    QueueFull,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotFound => "not_found",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnsupportedMediaType => "unsupported_media_type",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::Malformed => "malformed",
            RejectReason::Unmappable => "unmappable",
            RejectReason::Transient => "transient",
            RejectReason::QueueFull => "queue_full",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `odoo` or `suppliers`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

impl RouteLabels {
    pub(crate) fn of(path: &RoutePath) -> RouteLabels {
        RouteLabels {
            kind: path.kind.segment().to_string(),
            namespace: path.namespace.clone(),
            name: path.name.clone(),
        }
    }

    /// Requests for unknown routes share one series: their path is chosen by
    /// the caller, and must not grow the label space.
    fn unknown() -> RouteLabels {
        RouteLabels {
            kind: "unknown".into(),
            namespace: String::new(),
            name: String::new(),
        }
    }
}

/// The gateway's metric families. Cheap to clone; register them with
/// [`GatewayMetrics::register`].
#[derive(Clone)]
pub struct GatewayMetrics {
    pub received: Family<RouteLabels, Counter>,
    pub accepted: Family<RouteLabels, Counter>,
    pub rejected: Family<RejectLabels, Counter>,
    pub duplicates: Family<RouteLabels, Counter>,
    /// From receipt to the handler's success (for hint routes this includes
    /// the time spent in the queue).
    pub latency: Family<RouteLabels, Histogram>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            received: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            duplicates: Family::default(),
            latency: Family::new_with_constructor(|| {
                // 100 µs .. ~26 s
                Histogram::new(exponential_buckets(0.0001, 2.0, 19))
            }),
        }
    }
}

impl GatewayMetrics {
    /// Adds the families to `registry` (names get the registry's prefix, e.g.
    /// `planops_gateway_events_received_total`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_events_received",
            "Webhook requests received, by route (unknown routes share kind=\"unknown\")",
            self.received.clone(),
        );
        registry.register(
            "gateway_events_accepted",
            "Webhook events accepted (handled, or queued for hint routes), by route",
            self.accepted.clone(),
        );
        registry.register(
            "gateway_events_rejected",
            "Webhook requests refused, by route and reason",
            self.rejected.clone(),
        );
        registry.register(
            "gateway_events_duplicate",
            "Webhook events recognised as already handled or in progress, by route",
            self.duplicates.clone(),
        );
        registry.register(
            "gateway_event_duration_seconds",
            "Time from receipt to the handler's success, by route",
            self.latency.clone(),
        );
    }

    pub(crate) fn unknown_route(&self) {
        let labels = RouteLabels::unknown();
        self.received.get_or_create(&labels).inc();
        self.rejected
            .get_or_create(&RejectLabels {
                kind: labels.kind,
                namespace: labels.namespace,
                name: labels.name,
                reason: RejectReason::NotFound.as_str().into(),
            })
            .inc();
    }

    pub(crate) fn forget(&self, path: &RoutePath) {
        let labels = RouteLabels::of(path);
        self.received.remove(&labels);
        self.accepted.remove(&labels);
        self.duplicates.remove(&labels);
        self.latency.remove(&labels);
        for reason in [
            RejectReason::TooLarge,
            RejectReason::UnsupportedMediaType,
            RejectReason::RateLimited,
            RejectReason::Unauthorized,
            RejectReason::Malformed,
            RejectReason::Unmappable,
            RejectReason::Transient,
            RejectReason::QueueFull,
        ] {
            self.rejected.remove(&RejectLabels {
                kind: labels.kind.clone(),
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                reason: reason.as_str().into(),
            });
        }
    }
}

/// Per-route counters, as a resource's status shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCounts {
    /// Requests that reached the route (whatever became of them).
    pub received: u64,
    /// Events handled successfully (supplier routes) or queued (hint routes).
    pub accepted: u64,
    /// Requests refused for any reason (auth, size, rate, payload, handler, full queue).
    pub rejected: u64,
    /// Deliveries recognised as duplicates.
    pub duplicate: u64,
    /// Hints accepted (202) whose handler then failed; the next scan covers them.
    pub failed: u64,
    /// Unix seconds of the last accepted event.
    pub last_accepted_at: Option<i64>,
}

/// The live counters of one route, shared by its requests and workers.
#[derive(Default)]
pub(crate) struct RouteStats {
    received: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    duplicate: AtomicU64,
    failed: AtomicU64,
    last_accepted_at: Mutex<Option<i64>>,
}

impl RouteStats {
    pub(crate) fn snapshot(&self) -> RouteCounts {
        RouteCounts {
            received: self.received.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_accepted_at: *self
                .last_accepted_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }
}

/// Counts one route's outcomes in both its [`RouteStats`] and the families.
pub(crate) struct RouteMeter<'a> {
    pub(crate) stats: &'a RouteStats,
    pub(crate) metrics: &'a GatewayMetrics,
    pub(crate) labels: &'a RouteLabels,
}

impl RouteMeter<'_> {
    pub(crate) fn received(&self) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.metrics.received.get_or_create(self.labels).inc();
    }

    pub(crate) fn accepted(&self) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        *self
            .stats
            .last_accepted_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some(jiff::Timestamp::now().as_second());
        self.metrics.accepted.get_or_create(self.labels).inc();
    }

    pub(crate) fn duplicate(&self) {
        self.stats.duplicate.fetch_add(1, Ordering::Relaxed);
        self.metrics.duplicates.get_or_create(self.labels).inc();
    }

    pub(crate) fn rejected(&self, reason: RejectReason) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .rejected
            .get_or_create(&RejectLabels {
                kind: self.labels.kind.clone(),
                namespace: self.labels.namespace.clone(),
                name: self.labels.name.clone(),
                reason: reason.as_str().into(),
            })
            .inc();
    }

    /// A queued hint's handler failed: counted under `reason` in the
    /// rejected family, but as `failed` (not `rejected`) in [`RouteCounts`],
    /// since its request was accepted.
    pub(crate) fn failed(&self, reason: RejectReason) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .rejected
            .get_or_create(&RejectLabels {
                kind: self.labels.kind.clone(),
                namespace: self.labels.namespace.clone(),
                name: self.labels.name.clone(),
                reason: reason.as_str().into(),
            })
            .inc();
    }

    pub(crate) fn latency(&self, seconds: f64) {
        self.metrics
            .latency
            .get_or_create(self.labels)
            .observe(seconds);
    }
}
