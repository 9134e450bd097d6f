//! Cron schedules with time zones, missed-run decisions and deterministic jitter.
//! Pure: every function takes "now" as an argument.
//!
//! Cron syntax: the standard 5 fields (minute hour day-of-month month day-of-week), or
//! 6 with a leading seconds field; names (`JAN`, `MON`), ranges, lists, steps, the
//! nicknames `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, and croner's `L`,
//! `W` and `#` extensions. When both day fields are restricted, either matching is
//! enough (Vixie cron). Times are wall-clock times in `timeZone` (IANA name, jiff's
//! bundled tz database so every replica agrees whatever its host has installed).
//!
//! Daylight-saving time, for a fixed-time job such as `30 2 * * *`: on the
//! spring-forward day, when 02:30 does not exist, it runs once at the first instant
//! after the gap (03:00); on the fall-back day, when 02:30 happens twice, it runs once,
//! at the first. Interval jobs (`*/15 * * * *`) skip times inside the gap and run in
//! both halves of a repeated hour, since each is a distinct instant.

use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp, Zoned};
use sha2::{Digest, Sha256};

pub use planops_api::schedule::{
    ConcurrencyPolicy, MAX_JITTER_SECONDS, ScheduleSpec, StartDecision,
};

/// Why a schedule cannot be used; each names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("triggers.schedule.cron: '{cron}' is not a valid cron expression: {reason}")]
    Cron {
        /// The expression.
        cron: String,
        /// The parser's explanation.
        reason: String,
    },
    /// The cron expression parses but never matches a real date (e.g. 31 February).
    #[error("triggers.schedule.cron: '{cron}' never fires (no matching date)")]
    NeverFires {
        /// The expression.
        cron: String,
    },
    /// The time zone is unknown.
    #[error("triggers.schedule.timeZone: '{name}' is not a known IANA time zone")]
    TimeZone {
        /// The name given.
        name: String,
    },
    /// Another field is out of range.
    #[error("triggers.schedule.{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed, validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    expression: String,
    time_zone: TimeZone,
    policy: ConcurrencyPolicy,
    starting_deadline: Option<SignedDuration>,
    suspended: bool,
    jitter_seconds: u32,
}

/// The next scheduled run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRun {
    /// The time the cron expression names (the run's identity).
    pub scheduled: Timestamp,
    /// When to start it: `scheduled` plus the rule's jitter.
    pub fire_at: Timestamp,
}

/// Outcome of checking for runs missed while the scheduler was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedRun {
    /// No scheduled time passed since the last run.
    NothingMissed,
    /// Run once now for `scheduled` (the latest missed time); `missed` scheduled times
    /// passed in all (capped at [`MAX_COUNTED_MISSES`]), only one catch-up run is made.
    RunNow {
        /// The latest missed scheduled time.
        scheduled: Timestamp,
        /// How many scheduled times were missed.
        missed: u32,
    },
    /// The latest missed time is older than the starting deadline: skip it and wait
    /// for the next one.
    Skip {
        /// The latest missed scheduled time.
        scheduled: Timestamp,
        /// How many scheduled times were missed.
        missed: u32,
    },
}

/// Missed runs are counted up to this many (for status and metrics); more are
/// reported as this number.
pub const MAX_COUNTED_MISSES: u32 = 1000;

