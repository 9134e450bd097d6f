//! A cache of demand history: done customer moves, per connection.
//!
//! A done `stock.move` does not change, so re-reading months of them on every
//! scan is waste. [`HistoryCache`] keeps, per connection, every done move from an
//! internal location to a customer over a date range, and brings it up to date
//! with a `write_date` delta (moves done, or touched, since the last look) plus
//! one `search_count` that catches what a delta cannot see (moves deleted, a
//! move missed in a race): a warm scan of an unchanged catalogue costs 2 calls
//! for its history, whatever the catalogue's size. The cache covers every
//! product and internal location, so all rules of a connection share it, and it
//! is rebuilt whenever it cannot be trusted: another format version, another
//! database (URL, name or `database.uuid`), a corrupt file, or counts that
//! disagree. Moves are kept one by one (not summed) so that a delta replaces a
//! move instead of adding it twice.
//!
//! The cache is a value the caller owns (clone it freely: clones share state);
//! with [`HistoryCache::persistent`] it also lives in a directory across restarts.
//! It also holds the connection's stock snapshots ([`super::snapshot`]): the
//! rest of what a stock scan reads, kept current the same way and, with a
//! directory, kept in it too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ScanError;
use odoo_client::{OdooClient, PageOptions, RecordExt, SearchOptions};
use planops_engine::inputs::{DemandHistory, add_days, days_between};

/// Bumped whenever the file layout or the meaning of its fields changes.
const FORMAT_VERSION: u32 = 2;
const PAGE: u64 = 500;

/// One done customer move, as the history needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Move {
    product: i64,
    location: i64,
    day: Date,
    qty: f64,
}

/// Everything cached for one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    version: u32,
    /// `url|database|database.uuid`: another database means another history.
    identity: String,
    /// Days covered: `[start, end)`.
    start: Date,
    end: Date,
    /// Highest `write_date` seen (`YYYY-MM-DD HH:MM:SS`); the next delta reads from it.
    watermark: String,
    moves: BTreeMap<i64, Move>,
}

/// What a cache lookup cost and did, for logs, tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// The cache was (re)built from scratch.
    pub rebuilt: bool,
    /// Moves read by the delta.
    pub delta_moves: u64,
    /// Moves held after the lookup.
    pub cached_moves: u64,
}

/// Which connection a history belongs to: `connection` keys the cache (for
/// example `namespace/name` of the `OdooConnection`), `url` and `database`
/// (with Odoo's `database.uuid`) tell whether the cached history is still the
/// history of the database behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryKey {
    pub connection: String,
    pub url: String,
    pub database: String,
}

/// Done-move history per connection, shared by every scan that is handed it.
#[derive(Debug, Clone)]
pub struct HistoryCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    dir: Option<PathBuf>,
    snapshots: super::snapshot::Snapshots,
    identities: Arc<Mutex<HashMap<String, String>>>,
}

impl Default for HistoryCache {
    fn default() -> HistoryCache {
        HistoryCache::new()
    }
}

impl HistoryCache {
    /// A cache in memory only.
    pub fn new() -> HistoryCache {
        HistoryCache {
            entries: Arc::default(),
            dir: None,
            snapshots: super::snapshot::Snapshots::default(),
            identities: Arc::default(),
        }
    }

    /// A cache that also keeps one file per connection in `dir` (created if
    /// needed), read back on first use after a restart.
    pub fn persistent(dir: impl Into<PathBuf>) -> HistoryCache {
        let dir = dir.into();
        HistoryCache {
            snapshots: super::snapshot::Snapshots::persistent(dir.clone()),
            dir: Some(dir),
            ..HistoryCache::new()
        }
    }

    /// From `PLANOPS_CACHE_DIR` when set, else in memory.
    pub fn from_env() -> HistoryCache {
        match std::env::var_os("PLANOPS_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => HistoryCache::persistent(PathBuf::from(dir)),
            _ => HistoryCache::new(),
        }
    }

    pub(super) fn snapshots(&self) -> &super::snapshot::Snapshots {
        &self.snapshots
    }

