//! `execution: CronJob`: an ExceptionRule's scans run in an owned `batch/v1`
//! CronJob (`planops scan <namespace>/<rule>` with the operator's image), not in
//! the operator. The rule reconciler applies it with server-side apply only
//! when the live object differs from what the rule asks for, so a settled
//! rule costs one read and no write, and drift (an edited or deleted CronJob)
//! is repaired at the next reconcile, which the CronJob watch triggers.

use governor::DefaultDirectRateLimiter;
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::ExceptionRule;
use crate::api::common::FIELD_MANAGER;
use crate::outbound::OutboundPolicy;
use crate::schedule::{ConcurrencyPolicy, ScheduleSpec};

/// How the operator materialises CronJobs (its `--scan-image` and
/// `--scan-service-account`).
#[derive(Debug, Clone, Default)]
pub struct CronJobSettings {
    /// The operator's own image; `None` when the operator was not told it.
    pub image: Option<String>,
    /// The ServiceAccount, in the rule's namespace, the scan pods run as.
    pub service_account: String,
    /// The operator's outbound policy: a scan's notify requests obey the
    /// same `--allow-outbound` and `--service-cidr` as the operator's.
    pub outbound: OutboundPolicy,
}

/// Selects the CronJobs PlanOps makes (the watch that repairs them).
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=planops,app.kubernetes.io/component=scan";

/// Kubernetes adds an 11-character suffix to a CronJob's name for its Jobs,
/// which must stay within 63 characters.
const MAX_NAME: usize = 52;
const PREFIX: &str = "planops-scan-";

/// Name of a rule's CronJob: `planops-scan-<rule>`, shortened with a hash of
/// the rule's name when that would be too long, so two rules never share one.
pub fn cronjob_name(rule: &str) -> String {
    let clean: String = rule
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    let full = format!("{PREFIX}{clean}");
    if full.len() <= MAX_NAME && clean == rule {
        return full;
    }
    let digest = Sha256::digest(rule.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let room = MAX_NAME - PREFIX.len() - hash.len() - 1;
    let head: String = clean.chars().take(room).collect();
    format!("{PREFIX}{}-{hash}", head.trim_end_matches('-'))
}

/// The rule's cron in the form a CronJob accepts: five fields or a nickname.
/// A six-field cron is accepted when its seconds field is `0`; croner's `L`,
/// `W` and `#` extensions are not (Kubernetes' parser lacks them).
pub fn cronjob_schedule(cron: &str) -> Result<String, String> {
    let cron = cron.trim();
    if cron.starts_with('@') {
        return Ok(cron.to_string());
    }
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let fields = match fields.len() {
        5 => fields,
        6 if fields[0] == "0" => fields[1..].to_vec(),
        6 => {
            return Err(format!(
                "{cron:?} fires on seconds ({:?}); a CronJob runs at most once a minute: use 5 fields or execution InProcess",
                fields[0]
            ));
        }
        n => return Err(format!("{cron:?} has {n} fields; a CronJob needs 5")),
    };
    if let Some(field) = fields
        .iter()
        .find(|f| f.contains(['L', 'W', '#']) && !is_name(f))
    {
        return Err(format!(
            "{cron:?}: the L, W and # extensions ({field:?}) are not understood by Kubernetes CronJobs"
        ));
    }
    Ok(fields.join(" "))
}

/// Month and weekday names (`WED`, `MON-FRI`, `JUL,AUG`) contain the letters
/// of the extensions.
fn is_name(field: &str) -> bool {
    const NAMES: [&str; 19] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN",
        "MON", "TUE", "WED", "THU", "FRI", "SAT",
    ];
    field.split([',', '-', '/']).all(|part| {
        part.chars().all(|c| c.is_ascii_digit() || c == '*')
            || NAMES.contains(&part.to_ascii_uppercase().as_str())
    })
}

/// The CronJob a rule asks for.
pub fn desired(
    rule: &ExceptionRule,
    schedule: &ScheduleSpec,
    image: &str,
    settings: &CronJobSettings,
) -> Result<Value, String> {
    let namespace = rule.namespace().unwrap_or_default();
    let name = rule.name_any();
    let mut labels = json!({
        "app.kubernetes.io/managed-by": "planops",
        "app.kubernetes.io/component": "scan",
    });
    // A label value is at most 63 characters; a rule name may be longer.
    if name.len() <= 63 {
        labels["planops.io/rule"] = json!(name);
    }
    let policy = match schedule.concurrency_policy.unwrap_or_default() {
        ConcurrencyPolicy::Allow => "Allow",
        ConcurrencyPolicy::Forbid => "Forbid",
        ConcurrencyPolicy::Replace => "Replace",
    };
    let mut spec = json!({
        "schedule": cronjob_schedule(&schedule.cron)?,
        // Without a time zone a CronJob follows kube-controller-manager's
        // clock; the rule's default is UTC.
        "timeZone": schedule.time_zone.as_deref().unwrap_or("Etc/UTC"),
        "concurrencyPolicy": policy,
        "suspend": schedule.suspend.unwrap_or(false),
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                // A failed scan is retried by the next scheduled one, which
                // sees the world as it then is.
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": settings.service_account,
                        "automountServiceAccountToken": true,
                        "restartPolicy": "Never",
                        "enableServiceLinks": false,
                        // The "restricted" Pod Security Standard, like the operator's pods.
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "scan",
                            "image": image,
                            "args": ["scan", format!("{namespace}/{name}")],
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                    },
                },
            },
        },
    });
    let env: Vec<Value> = settings
        .outbound
        .env()
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    if !env.is_empty() {
        spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] = json!(env);
    }
    if let Some(deadline) = schedule.starting_deadline_seconds {
        spec["startingDeadlineSeconds"] = json!(deadline);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(&name),
            "namespace": namespace,
            "labels": labels,
            // Owned by the rule: deleting the rule garbage-collects the CronJob.
            "ownerReferences": rule.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": spec,
    }))
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Created,
    /// The live CronJob differed from the rule (a spec change or drift).
    Updated,
}

