//! Per-object background work of the controllers: one registry shape for the
//! scheduler's timers and scans, the supplier poll loops and the Odoo 16
//! change polls.
//!
//! Each entry belongs to one object, keyed by `(namespace, name)`, and holds
//! what runs for it (a [`Stoppable`]) beside whatever that work records. Stopping
//! an entry stops its work and keeps what it recorded (a last scan, a cursor);
//! forgetting it (the object was deleted) stops it and drops it.
//!
//! Maps that hold no running work keep their own shape: the per-rule locks of
//! `events`, the approval poll backoff counters and the Odoo client cache.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// `(namespace, name)` of an object.
pub type ObjectKey = (String, String);

/// Background work that can be told to stop.
pub trait Stoppable {
    /// Stops the work; what it recorded stays.
    fn stop(&mut self);
}

impl Stoppable for CancellationToken {
    fn stop(&mut self) {
        self.cancel();
    }
}

/// One entry per object, behind one mutex. A poisoned mutex is recovered:
/// every update leaves the map consistent, so a panicking holder loses
/// nothing the others depend on.
pub struct ObjectTasks<T> {
    entries: Mutex<HashMap<ObjectKey, T>>,
}

impl<T> Default for ObjectTasks<T> {
    fn default() -> Self {
        ObjectTasks {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    (namespace.to_string(), name.to_string())
}

impl<T: Stoppable> ObjectTasks<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectKey, T>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the object's entry, if it has one.
    pub fn with<R>(&self, namespace: &str, name: &str, f: impl FnOnce(Option<&mut T>) -> R) -> R {
        f(self.lock().get_mut(&key(namespace, name)))
    }

    /// Runs `f` on the object's entry, made empty first if it has none.
    pub fn with_entry<R>(&self, namespace: &str, name: &str, f: impl FnOnce(&mut T) -> R) -> R
    where
        T: Default,
    {
        f(self.lock().entry(key(namespace, name)).or_default())
    }

    /// Keeps the object's entry when `keep` says so; else replaces it with
    /// `start()` (the previous one stopped) and returns true.
    pub fn ensure(
        &self,
        namespace: &str,
        name: &str,
        keep: impl FnOnce(&T) -> bool,
        start: impl FnOnce() -> T,
    ) -> bool {
        let mut entries = self.lock();
        let key = key(namespace, name);
        if entries.get(&key).is_some_and(keep) {
            return false;
        }
        if let Some(mut previous) = entries.insert(key, start()) {
            previous.stop();
        }
        true
    }

    /// Stops the object's work; its entry stays.
    pub fn stop(&self, namespace: &str, name: &str) {
        self.with(namespace, name, |entry| entry.map(Stoppable::stop));
    }

    /// Runs `f` on every entry.
    pub fn for_each(&self, mut f: impl FnMut(&mut T)) {
        self.lock().values_mut().for_each(&mut f);
    }

    /// Stops every object's work (the controllers stop); entries stay.
    pub fn stop_all(&self) {
        self.for_each(Stoppable::stop);
    }

    /// Stops the object's work and drops its entry.
    pub fn forget(&self, namespace: &str, name: &str) {
        // Stopped outside the lock: stopping is quick, but need not be.
        let removed = self.lock().remove(&key(namespace, name));
        if let Some(mut entry) = removed {
            entry.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Work {
        token: Option<CancellationToken>,
        runs: u32,
    }

    impl Stoppable for Work {
        fn stop(&mut self) {
            if let Some(token) = self.token.take() {
                token.cancel();
            }
        }
    }

    fn running(token: &CancellationToken) -> Work {
        Work {
            token: Some(token.clone()),
            runs: 1,
        }
    }

    #[test]
    fn ensure_replaces_and_stops_the_previous_entry() {
        let tasks = ObjectTasks::<Work>::default();
        let first = CancellationToken::new();
        assert!(tasks.ensure("ns", "a", |_| false, || running(&first)));
        assert!(!tasks.ensure("ns", "a", |w| w.runs == 1, || unreachable!()));
        assert!(!first.is_cancelled());
        let second = CancellationToken::new();
        assert!(tasks.ensure("ns", "a", |_| false, || running(&second)));
        assert!(first.is_cancelled());
        assert!(!second.is_cancelled());
    }

    #[test]
    fn stop_keeps_the_entry_and_forget_drops_it() {
        let tasks = ObjectTasks::<Work>::default();
        let token = CancellationToken::new();
        tasks.ensure("ns", "a", |_| false, || running(&token));
        tasks.stop("ns", "a");
        assert!(token.is_cancelled());
        assert_eq!(tasks.with("ns", "a", |w| w.map(|w| w.runs)), Some(1));
        tasks.forget("ns", "a");
        assert!(tasks.with("ns", "a", |w| w.is_none()));
        // Other namespaces and names are other objects.
        tasks.with_entry("ns", "b", |w| w.runs = 2);
        assert!(tasks.with("other", "b", |w| w.is_none()));
    }

    #[test]
    fn stop_all_stops_every_entry() {
        let tasks = ObjectTasks::<Work>::default();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        tasks.ensure("ns", "a", |_| false, || running(&a));
        tasks.ensure("other", "b", |_| false, || running(&b));
        tasks.stop_all();
        assert!(a.is_cancelled() && b.is_cancelled());
        let mut left = 0;
        tasks.for_each(|_| left += 1);
        assert_eq!(left, 2);
    }

    #[test]
    fn a_poisoned_registry_still_answers() {
        let tasks = std::sync::Arc::new(ObjectTasks::<Work>::default());
        let held = tasks.clone();
        let _ = std::thread::spawn(move || {
            held.with_entry("ns", "a", |w| {
                w.runs = 3;
                panic!("holder panics");
            })
        })
        .join();
        assert_eq!(tasks.with("ns", "a", |w| w.map(|w| w.runs)), Some(3));
    }
}
