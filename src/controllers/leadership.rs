//! Leader election, and the term of office it grants.
//!
//! A replica acts (scans, polls, writes to Odoo) only during a term. A term
//! begins when this replica holds the Lease and ends when it stops holding it,
//! as its lease manager reports, or when its own last renewal is about to
//! expire. The second case matters: a replica cut off from the API server
//! (but not from Odoo) never hears that it lost the Lease, while a standby
//! takes it as soon as it expires. So the leader steps down on its own clock,
//! before the Lease can expire, from the renewals it has seen land.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Controllers, GatewayPod, OperatorArgs, run_controllers};

/// The current term: every piece of background work of the controllers (rule
/// timers, scans, supplier polls, change polls) runs under a child of its
/// token, so ending the term stops all of it at once, and work started after
/// the term ended (by a reconcile still in flight) never runs.
pub struct Term {
    current: Mutex<CancellationToken>,
}

impl Default for Term {
    /// No term yet: work started now is stopped from the outset.
    fn default() -> Self {
        let none = CancellationToken::new();
        none.cancel();
        Term {
            current: Mutex::new(none),
        }
    }
}

impl Term {
    fn lock(&self) -> MutexGuard<'_, CancellationToken> {
        // A token is replaced whole; a panicking holder leaves nothing half-done.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Begins a term that also ends with `parent` (the process's shutdown).
    pub fn begin(&self, parent: &CancellationToken) -> CancellationToken {
        let token = parent.child_token();
        let previous = std::mem::replace(&mut *self.lock(), token.clone());
        previous.cancel();
        token
    }

    /// Ends the current term: its work stops at once.
    pub fn end(&self) {
        self.lock().cancel();
    }

    /// A stop switch for work of the current term.
    pub fn work(&self) -> CancellationToken {
        self.lock().child_token()
    }
}

/// Until when the Lease is ours, from the renewals seen on the API server:
/// the last `renewTime` under our identity plus the Lease duration. `None`
/// while another identity (or nobody) holds it.
fn held_until(lease: &Lease, identity: &str) -> Option<SystemTime> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let duration = u64::try_from(spec.lease_duration_seconds?).ok()?;
    let renewed = SystemTime::from(renewed.0);
    renewed.checked_add(Duration::from_secs(duration))
}

/// Watches the one Lease and publishes [`held_until`] until the task is
/// aborted. The watch restarts on its own after an outage; while it is down,
/// nothing new is published, so the deadline from before the outage stands.
fn watch_lease(
    client: &Client,
    namespace: &str,
    name: &str,
    identity: &str,
) -> (
    watch::Receiver<Option<SystemTime>>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, receiver) = watch::channel(None);
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let identity = identity.to_string();
    let events = watcher(api, config).default_backoff();
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        loop {
            let held = match events.next().await {
                None => return,
                Some(Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease))) => {
                    held_until(&lease, &identity)
                }
                Some(Ok(watcher::Event::Delete(_))) => None,
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => continue,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "watching the leader Lease");
                    continue;
                }
            };
            sender.send_replace(held);
        }
    });
    (receiver, task)
}

/// How long before the Lease would expire the leader stops acting when it
/// has not seen a renewal land: room for its work to stop and for the clocks
/// of the replicas to differ a little.
fn step_down_margin(duration: Duration, grace: Duration) -> Duration {
    // Renewals start `grace` before expiry; the margin takes at most half of
    // that, so a renewal slowed by a loaded API server still lands in time.
    (grace / 2)
        .min(Duration::from_secs(2))
        .max(Duration::from_millis(500))
        .min(duration / 2)
}

