//! What a stock scan reads besides demand history, kept between scans and
//! brought up to date by `write_date` deltas.
//!
//! A full read of products, vendor lines, Odoo's on-hand and forecast per
//! warehouse, open moves and reordering rules costs about P/500 · (W + 4) calls
//! (134 at 10,000 products × 3 warehouses). Most of it does not change between
//! two scans a few minutes apart, so a snapshot keeps it and each later scan
//! asks Odoo only what moved:
//!
//! | step | calls |
//! |---|---|
//! | product ids in scope (catches products entering or leaving it) | 1 |
//! | templates written since the last look (names live there) | 1 |
//! | products written since, new in scope, or of a written template | 1 |
//! | vendor line ids (catches deleted lines) + lines written since or new | 2 |
//! | moves written since, any state (receipts planned, deliveries done, …) | 1 |
//! | reordering rule ids + rules written since, new, or of a changed product | 2 |
//! | Odoo's on-hand and forecast of the changed products, per warehouse | W, only if any changed |
//!
//! "Written since" is exact to the record: each model's mark is the newest
//! `write_date` seen plus the ids seen with it, so a record written in that
//! same second but committed after the last look is read, and one already seen
//! is not read again (Odoo compares `write_date` to the microsecond but sends
//! it by the second).
//!
//! A product is *changed* when it, its template or its vendor lines were
//! written, or a move touching the scope's locations was written: those are
//! everything Odoo's `qty_available`, `virtual_available` and an orderpoint's
//! computed figures depend on within a day. On-hand only changes through moves
//! in Odoo (quants cannot be edited outside inventory mode, which applies by
//! moves), so quants need no delta of their own.
//!
//! The snapshot is rebuilt from scratch when it cannot be trusted: on another
//! day (Odoo's forecast and lead-days dates move with it), after
//! [`SNAPSHOT_MAX_AGE`] (a change committed by a transaction that started before
//! the last look carries an older `write_date` than the mark, and an edit by
//! SQL carries none), or when the rule's scope, horizon or warehouses change.
//! A refresh that fails half-way drops the snapshot it was changing (the file,
//! if any, is consistent with its own marks and is brought up to date next
//! time). Given a directory (the history cache's),
//! each snapshot is also written to a file there whenever it moved, and read
//! back after a restart, so a restarted operator's first scan is a delta too;
//! its key carries the database's identity (URL, name and, where the login may
//! read it, `database.uuid`), so a restored or replaced database is not served
//! another's snapshot.
//!
//! An event's products are read over the snapshot of their scope without
//! changing it ([`focused_stock`]): their moves written since its mark, their
//! products with Odoo's figures for the warehouses those moves touched, their
//! vendor lines and reordering rules (4 calls with one warehouse touched). The
//! snapshot's marks stay where they were, so the next scan's delta reads what
//! the event read again and nothing is missed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::fetch::{
    self, FetchPlan, ItemKey, MOVE_FIELDS, OPEN_MOVE_STATES, OpenMove, PRODUCT_FIELDS,
    SELLER_FIELDS, SellerLine,
};
use super::{ScanError, history};
use odoo_client::domain::{Condition, Domain, Operator};
use odoo_client::{OdooClient, Record, RecordExt, SearchOptions};
use planops_engine::inputs::{Orderpoint, Product, StockItem, Warehouse};

/// How long a snapshot is refreshed by deltas before it is read again in full:
/// long enough that hourly scans are deltas, short enough that a change a delta
/// cannot see (see the module docs) is picked up within a working morning.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(4 * 3600);

/// A `write_date` earlier than any record's: the watermark of an empty table.
const EPOCH: &str = "1970-01-01 00:00:00";

/// What a snapshot lookup did, for logs, tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Read in full (first use, another day, too old, scope changed, or failed before).
    pub rebuilt: bool,
    /// Products whose figures were read again.
    pub changed_products: u64,
}

/// How far a delta has read one model: the newest `write_date` seen and the
/// records seen with it. Odoo keeps `write_date` to the microsecond but sends
/// it by the second, so records of that second are told apart by id: one
/// written in the same second but committed after the last look is still read,
/// one already seen is not read again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Mark {
    at: String,
    seen: BTreeSet<i64>,
}

impl Mark {
    fn epoch() -> Mark {
        Mark {
            at: EPOCH.into(),
            seen: BTreeSet::new(),
        }
    }

    /// The records written since this mark.
    fn since(&self) -> Domain {
        let Some(next) = next_second(&self.at) else {
            return leaf("write_date", Operator::Gt, json!(self.at));
        };
        let later = leaf("write_date", Operator::Ge, json!(next));
        let same_second_unseen = leaf("write_date", Operator::Ge, json!(self.at)).and(&leaf(
            "id",
            Operator::NotIn,
            json!(self.seen),
        ));
        later.or(&same_second_unseen)
    }

    /// Takes in what `rows` (a read of records written since) show. A record
    /// left out of `seen` only costs a second read, never a miss.
    fn advance(&mut self, rows: &[Record]) {
        for row in rows {
            let (Ok(Some(written)), Ok(id)) = (row.str_field("write_date"), row.id()) else {
                continue;
            };
            match written.cmp(self.at.as_str()) {
                std::cmp::Ordering::Greater => {
                    self.at = written.to_string();
                    self.seen = BTreeSet::from([id]);
                }
                std::cmp::Ordering::Equal => {
                    self.seen.insert(id);
                }
                std::cmp::Ordering::Less => {}
            }
        }
    }
}

