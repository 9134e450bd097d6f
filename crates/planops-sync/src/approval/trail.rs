//! The audit trail of a policy, read back from Odoo.
//!
//! Every note the gate posts on an RFQ ends with the same footer,
//! `<small>{fingerprint} {tag} · planops-approval {namespace}/{policy}[ · rule {rule}]</small>`,
//! so one search for the policy's marker finds every request it governs and
//! what happened to each. Nothing has to survive in the operator's memory:
//! the controller finds its pending requests here after a restart, the status
//! counts come from here, and `planops audit` prints the same history.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::odoo_io::strip_html;
use super::{ApprovalError, odoo_err};
use odoo_client::{OdooClient, PageOptions, RecordExt};

/// Text every note of `namespace/policy` carries.
pub fn policy_marker(namespace: &str, policy: &str) -> String {
    format!("planops-approval {namespace}/{policy}")
}

/// How a decided request ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailOutcome {
    pub approved: bool,
    /// Who decided (logins, comma-separated when a level needed several).
    pub by: String,
    /// When PlanOps carried the decision out.
    pub at: Timestamp,
    /// The outcome note as text (decision, level or reason, numbers).
    pub text: String,
}

/// One governed action and what happened to it, in the order of its notes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrailEntry {
    pub fingerprint: String,
    pub rfq_id: i64,
    pub rule: Option<String>,
    /// When the approval was asked for (the "approval-requested" note).
    pub requested_at: Option<Timestamp>,
    /// Levels (1-based) the request escalated to.
    pub escalations: Vec<usize>,
    /// Decisions that did not count (segregation of duties, not an approver).
    pub refusals: usize,
    /// When the last level's SLA breach was recorded.
    pub breached_at: Option<Timestamp>,
    pub outcome: Option<TrailOutcome>,
    /// When the request was withdrawn (its policy deleted).
    pub withdrawn_at: Option<Timestamp>,
}

impl TrailEntry {
    /// Still waiting for a decision.
    pub fn is_pending(&self) -> bool {
        self.requested_at.is_some() && self.outcome.is_none() && self.withdrawn_at.is_none()
    }

    /// From request to carried-out decision.
    pub fn cycle_time(&self) -> Option<SignedDuration> {
        let outcome = self.outcome.as_ref()?;
        Some(outcome.at.duration_since(self.requested_at?))
    }
}

/// The footer of a gate note: (fingerprint, tag, namespace/policy, rule).
fn footer(body: &str) -> Option<(String, String, String, Option<String>)> {
    let start = body.rfind("<small>")? + "<small>".len();
    let end = start + body[start..].find("</small>")?;
    let text = strip_html(&body[start..end]);
    let mut parts = text.split(" · ");
    let mut head = parts.next()?.split_whitespace();
    let fingerprint = head.next()?.to_string();
    let tag = head.next()?.to_string();
    let policy = parts.next()?.strip_prefix("planops-approval ")?.to_string();
    let rule = parts
        .next()
        .and_then(|r| r.strip_prefix("rule "))
        .map(str::to_string);
    Some((fingerprint, tag, policy, rule))
}

/// The note's text before its footer.
fn note_text(body: &str) -> String {
    let cut = body.rfind("<p><small>").unwrap_or(body.len());
    strip_html(&body[..cut])
}