impl Schedule {
    /// Parses and validates a schedule spec.
    pub fn parse(spec: &ScheduleSpec) -> Result<Schedule, ScheduleError> {
        let expression = spec.cron.trim().to_owned();
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(&expression)
            .map_err(|e| ScheduleError::Cron {
                cron: expression.clone(),
                reason: e.to_string(),
            })?;
        let zone_name = spec.time_zone.as_deref().unwrap_or("UTC");
        let time_zone =
            TimeZoneDatabase::bundled()
                .get(zone_name)
                .map_err(|_| ScheduleError::TimeZone {
                    name: zone_name.to_owned(),
                })?;
        let starting_deadline = match spec.starting_deadline_seconds {
            Some(s) if s < 0 => {
                return Err(ScheduleError::Field {
                    field: "startingDeadlineSeconds",
                    reason: format!("must be ≥ 0, got {s}"),
                });
            }
            Some(s) => Some(SignedDuration::from_secs(s)),
            None => None,
        };
        let jitter_seconds = spec.jitter_seconds.unwrap_or(0);
        if jitter_seconds > MAX_JITTER_SECONDS {
            return Err(ScheduleError::Field {
                field: "jitterSeconds",
                reason: format!("must be at most {MAX_JITTER_SECONDS}, got {jitter_seconds}"),
            });
        }
        let schedule = Schedule {
            cron,
            expression,
            time_zone,
            policy: spec.concurrency_policy.unwrap_or_default(),
            starting_deadline,
            suspended: spec.suspend.unwrap_or(false),
            jitter_seconds,
        };
        // A pattern such as "0 0 30 2 *" parses but has no date; croner gives up after a
        // year of searching. Five years from a fixed instant also admits 29 February.
        let probe = Timestamp::from_second(946_684_800).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut t = probe;
        let mut found = false;
        for _ in 0..5 {
            match schedule.search(t) {
                Some(_) => {
                    found = true;
                    break;
                }
                None => {
                    t = t
                        .saturating_add(SignedDuration::from_hours(366 * 24))
                        .unwrap_or(t)
                }
            }
        }
        if !found {
            return Err(ScheduleError::NeverFires {
                cron: schedule.expression.clone(),
            });
        }
        Ok(schedule)
    }

    /// The cron expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }
    /// The time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }
    /// The concurrency policy (default Forbid).
    pub fn concurrency_policy(&self) -> ConcurrencyPolicy {
        self.policy
    }
    /// The starting deadline, if any.
    pub fn starting_deadline(&self) -> Option<SignedDuration> {
        self.starting_deadline
    }
    /// Whether scheduled scans are suspended.
    pub fn suspended(&self) -> bool {
        self.suspended
    }