/// `at` plus one second, in Odoo's format; `None` if `at` is not in it.
fn next_second(at: &str) -> Option<String> {
    let parsed: jiff::civil::DateTime = at.replacen(' ', "T", 1).parse().ok()?;
    let next = parsed.checked_add(jiff::Span::new().seconds(1)).ok()?;
    Some(next.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

fn leaf(path: &str, operator: Operator, value: Value) -> Domain {
    Domain::from_conditions([Condition::new(path, operator, value)])
}

/// `a OR b OR …`.
fn any_of(domains: &[Domain]) -> Domain {
    domains
        .iter()
        .skip(1)
        .fold(domains.first().cloned().unwrap_or_default(), |acc, d| {
            acc.or(d)
        })
}

/// Where each model's deltas start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Watermarks {
    products: Mark,
    templates: Mark,
    sellers: Mark,
    moves: Mark,
    orderpoints: Mark,
}

/// Odoo's figures for one product in one warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Figures {
    on_hand: f64,
    virtual_available: Option<f64>,
}

/// The scope's stock inputs as last read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    /// When it was last read in full (wall clock: it outlives the process).
    taken: Timestamp,
    /// By product id: the product (without vendor lines) and its template.
    products: BTreeMap<i64, (Product, i64)>,
    sellers: BTreeMap<i64, SellerLine>,
    #[serde(with = "entries")]
    figures: HashMap<ItemKey, Figures>,
    open_moves: BTreeMap<i64, OpenMove>,
    orderpoints: BTreeMap<i64, (ItemKey, Orderpoint)>,
    marks: Watermarks,
}

type Slot = Arc<tokio::sync::Mutex<Option<Snapshot>>>;

/// Bumped whenever the file layout or the meaning of its fields changes.
const FORMAT_VERSION: u32 = 3;

/// A snapshot as read from disk, with what it was taken for.
#[derive(Deserialize)]
struct StoredSnapshot {
    version: u32,
    key: String,
    snapshot: Snapshot,
}

/// [`StoredSnapshot`] as written, without copying the snapshot.
#[derive(Serialize)]
struct StoringSnapshot<'a> {
    version: u32,
    key: &'a str,
    snapshot: &'a Snapshot,
}

/// Snapshots by connection and scope, in memory and, given a directory, on
/// disk (one file per scope, read back after a restart). Clones share state.
#[derive(Debug, Clone, Default)]
pub(super) struct Snapshots {
    slots: Arc<Mutex<HashMap<String, (Instant, Slot)>>>,
    /// What the last scan of each scope resolved, by [`scope_key`].
    scopes: Arc<Mutex<HashMap<String, ScopeSeen>>>,
    dir: Option<PathBuf>,
}

/// What a scan of a scope resolved besides the snapshot: the snapshot's key
/// and the warehouses and internal locations it was taken for, so that an
/// event on the scope reads neither again.
#[derive(Debug, Clone)]
struct ScopeSeen {
    slot: String,
    warehouses: Vec<Warehouse>,
    locations: HashMap<i64, i64>,
}

/// What a snapshot holds of an event's products, copied out so that the
/// event's reads hold no lock.
struct Held {
    products: BTreeMap<i64, (Product, i64)>,
    figures: HashMap<ItemKey, Figures>,
    open_moves: BTreeMap<i64, OpenMove>,
    moves: Mark,
}

/// An event's products read over the snapshot of their scope.
pub(super) struct FocusedStock {
    pub warehouses: Vec<Warehouse>,
    pub locations: HashMap<i64, i64>,
    pub products: Vec<Product>,
    pub items: Vec<StockItem>,
    /// The items carry their demand history (the history held in memory
    /// lacks no move the event saw).
    pub history_attached: bool,
    pub stats: SnapshotStats,
}

/// The products and stock items (without history) of one scan.
pub(super) struct StockView {
    pub products: Vec<Product>,
    pub items: Vec<StockItem>,
    pub stats: SnapshotStats,
}

impl Snapshots {
    pub fn persistent(dir: PathBuf) -> Snapshots {
        Snapshots {
            dir: Some(dir),
            ..Snapshots::default()
        }
    }

    /// The stock inputs `plan` asks for, from the snapshot of the database
    /// `identity` (see [`super::HistoryCache::database_identity`]) brought up
    /// to date, or read in full.
    pub async fn stock_view(
        &self,
        client: &OdooClient,
        identity: &str,
        plan: &FetchPlan,
        warehouses: &[Warehouse],
        locations: &HashMap<i64, i64>,
    ) -> Result<StockView, ScanError> {
        let key = slot_key(client, identity, plan, warehouses);
        let slot = self.slot(&key);
        // One scan at a time per snapshot: a second rule with the same scope
        // waits and then pays a delta instead of a second full read.
        let mut guard = slot.lock().await;
        let reader = Reader {
            client,
            plan,
            warehouses,
            locations,
        };
        let mut stats = SnapshotStats::default();
        // Taken out while refreshed: a refresh that fails half-way leaves no
        // half-changed snapshot behind; the next scan starts from the file
        // (consistent with its own marks) or reads in full.
        let kept = guard.take().or_else(|| self.load(&key));
        let snapshot = match kept {
            Some(mut snapshot) if fresh(&snapshot) => {
                let before = snapshot.marks.clone();
                stats.changed_products = reader.refresh(&mut snapshot).await?;
                if stats.changed_products > 0 || snapshot.marks != before {
                    self.store(&key, &snapshot);
                }
                snapshot
            }
            _ => {
                stats.rebuilt = true;
                let snapshot = reader.build(true).await?;
                self.store(&key, &snapshot);
                snapshot
            }
        };
        let (products, items) = reader.assemble(&snapshot);
        *guard = Some(snapshot);
        drop(guard);
        self.remember_scope(
            scope_key(client, identity, plan),
            ScopeSeen {
                slot: key,
                warehouses: warehouses.to_vec(),
                locations: locations.clone(),
            },
        );
        Ok(StockView {
            products,
            items,
            stats,
        })
    }

