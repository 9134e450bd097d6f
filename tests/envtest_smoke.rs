//! Proves the integration-test harness: a real API server answers, CRDs
//! install, RBAC is enforced for ServiceAccount tokens and impersonation, and
//! the kstatus reader works.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api,
    api::{DynamicObject, ListParams, ObjectMeta, PostParams},
    core::{ApiResource, GroupVersionKind},
};

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.planops.dev
spec:
  group: smoke.planops.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
---
"#;

fn forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 403)
}

#[tokio::test]
async fn api_server_is_kubernetes_1_37() {
    let cluster = support::cluster().await;
    let info = cluster.client().apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");
    assert_eq!(info.minor, "37");
    assert!(info.git_version.starts_with("v1.37."), "{info:?}");
}

#[tokio::test]
async fn crd_installs_and_custom_objects_round_trip() {
    let cluster = support::cluster().await;
    cluster.apply_crds_yaml(WIDGET_CRD, "WIDGET_CRD").await;
    let ns = cluster.namespace("smoke-crd").await;

    let gvk = GroupVersionKind::gvk("smoke.planops.dev", "v1", "Widget");
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), &ns, &resource);
    let widget = DynamicObject::new("w1", &resource).data(serde_json::json!({"spec": {"size": 3}}));
    api.create(&PostParams::default(), &widget).await.unwrap();

    let read = api.get("w1").await.unwrap();
    assert_eq!(read.data["spec"]["size"], 3);

    // The schema is enforced, so the CRD really is the one we applied.
    let invalid =
        DynamicObject::new("w2", &resource).data(serde_json::json!({"spec": {"size": 0}}));
    let err = api
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422),
        "{err}"
    );

    let out = cluster
        .kubectl(&["get", "widgets", "-n", &ns, "-o", "name"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "widget.smoke.planops.dev/w1"
    );
}

#[tokio::test]
async fn service_account_without_rbac_is_refused_while_admin_is_not() {
    let cluster = support::cluster().await;
    let ns = cluster.namespace("smoke-rbac").await;
    cluster.create_service_account(&ns, "nobody").await;

    let admin_pods: Api<Pod> = Api::namespaced(cluster.client(), &ns);
    assert!(
        admin_pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let token_client = cluster.service_account_client(&ns, "nobody").await;
    let err = Api::<Pod>::namespaced(token_client, &ns)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(forbidden(&err), "expected 403, got {err}");

    let user = format!("system:serviceaccount:{ns}:nobody");
    let impersonating = cluster.client_as(&user, &[]);
    let err = Api::<Pod>::namespaced(impersonating, &ns)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(forbidden(&err), "expected 403, got {err}");
}

#[tokio::test]
async fn kstatus_reports_current_for_a_config_map() {
    let cluster = support::cluster().await;
    let ns = cluster.namespace("smoke-kstatus").await;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(cluster.client(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let status = cluster.kstatus("v1/ConfigMap", &ns, "settings").await;
    assert_eq!(status.status, "Current", "{status:?}");

    let status = cluster.kstatus("v1/Namespace", "", &ns).await;
    assert_eq!(status.status, "Current", "{status:?}");

    let missing = cluster.kstatus("v1/ConfigMap", &ns, "absent").await;
    assert_eq!(missing.status, "NotFound", "{missing:?}");
}
