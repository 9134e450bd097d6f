//! One scheduled scan of an `ExceptionRule` with its actions, and the cluster
//! state it reads and keeps (scan memory, notify secrets): what the operator's
//! in-process scheduler and `planops scan <namespace>/<rule>` (the command of
//! `execution: CronJob`) share, so the two executions cannot drift apart.

use std::collections::{BTreeMap, HashMap};

use governor::DefaultDirectRateLimiter;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};

use super::kinds::PlanopsKind;
use crate::actions::{Acted, RunError, StaticSecrets};
use crate::api::ExceptionRule;
use crate::api::common::{ConditionStatus, FIELD_MANAGER, reasons};
use crate::api::rule::{ExceptionSummary, LastScan, ScanOutcome};
use crate::approval::gate::{GateReport, PolicySource};
use crate::engine::{RuleRef, Severity};
use crate::odoo::{OdooClient, Secret};
use crate::run::RuleRun;
use crate::scan::{HistoryKey, ScanMemory, ScanOptions};
use crate::schedule::Schedule;

/// The result of one finished scan, as the status shows it.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub last_scan: LastScan,
    pub top: Vec<ExceptionSummary>,
    /// The error of a failed scan.
    pub error: Option<String>,
}

impl ScanReport {
    /// The report of a scan that failed after `calls` Odoo calls.
    pub fn failed(message: String, calls: u64) -> ScanReport {
        ScanReport {
            last_scan: LastScan {
                odoo_calls: calls,
                outcome: Some(ScanOutcome::Failed),
                message: Some(message.clone()),
                ..Default::default()
            },
            top: Vec::new(),
            error: Some(message),
        }
    }

    /// Sets when the scan started, the cron time it ran for (none for a scan the
    /// schedule did not start, such as a CronJob's), and how long it took.
    pub fn stamp(
        &mut self,
        started: Timestamp,
        scheduled: Option<Timestamp>,
        duration: std::time::Duration,
    ) {
        self.last_scan.start_time = started.to_string();
        self.last_scan.scheduled_time = scheduled.map(|t| t.to_string());
        self.last_scan.duration_millis = duration.as_millis() as u64;
    }

    /// Writes the scan left to the next one (failed or unknown).
    pub fn unsettled_writes(&self) -> u64 {
        self.last_scan.writes_failed + self.last_scan.writes_unknown
    }

    /// What the rule's `Ready` says after this scan: `ScanFailed`,
    /// `PartialFailure` with the counts while writes are left to the next scan,
    /// else `Reconciled`. The message holds no time, so an unchanged outcome
    /// writes no new condition.
    pub fn readiness(&self) -> (ConditionStatus, &'static str, String) {
        if let Some(error) = &self.error {
            return (
                ConditionStatus::False,
                reasons::SCAN_FAILED,
                format!("the last scan failed: {error}"),
            );
        }
        if self.unsettled_writes() > 0 {
            let detail = self.last_scan.message.clone().unwrap_or_else(|| {
                format!(
                    "{} writes failed and {} are unknown; the next scan retries them",
                    self.last_scan.writes_failed, self.last_scan.writes_unknown
                )
            });
            return (
                ConditionStatus::False,
                reasons::PARTIAL_FAILURE,
                format!("the last scan completed with writes left undone: {detail}"),
            );
        }
        (
            ConditionStatus::True,
            reasons::RECONCILED,
            "spec valid, dependencies ready, last scan succeeded".into(),
        )
    }
}

/// A scan that succeeded.
#[derive(Debug)]
pub struct Scanned {
    pub report: ScanReport,
    /// Odoo calls of the scan and its actions.
    pub calls: u64,
    /// The scan (with the memory for the next one) and its actions.
    pub run: Acted,
    /// The approval gate over the run's draft RFQs.
    pub gate: GateReport,
    /// Open exceptions by severity: Critical, High, Medium, Low.
    pub open_by_severity: [i64; 4],
}

/// A scan that failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub calls: u64,
    /// Whether Odoo failed the scan (as opposed to the rule or the cluster).
    pub odoo: bool,
}

impl Failure {
    /// A failure before Odoo was called.
    pub fn local(message: String) -> Failure {
        Failure {
            message,
            calls: 0,
            odoo: false,
        }
    }
}

