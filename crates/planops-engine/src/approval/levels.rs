//! Levels, SLAs, escalation and segregation of duties as a pure state machine.
//!
//! The clock is an argument so the controller, the tests and `planops audit`
//! replay the same decisions. The deadline of level `i` is the request's
//! opening time plus the SLAs of levels `0..=i`: escalation does not reset the
//! clock, so a controller that was down for a day jumps straight to the level
//! the clock implies instead of walking one level per poll.
//!
//! Eligibility widens with escalation: once at level `n`, approvers of levels
//! `0..=n` may decide (the first approver answering late still counts), and a
//! level is satisfied by its own members' approvals reaching its minimum. Any
//! eligible refusal rejects, as one refusal refuses an Odoo `approval.request`.

use jiff::{SignedDuration, Timestamp};

/// A person who can decide, as resolved from a login or a group in Odoo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub uid: i64,
    pub login: String,
    /// The user's partner: chatter messages carry authors as partners.
    pub partner_id: Option<i64>,
}

/// A level after its logins and groups were resolved to users.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLevel {
    pub name: String,
    pub approvers: Vec<Approver>,
    pub min_approvals: u32,
    pub sla: SignedDuration,
}

/// Approve or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Refuse,
}

/// One decision read back from Odoo.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub uid: i64,
    /// Login or name, for notes.
    pub who: String,
    pub verdict: Verdict,
    /// The refusal reason or approval comment, if any.
    pub note: Option<String>,
}

/// A decision that does not count, and why (recorded in the audit trail).
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub decision: Decision,
    pub reason: String,
}

/// What the controller must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing yet; look again before `deadline` passes.
    Wait {
        level: usize,
        deadline: Timestamp,
    },
    /// Add level `to`'s approvers and post `note`.
    Escalate {
        to: usize,
        note: String,
    },
    Approved {
        level: usize,
        by: Vec<String>,
    },
    Rejected {
        by: String,
        reason: String,
    },
    /// The last level's SLA passed without a decision: keep waiting, report it.
    LastLevelBreached {
        level: usize,
        since: Timestamp,
    },
}

/// The step plus the decisions that were set aside.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub step: Step,
    pub refused: Vec<Refused>,
}

/// The state of a pending request, as stored in Odoo and read back.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingState {
    pub opened_at: Timestamp,
    /// The level whose approvers Odoo already knows (0 = first).
    pub level: usize,
    /// The user who raised or owns the governed action.
    pub requester_uid: Option<i64>,
    /// Whether the requester is barred from approving (the policy default is true).
    pub segregation_of_duties: bool,
}

/// Deadline of level `index`: opening time plus the SLAs up to and including it.
pub fn deadline(levels: &[ResolvedLevel], opened_at: Timestamp, index: usize) -> Timestamp {
    let total = levels
        .iter()
        .take(index + 1)
        .fold(SignedDuration::ZERO, |acc, l| acc.saturating_add(l.sla));
    opened_at.saturating_add(total).unwrap_or(Timestamp::MAX)
}

fn hours(d: SignedDuration) -> String {
    let h = d.as_secs_f64() / 3600.0;
    if (h - h.round()).abs() < 1e-9 {
        format!("{} h", h.round())
    } else {
        format!("{h:.2} h")
    }
}

