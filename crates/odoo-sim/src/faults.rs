//! Fault injection for the simulator: latency, transient errors, outages,
//! serialization failures and "committed but the reply was lost".
//!
//! Decisions are drawn from a seeded generator so that a test issuing calls
//! one after another sees the same sequence of faults on every run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// The faults to inject, as set from the CLI, the admin endpoint or in-process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Delay added before every RPC request is handled.
    pub latency_ms: u64,
    /// Share of requests (0..=1) answered `503 Service Unavailable`, as a
    /// reverse proxy in front of an overloaded Odoo does.
    pub error_rate: f64,
    /// Share of ORM calls (0..=1) that fail with PostgreSQL's serialization
    /// failure after Odoo's own retries, before anything is written.
    pub serialization_failure_rate: f64,
    /// Share of ORM calls (0..=1) that are executed and committed, after which
    /// the connection is closed without a reply.
    pub drop_reply_rate: f64,
    /// On 17 and 18, how long an ORM call whose automation rules sent
    /// webhooks stays uncommitted after its last POST (the rest of Odoo's
    /// request: more rules, mail, computes). Other callers keep reading the
    /// values from before the call meanwhile.
    pub webhook_commit_delay_ms: u64,
    /// Start an outage of this many seconds when the configuration is applied.
    pub outage_seconds: Option<u64>,
    /// Start an outage that lasts until the faults are set again.
    pub outage_until_cleared: bool,
    /// Seed of the fault generator; reseeded each time a configuration carrying
    /// a seed is applied.
    pub seed: Option<u64>,
}

/// Why a fault configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultConfigError {
    #[error("{field} must be between 0 and 1, got {value}")]
    RateOutOfRange { field: &'static str, value: f64 },
    #[error("outage_seconds and outage_until_cleared are mutually exclusive")]
    ConflictingOutage,
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (field, value) in [
            ("error_rate", self.error_rate),
            (
                "serialization_failure_rate",
                self.serialization_failure_rate,
            ),
            ("drop_reply_rate", self.drop_reply_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultConfigError::RateOutOfRange { field, value });
            }
        }
        if self.outage_seconds.is_some() && self.outage_until_cleared {
            return Err(FaultConfigError::ConflictingOutage);
        }
        Ok(())
    }
}

/// The active configuration plus the state of a running outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultStatus {
    pub config: FaultConfig,
    pub outage_active: bool,
    /// Seconds left in a timed outage; `None` when there is none or it lasts until cleared.
    pub outage_remaining_seconds: Option<f64>,
}

/// What happens to an incoming request before it reaches a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// Close the connection without an answer.
    Outage,
    /// Answer `503 Service Unavailable`.
    Unavailable,
    /// Handle it, after waiting this long.
    Proceed { latency: Duration },
}

/// What happens to one ORM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    /// Fail with a serialization failure, executing nothing.
    SerializationFailure,
    /// Execute it; when `drop_reply`, close the connection instead of answering.
    Proceed { drop_reply: bool },
}

#[derive(Debug, Clone, Copy)]
enum Outage {
    None,
    Until(Instant),
    UntilCleared,
}

struct FaultState {
    config: FaultConfig,
    outage: Outage,
    rng: StdRng,
}

/// Thread-safe holder of the fault configuration and its random generator.
pub struct FaultInjector {
    state: Mutex<FaultState>,
}

/// Seed used when no configuration ever supplied one, so runs stay reproducible.
const DEFAULT_FAULT_SEED: u64 = 0x0d00_5eed;

impl FaultInjector {
    pub fn new(config: FaultConfig) -> Result<FaultInjector, FaultConfigError> {
        let injector = FaultInjector {
            state: Mutex::new(FaultState {
                config: FaultConfig::default(),
                outage: Outage::None,
                rng: StdRng::seed_from_u64(DEFAULT_FAULT_SEED),
            }),
        };
        injector.set(config)?;
        Ok(injector)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic while holding this lock cannot leave the state inconsistent
        // (every update is a plain assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the configuration. An outage in the new configuration starts now;
    /// a configuration without one ends any running outage.
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        config.validate()?;
        let mut state = self.lock();
        state.outage = match (config.outage_seconds, config.outage_until_cleared) {
            (Some(seconds), _) => Outage::Until(Instant::now() + Duration::from_secs(seconds)),
            (None, true) => Outage::UntilCleared,
            (None, false) => Outage::None,
        };
        if let Some(seed) = config.seed {
            state.rng = StdRng::seed_from_u64(seed);
        }
        state.config = config;
        Ok(())
    }