/// The time zone the rule plans its "today" in: its schedule's, else UTC.
pub fn rule_time_zone(rule: &ExceptionRule) -> jiff::tz::TimeZone {
    rule.spec
        .triggers
        .schedule
        .as_ref()
        .and_then(|s| Schedule::parse(s).ok())
        .map(|s| s.time_zone().clone())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The key of a connection's demand history in a [`HistoryCache`]: one per
/// `OdooConnection`, whoever scans it.
pub fn history_key(namespace: &str, connection: &crate::api::OdooConnection) -> HistoryKey {
    HistoryKey {
        connection: format!("{namespace}/{}", connection.name_any()),
        url: connection.spec.url.clone(),
        database: connection.spec.database.clone(),
    }
}

/// [`history_key`] of the OdooConnection `namespace/connection` as the
/// operator's index holds it; `None` while the index has not seen it.
pub(super) fn connection_history_key(
    connections: &super::ConnectionIndex,
    namespace: &str,
    connection: &str,
) -> Option<HistoryKey> {
    connections
        .get(&ObjectRef::<crate::api::OdooConnection>::new(connection).within(namespace))
        .map(|c| history_key(namespace, &c))
}

/// Runs `rule` ([`RuleRun`]: scan, actions, approval gate) as of `today`, with
/// `options`' history cache and progress (a full scan: any focus is ignored).
pub async fn scan_rule(
    client: &OdooClient,
    rule: &ExceptionRule,
    today: jiff::civil::Date,
    memory: &ScanMemory,
    secrets: &StaticSecrets,
    options: ScanOptions<'_>,
    policies: &dyn PolicySource,
) -> Result<Scanned, Failure> {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let before = client.calls_made();
    let finished = RuleRun {
        client,
        rule: RuleRef {
            namespace: &namespace,
            rule: &name,
        },
        spec: &rule.spec,
        today,
        memory,
        secrets,
        options: ScanOptions {
            focus: None,
            ..options
        },
        policies,
    }
    .execute()
    .await
    .map_err(|e| Failure {
        message: e.to_string(),
        calls: client.calls_made().since(&before).requests,
        odoo: matches!(
            e,
            RunError::Actions(_) | RunError::Scan(crate::scan::ScanError::Odoo { .. })
        ),
    })?;
    let run = finished.acted;
    let mut open_by_severity = [0i64; 4];
    for e in &run.outcome.exceptions {
        let i = match e.severity {
            Severity::Critical => 0,
            Severity::High => 1,
            Severity::Medium => 2,
            Severity::Low => 3,
        };
        open_by_severity[i] += 1;
    }
    let top_n = rule.spec.status_top_exceptions.unwrap_or(5) as usize;
    let last_scan = run.last_scan(Timestamp::now());
    let calls = last_scan.odoo_calls;
    let top = run.outcome.top_exceptions(top_n);
    Ok(Scanned {
        report: ScanReport {
            last_scan,
            top,
            error: None,
        },
        calls,
        run,
        gate: finished.gate,
        open_by_severity,
    })
}

/// Name of the ConfigMap holding a rule's scan memory.
pub fn memory_configmap_name(rule: &str) -> String {
    format!("planops-memory-{rule}")
}

const PURCHASE_DATES_KEY: &str = "purchaseDates";

/// Reads a rule's scan memory from its ConfigMap (none yet: empty memory).
pub async fn read_memory(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<ScanMemory, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(match api.get_opt(&memory_configmap_name(name)).await? {
        Some(cm) => decode_memory(&cm),
        None => ScanMemory::default(),
    })
}

/// Reads the memory a ConfigMap holds; unreadable entries are dropped (the memory
/// only sharpens supplier-delay detection, it is rebuilt by the next scan).
fn decode_memory(cm: &ConfigMap) -> ScanMemory {
    let mut memory = ScanMemory::default();
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(PURCHASE_DATES_KEY)) else {
        return memory;
    };
    let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(text) else {
        tracing::warn!("scan memory ConfigMap is not valid JSON; starting afresh");
        return memory;
    };
    for (id, date) in map {
        if let (Ok(id), Ok(date)) = (id.parse::<i64>(), date.parse::<jiff::civil::Date>()) {
            memory.purchase_dates.insert(id, date);
        }
    }
    memory
}

