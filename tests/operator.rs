//! The operator on a real kube-apiserver: dependencies, validation the schema
//! cannot do, kstatus readings, GitOps controls, no status churn.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher;
use serde_json::json;
use support::*;

async fn kstatus(cluster: &support::TestCluster, ns: &str, kind: &str, name: &str) -> String {
    cluster
        .kstatus(&format!("planops.io/v1alpha1/{kind}"), ns, name)
        .await
        .status
}

#[tokio::test]
async fn rule_waits_for_its_connection_and_moves_on_without_restart() {
    let (cluster, ns) = setup("deps").await;
    let odoo = support::odoo().await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;

    apply(cluster, &ns, &spike_rule("spikes", "odoo")).await;
    wait_ready(
        cluster,
        &ns,
        "ExceptionRule",
        "spikes",
        "False",
        "ConnectionNotFound",
    )
    .await;
    assert_eq!(
        kstatus(cluster, &ns, "ExceptionRule", "spikes").await,
        "InProgress"
    );

    apply(cluster, &ns, &odoo.secret("odoo-credentials")).await;
    apply(
        cluster,
        &ns,
        &connection("odoo", "odoo-credentials", &odoo.url),
    )
    .await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
    wait_ready(
        cluster,
        &ns,
        "ExceptionRule",
        "spikes",
        "True",
        "Reconciled",
    )
    .await;
    assert_eq!(
        kstatus(cluster, &ns, "ExceptionRule", "spikes").await,
        "Current"
    );
    assert_eq!(
        kstatus(cluster, &ns, "OdooConnection", "odoo").await,
        "Current"
    );
}

#[tokio::test]
async fn missing_secret_and_key_are_reported_and_recover() {
    let (cluster, ns) = setup("secrets").await;
    let odoo = support::odoo().await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;

    apply(cluster, &ns, &connection("odoo", "creds", &odoo.url)).await;
    let obj = wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo",
        "False",
        "SecretNotFound",
    )
    .await;
    let message = obj["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("spec.credentialsSecretRef"), "{message}");

    apply(
        cluster,
        &ns,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"login": "admin"}}),
    )
    .await;
    wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo",
        "False",
        "SecretKeyMissing",
    )
    .await;

    apply(cluster, &ns, &odoo.secret("creds")).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
}

#[tokio::test]
async fn specs_only_the_operator_can_judge_are_stalled_with_the_field_named() {
    let (cluster, ns) = setup("judge").await;
    let odoo = support::odoo().await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    apply(cluster, &ns, &odoo.secret("odoo-credentials")).await;
    apply(
        cluster,
        &ns,
        &connection("odoo", "odoo-credentials", &odoo.url),
    )
    .await;

    let cases = [
        (
            "bad-zone",
            json!({"schedule": {"cron": "0 6 * * *", "timeZone": "Mars/Olympus_Mons"}}),
            None,
            "spec.triggers.schedule.timeZone",
        ),
        (
            "bad-cron",
            json!({"schedule": {"cron": "61 6 * * *"}}),
            None,
            "spec.triggers.schedule.cron",
        ),
        (
            "bad-domain",
            json!({"schedule": {"cron": "0 6 * * *"}}),
            Some("[('categ_id.name', '=')]"),
            "spec.scope.productDomain",
        ),
        (
            "bad-filter",
            json!({"events": {"model": "sale.order", "filterDomain": "[('state', 'is', 'sale')]"}}),
            None,
            "spec.triggers.events.filterDomain",
        ),
    ];
    for (name, triggers, domain, _) in &cases {
        let mut rule = spike_rule(name, "odoo");
        rule["spec"]["triggers"] = triggers.clone();
        if let Some(domain) = domain {
            rule["spec"]["scope"] = json!({"productDomain": domain});
        }
        apply(cluster, &ns, &rule).await;
    }
    for (name, _, _, field) in &cases {
        let obj = wait_ready(cluster, &ns, "ExceptionRule", name, "False", "InvalidSpec").await;
        assert_eq!(
            condition(&obj, "Stalled"),
            Some(("True".into(), "InvalidSpec".into()))
        );
        let ready = obj["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        let message = ready["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "{name}: message {message:?} does not name {field}"
        );
        assert_eq!(kstatus(cluster, &ns, "ExceptionRule", name).await, "Failed");
    }
}