    fn remember_scope(&self, key: String, seen: ScopeSeen) {
        let live: HashSet<String> = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.keys().cloned().collect()
        };
        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes.retain(|_, s| live.contains(&s.slot));
        scopes.insert(key, seen);
    }

    fn scope(&self, key: &str) -> Option<ScopeSeen> {
        let scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes.get(key).cloned()
    }

    /// What the snapshot `key` holds of `products`; `None` when it holds no
    /// snapshot fresh enough to build on (see [`fresh`]).
    async fn held(&self, key: &str, products: &[i64]) -> Option<Held> {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get(key).map(|(_, slot)| slot.clone())?
        };
        // Waits for a scan refreshing it: the event then builds on its result.
        let guard = slot.lock().await;
        let snapshot = guard.as_ref().filter(|s| fresh(s))?;
        let wanted: HashSet<i64> = products.iter().copied().collect();
        Some(Held {
            products: snapshot
                .products
                .iter()
                .filter(|(id, _)| wanted.contains(id))
                .map(|(id, p)| (*id, p.clone()))
                .collect(),
            figures: snapshot
                .figures
                .iter()
                .filter(|((product, _), _)| wanted.contains(product))
                .map(|(k, f)| (*k, *f))
                .collect(),
            open_moves: snapshot
                .open_moves
                .iter()
                .filter(|(_, m)| wanted.contains(&m.product))
                .map(|(id, m)| (*id, *m))
                .collect(),
            moves: snapshot.marks.moves.clone(),
        })
    }

    fn file(&self, key: &str) -> Option<PathBuf> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        self.dir
            .as_ref()
            .map(|d| d.join(format!("snapshot-{}.json", &digest[..16])))
    }

    fn load(&self, key: &str) -> Option<Snapshot> {
        let stored: StoredSnapshot = history::read_json(&self.file(key)?)?;
        (stored.version == FORMAT_VERSION && stored.key == key).then_some(stored.snapshot)
    }

    fn store(&self, key: &str, snapshot: &Snapshot) {
        let Some(path) = self.file(key) else {
            return;
        };
        let stored = StoringSnapshot {
            version: FORMAT_VERSION,
            key,
            snapshot,
        };
        history::write_json(&path, &stored);
        if let Some(dir) = &self.dir {
            prune_stale(dir);
        }
    }

    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Scopes no rule scans any more (a rule edited or deleted) are let go.
        slots.retain(|k, (used, _)| k == key || now.duration_since(*used) < 2 * SNAPSHOT_MAX_AGE);
        let entry = slots
            .entry(key.to_string())
            .or_insert_with(|| (now, Slot::default()));
        entry.0 = now;
        entry.1.clone()
    }
}

/// Deletes snapshot files nothing wrote for [`SNAPSHOT_MAX_AGE`]: their
/// snapshot is too old to use (a day ago's scope, a deleted rule's), and the
/// directory would otherwise grow by a file per scope and day.
fn prune_stale(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_snapshot = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".json"));
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|written| written.elapsed().ok())
            .is_some_and(|age| age > SNAPSHOT_MAX_AGE);
        if is_snapshot
            && stale
            && let Err(error) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), %error, "could not delete a stale snapshot file");
        }
    }
}

/// The products (and, for a stock rule, stock items) `plan` asks for, read
/// once in full and not kept: a scan without a cache, a focused event run
/// without a snapshot of its scope, or a rule that reads products only.
pub(super) async fn read_once(
    client: &OdooClient,
    plan: &FetchPlan,
    warehouses: &[Warehouse],
    locations: &HashMap<i64, i64>,
) -> Result<StockView, ScanError> {
    let reader = Reader {
        client,
        plan,
        warehouses,
        locations,
    };
    let snapshot = reader.build(false).await?;
    let (products, items) = reader.assemble(&snapshot);
    Ok(StockView {
        products,
        items,
        stats: SnapshotStats {
            rebuilt: true,
            changed_products: 0,
        },
    })
}