/// Who decided, from an outcome note ("Approved by a, b (level …" /
/// "Rejected by a under policy …").
fn decided_by(text: &str) -> (bool, String) {
    if let Some(rest) = text.strip_prefix("Approved by ") {
        let by = rest.split(" (level").next().unwrap_or_default();
        return (true, by.to_string());
    }
    let rest = text.strip_prefix("Rejected by ").unwrap_or(text);
    (
        false,
        rest.split(" under policy")
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Reads the whole trail of `namespace/policy` in one search, oldest first.
pub async fn read_trail(
    client: &OdooClient,
    namespace: &str,
    policy: &str,
) -> Result<Vec<TrailEntry>, ApprovalError> {
    let wanted = format!("{namespace}/{policy}");
    let rows = client
        .search_read_all(
            "mail.message",
            &json!([
                ["model", "=", "purchase.order"],
                ["body", "ilike", policy_marker(namespace, policy)]
            ]),
            &["body", "res_id", "date"],
            // Keyset pages go by id: the notes come oldest first.
            &PageOptions::default(),
        )
        .await
        .map_err(odoo_err("reading the approval trail"))?;
    let mut entries: BTreeMap<String, TrailEntry> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for row in &rows {
        let body = row.str_field("body").ok().flatten().unwrap_or_default();
        // "ns/big" is a prefix of "ns/big-buys": the search finds both, the footer tells.
        let Some((fingerprint, tag, policy, rule)) = footer(body) else {
            continue;
        };
        if policy != wanted {
            continue;
        }
        let at = row.datetime("date").ok().flatten();
        let rfq_id = row.field("res_id").and_then(|v| v.as_i64()).unwrap_or(0);
        let entry = entries.entry(fingerprint.clone()).or_insert_with(|| {
            order.push(fingerprint.clone());
            TrailEntry {
                fingerprint: fingerprint.clone(),
                rfq_id,
                ..TrailEntry::default()
            }
        });
        if entry.rule.is_none() {
            entry.rule = rule;
        }
        match tag.as_str() {
            "approval-requested" => entry.requested_at = entry.requested_at.or(at),
            "approval-outcome" => {
                let text = note_text(body);
                let (approved, by) = decided_by(&text);
                entry.outcome = Some(TrailOutcome {
                    approved,
                    by,
                    at: at.unwrap_or_else(Timestamp::now),
                    text,
                });
            }
            "approval-sla-breached" => entry.breached_at = at,
            "approval-withdrawn" => entry.withdrawn_at = at,
            t if t.starts_with("approval-escalated-") => {
                if let Ok(level) = t["approval-escalated-".len()..].parse() {
                    entry.escalations.push(level);
                }
            }
            t if t.starts_with("approval-decision-refused-") => entry.refusals += 1,
            _ => {}
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|fp| entries.remove(&fp))
        .collect())
}

/// Counts and the median cycle time over a trail, for the policy's status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrailSummary {
    pub pending: u64,
    pub approved: u64,
    pub rejected: u64,
    pub escalated: u64,
    pub sla_breaches: u64,
    pub median_cycle_time: Option<SignedDuration>,
}

pub fn summarize(entries: &[TrailEntry]) -> TrailSummary {
    let mut s = TrailSummary::default();
    let mut cycles: Vec<SignedDuration> = Vec::new();
    for e in entries {
        if e.is_pending() {
            s.pending += 1;
        }
        match &e.outcome {
            Some(o) if o.approved => s.approved += 1,
            Some(_) => s.rejected += 1,
            None => {}
        }
        if !e.escalations.is_empty() {
            s.escalated += 1;
        }
        if e.breached_at.is_some() {
            s.sla_breaches += 1;
        }
        cycles.extend(e.cycle_time());
    }
    cycles.sort();
    s.median_cycle_time = match cycles.len() {
        0 => None,
        n if n % 2 == 1 => Some(cycles[n / 2]),
        n => Some((cycles[n / 2 - 1] + cycles[n / 2]) / 2),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footers_and_outcomes_parse() {
        let body = "<p>Approved by buyer.bob (level buyers) under policy big: RFQ confirmed. Emergency purchase 12 400 EUR.</p><p><small>planops:0123 approval-outcome · planops-approval plan/big · rule stockouts</small></p>";
        assert_eq!(
            footer(body),
            Some((
                "planops:0123".into(),
                "approval-outcome".into(),
                "plan/big".into(),
                Some("stockouts".into())
            ))
        );
        assert_eq!(decided_by(&note_text(body)), (true, "buyer.bob".into()));
        assert_eq!(
            decided_by("Rejected by buyer.chen under policy big: RFQ cancelled. Reason: no."),
            (false, "buyer.chen".into())
        );
        assert_eq!(footer("<p>no footer</p>"), None);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let t0: Timestamp = "2025-03-01T08:00:00Z".parse().unwrap();
        let decided = |secs: i64| TrailEntry {
            requested_at: Some(t0),
            outcome: Some(TrailOutcome {
                approved: true,
                by: "bob".into(),
                at: t0 + SignedDuration::from_secs(secs),
                text: String::new(),
            }),
            ..TrailEntry::default()
        };
        let s = summarize(&[decided(10), decided(30)]);
        assert_eq!(s.median_cycle_time, Some(SignedDuration::from_secs(20)));
        assert_eq!(s.approved, 2);
        let s = summarize(&[decided(10), decided(30), decided(100)]);
        assert_eq!(s.median_cycle_time, Some(SignedDuration::from_secs(30)));
    }
}
