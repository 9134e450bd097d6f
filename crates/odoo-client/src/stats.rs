//! Counts of the requests a connection made to Odoo, so that a scan can
//! report how many Odoo calls it cost (`calls_made()` before and after).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by every clone of a client.
#[derive(Debug, Default)]
pub struct CallCounters {
    requests: AtomicU64,
    retries: AtomicU64,
    by_method: Mutex<BTreeMap<String, u64>>,
}

/// A point-in-time copy of the counters. Subtract two snapshots with
/// [`CallsSnapshot::since`] to get the calls made in between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallsSnapshot {
    /// HTTP requests sent to Odoo (retries included).
    pub requests: u64,
    /// Of those, repeated attempts after a transient failure.
    pub retries: u64,
    /// Requests by `model/method` (`common/version` for service calls).
    pub by_method: BTreeMap<String, u64>,
}

impl CallsSnapshot {
    /// Calls made after `earlier` up to `self`.
    pub fn since(&self, earlier: &CallsSnapshot) -> CallsSnapshot {
        let by_method = self
            .by_method
            .iter()
            .filter_map(|(key, &now)| {
                let before = earlier.by_method.get(key).copied().unwrap_or(0);
                (now > before).then(|| (key.clone(), now - before))
            })
            .collect();
        CallsSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            retries: self.retries.saturating_sub(earlier.retries),
            by_method,
        }
    }

    pub fn count(&self, model: &str, method: &str) -> u64 {
        self.by_method
            .get(&method_key(model, method))
            .copied()
            .unwrap_or(0)
    }
}

fn method_key(model: &str, method: &str) -> String {
    format!("{model}/{method}")
}

impl CallCounters {
    /// Counts one HTTP request for `model.method`.
    pub fn record_request(&self, model: &str, method: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // A poisoned map only means another thread panicked mid-increment;
        // the counts are still usable.
        let mut map = self
            .by_method
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(method_key(model, method)).or_insert(0) += 1;
    }

    /// Counts one repeated attempt (the request itself is counted by `record_request`).
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests made so far; cheap (one atomic load).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> CallsSnapshot {
        let by_method = self
            .by_method
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        CallsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            by_method,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_subtract() {
        let counters = CallCounters::default();
        counters.record_request("product.product", "search_read");
        let before = counters.snapshot();
        counters.record_request("product.product", "search_read");
        counters.record_request("product.product", "search_read");
        counters.record_retry();
        counters.record_request("purchase.order", "write");
        let delta = counters.snapshot().since(&before);
        assert_eq!(delta.requests, 3);
        assert_eq!(delta.retries, 1);
        assert_eq!(delta.count("product.product", "search_read"), 2);
        assert_eq!(delta.count("purchase.order", "write"), 1);
        assert_eq!(delta.count("res.partner", "read"), 0);
        assert_eq!(counters.requests(), 4);
    }
}