/// The stock inputs of a focused `plan` (an event's products) over the
/// snapshot the last scan of the same scope left in `cache`: the event's
/// moves written since the snapshot's mark say which warehouses' figures
/// moved, and only those are read again. With one warehouse touched that is
/// four calls (moves, products with that warehouse's figures, vendor lines,
/// reordering rules) whatever the scope's size; the warehouses and locations
/// are the scan's and the demand history is the one held in memory (a done
/// move it may lack, dated before today, makes the caller refresh it).
///
/// `None` (the caller reads as a scan does) when there is nothing to build on:
/// no scan of this scope (same domain, warehouses, day and needs) in this
/// process, a snapshot older than [`SNAPSHOT_MAX_AGE`], or a product of the
/// event that entered the scope since.
pub(super) async fn focused_stock(
    client: &OdooClient,
    cache: &history::HistoryCache,
    key: &history::HistoryKey,
    plan: &FetchPlan,
) -> Result<Option<FocusedStock>, ScanError> {
    let Some(identity) = cache.known_identity(key) else {
        return Ok(None);
    };
    let snapshots = cache.snapshots();
    let Some(scope) = snapshots.scope(&scope_key(client, &identity, plan)) else {
        return Ok(None);
    };
    let Some(held) = snapshots.held(&scope.slot, &plan.focus_products).await else {
        return Ok(None);
    };
    let reader = Reader {
        client,
        plan,
        warehouses: &scope.warehouses,
        locations: &scope.locations,
    };
    let Some((products, mut items, stats, history_moved)) = reader.focused(held).await? else {
        return Ok(None);
    };
    let mut history_attached = !(plan.needs.demand_history && plan.history_days > 0);
    if !history_attached && !history_moved {
        let ids: HashSet<i64> = products.iter().map(|p| p.id).collect();
        if let Some(demand) = cache.held_demand(
            key,
            &identity,
            plan.today,
            plan.history_days,
            &ids,
            &scope.locations,
        ) {
            fetch::attach_history(&mut items, demand);
            history_attached = true;
        }
    }
    Ok(Some(FocusedStock {
        warehouses: scope.warehouses,
        locations: scope.locations,
        products,
        items,
        history_attached,
        stats,
    }))
}

/// Read in full recently enough to be brought up to date by deltas.
fn fresh(snapshot: &Snapshot) -> bool {
    let age = Timestamp::now().duration_since(snapshot.taken);
    age >= jiff::SignedDuration::ZERO && age.unsigned_abs() < SNAPSHOT_MAX_AGE
}

/// (De)serialises a map with tuple keys as a list of pairs (JSON keys are strings).
mod entries {
    use std::collections::HashMap;
    use std::hash::Hash;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &HashMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// Everything a snapshot's content depends on besides the database's data.
fn slot_key(
    client: &OdooClient,
    identity: &str,
    plan: &FetchPlan,
    warehouses: &[Warehouse],
) -> String {
    let warehouse_ids: Vec<i64> = warehouses.iter().map(|w| w.id).collect();
    json!([
        identity,
        client.info().version.major,
        plan.product_domain,
        warehouse_ids,
        plan.today.to_string(),
        plan.forecast_days,
        plan.needs.dated_moves,
        plan.needs.orderpoints,
    ])
    .to_string()
}

/// The key of [`Snapshots::scopes`]: a scope as a rule names it (warehouses
/// by code), so that an event finds the snapshot without reading warehouses.
fn scope_key(client: &OdooClient, identity: &str, plan: &FetchPlan) -> String {
    json!([
        identity,
        client.info().version.major,
        plan.scope_domain,
        plan.warehouse_codes,
        plan.today.to_string(),
        plan.forecast_days,
        plan.needs.dated_moves,
        plan.needs.orderpoints,
    ])
    .to_string()
}

/// Products, stock items and stats of an event, and whether it saw a done move
/// that demand history may lack.
type FocusedRead = (Vec<Product>, Vec<StockItem>, SnapshotStats, bool);

/// One scan's reads.
struct Reader<'a> {
    client: &'a OdooClient,
    plan: &'a FetchPlan,
    warehouses: &'a [Warehouse],
    locations: &'a HashMap<i64, i64>,
}