#[tokio::test]
async fn suspend_pause_and_requested_reconcile_behave_as_documented() {
    let (cluster, ns) = setup("gitops").await;
    let odoo = support::odoo().await;
    let operator = OperatorProcess::simple(cluster, &ns).await;
    apply(cluster, &ns, &odoo.secret("odoo-credentials")).await;
    apply(
        cluster,
        &ns,
        &connection("odoo", "odoo-credentials", &odoo.url),
    )
    .await;
    apply(cluster, &ns, &spike_rule("r", "odoo")).await;
    wait_ready(cluster, &ns, "ExceptionRule", "r", "True", "Reconciled").await;

    let mut rule = spike_rule("r", "odoo");
    rule["spec"]["suspend"] = json!(true);
    apply(cluster, &ns, &rule).await;
    wait_ready(cluster, &ns, "ExceptionRule", "r", "False", "Suspended").await;

    rule["spec"]["suspend"] = json!(false);
    rule["metadata"]["annotations"] = json!({"planops.io/paused": "true"});
    apply(cluster, &ns, &rule).await;
    wait_ready(cluster, &ns, "ExceptionRule", "r", "False", "Paused").await;

    rule["metadata"]["annotations"] =
        json!({"reconcile.fluxcd.io/requestedAt": "2026-11-28T10:00:00Z"});
    apply(cluster, &ns, &rule).await;
    wait_ready(cluster, &ns, "ExceptionRule", "r", "True", "Reconciled").await;
    eventually("lastHandledReconcileAt echoed", || async {
        let obj = get(cluster, &ns, "ExceptionRule", "r").await?;
        (obj["status"]["lastHandledReconcileAt"] == "2026-11-28T10:00:00Z").then_some(())
    })
    .await;

    let (code, body) = operator.get("/metrics").await.expect("metrics endpoint");
    assert_eq!(code, 200);
    assert!(
        body.contains(&format!(
            r#"planops_resource_ready{{kind="ExceptionRule",namespace="{ns}",name="r",reason="Reconciled"}} 1"#
        )),
        "{body}"
    );
    let (code, _) = operator.get("/readyz").await.expect("readyz");
    assert_eq!(code, 200);
}

#[tokio::test]
async fn settled_resources_see_no_status_writes_over_an_idle_minute() {
    let (cluster, ns) = setup("churn").await;
    let odoo = support::odoo().await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    apply(cluster, &ns, &odoo.secret("odoo-credentials")).await;
    apply(
        cluster,
        &ns,
        &connection("odoo", "odoo-credentials", &odoo.url),
    )
    .await;
    apply(cluster, &ns, &spike_rule("r1", "odoo")).await;
    apply(cluster, &ns, &spike_rule("r2", "missing")).await;
    wait_ready(cluster, &ns, "ExceptionRule", "r1", "True", "Reconciled").await;
    wait_ready(
        cluster,
        &ns,
        "ExceptionRule",
        "r2",
        "False",
        "ConnectionNotFound",
    )
    .await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
    // Let any in-flight reconcile finish before counting.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let watches = ["OdooConnection", "ExceptionRule"].map(|kind| {
        let api = planops_api(cluster, &ns, kind);
        async move {
            let stream = watcher::watcher(api, watcher::Config::default());
            let idle = tokio::time::sleep(Duration::from_secs(60));
            tokio::pin!(idle);
            tokio::pin!(stream);
            let mut initial_done = false;
            let mut updates = 0usize;
            loop {
                tokio::select! {
                    _ = &mut idle => break,
                    event = stream.next() => match event {
                        Some(Ok(watcher::Event::InitDone)) => initial_done = true,
                        Some(Ok(watcher::Event::Apply(obj))) if initial_done => {
                            updates += 1;
                            eprintln!("unexpected update of {kind} {:?}", obj.metadata.name);
                        }
                        _ => {}
                    }
                }
            }
            updates
        }
    });
    let updates: usize = futures::future::join_all(watches).await.into_iter().sum();
    assert_eq!(updates, 0, "settled resources were written while idle");
}
