//! Record storage: one table per model, rows indexed by id, with per-field
//! indexes on the many2one columns that one2many fields and stock lookups use.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::{Date, DateTime};

use super::model::{FieldDef, ModelDef, Registry, Storage};
use super::value::Val;
use crate::db::{Edition, OdooVersion, OrmError, WebhookDelivery};

/// One record: stored values by slot plus the metadata Odoo keeps on every row.
#[derive(Debug, Clone)]
pub struct Row {
    pub vals: Vec<Val>,
    pub create_date: DateTime,
    pub write_date: DateTime,
    pub create_uid: i64,
    pub write_uid: i64,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub def: Arc<ModelDef>,
    /// `rows[id]`; id 0 is never used.
    pub rows: Vec<Option<Row>>,
    /// Field slot → (target id → record ids), for indexed relational/int columns.
    pub index: HashMap<usize, HashMap<i64, Vec<i64>>>,
    /// Field slot → (exact text → record ids), for indexed char columns
    /// (`default_code`, `origin`, `ref`): lets an equality in a search skip
    /// the full scan.
    pub text_index: HashMap<usize, HashMap<Arc<str>, Vec<i64>>>,
}

impl Table {
    pub fn get(&self, id: i64) -> Option<&Row> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.rows.get(i))
            .and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut Row> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.rows.get_mut(i))
            .and_then(Option::as_mut)
    }

    pub fn exists(&self, id: i64) -> bool {
        self.get(id).is_some()
    }

    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_some())
            .map(|(i, _)| i as i64)
    }

    /// [`Self::ids`] from `first` on.
    pub fn ids_from(&self, first: i64) -> impl Iterator<Item = i64> + '_ {
        // Rows are indexed by id, so this starts at `first` without walking
        // the rows before it.
        self.rows
            .iter()
            .enumerate()
            .skip(usize::try_from(first).unwrap_or(0))
            .filter(|(_, r)| r.is_some())
            .map(|(i, _)| i as i64)
    }

    pub fn len(&self) -> usize {
        self.rows.iter().filter(|r| r.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn next_id(&self) -> i64 {
        self.rows.len().max(1) as i64
    }

    /// Records whose indexed column `slot` holds `target`.
    pub fn lookup(&self, slot: usize, target: i64) -> Option<&[i64]> {
        self.index
            .get(&slot)
            .map(|m| m.get(&target).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Records whose indexed char column `slot` is exactly `text`.
    pub fn lookup_text(&self, slot: usize, text: &str) -> Option<&[i64]> {
        self.text_index
            .get(&slot)
            .map(|m| m.get(text).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Slots of both kinds of index.
    fn indexed_slots(&self) -> Vec<usize> {
        self.index
            .keys()
            .chain(self.text_index.keys())
            .copied()
            .collect()
    }

    pub(super) fn is_indexed(&self, slot: usize) -> bool {
        self.index.contains_key(&slot) || self.text_index.contains_key(&slot)
    }

    pub(super) fn index_add(&mut self, id: i64, slot: usize, value: &Val) {
        if let (Some(map), Some(target)) = (self.index.get_mut(&slot), value.as_id()) {
            map.entry(target).or_default().push(id);
        }
        if let (Some(map), Val::Str(text)) = (self.text_index.get_mut(&slot), value) {
            map.entry(text.clone()).or_default().push(id);
        }
    }

    pub(super) fn index_remove(&mut self, id: i64, slot: usize, value: &Val) {
        if let (Some(map), Some(target)) = (self.index.get_mut(&slot), value.as_id())
            && let Some(list) = map.get_mut(&target)
        {
            list.retain(|&other| other != id);
        }
        if let (Some(map), Val::Str(text)) = (self.text_index.get_mut(&slot), value)
            && let Some(list) = map.get_mut(text.as_ref())
        {
            list.retain(|&other| other != id);
        }
    }
}

/// Credentials of one user. Keys are kept hashed so a dump of the store never
/// shows them.
#[derive(Clone)]
pub struct UserAuth {
    pub uid: i64,
    pub login: String,
    pub password_hash: String,
    pub is_admin: bool,
}

/// The whole simulated database, behind the `Database` lock. Cloned to keep
/// the committed state readable while a 17/18 call sends its webhooks.
#[derive(Clone)]
pub struct Store {
    pub reg: Registry,
    pub tables: Vec<Table>,
    pub version: OdooVersion,
    pub edition: Edition,
    pub today: Date,
    pub clock_origin: DateTime,
    pub started: std::time::Instant,
    pub users: Vec<UserAuth>,
    /// sha256(key) → uid.
    pub api_keys: HashMap<String, i64>,
    pub webhooks: Vec<WebhookDelivery>,
    pub sequences: HashMap<String, usize>,
    /// Fixed timestamp used while seeding so the data set is reproducible.
    pub frozen_now: Option<DateTime>,
}

pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

impl Store {
    pub fn new(
        version: OdooVersion,
        edition: Edition,
        today: Date,
        clock_origin: DateTime,
    ) -> Store {
        let reg = super::model::registry(version, edition);
        let mut tables = Vec::with_capacity(reg.models.len());
        for def in &reg.models {
            tables.push(Table {
                def: def.clone(),
                rows: vec![None],
                index: HashMap::new(),
                text_index: HashMap::new(),
            });
        }
        // Index every many2one that a one2many points back through, plus the
        // explicitly indexed ones.
        let mut wanted: Vec<(String, String)> = Vec::new();
        for def in &reg.models {
            for field in &def.fields {
                if let (Storage::Inverse(inverse), Some(rel)) = (&field.storage, &field.relation) {
                    wanted.push((rel.clone(), inverse.clone()));
                }
                if field.indexed {
                    wanted.push((def.name.clone(), field.name.clone()));
                }
            }
        }
        for (model, field) in wanted {
            if let Some(&mi) = reg.by_name.get(&model)
                && let Some(slot) = reg.models[mi].slot_of(&field)
            {
                let text = reg.models[mi]
                    .field(&field)
                    .is_some_and(|f| f.ftype == super::model::FieldType::Char);
                if text {
                    tables[mi].text_index.entry(slot).or_default();
                } else {
                    tables[mi].index.entry(slot).or_default();
                }
            }
        }
        Store {
            reg,
            tables,
            version,
            edition,
            today,
            clock_origin,
            started: std::time::Instant::now(),
            users: Vec::new(),
            api_keys: HashMap::new(),
            webhooks: Vec::new(),
            sequences: HashMap::new(),
            frozen_now: None,
        }
    }

    /// The simulated wall clock, in whole seconds: moves forward from the
    /// configured "today".
    pub fn now(&self) -> DateTime {
        if let Some(frozen) = self.frozen_now {
            return frozen;
        }
        let elapsed = self.started.elapsed().as_secs() as i64;
        let at = self
            .clock_origin
            .checked_add(jiff::Span::new().seconds(elapsed))
            .unwrap_or(self.clock_origin);
        // Odoo's `fields.Datetime.now()` drops the microseconds.
        at.with().subsec_nanosecond(0).build().unwrap_or(at)
    }

    /// What Odoo stamps `create_date` and `write_date` with: the clock to
    /// the microsecond (field defaults such as "now" keep whole seconds).
    pub fn stamp(&self) -> DateTime {
        if let Some(frozen) = self.frozen_now {
            return frozen;
        }
        let elapsed = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let at = self
            .clock_origin
            .checked_add(jiff::Span::new().microseconds(elapsed))
            .unwrap_or(self.clock_origin);
        let micros = at.subsec_nanosecond() / 1000 * 1000;
        at.with().subsec_nanosecond(micros).build().unwrap_or(at)
    }

    /// Whether any automation rule exists (archived ones included).
    pub fn has_automations(&self) -> bool {
        self.table("base.automation")
            .is_ok_and(|t| t.rows.iter().any(Option::is_some))
    }

    pub fn model_index(&self, model: &str) -> Result<usize, OrmError> {
        self.reg
            .by_name
            .get(model)
            .copied()
            .ok_or_else(|| OrmError::UnknownModel(model.to_string()))
    }

    pub fn table(&self, model: &str) -> Result<&Table, OrmError> {
        Ok(&self.tables[self.model_index(model)?])
    }

    pub fn def(&self, model: &str) -> Result<Arc<ModelDef>, OrmError> {
        Ok(self.table(model)?.def.clone())
    }

    /// Inserts a row with already-converted stored values (no defaults, no checks).
    pub fn insert_raw(&mut self, mi: usize, vals: Vec<Val>, uid: i64) -> i64 {
        let now = self.stamp();
        let table = &mut self.tables[mi];
        let id = table.next_id();
        let slots = table.indexed_slots();
        for slot in slots {
            let value = vals[slot].clone();
            table.index_add(id, slot, &value);
        }
        table.rows.push(Some(Row {
            vals,
            create_date: now,
            write_date: now,
            create_uid: uid,
            write_uid: uid,
        }));
        id
    }

    /// Sets one stored slot, maintaining indexes.
    pub fn set_slot(&mut self, mi: usize, id: i64, slot: usize, value: Val) {
        let table = &mut self.tables[mi];
        let indexed = table.is_indexed(slot);
        let Some(row) = table.get_mut(id) else {
            return;
        };
        let old = std::mem::replace(&mut row.vals[slot], value.clone());
        if indexed && old != value {
            table.index_remove(id, slot, &old);
            table.index_add(id, slot, &value);
        }
    }

    pub fn touch(&mut self, mi: usize, id: i64, uid: i64) {
        let now = self.stamp();
        if let Some(row) = self.tables[mi].get_mut(id) {
            row.write_date = now;
            row.write_uid = uid;
        }
    }

    pub fn remove(&mut self, mi: usize, id: i64) {
        let table = &mut self.tables[mi];
        let Some(row) = usize::try_from(id)
            .ok()
            .and_then(|i| table.rows.get_mut(i))
            .and_then(Option::take)
        else {
            return;
        };
        let slots = table.indexed_slots();
        for slot in slots {
            table.index_remove(id, slot, &row.vals[slot]);
        }
    }

    pub fn next_sequence(&mut self, prefix: &str, width: usize) -> String {
        let counter = self.sequences.entry(prefix.to_string()).or_insert(0);
        *counter += 1;
        format!("{prefix}{:0width$}", *counter)
    }

    /// Raw stored value of `field` by name, following nothing.
    pub fn slot_value(&self, mi: usize, id: i64, field: &str) -> Val {
        let table = &self.tables[mi];
        match (table.def.slot_of(field), table.get(id)) {
            (Some(slot), Some(row)) => row.vals[slot].clone(),
            _ => Val::False,
        }
    }

    pub fn field<'a>(&'a self, mi: usize, name: &str) -> Option<&'a FieldDef> {
        self.tables[mi].def.field(name)
    }
}
