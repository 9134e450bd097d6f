//! Records PlanOps keeps in Odoo, written once whatever happens to the replies.
//!
//! Every writer follows one pattern: observe (search by the record's key), create
//! what is missing, and when a create's reply is lost (a failure that may have
//! committed) observe again before trying anything else, since a second create
//! could duplicate. The key is the exception's fingerprint wherever PlanOps
//! writes on an exception's behalf:
//!
//! | writer | record | key |
//! |---|---|---|
//! | actions | `mail.activity`, draft `purchase.order` | fingerprint in the note / `origin` |
//! | actions, approvals, supplier effects | chatter note (`mail.message`) | fingerprint (and a tag) in the body, via [`post_note`] |
//! | approvals | `approval.request` / approver activities | `reference` = fingerprint / (request, user) |
//! | supplier effects | evidence `ir.attachment` | fingerprint in the file name |
//! | automation | `base.automation` and its server action | an external id, written through `load` |
//!
//! This module holds the steps the writers share.

use std::future::Future;

use odoo_client::values::{post_as_html, returned_id};
use odoo_client::{Call, OdooClient, OdooError};
use serde_json::Value;

/// A chatter note to post on one record.
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub model: &'a str,
    pub res_id: i64,
    /// HTML; must carry the key that [`post_note`]'s look-up searches for.
    pub html: String,
    /// Attachments to link to the message.
    pub attachment_ids: Vec<i64>,
}

/// A note that is on the record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// The message id, when Odoo said it (older versions answer without one).
    pub id: Option<i64>,
    /// Found by the look-up after a lost reply rather than answered by the post.
    pub after_lost_reply: bool,
}

/// Posts `note` as an internal note. When the reply is lost in a way that may
/// have committed, `find` looks for the note by its key: found, the post counts
/// as done; not found, the error is returned and the caller may try again.
pub async fn post_note<F, Fut, E>(
    client: &OdooClient,
    note: &Note<'_>,
    find: F,
) -> Result<Posted, PostError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<i64>, E>>,
{
    let mut call = Call::new(note.model, "message_post")
        .ids(vec![note.res_id])
        .kwarg("body", note.html.clone())
        .kwarg("message_type", "comment")
        .kwarg("subtype_xmlid", "mail.mt_note");
    if !note.attachment_ids.is_empty() {
        call = call.kwarg("attachment_ids", Value::from(note.attachment_ids.clone()));
    }
    match client
        .call(post_as_html(call, client.info().version.major))
        .await
    {
        Ok(value) => Ok(Posted {
            id: returned_id(&value),
            after_lost_reply: false,
        }),
        Err(err) if err.may_have_committed() => match find().await.map_err(PostError::Lookup)? {
            Some(id) => Ok(Posted {
                id: Some(id),
                after_lost_reply: true,
            }),
            None => Err(PostError::Post(err)),
        },
        Err(err) => Err(PostError::Post(err)),
    }
}

/// Why [`post_note`] could not say the note is there.
#[derive(Debug, thiserror::Error)]
pub enum PostError<E> {
    /// Odoo failed or refused the post (and the look-up, if any, did not find it).
    #[error("posting a chatter note: {0}")]
    Post(#[source] OdooError),
    /// The look-up after a lost reply failed: whether the note is there is unknown.
    #[error("looking for a chatter note after a lost reply: {0}")]
    Lookup(#[source] E),
}