/// Makes the rule's CronJob match `desired`, writing only when it differs.
pub async fn ensure(
    client: &Client,
    limiter: &DefaultDirectRateLimiter,
    namespace: &str,
    desired: &Value,
) -> Result<Applied, kube::Error> {
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    limiter.until_ready().await;
    let live = api.get_opt(name).await?;
    let applied = match &live {
        None => Applied::Created,
        Some(live) => {
            let live = serde_json::to_value(live).unwrap_or(Value::Null);
            if contains(&live, desired) {
                return Ok(Applied::Unchanged);
            }
            Applied::Updated
        }
    };
    limiter.until_ready().await;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(desired),
    )
    .await?;
    Ok(applied)
}

/// Deletes the rule's CronJob, if there is one and the rule owns it (a
/// CronJob of the same name that someone else made is left alone). Returns
/// whether one was deleted.
pub async fn delete_owned(
    client: &Client,
    limiter: Option<&DefaultDirectRateLimiter>,
    rule: &ExceptionRule,
) -> Result<bool, kube::Error> {
    let namespace = rule.namespace().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced(client.clone(), &namespace);
    let name = cronjob_name(&rule.name_any());
    if let Some(limiter) = limiter {
        limiter.until_ready().await;
    }
    let Some(live) = api.get_opt(&name).await? else {
        return Ok(false);
    };
    if !owned_by(&live, rule) {
        return Ok(false);
    }
    let params = DeleteParams {
        // Its Jobs and Pods go with it.
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: live.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Some(limiter) = limiter {
        limiter.until_ready().await;
    }
    match api.delete(&name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Suspends the rule's CronJob, if it has one that runs, while the rule is
/// inactive (paused, suspended, waiting for its connection, invalid).
pub async fn suspend_owned(client: &Client, rule: &ExceptionRule) -> Result<(), kube::Error> {
    let namespace = rule.namespace().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced(client.clone(), &namespace);
    let name = cronjob_name(&rule.name_any());
    let Some(live) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let suspended = live.spec.suspend.unwrap_or(false);
    if suspended || !owned_by(&live, rule) {
        return Ok(());
    }
    // A merge patch of one field: an apply of this partial object would drop
    // every other field the operator's apply owns.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await?;
    Ok(())
}

fn owned_by(live: &CronJob, rule: &ExceptionRule) -> bool {
    let uid = rule.meta().uid.as_deref();
    live.owner_references()
        .iter()
        .any(|o| Some(o.uid.as_str()) == uid && o.controller == Some(true))
}

/// Whether every value `desired` sets is in `live` (which also holds the
/// server's defaults). Lists must have the same length, element by element.
fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| contains(lv, dv))),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (l, d) => l == d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_never_collide() {
        assert_eq!(cronjob_name("stockouts"), "planops-scan-stockouts");
        let long = "a".repeat(60);
        let other = format!("{}b", "a".repeat(59));
        assert!(cronjob_name(&long).len() <= MAX_NAME);
        assert_ne!(cronjob_name(&long), cronjob_name(&other));
        assert_ne!(cronjob_name("a.b"), cronjob_name("a-b"));
        assert!(!cronjob_name("a.b").contains('.'));
    }

    #[test]
    fn cron_becomes_what_a_cronjob_accepts() {
        assert_eq!(
            cronjob_schedule(" 30 6 * * MON-FRI ").as_deref(),
            Ok("30 6 * * MON-FRI")
        );
        assert_eq!(
            cronjob_schedule("0 */5 * * * *").as_deref(),
            Ok("*/5 * * * *")
        );
        assert_eq!(cronjob_schedule("@daily").as_deref(), Ok("@daily"));
        assert_eq!(
            cronjob_schedule("0 0 1 JUL,AUG WED").as_deref(),
            Ok("0 0 1 JUL,AUG WED")
        );
        assert!(cronjob_schedule("*/5 * * * * *").is_err());
        assert!(cronjob_schedule("0 0 L * *").is_err());
        assert!(cronjob_schedule("0 0 * * 5#3").is_err());
    }

    #[test]
    fn live_defaults_do_not_count_as_drift() {
        let desired = json!({"spec": {"a": 1, "list": [{"x": "y"}]}});
        let live = json!({"spec": {"a": 1.0, "b": 2, "list": [{"x": "y", "z": 0}]}, "status": {}});
        assert!(contains(&live, &desired));
        let drifted = json!({"spec": {"a": 2, "list": [{"x": "y"}]}});
        assert!(!contains(&drifted, &desired));
        let longer = json!({"spec": {"a": 1, "list": [{"x": "y"}, {"x": "w"}]}});
        assert!(!contains(&longer, &desired));
    }
}