fn encode_memory(memory: &ScanMemory) -> String {
    let map: BTreeMap<String, String> = memory
        .purchase_dates
        .iter()
        .map(|(id, date)| (id.to_string(), date.to_string()))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// Writes a rule's scan memory to its ConfigMap, owned by the rule so that
/// deleting the rule garbage-collects it. Operator and `planops scan` apply
/// the same whole object as the same field manager.
pub async fn write_memory(
    client: &Client,
    rule: &ExceptionRule,
    memory: &ScanMemory,
) -> Result<(), kube::Error> {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let owner = rule.controller_owner_ref(&());
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": memory_configmap_name(&name),
            "labels": {
                "app.kubernetes.io/managed-by": "planops",
                "planops.io/rule": name,
            },
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "data": { PURCHASE_DATES_KEY: encode_memory(memory) },
    });
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    api.patch(
        &memory_configmap_name(&name),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    Ok(())
}

/// The values of the Secret keys `obj` names (a rule's notify URLs and signing
/// secrets, a connector's webhook secrets), read for this use only (never
/// cached), each request paced by `limiter` when given. A missing Secret or
/// key is simply absent.
pub async fn secret_values<K: PlanopsKind>(
    client: &Client,
    limiter: Option<&DefaultDirectRateLimiter>,
    obj: &K,
    namespace: &str,
) -> Result<StaticSecrets, kube::Error> {
    let mut map = HashMap::new();
    let api: Api<KubeSecret> = Api::namespaced(client.clone(), namespace);
    for (_, reference) in obj.secret_refs() {
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
        let Some(secret) = api.get_opt(&reference.name).await? else {
            continue;
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&reference.key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok());
        if let Some(value) = value {
            map.insert(
                format!("{}/{}", reference.name, reference.key),
                Secret::new(value),
            );
        }
    }
    Ok(StaticSecrets(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trips_through_the_configmap() {
        let mut memory = ScanMemory::default();
        memory
            .purchase_dates
            .insert(42, jiff::civil::date(2026, 3, 1));
        let mut data = BTreeMap::new();
        data.insert(PURCHASE_DATES_KEY.to_string(), encode_memory(&memory));
        let cm = ConfigMap {
            data: Some(data),
            ..Default::default()
        };
        assert_eq!(decode_memory(&cm), memory);
        assert_eq!(decode_memory(&ConfigMap::default()), ScanMemory::default());
    }

    #[test]
    fn a_failed_report_carries_its_message_and_calls() {
        let mut report = ScanReport::failed("Odoo said no".into(), 3);
        report.stamp(
            "2026-01-01T06:00:00Z".parse().unwrap(),
            None,
            std::time::Duration::from_millis(12),
        );
        assert_eq!(report.last_scan.outcome, Some(ScanOutcome::Failed));
        assert_eq!(report.last_scan.odoo_calls, 3);
        assert_eq!(report.last_scan.duration_millis, 12);
        assert_eq!(report.last_scan.scheduled_time, None);
        assert_eq!(report.error.as_deref(), Some("Odoo said no"));
        assert_eq!(report.readiness().1, reasons::SCAN_FAILED);
    }

    #[test]
    fn unsettled_writes_make_the_rule_not_ready_until_a_scan_settles_them() {
        let mut report = ScanReport {
            last_scan: LastScan {
                outcome: Some(ScanOutcome::Succeeded),
                ..Default::default()
            },
            top: Vec::new(),
            error: None,
        };
        assert_eq!(
            report.readiness(),
            (
                ConditionStatus::True,
                reasons::RECONCILED,
                "spec valid, dependencies ready, last scan succeeded".to_string()
            )
        );
        report.last_scan.writes_unknown = 2;
        report.last_scan.message = Some("0 writes failed and 2 are unknown; ...".into());
        let (status, reason, message) = report.readiness();
        assert_eq!(
            (status, reason),
            (ConditionStatus::False, reasons::PARTIAL_FAILURE)
        );
        assert!(
            message.contains("0 writes failed and 2 are unknown"),
            "{message}"
        );
        // Same counts, same words: a repeated partial failure changes no condition.
        assert_eq!(report.readiness().2, message);
    }
}
