//! Leader election, and the term of office it grants.
//!
//! A replica acts (scans, polls, writes to Odoo) only during a term. A term
//! begins when this replica holds the Lease and ends when it stops holding it,
//! as its lease manager reports, or when its own last renewal is about to
//! expire. The second case matters: a replica cut off from the API server
//! (but not from Odoo) never hears that it lost the Lease, while a standby
//! takes it as soon as it expires. So the leader steps down on its own clock,
//! before the Lease can expire, from the renewals it has seen land.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::shards::{self, Shard};
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

/// One [`Term`] per shard (one in all when the operator is not sharded).
/// Every term that begins or ends is announced, so the controllers reconcile
/// the shard's objects: to take them up, or to drop what ran for them.
pub struct Terms {
    shards: Vec<Term>,
    changes: broadcast::Sender<Shard>,
}

impl Terms {
    pub fn new(count: u32) -> Terms {
        let count = count.max(1);
        let (changes, _) =
            broadcast::channel(usize::try_from(count).unwrap_or(1024).clamp(16, 1024));
        Terms {
            shards: (0..count).map(|_| Term::default()).collect(),
            changes,
        }
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        u32::try_from(self.shards.len()).unwrap_or(u32::MAX)
    }

    fn term(&self, shard: Shard) -> Option<&Term> {
        self.shards.get(usize::try_from(shard).ok()?)
    }

    /// Begins `shard`'s term; it also ends with `parent`.
    pub fn begin(&self, shard: Shard, parent: &CancellationToken) -> CancellationToken {
        let token = match self.term(shard) {
            Some(term) => term.begin(parent),
            None => CancellationToken::new(),
        };
        let _ = self.changes.send(shard);
        token
    }

    /// Begins every shard's term: one replica acting on everything.
    pub fn begin_all(&self, parent: &CancellationToken) {
        for shard in 0..self.count() {
            self.begin(shard, parent);
        }
    }

    /// Ends `shard`'s term: its work stops at once.
    pub fn end(&self, shard: Shard) {
        if let Some(term) = self.term(shard) {
            term.end();
        }
        let _ = self.changes.send(shard);
    }

    pub fn end_all(&self) {
        for shard in 0..self.count() {
            self.end(shard);
        }
    }

    /// A stop switch for work on an object of `shard`: already stopped when
    /// this replica does not hold the shard.
    pub fn work(&self, shard: Shard) -> CancellationToken {
        match self.term(shard) {
            Some(term) => term.work(),
            None => {
                let stopped = CancellationToken::new();
                stopped.cancel();
                stopped
            }
        }
    }

    /// Whether this replica is in `shard`'s term now.
    pub fn holds(&self, shard: Shard) -> bool {
        !self.work(shard).is_cancelled()
    }

