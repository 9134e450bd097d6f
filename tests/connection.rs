//! OdooConnection on the real kube-apiserver against the Odoo simulator:
//! what the probe reports, a wrong key, an outage and the recovery after it.

mod support;

use kube::api::ListParams;
use serde_json::{Value, json};
use support::*;

/// A simulator of its own: these tests stop it, which must not disturb others.
async fn private_odoo(version: &str) -> planops::sim::SimServer {
    let config = planops::sim::SimConfig {
        version: planops::sim::OdooVersion::parse(version).expect("a supported Odoo version"),
        dataset: planops::sim::DatasetParams {
            products: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    planops::sim::SimServer::start(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("starting the Odoo simulator")
}

fn secret_with(name: &str, key: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"login": "admin", "apiKey": key},
    })
}

/// Every Event in the namespace as `reason: message` lines, to prove the key
/// never reaches one.
async fn event_messages(cluster: &support::TestCluster, ns: &str) -> String {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(cluster.client(), ns);
    events
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn connected_status_reports_version_uid_and_protocol() {
    let (cluster, ns) = setup("odc-ok").await;
    let v17 = private_odoo("17").await;
    let v19 = private_odoo("19").await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;

    apply(cluster, &ns, &secret_with("v17", &v17.db.admin_api_key())).await;
    apply(cluster, &ns, &secret_with("v19", &v19.db.admin_api_key())).await;
    apply(cluster, &ns, &connection("odoo-17", "v17", &v17.url)).await;
    apply(cluster, &ns, &connection("odoo-19", "v19", &v19.url)).await;

    let obj = wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo-17",
        "True",
        "Connected",
    )
    .await;
    let status = &obj["status"];
    assert_eq!(status["serverMajorVersion"], 17);
    assert!(
        status["serverVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("17.0")),
        "serverVersion: {}",
        status["serverVersion"]
    );
    assert_eq!(status["uid"], 2, "admin is uid 2 in Odoo");
    assert_eq!(status["protocol"], "JsonRpc");
    assert_eq!(status["edition"], "Community");

    let obj = wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo-19",
        "True",
        "Connected",
    )
    .await;
    assert_eq!(obj["status"]["serverMajorVersion"], 19);
    assert_eq!(
        obj["status"]["protocol"], "Json2",
        "Auto picks JSON-2 on Odoo 19"
    );
}

#[tokio::test]
async fn wrong_key_is_authentication_failed_without_leaking_it() {
    let (cluster, ns) = setup("odc-auth").await;
    let odoo = odoo().await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;
    let wrong_key = "wrong-key-5b1f0c7e9a";

    apply(cluster, &ns, &secret_with("creds", wrong_key)).await;
    apply(cluster, &ns, &connection("odoo", "creds", &odoo.url)).await;
    let obj = wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo",
        "False",
        "AuthenticationFailed",
    )
    .await;
    assert_eq!(
        condition(&obj, "Stalled").map(|(status, _)| status),
        Some("True".into()),
        "a wrong key does not fix itself: Stalled until the Secret changes"
    );
    assert!(!obj["status"].to_string().contains(wrong_key));
    let events = eventually("an event about the failed authentication", || async {
        let messages = event_messages(cluster, &ns).await;
        messages
            .contains("AuthenticationFailed: ")
            .then_some(messages)
    })
    .await;
    assert!(
        !events.contains(wrong_key),
        "an event carries the key: {events}"
    );

    // Fixing the Secret is enough: the operator watches it.
    apply(cluster, &ns, &odoo.secret("creds")).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
}

#[tokio::test]
async fn outage_is_unreachable_and_recovers_on_its_own() {
    let (cluster, ns) = setup("odc-down").await;
    let mut odoo = private_odoo("17").await;
    let _operator = OperatorProcess::simple(cluster, &ns).await;

    apply(
        cluster,
        &ns,
        &secret_with("creds", &odoo.db.admin_api_key()),
    )
    .await;
    apply(cluster, &ns, &connection("odoo", "creds", &odoo.url)).await;
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;

    odoo.stop().await;
    let obj = wait_ready(
        cluster,
        &ns,
        "OdooConnection",
        "odoo",
        "False",
        "Unreachable",
    )
    .await;
    assert_ne!(
        condition(&obj, "Stalled").map(|(status, _)| status),
        Some("True".into()),
        "an outage is transient, not stalled"
    );

    odoo.restart().await.expect("restarting the simulator");
    wait_ready(cluster, &ns, "OdooConnection", "odoo", "True", "Connected").await;
}
