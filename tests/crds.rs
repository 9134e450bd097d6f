//! The CRDs on a real kube-apiserver: they install, `kubectl explain` teaches
//! their fields, the examples are accepted and invalid manifests are refused at
//! admission with a message naming the field.

mod support;

use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    for dir in ["crds", "charts/planops/files/crds"] {
        for crd in planops::api::all_crds() {
            let path = repo().join(dir).join(planops::api::crd_file_name(&crd));
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `cargo run -- crdgen`", path.display()));
            let generated = planops::api::crd_yaml(&crd).expect("rendering CRD");
            assert!(
                on_disk == generated,
                "{} is stale; run `cargo run -- crdgen`",
                path.display()
            );
        }
    }
}

/// Every string property of the CRDs, as (kind, dotted path, schema).
fn string_properties() -> Vec<(String, String, serde_json::Value)> {
    fn walk(
        kind: &str,
        path: &str,
        schema: &serde_json::Value,
        out: &mut Vec<(String, String, serde_json::Value)>,
    ) {
        if schema["type"] == "string" {
            out.push((kind.to_string(), path.to_string(), schema.clone()));
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, child) in properties {
                walk(kind, &format!("{path}.{name}"), child, out);
            }
        }
        for nested in ["items", "additionalProperties"] {
            if schema[nested].is_object() {
                walk(kind, &format!("{path}[]"), &schema[nested], out);
            }
        }
    }
    let mut out = Vec::new();
    for crd in planops::api::all_crds() {
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(&version.schema).expect("schema as JSON");
        walk(
            &crd.spec.names.kind,
            "",
            &schema["openAPIV3Schema"],
            &mut out,
        );
    }
    out
}

/// The API server refuses what the operator's parsers would refuse for size,
/// so an over-long domain or path never reaches a reconcile.
#[test]
fn domain_and_json_path_fields_carry_the_parsers_limits() {
    use planops::odoo::domain::MAX_TEXT_LEN;
    use planops::supplier::mapping::MAX_JSON_PATH_LEN;
    let properties = string_properties();
    let (mut domains, mut paths) = (0, 0);
    for (kind, path, schema) in &properties {
        let name = path.rsplit('.').next().unwrap_or_default();
        let limit = if name == "domain" || name.ends_with("Domain") {
            domains += 1;
            MAX_TEXT_LEN
        } else if kind == "SupplierConnector"
            && path.starts_with(".spec.")
            && !path.contains("[]")
            && (path.contains(".mapping.") || name.ends_with("Path"))
        {
            paths += 1;
            MAX_JSON_PATH_LEN
        } else {
            continue;
        };
        assert_eq!(
            schema["maxLength"].as_u64(),
            Some(limit as u64),
            "{kind}{path}"
        );
    }
    // Rule scope, event filter and field threshold; policy product and partner.
    assert_eq!(domains, 5, "{properties:?}");
    // Seven mapping paths, the poll items and next-cursor paths.
    assert_eq!(paths, 9);
}

#[tokio::test]
async fn crds_install_and_explain_nested_fields() {
    let cluster = support::cluster().await;
    cluster.install_crds(repo().join("crds")).await;
    let cases = [
        (
            "odooconnections.spec.rateLimit.callsPerMinute",
            "Budget of calls per minute",
        ),
        (
            "exceptionrules.spec.triggers.events.watchedFields",
            "Fields whose change fires the trigger",
        ),
        (
            "supplierconnectors.spec.inbound.webhook.auth.standardWebhooks",
            "Standard Webhooks",
        ),
        (
            "approvalpolicies.spec.levels.slaHours",
            "Hours before the request escalates",
        ),
    ];
    for (field, expected) in cases {
        // The API server publishes a new CRD's OpenAPI a moment after it is
        // Established, later still while other tests install CRDs.
        let mut out = cluster
            .kubectl(&["explain", field, "--api-version=planops.io/v1alpha1"])
            .await;
        for _ in 0..30 {
            if out.status.success() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            out = cluster
                .kubectl(&["explain", field, "--api-version=planops.io/v1alpha1"])
                .await;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "kubectl explain {field} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(expected),
            "kubectl explain {field} lacks {expected:?}:\n{stdout}"
        );
    }
    let out = cluster
        .kubectl(&["api-resources", "--categories=planops", "-o", "name"])
        .await;
    let names = String::from_utf8_lossy(&out.stdout);
    for plural in [
        "odooconnections",
        "exceptionrules",
        "supplierconnectors",
        "approvalpolicies",
    ] {
        assert!(
            names.contains(plural),
            "category planops lacks {plural}: {names}"
        );
    }
}

#[tokio::test]
async fn every_example_is_accepted() {
    let cluster = support::cluster().await;
    cluster.install_crds(repo().join("crds")).await;
    let examples = repo().join("examples");
    let mut applied = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let ns = cluster.namespace("example").await;
        for file in yaml_files(&dir) {
            let out = cluster
                .kubectl(&["apply", "-n", &ns, "-f", &file.to_string_lossy()])
                .await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{} was refused: {stderr}",
                file.display()
            );
            // The API server warns about schema formats it does not know.
            assert!(
                !stderr.contains("Warning"),
                "{} was applied with warnings: {stderr}",
                file.display()
            );
            applied += 1;
        }
    }
    assert!(applied >= 10, "only {applied} example files found");
}

#[tokio::test]
async fn invalid_manifests_are_refused_naming_the_field() {
    let cluster = support::cluster().await;
    cluster.install_crds(repo().join("crds")).await;
    let ns = cluster.namespace("invalid").await;
    let files = yaml_files(&repo().join("tests/manifests/invalid"));
    assert!(files.len() >= 20, "only {} invalid manifests", files.len());
    let mut kinds = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reading manifest");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()))
            .trim()
            .to_string();
        if let Some(kind) = text.lines().find_map(|l| l.strip_prefix("kind: ")) {
            kinds.insert(kind.trim().to_string());
        }
        let out = cluster
            .kubectl(&["apply", "-n", &ns, "-f", &file.to_string_lossy()])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.success() {
            failures.push(format!("{}: accepted", file.display()));
        } else if !stderr.contains(&expected) {
            failures.push(format!(
                "{}: message does not name {expected:?}: {stderr}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(kinds.len(), 4, "invalid manifests cover only {kinds:?}");
}

/// Installing the CRDs on a cluster that does not have them prints no warning
/// (the API server warns about schema formats it does not know, such as the
/// `uint32` schemars gives unsigned fields). Each CRD is created, in a server
/// dry run, under another group, since the shared test cluster has ours.
#[tokio::test]
async fn installing_the_crds_prints_no_warning() {
    let cluster = support::cluster().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut checked = 0;
    for file in yaml_files(&repo().join("crds")) {
        let text = std::fs::read_to_string(&file).expect("reading a CRD");
        let renamed = dir.path().join(file.file_name().expect("a file name"));
        std::fs::write(
            &renamed,
            text.replace("planops.io", "warning-check.planops.io"),
        )
        .expect("writing the renamed CRD");
        let out = cluster
            .kubectl(&[
                "create",
                "--dry-run=server",
                "-f",
                &renamed.to_string_lossy(),
            ])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} was refused: {stderr}",
            file.display()
        );
        assert!(
            !stderr.contains("Warning"),
            "{} installs with warnings: {stderr}",
            file.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "one CRD per kind");
}