/// Decides the next step of a request from its state, the decisions so far and the clock.
pub fn evaluate(
    levels: &[ResolvedLevel],
    state: &PendingState,
    decisions: &[Decision],
    now: Timestamp,
) -> Evaluation {
    let last = levels.len().saturating_sub(1);
    // The level the clock implies: the first whose deadline has not passed.
    let implied = (0..levels.len())
        .find(|&i| now < deadline(levels, state.opened_at, i))
        .unwrap_or(last);
    let effective = state.level.max(implied).min(last);
    let eligible = |uid: i64| {
        levels
            .iter()
            .take(effective + 1)
            .any(|l| l.approvers.iter().any(|a| a.uid == uid))
    };
    let mut refused = Vec::new();
    let mut valid: Vec<&Decision> = Vec::new();
    for d in decisions {
        if state.segregation_of_duties && state.requester_uid == Some(d.uid) {
            refused.push(Refused {
                decision: d.clone(),
                reason: format!(
                    "segregation of duties: {} raised or owns this action and cannot decide on it",
                    d.who
                ),
            });
        } else if !eligible(d.uid) {
            refused.push(Refused {
                decision: d.clone(),
                reason: format!(
                    "{} is not an approver of levels 1–{} of this policy",
                    d.who,
                    effective + 1
                ),
            });
        } else {
            valid.push(d);
        }
    }
    if let Some(no) = valid.iter().find(|d| d.verdict == Verdict::Refuse) {
        return Evaluation {
            step: Step::Rejected {
                by: no.who.clone(),
                reason: no.note.clone().unwrap_or_else(|| "no reason given".into()),
            },
            refused,
        };
    }
    for (i, level) in levels.iter().enumerate().take(effective + 1) {
        let mut by: Vec<String> = valid
            .iter()
            .filter(|d| d.verdict == Verdict::Approve)
            .filter(|d| level.approvers.iter().any(|a| a.uid == d.uid))
            .map(|d| d.who.clone())
            .collect();
        by.sort();
        by.dedup();
        if by.len() as u32 >= level.min_approvals.max(1) {
            return Evaluation {
                step: Step::Approved { level: i, by },
                refused,
            };
        }
    }
    let step = if implied > state.level {
        let from = &levels[state.level.min(last)];
        let to = &levels[implied];
        Step::Escalate {
            to: implied,
            note: format!(
                "No decision from level {} ({}) within its SLA ({} since the request opened {}); escalated to level {} ({}): {}.",
                state.level + 1,
                from.name,
                hours(
                    deadline(levels, state.opened_at, state.level).duration_since(state.opened_at)
                ),
                state.opened_at,
                implied + 1,
                to.name,
                to.approvers
                    .iter()
                    .map(|a| a.login.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    } else if effective == last && now >= deadline(levels, state.opened_at, last) {
        Step::LastLevelBreached {
            level: last,
            since: deadline(levels, state.opened_at, last),
        }
    } else {
        Step::Wait {
            level: effective,
            deadline: deadline(levels, state.opened_at, effective),
        }
    };
    Evaluation { step, refused }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: i64, login: &str) -> Approver {
        Approver {
            uid,
            login: login.into(),
            partner_id: Some(uid + 100),
        }
    }

    fn levels() -> Vec<ResolvedLevel> {
        vec![
            ResolvedLevel {
                name: "buyers".into(),
                approvers: vec![who(10, "alice"), who(11, "bob")],
                min_approvals: 1,
                sla: SignedDuration::from_hours(4),
            },
            ResolvedLevel {
                name: "managers".into(),
                approvers: vec![who(20, "carol"), who(21, "dan")],
                min_approvals: 2,
                sla: SignedDuration::from_hours(8),
            },
        ]
    }

    fn t0() -> Timestamp {
        "2025-03-01T08:00:00Z".parse().unwrap()
    }

    fn at(hours: i64) -> Timestamp {
        t0() + SignedDuration::from_hours(hours)
    }

    fn state(level: usize) -> PendingState {
        PendingState {
            opened_at: t0(),
            level,
            requester_uid: Some(10),
            segregation_of_duties: true,
        }
    }

    fn d(uid: i64, name: &str, verdict: Verdict) -> Decision {
        Decision {
            uid,
            who: name.into(),
            verdict,
            note: (verdict == Verdict::Refuse).then(|| "too expensive".into()),
        }
    }

    #[test]
    fn waits_then_escalates_then_breaches_on_a_fake_clock() {
        let l = levels();
        assert_eq!(
            evaluate(&l, &state(0), &[], at(1)).step,
            Step::Wait {
                level: 0,
                deadline: at(4)
            }
        );
        let Step::Escalate { to, note } = evaluate(&l, &state(0), &[], at(5)).step else {
            panic!("expected escalation");
        };
        assert_eq!(to, 1);
        assert!(
            note.contains("level 1 (buyers) within its SLA (4 h"),
            "{note}"
        );
        assert!(
            note.contains("escalated to level 2 (managers): carol, dan"),
            "{note}"
        );
        // Once Odoo knows level 2, the clock runs on to its deadline (4 + 8 h).
        assert_eq!(
            evaluate(&l, &state(1), &[], at(5)).step,
            Step::Wait {
                level: 1,
                deadline: at(12)
            }
        );
        assert_eq!(
            evaluate(&l, &state(1), &[], at(13)).step,
            Step::LastLevelBreached {
                level: 1,
                since: at(12)
            }
        );
        // A controller down for a day jumps to the level the clock implies.
        assert!(matches!(
            evaluate(&l, &state(0), &[], at(30)).step,
            Step::Escalate { to: 1, .. }
        ));
    }

    #[test]
    fn one_approval_satisfies_level_one() {
        let e = evaluate(
            &levels(),
            &state(0),
            &[d(11, "bob", Verdict::Approve)],
            at(1),
        );
        assert_eq!(
            e.step,
            Step::Approved {
                level: 0,
                by: vec!["bob".into()]
            }
        );
        assert!(e.refused.is_empty());
    }

    #[test]
    fn level_two_needs_two_managers() {
        let l = levels();
        let one = [d(20, "carol", Verdict::Approve)];
        assert!(matches!(
            evaluate(&l, &state(1), &one, at(6)).step,
            Step::Wait { .. }
        ));
        let two = [
            d(20, "carol", Verdict::Approve),
            d(21, "dan", Verdict::Approve),
        ];
        assert_eq!(
            evaluate(&l, &state(1), &two, at(6)).step,
            Step::Approved {
                level: 1,
                by: vec!["carol".into(), "dan".into()]
            }
        );
        // Before escalation, managers are not yet approvers.
        let e = evaluate(&l, &state(0), &two, at(1));
        assert!(matches!(e.step, Step::Wait { level: 0, .. }));
        assert_eq!(e.refused.len(), 2);
    }

    #[test]
    fn the_requester_cannot_approve_and_the_refusal_is_recorded() {
        let e = evaluate(
            &levels(),
            &state(0),
            &[d(10, "alice", Verdict::Approve)],
            at(1),
        );
        assert!(matches!(e.step, Step::Wait { .. }));
        assert_eq!(e.refused.len(), 1);
        assert!(
            e.refused[0]
                .reason
                .starts_with("segregation of duties: alice")
        );
        // Without segregation of duties the same approval counts.
        let mut s = state(0);
        s.segregation_of_duties = false;
        assert!(matches!(
            evaluate(&levels(), &s, &[d(10, "alice", Verdict::Approve)], at(1)).step,
            Step::Approved { .. }
        ));
    }

    #[test]
    fn a_refusal_rejects_even_after_an_approval() {
        let e = evaluate(
            &levels(),
            &state(1),
            &[
                d(20, "carol", Verdict::Approve),
                d(21, "dan", Verdict::Refuse),
            ],
            at(6),
        );
        assert_eq!(
            e.step,
            Step::Rejected {
                by: "dan".into(),
                reason: "too expensive".into()
            }
        );
    }

    #[test]
    fn no_levels_never_panics_and_reports_a_breach() {
        let e = evaluate(&[], &state(0), &[d(11, "bob", Verdict::Approve)], at(1));
        assert!(matches!(e.step, Step::LastLevelBreached { level: 0, .. }));
        assert_eq!(e.refused.len(), 1);
    }

    #[test]
    fn the_requester_refusing_is_also_set_aside() {
        let e = evaluate(
            &levels(),
            &state(0),
            &[d(10, "alice", Verdict::Refuse)],
            at(1),
        );
        assert!(matches!(e.step, Step::Wait { .. }));
        assert_eq!(e.refused.len(), 1);
    }
}