    fn file(&self, key: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("history-{}.json", file_safe(key))))
    }

    fn load(&self, key: &str) -> Option<Entry> {
        read_json(&self.file(key)?)
    }

    fn store(&self, key: &str, entry: &Entry) {
        if let Some(path) = self.file(key) {
            write_json(&path, entry);
        }
    }

    /// [`HistoryCache::database_identity`] as this process already read it,
    /// without calling Odoo.
    pub(super) fn known_identity(&self, key: &HistoryKey) -> Option<String> {
        let memo = identity_memo(key);
        let identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        identities.get(&memo).cloned()
    }

    /// `url|database|database.uuid` of the database behind `key`: read from
    /// Odoo once per process and connection, it tells a restored or replaced
    /// database from the one a cache was filled from.
    pub(super) async fn database_identity(
        &self,
        client: &OdooClient,
        key: &HistoryKey,
    ) -> Result<String, ScanError> {
        if let Some(known) = self.known_identity(key) {
            return Ok(known);
        }
        let memo = identity_memo(key);
        let found = identity(client, key).await?;
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(memo, found.clone());
        Ok(found)
    }

    /// Daily demand per product × warehouse over `[today - days, today)`, from the
    /// cache brought up to date. `locations` maps internal location → warehouse.
    pub async fn demand_history(
        &self,
        client: &OdooClient,
        key: &HistoryKey,
        today: Date,
        days: u32,
        products: &HashSet<i64>,
        locations: &HashMap<i64, i64>,
    ) -> Result<(HashMap<(i64, i64), DemandHistory>, HistoryStats), ScanError> {
        let start = add_days(today, -i64::from(days));
        let (entry, stats) = self.refresh(client, key, start, today).await?;
        let out = daily_series(entry.moves.values(), today, days, products, locations);
        Ok((out, stats))
    }

    /// [`HistoryCache::demand_history`] from the history held in memory, without
    /// calling Odoo: for an event that saw no done move the history lacks.
    /// `None` unless that history is of the database `identity` and covers
    /// `[today - days, today)` (the event then reads as a scan does).
    pub(super) fn held_demand(
        &self,
        key: &HistoryKey,
        identity: &str,
        today: Date,
        days: u32,
        products: &HashSet<i64>,
        locations: &HashMap<i64, i64>,
    ) -> Option<HashMap<(i64, i64), DemandHistory>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&key.connection)?;
        let start = add_days(today, -i64::from(days));
        let covers = entry.version == FORMAT_VERSION
            && entry.identity == identity
            && entry.start <= start
            && entry.end >= today;
        covers.then(|| daily_series(entry.moves.values(), today, days, products, locations))
    }

    /// The entry of `connection` covering at least `[start, end)`, up to date.
    async fn refresh(
        &self,
        client: &OdooClient,
        key: &HistoryKey,
        start: Date,
        end: Date,
    ) -> Result<(Entry, HistoryStats), ScanError> {
        let connection = key.connection.as_str();
        let cached = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.get(connection).cloned()
        };
        let cached = cached.or_else(|| self.load(connection));
        let mut stats = HistoryStats::default();
        let identity = self.database_identity(client, key).await?;
        let mut entry = match cached {
            Some(e) if e.version == FORMAT_VERSION && e.identity == identity => e,
            _ => {
                stats.rebuilt = true;
                build(client, identity.clone(), start, end).await?
            }
        };
        if !stats.rebuilt {
            // Extend the range if a rule looks further back or time moved on.
            if start < entry.start {
                let old_start = entry.start;
                read_moves(client, &mut entry, start, old_start, None).await?;
                entry.start = start;
            }
            if end > entry.end {
                let old_end = entry.end;
                read_moves(client, &mut entry, old_end, end, None).await?;
                entry.end = end;
            }
            let watermark = entry.watermark.clone();
            let (s, e) = (entry.start, entry.end);
            stats.delta_moves = read_moves(client, &mut entry, s, e, Some(&watermark)).await?;
            let expected = client
                .search_count("stock.move", &domain(entry.start, entry.end, None))
                .await
                .map_err(ScanError::odoo("demand history count"))?;
            if expected != entry.moves.len() as u64 {
                tracing::info!(
                    connection,
                    cached = entry.moves.len(),
                    in_odoo = expected,
                    "history cache disagrees with Odoo (moves deleted?); rebuilding"
                );
                stats.rebuilt = true;
                entry = build(client, identity, start.min(entry.start), end.max(entry.end)).await?;
            }
        }
        stats.cached_moves = entry.moves.len() as u64;
        self.store(connection, &entry);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection.to_string(), entry.clone());
        Ok((entry, stats))
    }
}

fn identity_memo(key: &HistoryKey) -> String {
    format!("{}|{}|{}", key.connection, key.url, key.database)
}

