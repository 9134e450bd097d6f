//! Per-connection request limits: a steady rate with a burst, a
//! calls-per-minute budget and a bound on requests in flight. One
//! [`RequestLimiter`] is shared (through `Arc`) by every clone of a client,
//! so all scans, actions and probes of a connection draw from the same limits.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::RateLimitConfig;
use super::error::OdooError;

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

pub struct RequestLimiter {
    rate: Direct,
    per_minute: Option<Direct>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for RequestLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimiter")
            .field("available_in_flight", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

/// Held while one request is in flight.
#[derive(Debug)]
pub struct RequestPermit {
    _in_flight: OwnedSemaphorePermit,
}

impl RequestLimiter {
    pub fn new(cfg: &RateLimitConfig) -> Result<RequestLimiter, OdooError> {
        if !(cfg.rps.is_finite() && cfg.rps > 0.0) {
            return Err(OdooError::config(format!(
                "rate limit rps must be a positive number, got {}",
                cfg.rps
            )));
        }
        let burst = NonZeroU32::new(cfg.burst)
            .ok_or_else(|| OdooError::config("rate limit burst must be at least 1"))?;
        if cfg.max_concurrent == 0 {
            return Err(OdooError::config("max_concurrent must be at least 1"));
        }
        let period = Duration::from_secs_f64(1.0 / cfg.rps);
        let rate_quota = Quota::with_period(period)
            .ok_or_else(|| OdooError::config(format!("rps {} is too high", cfg.rps)))?
            .allow_burst(burst);
        let per_minute = match cfg.calls_per_minute {
            None => None,
            Some(n) => {
                let n = NonZeroU32::new(n)
                    .ok_or_else(|| OdooError::config("calls_per_minute must be at least 1"))?;
                Some(RateLimiter::direct(Quota::per_minute(n)))
            }
        };
        let in_flight = usize::try_from(cfg.max_concurrent).unwrap_or(usize::MAX);
        Ok(RequestLimiter {
            rate: RateLimiter::direct(rate_quota),
            per_minute,
            in_flight: Arc::new(Semaphore::new(in_flight)),
        })
    }

    /// Waits until one more request may be sent.
    pub async fn acquire(&self) -> Result<RequestPermit, OdooError> {
        // Take the concurrency slot first: a request that waits for a slot
        // must not consume rate tokens it cannot use yet.
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| OdooError::config("request limiter closed"))?;
        if let Some(per_minute) = &self.per_minute {
            per_minute.until_ready().await;
        }
        self.rate.until_ready().await;
        Ok(RequestPermit { _in_flight: permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rps: f64, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            rps,
            burst,
            max_concurrent: 2,
            calls_per_minute: None,
        }
    }

    #[test]
    fn rejects_unusable_settings() {
        assert!(RequestLimiter::new(&cfg(0.0, 1)).is_err());
        assert!(RequestLimiter::new(&cfg(f64::NAN, 1)).is_err());
        assert!(RequestLimiter::new(&cfg(5.0, 0)).is_err());
        let mut c = cfg(5.0, 1);
        c.max_concurrent = 0;
        assert!(RequestLimiter::new(&c).is_err());
        c.max_concurrent = 1;
        c.calls_per_minute = Some(0);
        assert!(RequestLimiter::new(&c).is_err());
        assert!(RequestLimiter::new(&cfg(0.5, 1)).is_ok());
    }

    #[test]
    fn burst_passes_and_the_next_request_must_wait() {
        let limiter = RequestLimiter::new(&cfg(1.0, 3)).unwrap();
        for _ in 0..3 {
            assert!(limiter.rate.check().is_ok());
        }
        assert!(limiter.rate.check().is_err());
    }

    #[test]
    fn per_minute_budget_is_enforced() {
        let mut c = cfg(1000.0, 1000);
        c.calls_per_minute = Some(5);
        let limiter = RequestLimiter::new(&c).unwrap();
        let per_minute = limiter.per_minute.as_ref().unwrap();
        for _ in 0..5 {
            assert!(per_minute.check().is_ok());
        }
        assert!(per_minute.check().is_err());
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let limiter = RequestLimiter::new(&cfg(1000.0, 1000)).unwrap();
        let a = limiter.acquire().await.unwrap();
        let _b = limiter.acquire().await.unwrap();
        assert_eq!(limiter.in_flight.available_permits(), 0);
        drop(a);
        assert_eq!(limiter.in_flight.available_permits(), 1);
    }
}
