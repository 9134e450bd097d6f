//! `planops validate` as a CI pipeline runs it: the built binary on the
//! examples (clean) and on invalid manifests (each refused, naming its field).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn planops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_planops"))
        .args(args)
        .current_dir(repo())
        // Whatever the shell allows, the tests judge against the default policy.
        .env_remove("PLANOPS_ALLOW_OUTBOUND")
        .env_remove("PLANOPS_SERVICE_CIDR")
        .output()
        .expect("running planops")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn examples_pass_clean() {
    let out = planops(&["validate", "-f", "examples"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let summary = text.lines().last().unwrap_or_default();
    assert!(summary.contains("0 errors, 0 warnings"), "{text}");
    assert!(
        summary.contains("12 PlanOps resources checked, 5 other documents skipped"),
        "{summary}"
    );
    // Each scenario on its own is complete: its references are all among its files.
    for scenario in [
        "seasonal-replenishment",
        "multi-warehouse-rebalancing",
        "supplier-delays",
    ] {
        let out = planops(&["validate", "-f", &format!("examples/{scenario}")]);
        let text = stdout(&out);
        assert!(out.status.success(), "{scenario}: {text}");
        assert_eq!(text.lines().count(), 1, "{scenario}: {text}");
        assert!(text.contains("0 errors, 0 warnings"), "{scenario}: {text}");
    }
}

#[test]
fn every_invalid_manifest_is_refused_naming_its_field() {
    let mut files = Vec::new();
    yaml_files(&repo().join("tests/manifests/invalid"), &mut files);
    assert!(files.len() >= 40, "only {} invalid manifests", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("reading manifest");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()))
            .trim()
            .to_string();
        let path = file.strip_prefix(repo()).expect("in repo");
        let out = planops(&["validate", "-o", "json", "-f", &path.to_string_lossy()]);
        if out.status.code() != Some(1) {
            failures.push(format!("{}: exit {:?}", path.display(), out.status.code()));
            continue;
        }
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        let errors: Vec<String> = report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter(|p| p["severity"] == "error")
            .map(|p| format!("{}: {}", p["field"].as_str().unwrap_or(""), p["message"]))
            .collect();
        // A CEL rule without a fieldPath reports at its object and names the
        // field in its message, as the API server does.
        if !errors.iter().any(|e| e.contains(&expected)) {
            failures.push(format!(
                "{}: no error names {expected:?}: {errors:#?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn problems_are_one_line_each_with_file_document_object_and_field() {
    let out = planops(&[
        "validate",
        "-f",
        "tests/manifests/invalid/odc-timeout-range.yaml",
        "-f",
        "tests/manifests/invalid/offline/exr-time-zone.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let has = |needle: &str| lines.iter().any(|l| l.starts_with(needle));
    assert!(
        has(
            "tests/manifests/invalid/odc-timeout-range.yaml:doc#1 OdooConnection/default/invalid: spec.timeoutSeconds: 0 is less than the minimum of 1"
        ),
        "{text}"
    );
    assert!(
        has(
            "tests/manifests/invalid/offline/exr-time-zone.yaml:doc#1 ExceptionRule/default/bad-time-zone: spec.triggers.schedule.timeZone: 'Mars/Olympus_Mons' is not a known IANA time zone"
        ),
        "{text}"
    );
    // References the files do not satisfy are warnings: the cluster may.
    assert!(
        has(
            "tests/manifests/invalid/offline/exr-time-zone.yaml:doc#1 ExceptionRule/default/bad-time-zone: spec.connectionRef.name: warning: OdooConnection default/odoo is not among the given manifests; it must exist in the cluster"
        ),
        "{text}"
    );
    assert!(
        has(
            "tests/manifests/invalid/odc-timeout-range.yaml:doc#1 OdooConnection/default/invalid: spec.credentialsSecretRef.apiKeyKey: warning: Secret default/odoo-credentials is not among the given manifests"
        ),
        "{text}"
    );
    assert_eq!(
        lines.last().copied().unwrap_or_default(),
        "2 files, 2 documents: 2 PlanOps resources checked, 0 other documents skipped; 2 errors, 3 warnings"
    );

    // A Secret among the files must hold the keys the resources name.
    let out = planops(&[
        "validate",
        "-f",
        "tests/manifests/invalid/offline/odc-secret-key.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "tests/manifests/invalid/offline/odc-secret-key.yaml:doc#2 OdooConnection/default/odoo: spec.credentialsSecretRef.apiKeyKey: Secret default/odoo-credentials has no key \"apiKey\" (it has api-key, login)\n\
         1 files, 2 documents: 1 PlanOps resources checked, 1 other documents skipped; 1 errors, 0 warnings\n"
    );
}

#[test]
fn warnings_alone_exit_zero_and_namespaces_scope_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = r#"
apiVersion: planops.io/v1alpha1
kind: OdooConnection
metadata:
  name: odoo
  namespace: planning
spec:
  url: https://erp.example.com
  database: prod
  credentialsSecretRef:
    name: creds
---
apiVersion: planops.io/v1alpha1
kind: ExceptionRule
metadata:
  name: spikes
spec:
  connectionRef:
    name: odoo
  detector:
    demandSpike: {}
  triggers:
    schedule:
      cron: "0 6 * * 1-5"
      timeZone: Europe/Brussels
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data: {}
"#;
    let file = dir.path().join("all.yml");
    std::fs::write(&file, manifest).expect("writing manifest");
    let path = file.to_string_lossy().to_string();

    // In `default`, the rule's connection (in `planning`) is not visible.
    let out = planops(&["validate", "-o", "json", "-f", &path]);
    assert!(out.status.success(), "{}", stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["errors"], 0);
    assert_eq!(report["skipped"], 1);
    assert_eq!(report["resources"], 2);
    let fields: Vec<&str> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["field"].as_str().unwrap_or(""))
        .collect();
    assert!(fields.contains(&"spec.connectionRef.name"), "{report:#}");

    // With -n planning the rule lands next to its connection.
    let out = planops(&["validate", "-o", "json", "-n", "planning", "-f", &path]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        !report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["field"] == "spec.connectionRef.name"),
        "{report:#}"
    );
}

#[test]
fn secrets_are_never_printed_whether_in_a_secret_or_pasted_into_a_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long_url = format!(
        "https://hooks.example.com/services/T0001/B0001/{}",
        "PastedUrlToken".repeat(20)
    );
    let manifest = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: team-hook}}
stringData:
  url: http://169.254.169.254/hooks/MetadataUrlToken
  secret: whsec_dHdlbnR5LXRocmVlIGJ5dGVzIGtleSE=
---
apiVersion: planops.io/v1alpha1
kind: ExceptionRule
metadata: {{name: costly}}
spec:
  connectionRef: {{name: odoo}}
  detector:
    fieldThreshold: {{model: product.product, domain: "[]", field: standard_price, comparison: Gt, value: 100}}
  triggers: {{schedule: {{cron: "0 6 * * *"}}}}
  actions:
    - notify:
        urlSecretRef: {{name: team-hook, key: url}}
        signingSecretRef: {{name: team-hook, key: secret}}
    - notify:
        urlSecretRef: {{name: "{long_url}", key: url}}
---
apiVersion: planops.io/v1alpha1
kind: SupplierConnector
metadata: {{name: acme}}
spec:
  connectionRef: {{name: odoo}}
  supplier: {{name: Acme}}
  inbound:
    webhook:
      auth:
        standardWebhooks:
          secretRefs:
            - {{name: whsec_PastedSigningSecretAAAAAAAAAAAA, key: secret}}
  mapping: {{eventType: $.type, purchaseOrderRef: $.po}}
"#
    );
    let file = dir.path().join("secrets.yaml");
    std::fs::write(&file, manifest).expect("writing manifest");
    let path = file.to_string_lossy().to_string();
    for output in ["text", "json"] {
        let out = planops(&["validate", "-o", output, "-f", &path]);
        assert_eq!(out.status.code(), Some(1));
        let text = stdout(&out);
        for secret in [
            "PastedUrlToken",
            "PastedSigningSecret",
            "MetadataUrlToken",
            "dHdlbnR5",
        ] {
            assert!(
                !text.contains(secret),
                "{output} output shows {secret}: {text}"
            );
        }
        for field in [
            "spec.actions[0].notify.urlSecretRef",
            "spec.actions[0].notify.signingSecretRef",
            "spec.actions[1].notify.urlSecretRef.name",
            "spec.inbound.webhook.auth.standardWebhooks.secretRefs[0].name",
        ] {
            assert!(
                text.contains(field),
                "{output} output lacks {field}: {text}"
            );
        }
    }
}

#[test]
fn allow_outbound_admits_a_refused_address() {
    let manifest = "tests/manifests/invalid/offline/supc-poll-url-loopback.yaml";
    assert_eq!(
        planops(&["validate", "-f", manifest]).status.code(),
        Some(1)
    );
    let out = planops(&[
        "validate",
        "--allow-outbound",
        "127.0.0.0/8",
        "-f",
        manifest,
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_planops"))
        .args(["validate", "-f", manifest])
        .current_dir(repo())
        .env("PLANOPS_ALLOW_OUTBOUND", "127.0.0.1")
        .output()
        .expect("running planops");
    assert!(out.status.success(), "{}", stdout(&out));
    // The service ranges are refused like loopback.
    let out = planops(&[
        "validate",
        "--service-cidr",
        "127.0.0.0/8",
        "--allow-outbound",
        "",
        "-f",
        manifest,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn broken_yaml_is_an_error_of_its_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\nkind: [\n",
    )
    .expect("writing");
    let out = planops(&["validate", "-f", &file.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("broken.yaml:doc#2 -/-/-: -: invalid YAML"),
        "{text}"
    );
}
