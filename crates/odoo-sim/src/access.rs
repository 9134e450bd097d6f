//! Group membership as each version keeps it.
//!
//! Up to 18 a user is written into every group the groups they are given
//! imply, so `res.groups.users` lists direct and implied members alike. 19
//! keeps only what was assigned (`user_ids`, `group_ids`) and computes the
//! implied side (`all_user_ids`, `all_group_ids`) on read, so a client that
//! reads `user_ids` misses everyone who holds the group through another one.
//!
//! The simulator stores both sides of the user ↔ group relation; this module
//! keeps them in step after every create and write.

use std::collections::{BTreeSet, HashSet};

use super::store::Store;
use super::value::Val;
use crate::db::OdooVersion;

/// Field names of the relation in one version.
struct Names {
    /// `res.groups` → users (direct on 19, direct and implied before).
    users: &'static str,
    /// `res.users` → groups.
    groups: &'static str,
}

fn names(version: OdooVersion) -> Names {
    if version >= OdooVersion::V19 {
        Names {
            users: "user_ids",
            groups: "group_ids",
        }
    } else {
        Names {
            users: "users",
            groups: "groups_id",
        }
    }
}

impl Store {
    /// Brings both sides of the membership relation in line after records of
    /// `model` were created or written, adding implied groups up to 18.
    pub fn group_members_changed(&mut self, model: &str, ids: &[i64]) {
        if ids.is_empty() || !matches!(model, "res.groups" | "res.users") {
            return;
        }
        let (Ok(gi), Ok(ui)) = (
            self.model_index("res.groups"),
            self.model_index("res.users"),
        ) else {
            return;
        };
        let n = names(self.version);
        let (Some(users_slot), Some(groups_slot)) = (
            self.tables[gi].def.slot_of(n.users),
            self.tables[ui].def.slot_of(n.groups),
        ) else {
            return;
        };
        let materialise = self.version < OdooVersion::V19;
        let groups: Vec<i64> = self.tables[gi].ids().collect();
        let users: Vec<i64> = self.tables[ui].ids().collect();
        // The side just written is the truth; the other side follows it.
        let mut pairs: BTreeSet<(i64, i64)> = BTreeSet::new();
        for &g in &groups {
            for &u in self.slot_value(gi, g, n.users).ids() {
                pairs.insert((u, g));
            }
        }
        for &u in &users {
            for &g in self.slot_value(ui, u, n.groups).ids() {
                pairs.insert((u, g));
            }
        }
        let written: HashSet<i64> = ids.iter().copied().collect();
        pairs.retain(|&(u, g)| {
            let on_group = self.slot_value(gi, g, n.users).ids().contains(&u);
            let on_user = self.slot_value(ui, u, n.groups).ids().contains(&g);
            match model {
                "res.groups" if written.contains(&g) => on_group,
                "res.users" if written.contains(&u) => on_user,
                _ => on_group || on_user,
            }
        });
        if materialise {
            let direct: Vec<(i64, i64)> = pairs.iter().copied().collect();
            for (u, g) in direct {
                for implied in self.implied_closure(&[g]) {
                    pairs.insert((u, implied));
                }
            }
        }
        for &g in &groups {
            let members: Vec<i64> = pairs
                .iter()
                .filter(|&&(_, pg)| pg == g)
                .map(|&(u, _)| u)
                .collect();
            if self.slot_value(gi, g, n.users).ids() != members.as_slice() {
                self.set_slot(gi, g, users_slot, Val::Ids(members.into()));
            }
        }
        for &u in &users {
            let held: Vec<i64> = pairs
                .iter()
                .filter(|&&(pu, _)| pu == u)
                .map(|&(_, g)| g)
                .collect();
            let mut current = self.slot_value(ui, u, n.groups).ids().to_vec();
            current.sort_unstable();
            if current != held {
                self.set_slot(ui, u, groups_slot, Val::Ids(held.into()));
            }
        }
    }

    /// The groups `roots` imply, transitively, the roots left out.
    pub fn implied_closure(&self, roots: &[i64]) -> BTreeSet<i64> {
        self.group_walk(roots, |store, gi, g| {
            store.slot_value(gi, g, "implied_ids").ids().to_vec()
        })
    }

    /// The groups that imply `roots`, transitively, the roots left out.
    fn implying_closure(&self, roots: &[i64]) -> BTreeSet<i64> {
        self.group_walk(roots, |store, gi, g| {
            store.tables[gi]
                .ids()
                .filter(|&other| {
                    store
                        .slot_value(gi, other, "implied_ids")
                        .ids()
                        .contains(&g)
                })
                .collect()
        })
    }

    fn group_walk(
        &self,
        roots: &[i64],
        next: impl Fn(&Store, usize, i64) -> Vec<i64>,
    ) -> BTreeSet<i64> {
        let mut seen = BTreeSet::new();
        let Ok(gi) = self.model_index("res.groups") else {
            return seen;
        };
        let mut todo: Vec<i64> = roots.iter().flat_map(|&g| next(self, gi, g)).collect();
        while let Some(g) = todo.pop() {
            if seen.insert(g) {
                todo.extend(next(self, gi, g));
            }
        }
        for root in roots {
            seen.remove(root);
        }
        seen
    }

    /// The computed membership fields: `trans_implied_ids` (16–18), and on 19
    /// `all_implied_ids` / `all_implied_by_ids` (each group included) and
    /// `all_user_ids` / `all_group_ids` (direct and implied). `None` for any
    /// other field.
    pub fn membership_field(&self, model: &str, id: i64, field: &str) -> Option<Val> {
        let ids = |set: BTreeSet<i64>| Some(Val::Ids(set.into_iter().collect::<Vec<_>>().into()));
        match (model, field) {
            ("res.groups", "trans_implied_ids") => ids(self.implied_closure(&[id])),
            ("res.groups", "all_implied_ids") => {
                let mut set = self.implied_closure(&[id]);
                set.insert(id);
                ids(set)
            }
            ("res.groups", "all_implied_by_ids") => {
                let mut set = self.implying_closure(&[id]);
                set.insert(id);
                ids(set)
            }
            ("res.groups", "all_user_ids") => {
                let gi = self.model_index("res.groups").ok()?;
                let mut holders = self.implying_closure(&[id]);
                holders.insert(id);
                ids(holders
                    .into_iter()
                    .flat_map(|g| self.slot_value(gi, g, "user_ids").ids().to_vec())
                    .collect())
            }
            ("res.users", "all_group_ids") => {
                let ui = self.model_index("res.users").ok()?;
                let direct = self.slot_value(ui, id, "group_ids").ids().to_vec();
                let mut set = self.implied_closure(&direct);
                set.extend(direct);
                ids(set)
            }
            _ => None,
        }
    }
}