/// Daily demand per product × warehouse over `[today - days, today)` of the
/// `moves` of `products` leaving `locations` (internal location → warehouse).
fn daily_series<'a>(
    moves: impl Iterator<Item = &'a Move>,
    today: Date,
    days: u32,
    products: &HashSet<i64>,
    locations: &HashMap<i64, i64>,
) -> HashMap<(i64, i64), DemandHistory> {
    let start = add_days(today, -i64::from(days));
    let end = add_days(today, -1);
    let mut out: HashMap<(i64, i64), DemandHistory> = HashMap::new();
    for m in moves {
        if !products.contains(&m.product) {
            continue;
        }
        let Some(&warehouse) = locations.get(&m.location) else {
            continue;
        };
        let index = days_between(start, m.day);
        if index < 0 || index >= i64::from(days) {
            continue;
        }
        let series = out
            .entry((m.product, warehouse))
            .or_insert_with(|| DemandHistory {
                end: Some(end),
                daily: vec![0.0; days as usize],
            });
        series.daily[index as usize] += m.qty as f32;
    }
    out
}

/// Done moves from internal locations to customers, dated in `[start, end)`,
/// optionally written at or after `since`.
fn domain(start: Date, end: Date, since: Option<&str>) -> Value {
    let mut d = vec![
        json!(["state", "=", "done"]),
        json!(["location_id.usage", "=", "internal"]),
        json!(["location_dest_id.usage", "=", "customer"]),
        json!(["date", ">=", format!("{start} 00:00:00")]),
        json!(["date", "<", format!("{end} 00:00:00")]),
    ];
    if let Some(since) = since {
        // `>=`: a move written in the same second as the watermark is read
        // again rather than missed; replacing it by id is harmless.
        d.push(json!(["write_date", ">=", since]));
    }
    Value::Array(d)
}

/// `key` with everything but ASCII letters, digits and `-` made `_`, for a file name.
fn file_safe(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A cache file read back; `None` when missing or unreadable (then rebuilt).
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice::<T>(&text) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cache file is unreadable; rebuilding it");
            None
        }
    }
}

/// Writes a cache file beside and renames it, so a crash never leaves half a
/// file. A cache is an optimisation: a failed write costs a rebuild later.
pub(super) fn write_json<T: Serialize>(path: &std::path::Path, value: &T) {
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(value).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "could not write a cache file");
    }
}

async fn identity(client: &OdooClient, key: &HistoryKey) -> Result<String, ScanError> {
    // Reading `database.uuid` needs admin rights on some setups; without it
    // the URL and database name still tell databases apart.
    let uuid = client
        .search_read(
            "ir.config_parameter",
            &json!([["key", "=", "database.uuid"]]),
            &["value"],
            &SearchOptions::default(),
        )
        .await
        .ok()
        .and_then(|rows| {
            rows.first()
                .and_then(|r| r.str_field("value").ok().flatten().map(str::to_string))
        })
        .unwrap_or_default();
    Ok(format!("{}|{}|{uuid}", key.url, key.database))
}

async fn build(
    client: &OdooClient,
    identity: String,
    start: Date,
    end: Date,
) -> Result<Entry, ScanError> {
    let mut entry = Entry {
        version: FORMAT_VERSION,
        identity,
        start,
        end,
        watermark: String::new(),
        moves: BTreeMap::new(),
    };
    read_moves(client, &mut entry, start, end, None).await?;
    Ok(entry)
}

/// Reads moves into `entry` (replacing by id), moving its watermark forward.
/// Returns how many were read.
async fn read_moves(
    client: &OdooClient,
    entry: &mut Entry,
    start: Date,
    end: Date,
    since: Option<&str>,
) -> Result<u64, ScanError> {
    let what = "demand history";
    let rows = client
        .search_read_all(
            "stock.move",
            &domain(start, end, since),
            &[
                "id",
                "product_id",
                "location_id",
                "date",
                "product_qty",
                "write_date",
            ],
            &PageOptions::keyset(PAGE),
        )
        .await
        .map_err(ScanError::odoo(what))?;
    for row in &rows {
        let id = row.id().map_err(ScanError::odoo(what))?;
        let product = row.many2one("product_id").map_err(ScanError::odoo(what))?;
        let location = row.many2one("location_id").map_err(ScanError::odoo(what))?;
        let day = row
            .str_field("date")
            .map_err(ScanError::odoo(what))?
            .and_then(|s| s.get(..10))
            .and_then(|s| s.parse::<Date>().ok());
        let (Some(product), Some(location), Some(day)) = (product, location, day) else {
            continue;
        };
        // In the product's unit: a move may count in another (dozens).
        let qty = row.number("product_qty").map_err(ScanError::odoo(what))?;
        entry.moves.insert(
            id,
            Move {
                product: product.id,
                location: location.id,
                day,
                qty,
            },
        );
        if let Some(written) = row.str_field("write_date").map_err(ScanError::odoo(what))?
            && written > entry.watermark.as_str()
        {
            entry.watermark = written.to_string();
        }
    }
    Ok(rows.len() as u64)
}