    /// The shards whose term began or ended, from now on.
    pub fn changes(&self) -> broadcast::Receiver<Shard> {
        self.changes.subscribe()
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

/// The Lease duration and the renewal grace, in seconds: a Lease of at least
/// 3 s, renewed a third of it before it expires.
fn lease_timing(args: &OperatorArgs) -> (u64, u64) {
    let duration = args.lease_duration_seconds.max(3);
    (duration, (duration / 3).max(1))
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
    let (duration_seconds, grace_seconds) = lease_timing(args);
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
                let term = controllers.core.terms.begin(0, &shutdown);
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
    controllers.core.terms.end_all();
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

/// Labels tying a sharded operator's Leases together, so one list finds
/// its members and shards.
const LEASE_GROUP_LABEL: &str = "planops.io/lease-group";
const LEASE_ROLE_LABEL: &str = "planops.io/lease-role";
const ROLE_MEMBER: &str = "member";
const ROLE_SHARD: &str = "shard";
/// How many Lease durations a membership Lease stays unchanged before any
/// replica deletes it as a dead replica's.
const MEMBER_GONE_AFTER_DURATIONS: u32 = 10;
/// The `--shards` of the replica that wrote a Lease.
const SHARDS_ANNOTATION: &str = "planops.io/shards";

/// The share of `shards` each of `members` live replicas holds at most.
fn fair_share(shards: u32, members: usize) -> usize {
    let members = members.max(1);
    usize::try_from(shards)
        .unwrap_or(usize::MAX)
        .div_ceil(members)
}

/// The shards a replica holds beyond its fair share, highest first: the ones
/// it gives up when replicas join.
fn over_share(held: &BTreeMap<Shard, Instant>, fair: usize) -> Vec<Shard> {
    held.keys()
        .rev()
        .take(held.len().saturating_sub(fair))
        .copied()
        .collect()
}

/// When a Lease was last seen to change, by this replica's clock. A Lease
/// counts as expired when it has not changed for its duration: comparing its
/// `renewTime` with our clock would trust the writer's clock.
struct Seen {
    version: Option<String>,
    since: Instant,
}

/// A sharded replica's Leases: one per shard it holds, and its membership
/// Lease, which tells the others how many replicas share the shards.
struct ShardLeases {
    api: Api<Lease>,
    identity: String,
    base: String,
    count: u32,
    duration: Duration,
    margin: Duration,
    /// The shards held, each with the instant this replica stops acting on
    /// it unless a renewal lands first.
    held: BTreeMap<Shard, Instant>,
    seen: HashMap<String, Seen>,
    controllers: Arc<Controllers>,
    shutdown: CancellationToken,
}

impl ShardLeases {
    fn member_name(&self) -> String {
        format!("{}-member-{}", self.base, self.identity)
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Whether `lease` has a holder that renewed it within its duration.
    fn is_live(&mut self, lease: &Lease, now: Instant) -> bool {
        let Some(spec) = lease.spec.as_ref() else {
            return false;
        };
        if spec
            .holder_identity
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return false;
        }
        let version = lease.metadata.resource_version.clone();
        let seen = self
            .seen
            .entry(lease.metadata.name.clone().unwrap_or_default())
            .or_insert(Seen {
                version: version.clone(),
                since: now,
            });
        if seen.version != version {
            *seen = Seen {
                version,
                since: now,
            };
        }
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        now < seen.since + duration
    }

    /// Whether `lease` has not changed for many of its durations: the
    /// membership of a replica that died without leaving (a SIGKILL, a lost
    /// node), which nobody will renew again.
    fn long_gone(&self, lease: &Lease, now: Instant) -> bool {
        let name = lease.metadata.name.clone().unwrap_or_default();
        self.seen
            .get(&name)
            .is_some_and(|seen| now > seen.since + self.duration * MEMBER_GONE_AFTER_DURATIONS)
    }

    /// Deletes a dead replica's membership Lease, unless it changed since it
    /// was read, so Pods that come and go do not leave Leases behind.
    async fn forget_member(&mut self, lease: &Lease) {
        let name = lease.metadata.name.clone().unwrap_or_default();
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: None,
            }),
            ..Default::default()
        };
        match self.api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(
                    lease = name,
                    "deleted the membership Lease of a replica long gone"
                );
                self.seen.remove(&name);
            }
            Err(err) => {
                tracing::debug!(lease = name, error = %err, "deleting a stale membership Lease")
            }
        }
    }

    /// `lease` (or a new one named `name`) held by this replica from `now`.
    fn claimed(&self, name: &str, role: &str, lease: Option<&Lease>, acquire: bool) -> Lease {
        let wall = MicroTime(jiff::Timestamp::now());
        let mut lease = lease.cloned().unwrap_or_else(|| Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(
                    [
                        (LEASE_GROUP_LABEL.to_string(), self.base.clone()),
                        (LEASE_ROLE_LABEL.to_string(), role.to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        });
        lease
            .annotations_mut()
            .insert(SHARDS_ANNOTATION.to_string(), self.count.to_string());
        let spec = lease.spec.get_or_insert_with(Default::default);
        if acquire {
            spec.acquire_time = Some(wall.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds());
        spec.renew_time = Some(wall);
        lease
    }

    /// Writes `lease`: created when new, else replaced only if nobody wrote
    /// it since it was read (409 otherwise).
    async fn write(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        let name = lease.metadata.name.clone().unwrap_or_default();
        let params = kube::api::PostParams::default();
        if lease.metadata.resource_version.is_some() {
            self.api.replace(&name, &params, lease).await
        } else {
            self.api.create(&params, lease).await
        }
    }

    /// One round: renew the membership and the shards held, give up what is
    /// over the fair share, take free shards up to it.
    async fn round(&mut self) -> Result<(), kube::Error> {
        let now = Instant::now();
        let selector = format!("{LEASE_GROUP_LABEL}={}", self.base);
        let mut leases = self
            .api
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?
            .items;
        // Every Lease is watched from the first round on, so a shard whose
        // holder dies is known to have expired by the time the fair share
        // grows to include it.
        for lease in &leases {
            self.is_live(lease, now);
        }
        let member_name = self.member_name();
        let member = self.claimed(
            &member_name,
            ROLE_MEMBER,
            find(&leases, &member_name),
            false,
        );
        if let Err(err) = self.write(&member).await {
            tracing::debug!(error = %err, "renewing the membership Lease");
        }
        let mut members = 1;
        let mut other_counts = false;
        let count = self.count.to_string();
        for lease in &leases {
            let is_member =
                lease.labels().get(LEASE_ROLE_LABEL).map(String::as_str) == Some(ROLE_MEMBER);
            if !is_member || lease.metadata.name.as_deref() == Some(&member_name) {
                continue;
            }
            if self.is_live(lease, now) {
                members += 1;
                other_counts |= lease.annotations().get(SHARDS_ANNOTATION) != Some(&count);
            } else if self.long_gone(lease, now) {
                self.forget_member(lease).await;
            }
        }
        // Replicas that split the connections differently (a change of
        // `--shards`, or a leader of the unsharded operator, during a rollout)
        // would act on the same objects under different Leases: hold nothing
        // until they are gone.
        let unsharded = self.api.get_opt(&self.base).await?;
        let unsharded_leads = unsharded.is_some_and(|l| self.is_live(&l, now));
        if other_counts || unsharded_leads {
            tracing::warn!(
                other_counts,
                unsharded_leads,
                "replicas with another shard count are running; holding no shard until they stop"
            );
            let held: Vec<Shard> = self.held.keys().copied().collect();
            for shard in held {
                let name = shards::lease_name(&self.base, shard, self.count);
                self.release(shard, find(&leases, &name)).await;
            }
            return Ok(());
        }
        let fair = fair_share(self.count, members);

        let held: Vec<Shard> = self.held.keys().copied().collect();
        for shard in held {
            let name = shards::lease_name(&self.base, shard, self.count);
            let lease = find(&leases, &name).cloned();
            if !self.holds_lease(lease.as_ref()) {
                tracing::warn!(
                    shard,
                    "another replica holds the shard's Lease; stopping its work"
                );
                self.lose(shard);
                continue;
            }
            let started = Instant::now();
            match self
                .write(&self.claimed(&name, ROLE_SHARD, lease.as_ref(), false))
                .await
            {
                Ok(renewed) => {
                    self.held
                        .insert(shard, started + self.duration - self.margin);
                    // A release later in this round writes over this version.
                    remember(&mut leases, renewed);
                }
                Err(err) => tracing::debug!(shard, error = %err, "renewing a shard's Lease"),
            }
        }

        for shard in over_share(&self.held, fair) {
            tracing::info!(
                shard,
                fair,
                members,
                "over the fair share of shards; giving one up"
            );
            let name = shards::lease_name(&self.base, shard, self.count);
            self.release(shard, find(&leases, &name)).await;
        }

        // Start from a place of our own, so replicas starting together do not
        // all reach for the same shard first.
        let offset = shards::shard_of_connection("", &self.identity, self.count);
        for step in 0..self.count {
            if self.held.len() >= fair {
                break;
            }
            let shard = (offset + step) % self.count;
            if self.held.contains_key(&shard) {
                continue;
            }
            let name = shards::lease_name(&self.base, shard, self.count);
            let lease = find(&leases, &name);
            if !self.holds_lease(lease) && lease.is_some_and(|l| self.is_live(l, now)) {
                continue;
            }
            let started = Instant::now();
            match self
                .write(&self.claimed(&name, ROLE_SHARD, lease, true))
                .await
            {
                Ok(_) => {
                    tracing::info!(shard, identity = %self.identity, "holding the shard's Lease; acting on its objects");
                    self.held
                        .insert(shard, started + self.duration - self.margin);
                    self.controllers.core.terms.begin(shard, &self.shutdown);
                    self.controllers.core.metrics.set_shard_held(shard, true);
                }
                // Another replica was quicker (409); the next round looks again.
                Err(err) => tracing::debug!(shard, error = %err, "taking a shard's Lease"),
            }
        }
        Ok(())
    }

    /// Whether `lease` names this replica as its holder.
    fn holds_lease(&self, lease: Option<&Lease>) -> bool {
        lease
            .and_then(|l| l.spec.as_ref())
            .is_some_and(|s| s.holder_identity.as_deref() == Some(self.identity.as_str()))
    }

    /// Stops acting on `shard` at once.
    fn lose(&mut self, shard: Shard) {
        self.held.remove(&shard);
        self.controllers.core.terms.end(shard);
        self.controllers.core.metrics.set_shard_held(shard, false);
    }

    /// Ends `shard`'s term, then lets the Lease go, so another replica takes
    /// it without waiting for it to expire.
    async fn release(&mut self, shard: Shard, lease: Option<&Lease>) {
        self.lose(shard);
        let Some(mut lease) = lease.cloned() else {
            return;
        };
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        if let Err(err) = self.write(&lease).await {
            tracing::warn!(shard, error = %err, "could not release a shard's Lease; it expires instead");
        }
    }

    /// Stops acting on every shard whose renewals stopped landing, before its
    /// Lease can expire for the others.
    fn step_down_overdue(&mut self) {
        let now = Instant::now();
        let overdue: Vec<Shard> = self
            .held
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(shard, _)| *shard)
            .collect();
        for shard in overdue {
            tracing::warn!(
                shard,
                "no renewal of the shard's Lease landed in time (is the API server reachable?); stopping its work before the Lease can expire"
            );
            self.lose(shard);
        }
    }

    fn next_step_down(&self) -> Option<Instant> {
        self.held.values().min().copied()
    }

    /// On the way out: stop acting, release the shards and leave the
    /// membership, so the others take over at once.
    async fn leave(&mut self) {
        self.controllers.core.terms.end_all();
        let leases = self
            .api
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("{LEASE_GROUP_LABEL}={}", self.base)),
            )
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let held: Vec<Shard> = self.held.keys().copied().collect();
        for shard in held {
            let name = shards::lease_name(&self.base, shard, self.count);
            let lease = leases
                .iter()
                .find(|l| l.metadata.name.as_deref() == Some(&name));
            self.release(shard, lease).await;
        }
        if let Err(err) = self
            .api
            .delete(&self.member_name(), &kube::api::DeleteParams::default())
            .await
        {
            tracing::warn!(error = %err, "could not delete the membership Lease; it expires instead");
        }
    }
}