    pub fn status(&self) -> FaultStatus {
        let state = self.lock();
        let now = Instant::now();
        let (active, remaining) = match state.outage {
            Outage::None => (false, None),
            Outage::UntilCleared => (true, None),
            Outage::Until(end) if end > now => (true, Some((end - now).as_secs_f64())),
            Outage::Until(_) => (false, None),
        };
        FaultStatus {
            config: state.config.clone(),
            outage_active: active,
            outage_remaining_seconds: remaining,
        }
    }

    /// Decides the fate of one incoming request.
    pub fn before_request(&self) -> RequestFault {
        let mut state = self.lock();
        let in_outage = match state.outage {
            Outage::None => false,
            Outage::UntilCleared => true,
            Outage::Until(end) => Instant::now() < end,
        };
        if in_outage {
            return RequestFault::Outage;
        }
        let error_rate = state.config.error_rate;
        if draw(&mut state.rng, error_rate) {
            return RequestFault::Unavailable;
        }
        RequestFault::Proceed {
            latency: Duration::from_millis(state.config.latency_ms),
        }
    }

    /// See [`FaultConfig::webhook_commit_delay_ms`].
    pub fn webhook_commit_delay(&self) -> Duration {
        Duration::from_millis(self.lock().config.webhook_commit_delay_ms)
    }

    /// Decides the fate of one ORM call.
    pub fn before_call(&self) -> CallFault {
        let mut state = self.lock();
        let serialization = state.config.serialization_failure_rate;
        let drop_reply = state.config.drop_reply_rate;
        if draw(&mut state.rng, serialization) {
            return CallFault::SerializationFailure;
        }
        CallFault::Proceed {
            drop_reply: draw(&mut state.rng, drop_reply),
        }
    }
}

/// Draws even when the rate is 0 or 1 so that changing one rate does not shift
/// the sequence seen by the others.
fn draw(rng: &mut StdRng, rate: f64) -> bool {
    let sample: f64 = rng.random();
    sample < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_outside_unit_interval_are_refused() {
        let config = FaultConfig {
            error_rate: 1.5,
            ..FaultConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(FaultConfigError::RateOutOfRange {
                field: "error_rate",
                value: 1.5
            })
        );
        let both = FaultConfig {
            outage_seconds: Some(3),
            outage_until_cleared: true,
            ..FaultConfig::default()
        };
        assert_eq!(both.validate(), Err(FaultConfigError::ConflictingOutage));
    }

    #[test]
    fn no_faults_by_default() {
        let injector = FaultInjector::new(FaultConfig::default()).unwrap();
        for _ in 0..1000 {
            assert_eq!(
                injector.before_request(),
                RequestFault::Proceed {
                    latency: Duration::ZERO
                }
            );
            assert_eq!(
                injector.before_call(),
                CallFault::Proceed { drop_reply: false }
            );
        }
    }

    #[test]
    fn error_rate_is_roughly_honoured_and_reproducible() {
        let config = FaultConfig {
            error_rate: 0.3,
            seed: Some(42),
            ..FaultConfig::default()
        };
        let run = || {
            let injector = FaultInjector::new(config.clone()).unwrap();
            (0..2000)
                .map(|_| injector.before_request() == RequestFault::Unavailable)
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let failures = first.iter().filter(|failed| **failed).count();
        assert!((500..700).contains(&failures), "{failures} of 2000");
    }

    #[test]
    fn outage_until_cleared_ends_when_faults_are_set_again() {
        let injector = FaultInjector::new(FaultConfig {
            outage_until_cleared: true,
            ..FaultConfig::default()
        })
        .unwrap();
        assert_eq!(injector.before_request(), RequestFault::Outage);
        assert!(injector.status().outage_active);
        injector.set(FaultConfig::default()).unwrap();
        assert!(!injector.status().outage_active);
        assert!(matches!(
            injector.before_request(),
            RequestFault::Proceed { .. }
        ));
    }

    #[test]
    fn timed_outage_reports_remaining_time() {
        let injector = FaultInjector::new(FaultConfig {
            outage_seconds: Some(600),
            ..FaultConfig::default()
        })
        .unwrap();
        let status = injector.status();
        assert!(status.outage_active);
        let remaining = status.outage_remaining_seconds.unwrap();
        assert!(remaining > 0.0 && remaining <= 600.0);
    }

    #[test]
    fn serialization_failures_and_dropped_replies_follow_their_rates() {
        let injector = FaultInjector::new(FaultConfig {
            serialization_failure_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
        assert_eq!(injector.before_call(), CallFault::SerializationFailure);
        injector
            .set(FaultConfig {
                drop_reply_rate: 1.0,
                ..FaultConfig::default()
            })
            .unwrap();
        assert_eq!(
            injector.before_call(),
            CallFault::Proceed { drop_reply: true }
        );
    }
}
