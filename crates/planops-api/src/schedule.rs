//! When a rule's scheduled scans run: the `spec.triggers.schedule` schema. The cron
//! maths (next run, missed runs, jitter) is `planops_engine::schedule`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to do when a scheduled scan is due while the previous one still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Start the new scan alongside the running one.
    Allow,
    /// Skip the new scan; the running one finishes.
    #[default]
    Forbid,
    /// Cancel the running scan and start the new one.
    Replace,
}

/// What the scheduler does with a due run, given its concurrency policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    /// Start it.
    Start,
    /// Skip it (Forbid with a scan running).
    Skip,
    /// Cancel the running scan, then start it (Replace with a scan running).
    ReplaceRunning,
}

impl ConcurrencyPolicy {
    /// Decision for a due run when another scan of the same rule is or is not running.
    pub fn decide(self, running: bool) -> StartDecision {
        match (self, running) {
            (_, false) | (ConcurrencyPolicy::Allow, true) => StartDecision::Start,
            (ConcurrencyPolicy::Forbid, true) => StartDecision::Skip,
            (ConcurrencyPolicy::Replace, true) => StartDecision::ReplaceRunning,
        }
    }
}

/// When a rule's scheduled scans run (`spec.triggers.schedule`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Cron expression: 5 fields (minute hour day-of-month month day-of-week), or 6 with
    /// a leading seconds field; nicknames such as `@daily` are accepted. Example:
    /// `30 6 * * MON-FRI` (06:30 on weekdays).
    #[schemars(
        length(min = 1, max = 256),
        pattern(r"^\s*(@(yearly|annually|monthly|weekly|daily|hourly)|(\S+\s+){4,5}\S+)\s*$")
    )]
    pub cron: String,
    /// IANA time zone the cron times are read in, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Allow, Forbid (default) or Replace: what happens when a scan is due while the
    /// previous one still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// A missed scan (operator down, leader change) still runs if it is at most this
    /// many seconds late; older ones are skipped. Seconds; default: no deadline, the
    /// latest missed scan always runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Stop starting scheduled scans (running ones finish). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Delay each scan by a fixed, per-rule number of seconds between 0 and this, so that
    /// many rules on the same cron do not hit Odoo at the same second. The delay derives
    /// from the rule's identity, so every replica computes the same one. Seconds;
    /// default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub jitter_seconds: Option<u32>,
}

/// Largest accepted jitter, seconds.
pub const MAX_JITTER_SECONDS: u32 = 3600;