impl Reader<'_> {
    fn warehouse_ids(&self) -> Vec<i64> {
        self.warehouses.iter().map(|w| w.id).collect()
    }

    /// Reads everything in full. Only a snapshot that is `kept` needs the
    /// marks of the tables it reads in part (2 calls more).
    async fn build(&self, kept: bool) -> Result<Snapshot, ScanError> {
        let client = self.client;
        // Watermarks of the tables read only in part are taken first, so a
        // write landing during the reads is newer than them.
        let (templates, moves_mark) = if kept {
            (
                newest_write(client, "product.template").await?,
                newest_write(client, "stock.move").await?,
            )
        } else {
            (Mark::epoch(), Mark::epoch())
        };
        let mut snapshot = Snapshot {
            taken: Timestamp::now(),
            products: BTreeMap::new(),
            sellers: BTreeMap::new(),
            figures: HashMap::new(),
            open_moves: BTreeMap::new(),
            orderpoints: BTreeMap::new(),
            marks: Watermarks {
                products: Mark::epoch(),
                templates,
                sellers: Mark::epoch(),
                moves: moves_mark,
                orderpoints: Mark::epoch(),
            },
        };
        let domain = fetch::storable_domain(client, &self.plan.product_domain)?;
        let rows = self
            .read("products", "product.product", &domain, PRODUCT_FIELDS)
            .await?;
        self.merge_products(&mut snapshot, &rows)?;
        self.read_all_sellers(&mut snapshot).await?;
        let ids: Vec<i64> = snapshot.products.keys().copied().collect();
        if self.plan.needs.stock_items {
            self.read_figures(&mut snapshot, &ids).await?;
        }
        self.read_open_moves(&mut snapshot, &ids).await?;
        self.read_all_orderpoints(&mut snapshot, &ids).await?;
        Ok(snapshot)
    }

    /// The event's products (`plan.focus_products`) from what the snapshot
    /// `held` of them and what was written since; `None` when one of them is
    /// in scope but not in the snapshot.
    async fn focused(&self, held: Held) -> Result<Option<FocusedRead>, ScanError> {
        let client = self.client;
        let focus = &self.plan.focus_products;
        let what = || ScanError::odoo("stock moves");
        let rows = self
            .read(
                "stock moves",
                "stock.move",
                &leaf("product_id", Operator::In, json!(focus))
                    .and(&held.moves.since())
                    .to_json_value(),
                MOVE_FIELDS,
            )
            .await?;
        let mut open_moves = held.open_moves;
        let mut touched: BTreeSet<i64> = BTreeSet::new();
        let mut history_moved = false;
        for row in &rows {
            let id = row.id().map_err(what())?;
            if let Some(before) = open_moves.remove(&id) {
                touched.extend(before.from_warehouse.into_iter().chain(before.to_warehouse));
            }
            let warehouse_of = |field: &str| -> Result<Option<i64>, ScanError> {
                Ok(row
                    .many2one(field)
                    .map_err(what())?
                    .and_then(|l| self.locations.get(&l.id).copied()))
            };
            let (from, to) = (
                warehouse_of("location_id")?,
                warehouse_of("location_dest_id")?,
            );
            // Even a move inside one warehouse moves its figures once reserved or done.
            touched.extend(from.into_iter().chain(to));
            let state = row.str_field("state").map_err(what())?.unwrap_or_default();
            if OPEN_MOVE_STATES.contains(&state)
                && self.plan.needs.dated_moves
                && let Some(m) = fetch::open_move_from(row, self.locations).map_err(what())?
            {
                open_moves.insert(id, m);
            }
            // Demand history ends yesterday: only a move done out of the
            // scope's stock and dated before today can be demand it lacks.
            let before_today = row
                .datetime("date")
                .map_err(what())?
                .is_some_and(|d| d.to_zoned(jiff::tz::TimeZone::UTC).date() < self.plan.today);
            history_moved |= state == "done" && from.is_some() && before_today;
        }

        // Products in scope, with the figures of the first warehouse touched.
        let touched: Vec<&Warehouse> = self
            .warehouses
            .iter()
            .filter(|w| touched.contains(&w.id))
            .collect();
        let domain = fetch::storable_domain(client, &self.plan.product_domain)?;
        let mut fields = PRODUCT_FIELDS.to_vec();
        let products_client = match touched.first() {
            Some(w) => {
                fields.extend(["qty_available", "virtual_available"]);
                fetch::stock_figures_client(client, self.plan, w.id)
            }
            None => client.clone(),
        };
        let rows = products_client
            .search_read_all("product.product", &domain, &fields, &fetch::page_options())
            .await
            .map_err(ScanError::odoo("products"))?;
        let mut products: BTreeMap<i64, (Product, i64)> = BTreeMap::new();
        let mut figures = held.figures;
        for row in &rows {
            let (product, template) =
                fetch::product_from(row).map_err(ScanError::odoo("products"))?;
            if !held.products.contains_key(&product.id) {
                // New in scope since the scan: nothing held to build on.
                return Ok(None);
            }
            if let Some(w) = touched.first() {
                let what = || ScanError::odoo("stock quantities");
                figures.insert(
                    (product.id, w.id),
                    Figures {
                        on_hand: row.number("qty_available").map_err(what())?,
                        virtual_available: Some(row.number("virtual_available").map_err(what())?),
                    },
                );
            }
            products.insert(product.id, (product, template));
        }
        let ids: Vec<i64> = products.keys().copied().collect();
        let rest: Vec<Warehouse> = touched.iter().skip(1).map(|w| (*w).clone()).collect();
        if !ids.is_empty() && !rest.is_empty() {
            for item in fetch::fetch_stock_items(client, self.plan, &ids, &rest).await? {
                figures.insert(
                    (item.product_id, item.warehouse_id),
                    Figures {
                        on_hand: item.on_hand,
                        virtual_available: item.virtual_available,
                    },
                );
            }
        }

        // Vendor lines and reordering rules of the event's products, whole:
        // as few calls as a delta would take, and deletions show.
        let mut snapshot = Snapshot {
            taken: Timestamp::now(),
            products,
            sellers: BTreeMap::new(),
            figures,
            open_moves: open_moves
                .into_iter()
                .filter(|(_, m)| ids.contains(&m.product))
                .collect(),
            orderpoints: BTreeMap::new(),
            marks: Watermarks {
                products: Mark::epoch(),
                templates: Mark::epoch(),
                sellers: Mark::epoch(),
                moves: held.moves,
                orderpoints: Mark::epoch(),
            },
        };
        self.read_all_sellers(&mut snapshot).await?;
        self.read_all_orderpoints(&mut snapshot, &ids).await?;
        let (products, items) = self.assemble(&snapshot);
        let stats = SnapshotStats {
            rebuilt: false,
            changed_products: if touched.is_empty() {
                0
            } else {
                ids.len() as u64
            },
        };
        Ok(Some((products, items, stats, history_moved)))
    }

    /// Brings `snapshot` up to date; returns how many products changed.
    async fn refresh(&self, snapshot: &mut Snapshot) -> Result<u64, ScanError> {
        let client = self.client;
        let mut changed: BTreeSet<i64> = BTreeSet::new();

        // Products: membership, then what was written.
        let domain = fetch::storable_domain(client, &self.plan.product_domain)?;
        let in_scope: BTreeSet<i64> = client
            .search("product.product", &domain, &SearchOptions::default())
            .await
            .map_err(ScanError::odoo("products"))?
            .into_iter()
            .collect();
        // What left the scope goes entirely: should it come back, it is new
        // and read again in full.
        snapshot.products.retain(|id, _| in_scope.contains(id));
        snapshot
            .figures
            .retain(|(product, _), _| in_scope.contains(product));
        snapshot
            .open_moves
            .retain(|_, m| in_scope.contains(&m.product));
        let new_products: Vec<i64> = in_scope
            .iter()
            .filter(|id| !snapshot.products.contains_key(id))
            .copied()
            .collect();
        let written_templates = self
            .read(
                "products",
                "product.template",
                &snapshot.marks.templates.since().to_json_value(),
                &["id", "write_date"],
            )
            .await?;
        snapshot.marks.templates.advance(&written_templates);
        let template_ids = ids_of(&written_templates)?;
        let delta = fetch::and_domains(
            &domain,
            &any_of(&[
                snapshot.marks.products.since(),
                leaf("id", Operator::In, json!(new_products)),
                leaf("product_tmpl_id", Operator::In, json!(template_ids)),
            ])
            .to_json_value(),
        )?;
        let rows = self
            .read("products", "product.product", &delta, PRODUCT_FIELDS)
            .await?;
        changed.extend(ids_of(&rows)?);
        self.merge_products(snapshot, &rows)?;
        self.read_open_moves(snapshot, &new_products).await?;

        // Vendor lines: deleted ones drop out, written or new ones are read.
        let templates = snapshot.templates();
        let seller_ids: BTreeSet<i64> = if templates.is_empty() {
            BTreeSet::new()
        } else {
            client
                .search(
                    "product.supplierinfo",
                    &json!([["product_tmpl_id", "in", templates]]),
                    &SearchOptions::default(),
                )
                .await
                .map_err(ScanError::odoo("vendor price lists"))?
                .into_iter()
                .collect()
        };
        let mut touched_templates: HashSet<i64> = HashSet::new();
        snapshot.sellers.retain(|id, line| {
            let keep = seller_ids.contains(id);
            if !keep {
                touched_templates.insert(line.template);
            }
            keep
        });
        let new_sellers: Vec<i64> = seller_ids
            .iter()
            .filter(|id| !snapshot.sellers.contains_key(id))
            .copied()
            .collect();
        if !seller_ids.is_empty() {
            let rows = self
                .read(
                    "vendor price lists",
                    "product.supplierinfo",
                    &leaf("product_tmpl_id", Operator::In, json!(templates))
                        .and(&any_of(&[
                            snapshot.marks.sellers.since(),
                            leaf("id", Operator::In, json!(new_sellers)),
                        ]))
                        .to_json_value(),
                    SELLER_FIELDS,
                )
                .await?;
            touched_templates.extend(merge_sellers(snapshot, &rows)?);
        }
        changed.extend(
            snapshot
                .products
                .iter()
                .filter(|(_, (_, template))| touched_templates.contains(template))
                .map(|(id, _)| *id),
        );

        // Moves of any state: a receipt planned or moved, a delivery done.
        let rows = self
            .read(
                "stock moves",
                "stock.move",
                &snapshot.marks.moves.since().to_json_value(),
                MOVE_FIELDS,
            )
            .await?;
        changed.extend(self.merge_moves(snapshot, &rows, true)?);

        // Reordering rules: deleted ones drop out; written, new, or of a
        // changed product (their forecast is computed) are read.
        if self.plan.needs.orderpoints {
            let products: Vec<i64> = snapshot.products.keys().copied().collect();
            let scope = fetch::orderpoints_domain(&products, self.warehouses);
            let rule_ids: BTreeSet<i64> = client
                .search(
                    "stock.warehouse.orderpoint",
                    &scope,
                    &SearchOptions::default(),
                )
                .await
                .map_err(ScanError::odoo("reordering rules"))?
                .into_iter()
                .collect();
            snapshot.orderpoints.retain(|id, _| rule_ids.contains(id));
            let new_rules: Vec<i64> = rule_ids
                .iter()
                .filter(|id| !snapshot.orderpoints.contains_key(id))
                .copied()
                .collect();
            if !rule_ids.is_empty() {
                let changed_ids: Vec<i64> = changed.iter().copied().collect();
                // Not narrowed by the scope's product ids: a rule of another
                // product is ignored when merged, and a list of every product
                // id would be compared against every rule.
                let delta = leaf("warehouse_id", Operator::In, json!(self.warehouse_ids()))
                    .and(&any_of(&[
                        snapshot.marks.orderpoints.since(),
                        leaf("id", Operator::In, json!(new_rules)),
                        leaf("product_id", Operator::In, json!(changed_ids)),
                    ]))
                    .to_json_value();
                let rows = self
                    .read(
                        "reordering rules",
                        "stock.warehouse.orderpoint",
                        &delta,
                        &fetch::orderpoint_fields(client),
                    )
                    .await?;
                self.merge_orderpoints(snapshot, &rows)?;
            }
        }

        let changed: Vec<i64> = changed
            .into_iter()
            .filter(|id| snapshot.products.contains_key(id))
            .collect();
        self.read_figures(snapshot, &changed).await?;
        Ok(changed.len() as u64)
    }

    async fn read(
        &self,
        what: &'static str,
        model: &str,
        domain: &Value,
        fields: &[&str],
    ) -> Result<Vec<Record>, ScanError> {
        self.client
            .search_read_all(model, domain, fields, &fetch::page_options())
            .await
            .map_err(ScanError::odoo(what))
    }

    /// Every vendor line of the snapshot's product templates.
    async fn read_all_sellers(&self, snapshot: &mut Snapshot) -> Result<(), ScanError> {
        let templates = snapshot.templates();
        if templates.is_empty() {
            return Ok(());
        }
        let rows = self
            .read(
                "vendor price lists",
                "product.supplierinfo",
                &json!([["product_tmpl_id", "in", templates]]),
                SELLER_FIELDS,
            )
            .await?;
        merge_sellers(snapshot, &rows)?;
        Ok(())
    }

    /// The reordering rules of `ids` in the scope's warehouses, when the
    /// detector uses them.
    async fn read_all_orderpoints(
        &self,
        snapshot: &mut Snapshot,
        ids: &[i64],
    ) -> Result<(), ScanError> {
        if !self.plan.needs.orderpoints || ids.is_empty() {
            return Ok(());
        }
        let rows = self
            .read(
                "reordering rules",
                "stock.warehouse.orderpoint",
                &fetch::orderpoints_domain(ids, self.warehouses),
                &fetch::orderpoint_fields(self.client),
            )
            .await?;
        self.merge_orderpoints(snapshot, &rows)
    }

    async fn read_figures(&self, snapshot: &mut Snapshot, ids: &[i64]) -> Result<(), ScanError> {
        if ids.is_empty() {
            return Ok(());
        }
        for item in fetch::fetch_stock_items(self.client, self.plan, ids, self.warehouses).await? {
            snapshot.figures.insert(
                (item.product_id, item.warehouse_id),
                Figures {
                    on_hand: item.on_hand,
                    virtual_available: item.virtual_available,
                },
            );
        }
        Ok(())
    }

    fn merge_products(&self, snapshot: &mut Snapshot, rows: &[Record]) -> Result<(), ScanError> {
        for row in rows {
            let (product, template) =
                fetch::product_from(row).map_err(ScanError::odoo("products"))?;
            snapshot.products.insert(product.id, (product, template));
        }
        snapshot.marks.products.advance(rows);
        Ok(())
    }

    /// Applies moves read from Odoo; returns the products whose stock they
    /// touch. Only a `complete` read (every move written since the watermark)
    /// may move the watermark: a partial one would skip what it did not read.
    fn merge_moves(
        &self,
        snapshot: &mut Snapshot,
        rows: &[Record],
        complete: bool,
    ) -> Result<BTreeSet<i64>, ScanError> {
        let what = || ScanError::odoo("stock moves");
        let mut touched = BTreeSet::new();
        for row in rows {
            let id = row.id().map_err(what())?;
            if let Some(before) = snapshot.open_moves.remove(&id) {
                touched.insert(before.product);
            }
            let Some(product) = row.many2one("product_id").map_err(what())? else {
                continue;
            };
            let ours = |field: &str| -> Result<bool, ScanError> {
                Ok(row
                    .many2one(field)
                    .map_err(what())?
                    .is_some_and(|l| self.locations.contains_key(&l.id)))
            };
            if !snapshot.products.contains_key(&product.id)
                || !(ours("location_id")? || ours("location_dest_id")?)
            {
                continue;
            }
            // Even a move inside one warehouse (no receipt, no delivery) moves
            // Odoo's figures when it is reserved or validated.
            touched.insert(product.id);
            let open = row
                .str_field("state")
                .map_err(what())?
                .is_some_and(|state| OPEN_MOVE_STATES.contains(&state));
            if open
                && self.plan.needs.dated_moves
                && let Some(m) = fetch::open_move_from(row, self.locations).map_err(what())?
            {
                snapshot.open_moves.insert(id, m);
            }
        }
        if complete {
            snapshot.marks.moves.advance(rows);
        }
        Ok(touched)
    }

    /// Reads the open moves of `products` in the scope's locations (all of
    /// them at build, those of products new in scope later).
    async fn read_open_moves(
        &self,
        snapshot: &mut Snapshot,
        products: &[i64],
    ) -> Result<(), ScanError> {
        if !self.plan.needs.dated_moves || products.is_empty() || self.locations.is_empty() {
            return Ok(());
        }
        let rows = self
            .read(
                "open stock moves",
                "stock.move",
                &fetch::open_moves_domain(products, self.locations),
                MOVE_FIELDS,
            )
            .await?;
        self.merge_moves(snapshot, &rows, false)?;
        Ok(())
    }

    fn merge_orderpoints(&self, snapshot: &mut Snapshot, rows: &[Record]) -> Result<(), ScanError> {
        for row in rows {
            let id = row.id().map_err(ScanError::odoo("reordering rules"))?;
            match fetch::orderpoint_from(self.client, row, self.plan.today)? {
                Some(rule) if snapshot.products.contains_key(&rule.0.0) => {
                    snapshot.orderpoints.insert(id, rule);
                }
                _ => {
                    snapshot.orderpoints.remove(&id);
                }
            }
        }
        snapshot.marks.orderpoints.advance(rows);
        Ok(())
    }

    /// Products with vendor lines, and one item per warehouse × product, in the
    /// order a full read produces them.
    fn assemble(&self, snapshot: &Snapshot) -> (Vec<Product>, Vec<StockItem>) {
        let mut products: Vec<Product> =
            snapshot.products.values().map(|(p, _)| p.clone()).collect();
        let templates: Vec<i64> = snapshot.products.values().map(|(_, t)| *t).collect();
        fetch::attach_seller_lines(&mut products, &templates, snapshot.sellers.values());
        let mut items = Vec::with_capacity(products.len() * self.warehouses.len());
        for warehouse in self.warehouses {
            for product in &products {
                if let Some(f) = snapshot.figures.get(&(product.id, warehouse.id)) {
                    items.push(StockItem {
                        product_id: product.id,
                        warehouse_id: warehouse.id,
                        on_hand: f.on_hand,
                        virtual_available: f.virtual_available,
                        ..StockItem::default()
                    });
                }
            }
        }
        if self.plan.needs.dated_moves {
            fetch::attach_moves(&mut items, snapshot.open_moves.values());
        }
        if self.plan.needs.orderpoints {
            // By id, so that of two rules on one product × warehouse the newer
            // wins, as in a full read.
            let rules: HashMap<ItemKey, &Orderpoint> = snapshot
                .orderpoints
                .values()
                .map(|(key, rule)| (*key, rule))
                .collect();
            for item in &mut items {
                item.orderpoint = rules
                    .get(&(item.product_id, item.warehouse_id))
                    .map(|r| (*r).clone());
            }
        }
        (products, items)
    }
}

