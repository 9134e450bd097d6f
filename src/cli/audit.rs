//! `planops audit <namespace>/<policy>`: the decision history of an
//! ApprovalPolicy with cycle times, read from Odoo through the policy's
//! connection (the audit trail lives in Odoo; the cluster only says where).

use anyhow::{Context as _, bail};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;
use serde_json::json;

use crate::api::{ApprovalPolicy, OdooConnection};
use crate::approval::odoo_io::read_purchases;
use crate::approval::trail::{TrailEntry, read_trail, summarize};
use crate::odoo::OdooClient;

pub use super::scan::Output;

/// Arguments of `planops audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The policy, as `namespace/name`.
    pub policy: String,
    /// table or json.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

/// Reads the policy, its connection and credentials from the cluster (the
/// kubeconfig of `KUBECONFIG` or the default), then the trail from Odoo.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let Some((namespace, name)) = args.policy.split_once('/') else {
        bail!("expected <namespace>/<policy>, got {:?}", args.policy);
    };
    let kube = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (kubeconfig)")?;
    let policy = Api::<ApprovalPolicy>::namespaced(kube.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("reading ApprovalPolicy {namespace}/{name}"))?;
    let client = connect(&kube, namespace, &policy.spec.connection_ref.name).await?;
    let trail = read_trail(&client, namespace, name)
        .await
        .context("reading the audit trail from Odoo")?;
    let ids: Vec<i64> = trail.iter().map(|e| e.rfq_id).collect();
    let rfqs = read_purchases(&client, &ids)
        .await
        .context("reading the RFQs")?;
    let rfq_name = |e: &TrailEntry| {
        rfqs.get(&e.rfq_id)
            .map(|f| f.name.clone())
            .unwrap_or_else(|| format!("#{}", e.rfq_id))
    };
    let summary = summarize(&trail);
    match args.output {
        Output::Json => {
            let rows: Vec<_> = trail
                .iter()
                .map(|e| {
                    json!({
                        "fingerprint": e.fingerprint,
                        "rfq": rfq_name(e),
                        "rfqId": e.rfq_id,
                        "rule": e.rule,
                        "requestedAt": e.requested_at.map(|t| t.to_string()),
                        "status": status(e),
                        "decidedBy": e.outcome.as_ref().map(|o| o.by.clone()),
                        "decidedAt": e.outcome.as_ref().map(|o| o.at.to_string()),
                        "cycleTimeSeconds": e.cycle_time().map(|d| d.as_secs_f64()),
                        "escalatedTo": e.escalations,
                        "refusedDecisions": e.refusals,
                        "slaBreachedAt": e.breached_at.map(|t| t.to_string()),
                        "note": e.outcome.as_ref().map(|o| o.text.clone()),
                    })
                })
                .collect();
            let doc = json!({
                "policy": format!("{namespace}/{name}"),
                "requests": rows,
                "pending": summary.pending,
                "approved": summary.approved,
                "rejected": summary.rejected,
                "escalated": summary.escalated,
                "slaBreaches": summary.sla_breaches,
                "medianCycleTimeSeconds": summary.median_cycle_time.map(|d| d.as_secs_f64()),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Table => {
            println!(
                "{:<12} {:<10} {:<20} {:<25} {:<25} {:>10}  {:<16} FINGERPRINT",
                "RFQ", "STATUS", "DECIDED BY", "REQUESTED", "DECIDED", "CYCLE", "ESCALATED TO"
            );
            for e in &trail {
                println!(
                    "{:<12} {:<10} {:<20} {:<25} {:<25} {:>10}  {:<16} {}",
                    rfq_name(e),
                    status(e),
                    e.outcome.as_ref().map(|o| o.by.as_str()).unwrap_or("-"),
                    e.requested_at.map(|t| t.to_string()).unwrap_or_default(),
                    e.outcome
                        .as_ref()
                        .map(|o| o.at.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.cycle_time().map(human).unwrap_or_else(|| "-".into()),
                    if e.escalations.is_empty() {
                        "-".to_string()
                    } else {
                        e.escalations
                            .iter()
                            .map(|l| format!("level {l}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    e.fingerprint
                );
            }
            println!(
                "\n{} requests: {} pending, {} approved, {} rejected, {} escalated, {} SLA breaches; median cycle time {}",
                trail.len(),
                summary.pending,
                summary.approved,
                summary.rejected,
                summary.escalated,
                summary.sla_breaches,
                summary
                    .median_cycle_time
                    .map(human)
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    Ok(())
}

fn status(e: &TrailEntry) -> &'static str {
    match (&e.outcome, e.withdrawn_at, e.breached_at) {
        (Some(o), _, _) if o.approved => "approved",
        (Some(_), _, _) => "rejected",
        (None, Some(_), _) => "withdrawn",
        (None, None, Some(_)) => "breached",
        (None, None, None) => "pending",
    }
}

fn human(d: SignedDuration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{:.1}h", s as f64 / 3600.0),
        s => format!("{:.1}d", s as f64 / 86_400.0),
    }
}

/// An Odoo client for the connection, with the credentials of its Secret.
async fn connect(
    kube: &kube::Client,
    namespace: &str,
    connection: &str,
) -> anyhow::Result<OdooClient> {
    let conn = Api::<OdooConnection>::namespaced(kube.clone(), namespace)
        .get(connection)
        .await
        .with_context(|| format!("reading OdooConnection {namespace}/{connection}"))?;
    let creds = &conn.spec.credentials_secret_ref;
    let secret = Api::<KubeSecret>::namespaced(kube.clone(), namespace)
        .get(&creds.name)
        .await
        .with_context(|| format!("reading Secret {namespace}/{}", creds.name))?;
    let value = |key: &str| -> anyhow::Result<String> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .with_context(|| format!("Secret {namespace}/{} has no key {key:?}", creds.name))
    };
    let config = crate::controllers::connection::client_config(
        &conn.spec,
        &value(creds.login_key())?,
        &value(creds.api_key_key())?,
    );
    OdooClient::connect(config)
        .await
        .with_context(|| format!("connecting to Odoo through {namespace}/{connection}"))
}