    fn search(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned: Zoned = after.to_zoned(self.time_zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The first scheduled time strictly after `after` (ignores suspension and jitter).
    /// `None` only when no time matches within croner's search limit.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.search(after)
    }

    /// The latest scheduled time at or before `at`.
    pub fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let zoned: Zoned = at.to_zoned(self.time_zone.clone());
        self.cron
            .find_previous_occurrence(&zoned, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// This rule's jitter: a whole number of seconds in [0, jitterSeconds], the same on
    /// every replica and across restarts because it hashes `key` (use
    /// `namespace/name` of the rule).
    pub fn jitter(&self, key: &str) -> SignedDuration {
        SignedDuration::from_secs(jitter_seconds(key, self.jitter_seconds).into())
    }

    /// The next run after `after`, with its jittered start; `None` while suspended.
    pub fn next_run(&self, after: Timestamp, key: &str) -> Option<NextRun> {
        if self.suspended {
            return None;
        }
        let scheduled = self.next_after(after)?;
        let fire_at = scheduled.saturating_add(self.jitter(key)).ok()?;
        Some(NextRun { scheduled, fire_at })
    }

    /// Decides about runs missed between `last_scheduled` (the scheduled time of the
    /// last run started, else the rule's creation time) and `now`, like a Kubernetes
    /// CronJob: at most one catch-up run, for the latest missed time, and only if it is
    /// no older than the starting deadline. A scheduled time equal to `last_scheduled`
    /// is the run already made, not a missed one. Nothing is missed while suspended.
    pub fn missed_run(&self, last_scheduled: Timestamp, now: Timestamp) -> MissedRun {
        if self.suspended || now <= last_scheduled {
            return MissedRun::NothingMissed;
        }
        let Some(latest) = self.latest_at_or_before(now) else {
            return MissedRun::NothingMissed;
        };
        if latest <= last_scheduled {
            return MissedRun::NothingMissed;
        }
        let mut missed = 0u32;
        let mut cursor = last_scheduled;
        while missed < MAX_COUNTED_MISSES {
            match self.next_after(cursor) {
                Some(t) if t <= now => {
                    missed += 1;
                    cursor = t;
                }
                _ => break,
            }
        }
        let too_late = self
            .starting_deadline
            .is_some_and(|deadline| now.duration_since(latest) > deadline);
        if too_late {
            MissedRun::Skip {
                scheduled: latest,
                missed,
            }
        } else {
            MissedRun::RunNow {
                scheduled: latest,
                missed,
            }
        }
    }
}

/// Deterministic jitter in whole seconds from 0 to `max` inclusive: the first 8 bytes
/// of SHA-256(key) modulo `max + 1`. The modulo bias is below 2⁻⁵², irrelevant here.
pub fn jitter_seconds(key: &str, max: u32) -> u32 {
    if max == 0 {
        return 0;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % (u64::from(max) + 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cron: &str, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            cron: cron.into(),
            time_zone: Some(tz.into()),
            ..Default::default()
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_five_and_six_fields_and_nicknames() {
        let five = Schedule::parse(&spec("30 6 * * MON-FRI", "UTC")).unwrap();
        // 2025-03-01 is a Saturday: next is Monday 03-03 06:30.
        assert_eq!(
            five.next_after(ts("2025-03-01T00:00:00Z")),
            Some(ts("2025-03-03T06:30:00Z"))
        );
        let six = Schedule::parse(&spec("15 30 6 * * *", "UTC")).unwrap();
        assert_eq!(
            six.next_after(ts("2025-03-01T00:00:00Z")),
            Some(ts("2025-03-01T06:30:15Z"))
        );
        let daily = Schedule::parse(&spec("@daily", "UTC")).unwrap();
        assert_eq!(
            daily.next_after(ts("2025-03-01T00:00:00Z")),
            Some(ts("2025-03-02T00:00:00Z"))
        );
    }

    #[test]
    fn either_day_field_matches_when_both_are_restricted() {
        // Day 15 or any Monday: from Sat 2025-03-01, Monday 03-03 comes first.
        let s = Schedule::parse(&spec("0 0 15 * MON", "UTC")).unwrap();
        assert_eq!(
            s.next_after(ts("2025-03-01T00:00:00Z")),
            Some(ts("2025-03-03T00:00:00Z"))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = Schedule::parse(&spec("61 * * * *", "UTC")).unwrap_err();
        assert!(matches!(err, ScheduleError::Cron { .. }));
        assert!(
            err.to_string().starts_with("triggers.schedule.cron:"),
            "{err}"
        );
        let err = Schedule::parse(&spec("* * *", "UTC")).unwrap_err();
        assert!(matches!(err, ScheduleError::Cron { .. }), "{err}");
        // Seven fields (a year) are not accepted.
        let err = Schedule::parse(&spec("0 0 0 1 1 * 2030", "UTC")).unwrap_err();
        assert!(matches!(err, ScheduleError::Cron { .. }), "{err}");
        let err = Schedule::parse(&spec("0 0 * * *", "Mars/Olympus")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "triggers.schedule.timeZone: 'Mars/Olympus' is not a known IANA time zone"
        );
        let err = Schedule::parse(&spec("0 0 30 2 *", "UTC")).unwrap_err();
        assert!(matches!(err, ScheduleError::NeverFires { .. }), "{err}");
        let err = Schedule::parse(&ScheduleSpec {
            starting_deadline_seconds: Some(-1),
            ..spec("0 0 * * *", "UTC")
        })
        .unwrap_err();
        assert!(err.to_string().contains("startingDeadlineSeconds"));
        let err = Schedule::parse(&ScheduleSpec {
            jitter_seconds: Some(7200),
            ..spec("0 0 * * *", "UTC")
        })
        .unwrap_err();
        assert!(err.to_string().contains("jitterSeconds"));
        // 29 February exists every four years.
        assert!(Schedule::parse(&spec("0 0 29 2 *", "UTC")).is_ok());
    }

    #[test]
    fn time_zone_shifts_wall_clock() {
        let s = Schedule::parse(&spec("0 9 * * *", "America/New_York")).unwrap();
        // 09:00 EST = 14:00 UTC in January.
        assert_eq!(
            s.next_after(ts("2025-01-10T00:00:00Z")),
            Some(ts("2025-01-10T14:00:00Z"))
        );
        let utc = Schedule::parse(&ScheduleSpec {
            cron: "0 9 * * *".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            utc.next_after(ts("2025-01-10T00:00:00Z")),
            Some(ts("2025-01-10T09:00:00Z"))
        );
    }

    #[test]
    fn dst_spring_forward_runs_once_after_the_gap() {
        // Europe/Berlin 2025-03-30: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let s = Schedule::parse(&spec("30 2 * * *", "Europe/Berlin")).unwrap();
        // Day before: 02:30 CET = 01:30 UTC.
        let before = s.next_after(ts("2025-03-29T00:00:00Z")).unwrap();
        assert_eq!(before, ts("2025-03-29T01:30:00Z"));
        // On the day: once, at 03:00 CEST = 01:00 UTC.
        let gap_day = s.next_after(before).unwrap();
        assert_eq!(gap_day, ts("2025-03-30T01:00:00Z"));
        // Next day: 02:30 CEST = 00:30 UTC.
        assert_eq!(s.next_after(gap_day), Some(ts("2025-03-31T00:30:00Z")));
    }

    #[test]
    fn dst_fall_back_runs_once() {
        // Europe/Berlin 2025-10-26: 03:00 CEST falls back to 02:00 CET; 02:30 happens at
        // 00:30 UTC and again at 01:30 UTC. The job runs at the first only.
        let s = Schedule::parse(&spec("30 2 * * *", "Europe/Berlin")).unwrap();
        let first = s.next_after(ts("2025-10-25T12:00:00Z")).unwrap();
        assert_eq!(first, ts("2025-10-26T00:30:00Z"));
        // 02:30 CET the next day = 01:30 UTC on the 27th.
        assert_eq!(s.next_after(first), Some(ts("2025-10-27T01:30:00Z")));
        // Asked from between the two 02:30s, it does not run the repeat either.
        assert_eq!(
            s.next_after(ts("2025-10-26T01:00:00Z")),
            Some(ts("2025-10-27T01:30:00Z"))
        );
    }

    #[test]
    fn interval_job_runs_in_both_halves_of_the_repeated_hour() {
        let s = Schedule::parse(&spec("0 * * * *", "Europe/Berlin")).unwrap();
        // 02:00 CEST = 00:00 UTC, 02:00 CET = 01:00 UTC, 03:00 CET = 02:00 UTC.
        let a = s.next_after(ts("2025-10-25T23:30:00Z")).unwrap();
        let b = s.next_after(a).unwrap();
        let c = s.next_after(b).unwrap();
        assert_eq!(
            [a, b, c],
            [
                ts("2025-10-26T00:00:00Z"),
                ts("2025-10-26T01:00:00Z"),
                ts("2025-10-26T02:00:00Z")
            ]
        );
    }

    #[test]
    fn missed_runs_like_a_cronjob() {
        let hourly = Schedule::parse(&spec("0 * * * *", "UTC")).unwrap();
        let last = ts("2025-03-01T10:00:00Z");
        // Nothing due yet.
        assert_eq!(
            hourly.missed_run(last, ts("2025-03-01T10:59:59Z")),
            MissedRun::NothingMissed
        );
        // 11:00, 12:00 and 13:00 passed: one catch-up run for 13:00.
        assert_eq!(
            hourly.missed_run(last, ts("2025-03-01T13:20:00Z")),
            MissedRun::RunNow {
                scheduled: ts("2025-03-01T13:00:00Z"),
                missed: 3
            }
        );
        // The scheduled time equal to now counts as due.
        assert_eq!(
            hourly.missed_run(last, ts("2025-03-01T11:00:00Z")),
            MissedRun::RunNow {
                scheduled: ts("2025-03-01T11:00:00Z"),
                missed: 1
            }
        );
        // With a 10-minute deadline, 13:00 seen at 13:20 is too late.
        let strict = Schedule::parse(&ScheduleSpec {
            starting_deadline_seconds: Some(600),
            ..spec("0 * * * *", "UTC")
        })
        .unwrap();
        assert_eq!(
            strict.missed_run(last, ts("2025-03-01T13:20:00Z")),
            MissedRun::Skip {
                scheduled: ts("2025-03-01T13:00:00Z"),
                missed: 3
            }
        );
        // Exactly at the deadline it still runs.
        assert_eq!(
            strict.missed_run(last, ts("2025-03-01T13:10:00Z")),
            MissedRun::RunNow {
                scheduled: ts("2025-03-01T13:00:00Z"),
                missed: 3
            }
        );
        // Counting stops at the cap.
        let every_second = Schedule::parse(&spec("* * * * * *", "UTC")).unwrap();
        assert_eq!(
            every_second.missed_run(last, ts("2025-03-02T10:00:00Z")),
            MissedRun::RunNow {
                scheduled: ts("2025-03-02T10:00:00Z"),
                missed: MAX_COUNTED_MISSES
            }
        );
        // Suspended: nothing is missed and nothing is next.
        let suspended = Schedule::parse(&ScheduleSpec {
            suspend: Some(true),
            ..spec("0 * * * *", "UTC")
        })
        .unwrap();
        assert_eq!(
            suspended.missed_run(last, ts("2025-03-01T13:20:00Z")),
            MissedRun::NothingMissed
        );
        assert_eq!(suspended.next_run(last, "ns/rule"), None);
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let s = Schedule::parse(&ScheduleSpec {
            jitter_seconds: Some(300),
            ..spec("0 * * * *", "UTC")
        })
        .unwrap();
        let a = s.jitter("ns/rule-a");
        assert_eq!(a, s.jitter("ns/rule-a"));
        let values: Vec<u32> = (0..200)
            .map(|i| jitter_seconds(&format!("ns/r{i}"), 300))
            .collect();
        assert!(values.iter().all(|&v| v <= 300));
        // Spread: 200 keys over 301 values land on many distinct ones.
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 100, "{}", distinct.len());
        assert_eq!(jitter_seconds("anything", 0), 0);
        // Independent check: sha256("ns/rule-a") first 8 bytes mod 301.
        let digest = Sha256::digest(b"ns/rule-a");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) % 301;
        assert_eq!(a, SignedDuration::from_secs(expected as i64));

        let run = s.next_run(ts("2025-03-01T10:00:00Z"), "ns/rule-a").unwrap();
        assert_eq!(run.scheduled, ts("2025-03-01T11:00:00Z"));
        assert_eq!(run.fire_at, run.scheduled.saturating_add(a).unwrap());
    }

    #[test]
    fn concurrency_policy_decisions() {
        assert_eq!(
            ConcurrencyPolicy::Forbid.decide(false),
            StartDecision::Start
        );
        assert_eq!(ConcurrencyPolicy::Forbid.decide(true), StartDecision::Skip);
        assert_eq!(ConcurrencyPolicy::Allow.decide(true), StartDecision::Start);
        assert_eq!(
            ConcurrencyPolicy::Replace.decide(true),
            StartDecision::ReplaceRunning
        );
        assert_eq!(
            Schedule::parse(&spec("0 * * * *", "UTC"))
                .unwrap()
                .concurrency_policy(),
            ConcurrencyPolicy::Forbid
        );
    }

    #[test]
    fn spec_round_trips_in_camel_case() {
        let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "cron": "*/15 * * * *",
            "timeZone": "Europe/Berlin",
            "concurrencyPolicy": "Replace",
            "startingDeadlineSeconds": 120,
            "jitterSeconds": 30
        }))
        .unwrap();
        assert_eq!(spec.concurrency_policy, Some(ConcurrencyPolicy::Replace));
        let s = Schedule::parse(&spec).unwrap();
        assert_eq!(s.starting_deadline(), Some(SignedDuration::from_secs(120)));
        assert!(!s.suspended());
        let schema = serde_json::to_string(&schemars::schema_for!(ScheduleSpec)).unwrap();
        assert!(schema.contains("IANA time zone"), "{schema}");
    }
}
