//! Which events a route has seen: bounded memory of event ids.
//!
//! An id is `Pending` from the moment a request claims it until its handler
//! finishes. Success turns it into `Done` (kept for the TTL, evicted oldest
//! first beyond the capacity); failure forgets it, so the sender's retry runs
//! the handler again. Pending entries are never evicted: they are bounded by
//! the requests in flight and the hint queue.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Queued (hint routes) or being handled.
    Pending,
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    since: Instant,
}

/// What a route should do with an incoming id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// First time (or the earlier attempt failed): handle it.
    New,
    /// The same id is being handled right now.
    Pending,
    /// Handled successfully within the TTL.
    Done,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Done ids in completion order, for TTL and capacity eviction. An item
    /// whose `since` differs from the map's entry is stale and skipped.
    done_order: VecDeque<(String, Instant)>,
    done_count: usize,
}

pub(crate) struct Dedup {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Dedup {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Dedup {
        Dedup {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Looks `id` up and, when it is new, marks it pending.
    pub(crate) fn claim(&self, id: &str, now: Instant) -> Claim {
        let mut inner = self.lock();
        self.evict(&mut inner, now);
        match inner.entries.get(id) {
            Some(entry) if entry.state == State::Pending => Claim::Pending,
            Some(entry) if now.duration_since(entry.since) < self.ttl => Claim::Done,
            _ => {
                if let Some(old) = inner.entries.insert(
                    id.to_string(),
                    Entry {
                        state: State::Pending,
                        since: now,
                    },
                ) && old.state == State::Done
                {
                    inner.done_count -= 1;
                }
                Claim::New
            }
        }
    }

    /// The handler succeeded: remember `id` as done.
    pub(crate) fn complete(&self, id: &str, now: Instant) {
        let mut inner = self.lock();
        let previous = inner.entries.insert(
            id.to_string(),
            Entry {
                state: State::Done,
                since: now,
            },
        );
        if previous.is_none_or(|e| e.state != State::Done) {
            inner.done_count += 1;
        }
        inner.done_order.push_back((id.to_string(), now));
        self.evict(&mut inner, now);
    }

    /// The attempt failed (or was dropped): forget `id` so a retry runs again.
    pub(crate) fn release(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get(id)
            && entry.state == State::Pending
        {
            inner.entries.remove(id);
        }
    }

    fn evict(&self, inner: &mut Inner, now: Instant) {
        while let Some((id, since)) = inner.done_order.front().cloned() {
            let current = inner
                .entries
                .get(&id)
                .is_some_and(|e| e.state == State::Done && e.since == since);
            let expired = now.duration_since(since) >= self.ttl;
            if !current {
                inner.done_order.pop_front();
                continue;
            }
            if expired || inner.done_count > self.capacity {
                inner.done_order.pop_front();
                inner.entries.remove(&id);
                inner.done_count -= 1;
                continue;
            }
            break;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_then_done_then_expired() {
        let d = Dedup::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        assert_eq!(d.claim("a", t0), Claim::New);
        assert_eq!(d.claim("a", t0), Claim::Pending);
        d.complete("a", t0);
        assert_eq!(d.claim("a", t0 + Duration::from_secs(9)), Claim::Done);
        assert_eq!(d.claim("a", t0 + Duration::from_secs(10)), Claim::New);
    }

    #[test]
    fn failed_attempts_are_forgotten() {
        let d = Dedup::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        assert_eq!(d.claim("a", t0), Claim::New);
        d.release("a");
        assert_eq!(d.claim("a", t0), Claim::New);
        d.complete("a", t0);
        // Releasing a done id (a late, unrelated failure) keeps it done.
        d.release("a");
        assert_eq!(d.claim("a", t0), Claim::Done);
    }

    #[test]
    fn capacity_evicts_oldest_done_first() {
        let d = Dedup::new(Duration::from_secs(3600), 3);
        let t0 = Instant::now();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64);
            assert_eq!(d.claim(id, at), Claim::New);
            d.complete(id, at);
        }
        assert_eq!(d.len(), 3);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(d.claim("b", later), Claim::Done);
        assert_eq!(d.claim("d", later), Claim::Done);
        assert_eq!(d.claim("a", later), Claim::New);
    }

    #[test]
    fn memory_stays_bounded_under_many_ids() {
        let d = Dedup::new(Duration::from_secs(3600), 1000);
        let t0 = Instant::now();
        for i in 0..10_000 {
            let id = format!("id-{i}");
            d.claim(&id, t0);
            d.complete(&id, t0);
        }
        assert_eq!(d.len(), 1000);
        assert!(d.lock().done_order.len() <= 1000);
    }
}