impl Snapshot {
    fn templates(&self) -> Vec<i64> {
        let set: BTreeSet<i64> = self
            .products
            .values()
            .map(|(_, t)| *t)
            .filter(|&t| t > 0)
            .collect();
        set.into_iter().collect()
    }
}

/// Applies vendor lines read from Odoo; returns the templates they belong to
/// (before and after, should a line have moved to another template).
fn merge_sellers(snapshot: &mut Snapshot, rows: &[Record]) -> Result<Vec<i64>, ScanError> {
    let what = || ScanError::odoo("vendor price lists");
    let mut templates = Vec::new();
    for row in rows {
        let id = row.id().map_err(what())?;
        if let Some(old) = snapshot.sellers.remove(&id) {
            templates.push(old.template);
        }
        if let Some(line) = fetch::seller_line_from(row).map_err(what())? {
            templates.push(line.template);
            snapshot.sellers.insert(id, line);
        }
    }
    snapshot.marks.sellers.advance(rows);
    Ok(templates)
}

fn ids_of(rows: &[Record]) -> Result<Vec<i64>, ScanError> {
    rows.iter()
        .map(|r| r.id().map_err(ScanError::odoo("changed records")))
        .collect()
}

/// Where deltas of `model` start, for a table the snapshot reads only in part:
/// its newest records, read before the snapshot's own reads so that anything
/// written later is newer (or read by them anyway).
async fn newest_write(client: &OdooClient, model: &str) -> Result<Mark, ScanError> {
    let rows = client
        .search_read(
            model,
            &json!([]),
            &["id", "write_date"],
            &SearchOptions {
                limit: Some(fetch::PAGE),
                order: Some("write_date desc, id desc".into()),
                ..SearchOptions::default()
            },
        )
        .await
        .map_err(ScanError::odoo("watermark"))?;
    let mut mark = Mark::epoch();
    mark.advance(&rows);
    let page_is_one_second = rows.len() as u64 == fetch::PAGE
        && rows
            .last()
            .and_then(|r| r.str_field("write_date").ok().flatten())
            .is_some_and(|w| w == mark.at);
    if page_is_one_second {
        // More records share the newest second than a page holds (a bulk
        // write): take all their ids, or the first delta reads them again.
        let ids = client
            .search(
                model,
                &json!([["write_date", ">=", mark.at]]),
                &SearchOptions::default(),
            )
            .await
            .map_err(ScanError::odoo("watermark"))?;
        mark.seen.extend(ids);
    }
    Ok(mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, written: &str) -> Record {
        json!({"id": id, "write_date": written})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn a_mark_keeps_the_newest_second_and_who_was_seen_in_it() {
        let mut mark = Mark::epoch();
        mark.advance(&[
            row(3, "2025-03-01 08:59:59"),
            row(7, "2025-03-01 09:00:00"),
            row(5, "2025-03-01 09:00:00"),
        ]);
        assert_eq!(mark.at, "2025-03-01 09:00:00");
        assert_eq!(mark.seen, BTreeSet::from([5, 7]));
        // Older rows change nothing; a newer second starts a new set.
        mark.advance(&[row(1, "2025-02-01 00:00:00")]);
        assert_eq!(mark.seen, BTreeSet::from([5, 7]));
        mark.advance(&[row(9, "2025-03-01 09:00:01")]);
        assert_eq!(mark.at, "2025-03-01 09:00:01");
        assert_eq!(mark.seen, BTreeSet::from([9]));
    }

    #[test]
    fn since_reads_later_seconds_and_the_unseen_of_the_same_second() {
        let mut mark = Mark::epoch();
        mark.advance(&[row(7, "2025-12-31 23:59:59")]);
        assert_eq!(
            mark.since().to_json_value(),
            json!([
                "|",
                ["write_date", ">=", "2026-01-01 00:00:00"],
                "&",
                ["write_date", ">=", "2025-12-31 23:59:59"],
                ["id", "not in", [7]]
            ])
        );
        // Not Odoo's format: fall back to a plain comparison.
        let odd = Mark {
            at: "yesterday".into(),
            seen: BTreeSet::new(),
        };
        assert_eq!(
            odd.since().to_json_value(),
            json!([["write_date", ">", "yesterday"]])
        );
    }

    #[test]
    fn any_of_ors_every_domain() {
        let a = leaf("a", Operator::Eq, json!(1));
        let b = leaf("b", Operator::Eq, json!(2));
        let c = leaf("c", Operator::Eq, json!(3));
        assert_eq!(
            any_of(&[a.clone(), b, c]).to_json_value(),
            json!(["|", "|", ["a", "=", 1], ["b", "=", 2], ["c", "=", 3]])
        );
        assert_eq!(any_of(std::slice::from_ref(&a)), a);
    }
}