/// A replica's run under leader election: the controllers run while it holds
/// the Lease and has seen its renewals land in time.
pub(super) async fn run_with_leader_election(
    args: &OperatorArgs,
    identity: &str,
    controllers: Arc<Controllers>,
    scopes: Vec<Option<String>>,
    gateway_pod: &GatewayPod,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let duration_seconds = args.lease_duration_seconds.max(3);
    let grace_seconds = (duration_seconds / 3).max(1);
    let client = controllers.core.client.clone();
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(identity)
        .with_duration(duration_seconds)
        .with_grace(grace_seconds)
        .build()
        .await
        .context("setting up leader election")?;
    let margin = step_down_margin(
        Duration::from_secs(duration_seconds),
        Duration::from_secs(grace_seconds),
    );
    let (mut held, lease_watch) =
        watch_lease(&client, &args.lease_namespace, &args.lease_name, identity);
    let (mut is_leader, lease_task) = manager.watch().await;
    let mut leading: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let holder = *is_leader.borrow_and_update();
        let act_until = held
            .borrow_and_update()
            .and_then(|until| until.checked_sub(margin));
        let in_time = act_until.is_some_and(|until| SystemTime::now() < until);
        match (holder && in_time, leading.is_some()) {
            (true, false) => {
                tracing::info!(identity, "holding the leader lease; starting controllers");
                controllers.core.metrics.leader.set(1);
                let term = controllers.core.term.begin(&shutdown);
                leading = Some(tokio::spawn(run_controllers(
                    controllers.clone(),
                    scopes.clone(),
                    args.concurrency,
                    term,
                )));
                gateway_pod.set(true).await;
            }
            (false, true) => {
                if holder {
                    tracing::warn!(
                        identity,
                        "no renewal of the leader lease landed in time (is the API server reachable?); stopping controllers before the lease can expire"
                    );
                } else {
                    tracing::warn!(identity, "lost the leader lease; stopping controllers");
                }
                step_down(&controllers, leading.take(), gateway_pod).await;
            }
            _ => {}
        }
        // While leading, wake up at the step-down point unless a renewal moves it.
        let step_down_at = act_until.filter(|_| leading.is_some()).map(|until| {
            let left = until.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::Instant::now() + left
        });
        tokio::select! {
            changed = is_leader.changed() => {
                if changed.is_err() {
                    anyhow::bail!("leader election stopped unexpectedly");
                }
            }
            changed = held.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the watch on the leader Lease stopped unexpectedly");
                }
            }
            _ = sleep_until(step_down_at) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    step_down(&controllers, leading.take(), gateway_pod).await;
    lease_watch.abort();
    // Closing the channel makes the lease manager release the Lease, so a
    // standby takes over at once instead of waiting for expiry.
    drop(is_leader);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "could not release the leader lease"),
        Ok(Err(err)) => tracing::warn!(error = %err, "leader election task failed"),
        Err(_) => tracing::warn!("timed out releasing the leader lease"),
    }
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long the controllers get to finish their reconciles after the term
/// ended; past it they are dropped. Their Odoo work is already stopped.
const CONTROLLERS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Ends the term first, so scans and polls stop at once even when the API
/// server does not answer, then stops the controllers and the Pod label.
async fn step_down(
    controllers: &Controllers,
    running: Option<tokio::task::JoinHandle<()>>,
    gateway_pod: &GatewayPod,
) {
    controllers.core.term.end();
    controllers.core.metrics.leader.set(0);
    controllers.stand_by();
    let Some(mut task) = running else {
        return;
    };
    if tokio::time::timeout(CONTROLLERS_STOP_TIMEOUT, &mut task)
        .await
        .is_err()
    {
        tracing::warn!("controllers did not stop in time (API server unreachable?); dropping them");
        task.abort();
        let _ = task.await;
    }
    // Reconciles that were still running may have started work; the term had
    // ended, so it never ran, but its entries are stopped for tidiness.
    controllers.stand_by();
    gateway_pod.set(false).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed: jiff::Timestamp, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn the_lease_is_held_until_the_last_renewal_plus_its_duration() {
        let renewed = jiff::Timestamp::from_second(1_000_000).expect("a timestamp");
        let until = held_until(&lease(Some("a"), renewed, 15), "a");
        assert_eq!(
            until,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_015))
        );
        assert_eq!(held_until(&lease(Some("b"), renewed, 15), "a"), None);
        assert_eq!(held_until(&lease(None, renewed, 15), "a"), None);
        assert_eq!(held_until(&Lease::default(), "a"), None);
    }

    #[test]
    fn the_step_down_margin_is_half_the_grace_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(step_down_margin(s(15), s(5)), s(2));
        assert_eq!(step_down_margin(s(60), s(20)), s(2));
        assert_eq!(step_down_margin(s(6), s(2)), s(1));
        assert_eq!(step_down_margin(s(3), s(1)), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn ending_a_term_stops_its_work_and_work_started_after_never_runs() {
        let term = Term::default();
        assert!(term.work().is_cancelled(), "no term has begun");
        let shutdown = CancellationToken::new();
        let token = term.begin(&shutdown);
        let scan = term.work();
        assert!(!scan.is_cancelled());
        term.end();
        assert!(token.is_cancelled() && scan.is_cancelled());
        assert!(term.work().is_cancelled(), "started after the term ended");

        let next = term.begin(&shutdown);
        let poll = term.work();
        shutdown.cancel();
        assert!(next.is_cancelled() && poll.is_cancelled());
    }
}