fn find<'a>(leases: &'a [Lease], name: &str) -> Option<&'a Lease> {
    leases
        .iter()
        .find(|l| l.metadata.name.as_deref() == Some(name))
}

/// Replaces the listed copy of `written` with the version just written.
fn remember(leases: &mut Vec<Lease>, written: Lease) {
    match leases
        .iter_mut()
        .find(|l| l.metadata.name == written.metadata.name)
    {
        Some(listed) => *listed = written,
        None => leases.push(written),
    }
}

/// A replica's run with `--shards` above 1: the controllers run throughout
/// (reconciling only the objects of shards held), while the replica takes
/// and gives up shards to hold its fair share of them.
pub(super) async fn run_sharded(
    args: &OperatorArgs,
    identity: &str,
    controllers: Arc<Controllers>,
    scopes: Vec<Option<String>>,
    gateway_pod: &GatewayPod,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (duration_seconds, grace_seconds) = lease_timing(args);
    let duration = Duration::from_secs(duration_seconds);
    let every = Duration::from_secs(grace_seconds);
    let mut leases = ShardLeases {
        api: Api::namespaced(controllers.core.client.clone(), &args.lease_namespace),
        identity: identity.to_string(),
        base: args.lease_name.clone(),
        count: args.shards,
        duration,
        margin: step_down_margin(duration, every),
        held: BTreeMap::new(),
        seen: HashMap::new(),
        controllers: controllers.clone(),
        shutdown: shutdown.clone(),
    };
    for shard in 0..args.shards {
        controllers.core.metrics.set_shard_held(shard, false);
    }
    controllers.gateway.set_routes_elsewhere(true);
    let running = tokio::spawn(run_controllers(
        controllers.clone(),
        scopes,
        args.concurrency,
        shutdown.child_token(),
    ));
    let mut labelled = false;
    loop {
        // A round that hangs on the API server must not keep a shard past
        // the point where this replica has to stop acting on it.
        let budget = leases
            .next_step_down()
            .map_or(duration, |at| at.saturating_duration_since(Instant::now()));
        tokio::select! {
            outcome = tokio::time::timeout(budget, leases.round()) => match outcome {
                Ok(Err(err)) => tracing::warn!(error = %err, "listing the shard Leases"),
                Err(_) => tracing::debug!("a round of shard Leases ran out of time"),
                Ok(Ok(())) => {}
            },
            _ = shutdown.cancelled() => break,
        }
        leases.step_down_overdue();
        let holds_any = !leases.held.is_empty();
        controllers.core.metrics.leader.set(i64::from(holds_any));
        if holds_any != labelled {
            gateway_pod.set(holds_any).await;
            labelled = holds_any;
        }
        let wake = leases
            .next_step_down()
            .map_or(Instant::now() + every, |at| at.min(Instant::now() + every));
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if tokio::time::timeout(Duration::from_secs(5), leases.leave())
        .await
        .is_err()
    {
        tracing::warn!("timed out releasing the shard Leases; they expire instead");
    }
    controllers.core.metrics.leader.set(0);
    if tokio::time::timeout(CONTROLLERS_STOP_TIMEOUT, running)
        .await
        .is_err()
    {
        tracing::warn!("controllers did not stop in time; exiting anyway");
    }
    controllers.stand_by();
    gateway_pod.set(false).await;
    Ok(())
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

    #[test]
    fn each_replica_holds_at_most_its_fair_share_and_gives_up_its_highest_shards() {
        assert_eq!(fair_share(4, 1), 4);
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(4, 3), 2);
        assert_eq!(fair_share(2, 5), 1);
        assert_eq!(fair_share(3, 0), 3, "this replica counts itself");
        let now = Instant::now();
        let held: BTreeMap<Shard, Instant> = [(0, now), (2, now), (3, now)].into();
        assert_eq!(over_share(&held, 1), vec![3, 2]);
        assert_eq!(over_share(&held, 3), Vec::<Shard>::new());
    }

    #[tokio::test]
    async fn a_shard_term_stops_only_that_shards_work_and_announces_the_change() {
        let terms = Terms::new(2);
        let mut changes = terms.changes();
        let shutdown = CancellationToken::new();
        assert!(!terms.holds(0) && !terms.holds(1) && !terms.holds(7));
        terms.begin(0, &shutdown);
        terms.begin(1, &shutdown);
        let (zero, one) = (terms.work(0), terms.work(1));
        terms.end(1);
        assert!(!zero.is_cancelled() && one.is_cancelled());
        assert!(terms.holds(0) && !terms.holds(1));
        let announced: Vec<Shard> = std::iter::from_fn(|| changes.try_recv().ok()).collect();
        assert_eq!(announced, vec![0, 1, 1]);
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
