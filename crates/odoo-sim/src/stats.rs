//! Request accounting of the simulator, so tests can check a client's rate
//! limiter and count the calls a scan made.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Faults that were actually injected, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedFaults {
    pub unavailable: u64,
    pub outage_refused: u64,
    pub serialization_failures: u64,
    pub dropped_replies: u64,
    pub delayed: u64,
}

/// A point-in-time copy of the counters, as served by `GET /planops-sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// HTTP requests to the Odoo surfaces (admin endpoints excluded).
    pub total_requests: u64,
    /// Requests per surface: `xmlrpc`, `jsonrpc`, `web`, `json2`, `other`.
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// RPC methods by `service.method` (`common.login`, `object.execute_kw`, …)
    /// or route for session and JSON-2 calls (`web.call_kw`, `json2`).
    pub rpc_methods: BTreeMap<String, u64>,
    /// ORM calls by `model/method`, whatever the protocol.
    pub model_calls: BTreeMap<String, u64>,
    /// Highest number of requests seen in any sliding one-second window.
    pub max_requests_per_second: u64,
    pub faults_injected: InjectedFaults,
}

impl StatsSnapshot {
    /// ORM calls made to `model` with `method`.
    pub fn model_call_count(&self, model: &str, method: &str) -> u64 {
        self.model_calls
            .get(&format!("{model}/{method}"))
            .copied()
            .unwrap_or(0)
    }

    /// ORM calls over all models and methods.
    pub fn total_model_calls(&self) -> u64 {
        self.model_calls.values().sum()
    }
}

#[derive(Default)]
struct StatsState {
    snapshot: StatsSnapshot,
    window: VecDeque<Instant>,
}

/// Counters shared by every connection of one simulator.
#[derive(Default)]
pub struct RequestStats {
    state: Mutex<StatsState>,
}

const WINDOW: Duration = Duration::from_secs(1);

impl RequestStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatsState> {
        // Counters stay meaningful after a panic elsewhere; keep serving them.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one HTTP request to an Odoo surface.
    pub fn record_request(&self, endpoint: &str) {
        self.record_request_at(endpoint, Instant::now());
    }

    fn record_request_at(&self, endpoint: &str, now: Instant) {
        let mut state = self.lock();
        state.snapshot.total_requests += 1;
        *state
            .snapshot
            .requests_by_endpoint
            .entry(endpoint.to_string())
            .or_default() += 1;
        state.window.push_back(now);
        while let Some(oldest) = state.window.front() {
            if now.duration_since(*oldest) >= WINDOW {
                state.window.pop_front();
            } else {
                break;
            }
        }
        let in_window = state.window.len() as u64;
        if in_window > state.snapshot.max_requests_per_second {
            state.snapshot.max_requests_per_second = in_window;
        }
    }

    pub fn record_rpc_method(&self, name: &str) {
        *self
            .lock()
            .snapshot
            .rpc_methods
            .entry(name.to_string())
            .or_default() += 1;
    }

    pub fn record_model_call(&self, model: &str, method: &str) {
        *self
            .lock()
            .snapshot
            .model_calls
            .entry(format!("{model}/{method}"))
            .or_default() += 1;
    }

    pub fn record_fault(&self, update: impl FnOnce(&mut InjectedFaults)) {
        update(&mut self.lock().snapshot.faults_injected);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.lock().snapshot.clone()
    }

    pub fn reset(&self) {
        *self.lock() = StatsState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_keeps_the_busiest_second() {
        let stats = RequestStats::default();
        let start = Instant::now();
        for i in 0..5 {
            stats.record_request_at("jsonrpc", start + Duration::from_millis(100 * i));
        }
        // 1.2 s later the first five have left the window.
        for i in 0..3 {
            stats.record_request_at("json2", start + Duration::from_millis(1600 + 10 * i));
        }
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.total_requests, 8);
        assert_eq!(snapshot.max_requests_per_second, 5);
        assert_eq!(snapshot.requests_by_endpoint["jsonrpc"], 5);
        assert_eq!(snapshot.requests_by_endpoint["json2"], 3);
    }

    #[test]
    fn window_boundary_is_exclusive() {
        let stats = RequestStats::default();
        let start = Instant::now();
        stats.record_request_at("xmlrpc", start);
        stats.record_request_at("xmlrpc", start + WINDOW);
        assert_eq!(stats.snapshot().max_requests_per_second, 1);
    }

    #[test]
    fn model_calls_and_reset() {
        let stats = RequestStats::default();
        stats.record_model_call("res.partner", "search_read");
        stats.record_model_call("res.partner", "search_read");
        stats.record_model_call("res.partner", "create");
        stats.record_fault(|faults| faults.dropped_replies += 1);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.model_call_count("res.partner", "search_read"), 2);
        assert_eq!(snapshot.total_model_calls(), 3);
        assert_eq!(snapshot.faults_injected.dropped_replies, 1);
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
