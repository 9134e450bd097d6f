//! Users and groups, as rules and policies name them.

use serde_json::json;

use super::{ExternalId, OdooClient, OdooError, RecordExt, SearchOptions};

/// The user ids in `group`, directly or through a group that implies it, sorted: the group is an external id
/// (`purchase.group_purchase_manager`) or a name, full ("Purchase /
/// Administrator") or as Odoo stores it ("Administrator"). A group that does
/// not exist has no members.
pub async fn group_member_ids(client: &OdooClient, group: &str) -> Result<Vec<i64>, OdooError> {
    let group_id = match group.split_once('.') {
        Some((module, name)) if !group.contains(' ') => match ExternalId::new(module, name) {
            Ok(xmlid) => client.resolve_external_id(&xmlid).await?.map(|(_, id)| id),
            Err(_) => None,
        },
        _ => {
            let short = group.rsplit(" / ").next().unwrap_or(group);
            client
                .search(
                    "res.groups",
                    &json!([["name", "=", short]]),
                    &SearchOptions::limit(1),
                )
                .await?
                .first()
                .copied()
        }
    };
    let Some(group_id) = group_id else {
        return Ok(Vec::new());
    };
    // Up to 18 `users` lists everyone in the group, including those who hold
    // it through another group (Odoo writes them in). 19 keeps only direct
    // members in `user_ids`; `all_user_ids` adds those of implying groups.
    let field = if client.info().version.major >= 19 {
        "all_user_ids"
    } else {
        "users"
    };
    let rows = client.read("res.groups", &[group_id], &[field]).await?;
    let mut ids = rows
        .first()
        .map(|r| r.ids(field))
        .transpose()?
        .unwrap_or_default();
    ids.sort_unstable();
    Ok(ids)
}
