//! Which shard an object belongs to. A shard is a set of OdooConnections
//! with everything that uses them (rules, supplier connectors, approval
//! policies); one replica at a time holds a shard (see [`super::leadership`])
//! and acts on its objects.

use sha2::{Digest, Sha256};

use super::kinds::PlanopsKind;

/// A shard's number, `0..count`.
pub type Shard = u32;

/// The shard of the connection `namespace/connection` among `count` shards.
///
/// SHA-256 rather than the standard library's hasher: every replica, whatever
/// its build, must put a connection in the same shard.
pub fn shard_of_connection(namespace: &str, connection: &str, count: u32) -> Shard {
    if count <= 1 {
        return 0;
    }
    let digest = Sha256::new()
        .chain_update(namespace.as_bytes())
        .chain_update(b"/")
        .chain_update(connection.as_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let shard = u64::from_be_bytes(head) % u64::from(count);
    // Below `count`, which is a u32.
    Shard::try_from(shard).unwrap_or_default()
}

/// The shard of `obj`: its connection's. An object without a connection
/// (none of today's kinds) goes to shard 0.
pub fn shard_of<K: PlanopsKind>(obj: &K, count: u32) -> Shard {
    let namespace = obj.meta().namespace.as_deref().unwrap_or_default();
    match obj.shard_connection() {
        Some(connection) => shard_of_connection(namespace, connection, count),
        None => 0,
    }
}

/// The name of `shard`'s Lease: the leader Lease's own name when there is one
/// shard, so a single-shard operator keeps the Lease it always had.
pub fn lease_name(base: &str, shard: Shard, count: u32) -> String {
    if count <= 1 {
        base.to_string()
    } else {
        format!("{base}-{shard}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_and_what_uses_it_share_a_shard_that_never_changes() {
        // Pinned: a change of hash would move every connection at an upgrade,
        // with two versions of the operator disagreeing on who holds what.
        assert_eq!(shard_of_connection("shop", "odoo", 4), 2);
        assert_eq!(shard_of_connection("shop", "odoo", 1), 0);
        let mut seen = [0usize; 4];
        for i in 0..400 {
            let shard = shard_of_connection("tenants", &format!("odoo-{i}"), 4);
            seen[shard as usize] += 1;
        }
        assert!(
            seen.iter().all(|n| *n > 60),
            "400 connections over 4 shards: {seen:?}"
        );
        // The separator keeps `a/bc` and `ab/c` apart.
        assert_ne!(
            (0..16)
                .map(|n| shard_of_connection("a", "bc", 16 + n))
                .collect::<Vec<_>>(),
            (0..16)
                .map(|n| shard_of_connection("ab", "c", 16 + n))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn one_shard_keeps_the_leader_lease_name() {
        assert_eq!(lease_name("planops-leader", 0, 1), "planops-leader");
        assert_eq!(lease_name("planops-leader", 3, 4), "planops-leader-3");
    }
}
