//! When and how long to wait before repeating a failed call.
//!
//! Only transient failures are retried. A call that is not idempotent (a
//! plain `create`, a button) is retried only when Odoo cannot have committed
//! it (unreachable, rate limited, rolled back on a serialization conflict):
//! after a timeout or a reset the first attempt may have been applied, and a
//! retry would apply it twice.

use std::time::Duration;

use rand::{Rng, RngExt};

use super::config::RetryConfig;
use super::error::{OdooError, TransientKind};

/// Whether a call may be repeated after `err`.
pub fn is_retryable(err: &OdooError, idempotent: bool) -> bool {
    match err.transient_kind() {
        None => false,
        Some(kind) => idempotent || !kind.may_have_committed(),
    }
}

/// Backoff before retry number `retry` (0 for the first retry): "equal
/// jitter" over an exponentially growing cap, so that clients that failed
/// together do not come back together, yet never retry at once.
pub fn backoff_delay(cfg: &RetryConfig, retry: u32, rng: &mut impl Rng) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(31));
    let cap = cfg
        .initial_backoff
        .saturating_mul(factor)
        .min(cfg.max_backoff);
    let half = cap / 2;
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if jitter_nanos == 0 {
        0
    } else {
        rng.random_range(0..=jitter_nanos)
    };
    half + Duration::from_nanos(jitter)
}

/// Decides about the next attempt of one call.
#[derive(Debug)]
pub struct RetryPolicy<'a> {
    cfg: &'a RetryConfig,
    idempotent: bool,
    attempts: u32,
}

impl<'a> RetryPolicy<'a> {
    pub fn new(cfg: &'a RetryConfig, idempotent: bool) -> RetryPolicy<'a> {
        RetryPolicy {
            cfg,
            idempotent,
            attempts: 0,
        }
    }

    /// Counts an attempt that is about to be made.
    pub fn record_attempt(&mut self) {
        self.attempts += 1;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt, or `None` to give up with `err`.
    /// `elapsed` is the time spent on this call so far.
    pub fn next_delay(
        &self,
        err: &OdooError,
        elapsed: Duration,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if !is_retryable(err, self.idempotent) || self.attempts >= self.cfg.max_attempts {
            return None;
        }
        let mut delay = backoff_delay(self.cfg, self.attempts.saturating_sub(1), rng);
        if let Some(TransientKind::RateLimited {
            retry_after: Some(after),
        }) = err.transient_kind()
        {
            delay = delay.max(after);
        }
        (elapsed.saturating_add(delay) <= self.cfg.budget).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn cfg() -> RetryConfig {
        RetryConfig {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            budget: Duration::from_secs(30),
        }
    }

    fn transient(kind: TransientKind) -> OdooError {
        OdooError::transient(kind, "x")
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds_and_is_capped() {
        let cfg = cfg();
        let mut rng = StdRng::seed_from_u64(1);
        for retry in 0..10u32 {
            let cap = (Duration::from_millis(100) * 2u32.pow(retry)).min(Duration::from_secs(1));
            for _ in 0..200 {
                let d = backoff_delay(&cfg, retry, &mut rng);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "retry {retry}: {d:?} not in [{:?}, {cap:?}]",
                    cap / 2
                );
            }
        }
        // Huge retry numbers saturate instead of overflowing.
        assert!(backoff_delay(&cfg, u32::MAX, &mut rng) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let cfg = cfg();
        let mut rng = StdRng::seed_from_u64(2);
        let delays: std::collections::BTreeSet<_> =
            (0..50).map(|_| backoff_delay(&cfg, 3, &mut rng)).collect();
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
    }

    #[test]
    fn permanent_errors_are_never_retried() {
        let cfg = cfg();
        let mut policy = RetryPolicy::new(&cfg, true);
        policy.record_attempt();
        let err = OdooError::new(ErrorKind::Access {
            name: "odoo.exceptions.AccessError".into(),
            message: "no".into(),
        });
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(policy.next_delay(&err, Duration::ZERO, &mut rng), None);
    }

    #[test]
    fn non_idempotent_calls_retry_only_when_nothing_was_committed() {
        assert!(is_retryable(&transient(TransientKind::Unreachable), false));
        assert!(is_retryable(
            &transient(TransientKind::SerializationFailure),
            false
        ));
        assert!(!is_retryable(&transient(TransientKind::Timeout), false));
        assert!(!is_retryable(
            &transient(TransientKind::ConnectionReset),
            false
        ));
        assert!(is_retryable(&transient(TransientKind::Timeout), true));
    }

    #[test]
    fn attempts_and_budget_bound_the_retries() {
        let cfg = cfg();
        let mut rng = StdRng::seed_from_u64(4);
        let err = transient(TransientKind::Http5xx { status: 502 });
        let mut policy = RetryPolicy::new(&cfg, true);
        let mut retries = 0;
        loop {
            policy.record_attempt();
            match policy.next_delay(&err, Duration::ZERO, &mut rng) {
                Some(_) => retries += 1,
                None => break,
            }
        }
        assert_eq!(retries, cfg.max_attempts - 1);

        let mut policy = RetryPolicy::new(&cfg, true);
        policy.record_attempt();
        assert_eq!(
            policy.next_delay(&err, Duration::from_secs(30), &mut rng),
            None
        );
        assert!(
            policy
                .next_delay(&err, Duration::from_secs(29), &mut rng)
                .is_some()
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let cfg = cfg();
        let mut rng = StdRng::seed_from_u64(5);
        let err = transient(TransientKind::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
        });
        let mut policy = RetryPolicy::new(&cfg, false);
        policy.record_attempt();
        assert_eq!(
            policy.next_delay(&err, Duration::ZERO, &mut rng),
            Some(Duration::from_secs(5))
        );
        // A Retry-After beyond the budget means giving up now.
        assert_eq!(
            policy.next_delay(&err, Duration::from_secs(26), &mut rng),
            None
        );
    }
}
