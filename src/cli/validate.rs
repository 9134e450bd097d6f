//! `planops validate`: offline validation of PlanOps manifests for CI.
//!
//! Each YAML document is checked in three layers, the same ones the cluster
//! applies, so a pipeline fails where `kubectl apply` or the operator would:
//!
//! 1. the CRD's OpenAPI schema, generated from the same Rust types as `crds/`
//!    (types, required fields, enums, ranges, lengths, patterns, unknown
//!    fields; checked by the `jsonschema` crate) and its CEL rules (exactly one
//!    detector, one auth scheme, ...; evaluated by the `cel` crate), after the
//!    API server's defaulting (see [`schema`]);
//! 2. the operator's own semantic checks ([`Reconciler::validate`]: time zones,
//!    cron, Odoo domains, JSONPath, ...), the very functions the reconcilers run;
//! 3. references between the given documents: a `connectionRef` must name an
//!    `OdooConnection` of the same namespace (a warning when it is not among the
//!    files, since it may already be in the cluster), Secret keys must exist in
//!    the Secrets given and their values must suit their use (signing secrets
//!    and tokens long enough, notify URLs not at a refused literal address,
//!    see `--allow-outbound`), names must be unique. No message quotes a
//!    secret's value, nor a Secret reference that is not a valid name (often
//!    the secret itself, pasted in the wrong place).
//!
//! Documents of other kinds (Secrets, ConfigMaps, ...) are skipped and counted.

mod cel;
mod schema;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::common::{GROUP, SecretKeyRef};
use crate::api::{self, ApprovalPolicy, ExceptionRule, OdooConnection, SupplierConnector};
use crate::controllers::driver::Reconciler;
use crate::controllers::kinds::{PlanopsKind, secret_use};
use crate::controllers::validate::{is_secret_key, is_secret_name};
use crate::gateway::check_secret;
use crate::odoo::Secret;

use self::schema::KindSchema;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per problem and a summary line.
    Text,
    /// One JSON document.
    Json,
}

/// Arguments of `planops validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Manifest file or directory (searched recursively for *.yaml and *.yml);
    /// `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<PathBuf>,
    /// Namespace of documents that name none (as `kubectl apply -n`).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// text or json.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The cluster or the operator would refuse the resource.
    Error,
    /// Worth a look, but the manifests may still be right (a reference that
    /// must be satisfied by the cluster).
    Warning,
}

/// One problem with one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    /// 1-based position of the document in its file.
    pub document: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// JSON path of the field at fault, for example `spec.triggers.schedule.cron`.
    pub field: String,
    pub message: String,
    pub severity: Severity,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:doc#{} {}/{}/{}: {}: ",
            self.file, self.document, self.kind, self.namespace, self.name, self.field
        )?;
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// What a validation run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub files: usize,
    pub documents: usize,
    /// PlanOps resources checked.
    pub resources: usize,
    /// Documents of other kinds, skipped.
    pub skipped: usize,
    pub errors: usize,
    pub warnings: usize,
    pub problems: Vec<Problem>,
}

impl Report {
    /// The closing line of the text output.
    pub fn summary(&self) -> String {
        format!(
            "{} files, {} documents: {} PlanOps resources checked, {} other documents skipped; {} errors, {} warnings",
            self.files, self.documents, self.resources, self.skipped, self.errors, self.warnings
        )
    }
}

/// One document read from a file.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: String,
    /// 1-based.
    pub index: usize,
    pub value: Value,
}

/// A PlanOps resource that passed parsing, for cross-references and for `plan`.
#[derive(Debug, Clone)]
pub enum Resource {
    Connection(Box<OdooConnection>),
    Rule(Box<ExceptionRule>),
    Supplier(Box<SupplierConnector>),
    Approval(Box<ApprovalPolicy>),
}

/// Errors that stop validation before any document is judged.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rendering the CRD schema of {kind}: {message}")]
    Schema { kind: String, message: String },
    #[error("the CRD schema of {kind}: {source}")]
    SchemaCompile {
        kind: String,
        #[source]
        source: schema::SchemaError,
    },
    #[error(transparent)]
    CelEnvironment(#[from] cel::EnvError),
}

/// The YAML files under `paths`: directories recursively, sorted, `-` as stdin.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ValidateError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ValidateError> {
        let read_err = |source| ValidateError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut out)?;
        } else {
            // A file named explicitly is read whatever its extension.
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String, ValidateError> {
    let err = |source| ValidateError::Read {
        path: path.display().to_string(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(err)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(err)
    }
}

/// Splits a multi-document YAML text. A syntax error becomes a problem of the
/// document it is in; the rest of the file cannot be trusted after it.
pub fn parse_documents(file: &str, text: &str) -> (Vec<Document>, Option<Problem>) {
    let (documents, error) = super::yaml_documents(text);
    let documents = documents
        .into_iter()
        .map(|(index, value)| Document {
            file: file.to_string(),
            index,
            value,
        })
        .collect();
    let problem = error.map(|(index, message)| Problem {
        file: file.to_string(),
        document: index,
        kind: "-".into(),
        namespace: "-".into(),
        name: "-".into(),
        field: "-".into(),
        message,
        severity: Severity::Error,
    });
    (documents, problem)
}

/// Reads and validates the manifests under `paths`; also returns the resources
/// that parsed, with their namespace (what `planops plan` works from).
pub fn validate_paths(
    paths: &[PathBuf],
    default_namespace: &str,
) -> Result<(Report, Vec<(String, Resource)>), ValidateError> {
    let files = collect_files(paths)?;
    let mut docs = Vec::new();
    let mut parse_problems = Vec::new();
    for path in &files {
        let text = read_text(path)?;
        let (found, problem) = parse_documents(&path.display().to_string(), &text);
        docs.extend(found);
        parse_problems.extend(problem);
    }
    let (mut report, resources) = validate_documents(&docs, default_namespace)?;
    report.files = files.len();
    report.documents += parse_problems.len();
    report.errors += parse_problems.len();
    report.problems.splice(0..0, parse_problems);
    Ok((report, resources))
}

/// Validates parsed documents; also returns the resources that parsed, in
/// order, with their namespace.
pub fn validate_documents(
    docs: &[Document],
    default_namespace: &str,
) -> Result<(Report, Vec<(String, Resource)>), ValidateError> {
    let schemas = Schemas::new()?;
    let mut report = Report {
        documents: docs.len(),
        ..Report::default()
    };
    let mut resources = Vec::new();
    let mut secrets: BTreeMap<(String, String), SecretData> = BTreeMap::new();
    let mut seen: BTreeMap<(String, String, String), &Document> = BTreeMap::new();
    // Each parsed resource with the document it came from, for the cross-references.
    let mut parsed: Vec<(&Document, String, String)> = Vec::new();

    for doc in docs {
        let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = doc
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let namespace = doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_namespace)
            .to_string();
        let name = doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String, severity: Severity| {
            problems.push(Problem {
                file: doc.file.clone(),
                document: doc.index,
                kind: if kind.is_empty() { "-" } else { kind }.to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
                field: field.to_string(),
                message,
                severity,
            })
        };
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        if group != GROUP {
            if kind == "Secret" && api_version == "v1" {
                secrets.insert((namespace.clone(), name.clone()), secret_data(&doc.value));
            }
            if kind.is_empty() || api_version.is_empty() {
                push(
                    if kind.is_empty() {
                        "kind"
                    } else {
                        "apiVersion"
                    },
                    "is missing: not a Kubernetes object".into(),
                    Severity::Error,
                );
                report.problems.append(&mut problems);
                continue;
            }
            report.skipped += 1;
            continue;
        }
        report.resources += 1;
        let Some((versions, schema)) = schemas.by_kind.get(kind) else {
            push(
                "kind",
                format!(
                    "{group} has no kind {kind:?}; PlanOps kinds are {}",
                    schemas
                        .by_kind
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Severity::Error,
            );
            report.problems.append(&mut problems);
            continue;
        };
        if !versions.iter().any(|v| v == api_version) {
            push(
                "apiVersion",
                format!(
                    "{api_version:?} is not served; use {}",
                    versions.join(" or ")
                ),
                Severity::Error,
            );
        }
        check_metadata(&doc.value, &mut push);
        let checked = schema.check(&doc.value);
        let schema_failed = checked
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error);
        for finding in checked.findings {
            push(&finding.field, finding.message, finding.severity);
        }
        let key = (kind.to_string(), namespace.clone(), name.clone());
        match seen.get(&key) {
            // The same object twice (scenarios sharing a connection) applies
            // idempotently; two different ones means the later silently wins.
            Some(first) if first.value != doc.value => push(
                "metadata.name",
                format!(
                    "{kind} {namespace}/{name} is also defined, differently, in {}:doc#{}; the one applied last wins",
                    first.file, first.index
                ),
                Severity::Warning,
            ),
            Some(_) => {}
            None => {
                seen.insert(key, doc);
            }
        }
        // The typed checks need a document serde can read; when the schema
        // already failed, serde's message would only repeat it less precisely.
        // They read the object as the API server stores it, defaults filled
        // in, as the operator will.
        match typed(kind, &checked.normalized) {
            Ok(resource) => {
                for e in semantic_errors(&resource) {
                    push(&e.field, e.message, Severity::Error);
                }
                parsed.push((doc, kind.to_string(), name.clone()));
                resources.push((namespace.clone(), resource));
            }
            Err(message) if !schema_failed => push("spec", message, Severity::Error),
            Err(_) => {}
        }
        report.problems.append(&mut problems);
    }

    // Cross-references, once every document is known.
    let present = |kind: &str, ns: &str, name: &str| {
        seen.contains_key(&(kind.to_string(), ns.to_string(), name.to_string()))
    };
    for ((namespace, resource), (doc, kind, name)) in resources.iter().zip(&parsed) {
        let mut push = |field: String, message: String, severity: Severity| {
            report.problems.push(Problem {
                file: doc.file.clone(),
                document: doc.index,
                kind: kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                field,
                message,
                severity,
            })
        };
        for (field, target_kind, target) in references(resource) {
            if !present(target_kind, namespace, &target) {
                push(
                    field,
                    format!(
                        "{target_kind} {namespace}/{target} is not among the given manifests; it must exist in the cluster"
                    ),
                    Severity::Warning,
                );
            }
        }
        // A reference that is no name may be a pasted secret: the semantic
        // checks already refused it without quoting it, and nothing else may.
        let named = secret_refs(resource)
            .into_iter()
            .filter(|(_, r)| is_secret_name(&r.name) && is_secret_key(&r.key));
        for (field, secret_ref) in named {
            match secrets.get(&(namespace.clone(), secret_ref.name.clone())) {
                Some(data) if !data.contains_key(&secret_ref.key) => push(
                    field,
                    format!(
                        "Secret {namespace}/{} has no key {:?} (it has {})",
                        secret_ref.name,
                        secret_ref.key,
                        data.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    Severity::Error,
                ),
                Some(data) => {
                    let value = data.get(&secret_ref.key).cloned().flatten();
                    if let Some(message) = value.and_then(|v| secret_value_problem(&field, &v)) {
                        push(
                            field,
                            format!(
                                "the value of key {:?} in Secret {namespace}/{} {message}",
                                secret_ref.key, secret_ref.name
                            ),
                            Severity::Error,
                        );
                    }
                }
                None => push(
                    field,
                    format!(
                        "Secret {namespace}/{} is not among the given manifests; it must exist in the cluster with key {:?}",
                        secret_ref.name, secret_ref.key
                    ),
                    Severity::Warning,
                ),
            }
        }
    }
    report
        .problems
        .sort_by(|a, b| (&a.file, a.document, a.severity).cmp(&(&b.file, b.document, b.severity)));
    report.errors = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    report.warnings = report.problems.len() - report.errors;
    Ok((report, resources))
}

/// A Secret's keys with their values, where they can be read: `stringData`
/// as it is, `data` decoded from base64.
type SecretData = BTreeMap<String, Option<Secret>>;

fn secret_data(secret: &Value) -> SecretData {
    use base64::Engine as _;
    let mut out = SecretData::new();
    for (field, encoded) in [("data", true), ("stringData", false)] {
        let Some(map) = secret.get(field).and_then(Value::as_object) else {
            continue;
        };
        for (key, value) in map {
            let text = value.as_str().and_then(|text| {
                if !encoded {
                    return Some(text.to_string());
                }
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            });
            // stringData wins over data, as in the API server.
            if !encoded || !out.contains_key(key) {
                out.insert(key.clone(), text.map(Secret::new));
            }
        }
    }
    out
}

/// What is wrong with the value a field's Secret key holds, in words that
/// never include the value: a signing secret or token too weak for its use,
/// a notify URL at an address the outbound policy refuses.
fn secret_value_problem(field: &str, value: &Secret) -> Option<String> {
    if let Some(kind) = secret_use(field) {
        return check_secret(kind, value).err().map(|e| e.to_string());
    }
    if field.starts_with("spec.actions[") && field.ends_with("].notify.urlSecretRef") {
        return crate::actions::webhook::check_destination(value)
            .err()
            .map(|refused| format!("is not a permitted notify URL: {refused}"));
    }
    None
}

fn check_metadata(doc: &Value, push: &mut impl FnMut(&str, String, Severity)) {
    let meta = doc.get("metadata");
    match meta.and_then(|m| m.get("name")).and_then(Value::as_str) {
        Some(name) if !is_dns_subdomain(name) => push(
            "metadata.name",
            format!(
                "{name:?} is not a valid name: lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit"
            ),
            Severity::Error,
        ),
        Some(_) => {}
        None if meta.and_then(|m| m.get("generateName")).is_some() => {}
        None => push("metadata.name", "is required".into(), Severity::Error),
    }
    if let Some(ns) = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        && !(ns.len() <= 63 && !ns.contains('.') && is_dns_subdomain(ns))
    {
        push(
            "metadata.namespace",
            format!("{ns:?} is not a valid namespace name"),
            Severity::Error,
        );
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    is_secret_name(name)
}

/// The OpenAPI schema of each kind, from the same CRDs `planops crdgen` writes.
struct Schemas {
    /// kind → (served apiVersions, schema).
    by_kind: BTreeMap<String, (Vec<String>, KindSchema)>,
}

impl Schemas {
    fn new() -> Result<Schemas, ValidateError> {
        let env = cel::environment()?;
        let mut by_kind = BTreeMap::new();
        for crd in api::all_crds() {
            let kind = crd.spec.names.kind.clone();
            let mut versions = Vec::new();
            let mut schema = None;
            for version in crd.spec.versions.iter().filter(|v| v.served) {
                versions.push(format!("{}/{}", crd.spec.group, version.name));
                if schema.is_none() {
                    schema = version
                        .schema
                        .as_ref()
                        .and_then(|s| s.open_api_v3_schema.as_ref())
                        .map(serde_json::to_value)
                        .transpose()
                        .map_err(|e| ValidateError::Schema {
                            kind: kind.clone(),
                            message: e.to_string(),
                        })?;
                }
            }
            let schema = schema.ok_or_else(|| ValidateError::Schema {
                kind: kind.clone(),
                message: "no served version has a schema".into(),
            })?;
            let schema = KindSchema::new(env.clone(), &schema).map_err(|source| {
                ValidateError::SchemaCompile {
                    kind: kind.clone(),
                    source,
                }
            })?;
            by_kind.insert(kind, (versions, schema));
        }
        Ok(Schemas { by_kind })
    }
}

fn typed(kind: &str, value: &Value) -> Result<Resource, String> {
    fn read<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, String> {
        T::deserialize(value).map_err(|e| e.to_string())
    }
    Ok(match kind {
        "OdooConnection" => Resource::Connection(Box::new(read(value)?)),
        "ExceptionRule" => Resource::Rule(Box::new(read(value)?)),
        "SupplierConnector" => Resource::Supplier(Box::new(read(value)?)),
        "ApprovalPolicy" => Resource::Approval(Box::new(read(value)?)),
        other => return Err(format!("unknown kind {other}")),
    })
}

/// The reconcilers' own checks: one definition, shared with the operator.
fn semantic_errors(resource: &Resource) -> Vec<crate::controllers::validate::FieldError> {
    match resource {
        Resource::Connection(r) => r.check_spec(),
        Resource::Rule(r) => r.check_spec(),
        Resource::Supplier(r) => r.check_spec(),
        Resource::Approval(r) => r.check_spec(),
    }
}

fn secret_refs(resource: &Resource) -> Vec<(String, SecretKeyRef)> {
    match resource {
        Resource::Connection(r) => r.secret_refs(),
        Resource::Rule(r) => r.secret_refs(),
        Resource::Supplier(r) => r.secret_refs(),
        Resource::Approval(r) => r.secret_refs(),
    }
}

/// References to other PlanOps resources in the same namespace:
/// `(field, kind, name)`.
fn references(resource: &Resource) -> Vec<(String, &'static str, String)> {
    let mut refs = Vec::new();
    let connection = match resource {
        Resource::Connection(r) => r.connection_name(),
        Resource::Rule(r) => r.connection_name(),
        Resource::Supplier(r) => r.connection_name(),
        Resource::Approval(r) => r.connection_name(),
    };
    if let Some(name) = connection {
        refs.push((
            "spec.connectionRef.name".to_string(),
            OdooConnection::KIND,
            name.to_string(),
        ));
    }
    match resource {
        Resource::Rule(rule) => {
            for (i, action) in rule.spec.actions.iter().enumerate() {
                if let Some(policy) = action
                    .propose_purchase
                    .as_ref()
                    .and_then(|p| p.approval_policy_ref.as_ref())
                {
                    refs.push((
                        format!("spec.actions[{i}].proposePurchase.approvalPolicyRef.name"),
                        ApprovalPolicy::KIND,
                        policy.name.clone(),
                    ));
                }
            }
        }
        Resource::Supplier(supplier) => {
            if let Some(effects) = &supplier.spec.effects {
                for (i, rule) in effects.reevaluate_rules.iter().enumerate() {
                    refs.push((
                        format!("spec.effects.reevaluateRules[{i}].name"),
                        ExceptionRule::KIND,
                        rule.name.clone(),
                    ));
                }
            }
        }
        _ => {}
    }
    refs
}

/// Runs `planops validate`; exits 1 when any document has an error.
pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let (report, _) = validate_paths(&args.files, &args.namespace)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            for problem in &report.problems {
                writeln!(out, "{problem}")?;
            }
            writeln!(out, "{}", report.summary())?;
        }
    }
    out.flush()?;
    if report.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Document> {
        let (docs, problem) = parse_documents("t.yaml", yaml);
        assert!(problem.is_none(), "{problem:?}");
        docs
    }

    #[test]
    fn cross_references_warn_and_secret_keys_error() {
        let yaml = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {login: admin}
---
apiVersion: planops.io/v1alpha1
kind: OdooConnection
metadata: {name: odoo}
spec:
  url: http://odoo.example.com
  database: db
  credentialsSecretRef: {name: creds}
---
apiVersion: planops.io/v1alpha1
kind: ExceptionRule
metadata: {name: r, namespace: other}
spec:
  connectionRef: {name: odoo}
  detector: {demandSpike: {}}
  triggers: {schedule: {cron: "0 6 * * *"}}
"#;
        let (report, resources) = validate_documents(&docs(yaml), "default").unwrap();
        assert_eq!(resources.len(), 2);
        assert_eq!(report.skipped, 1);
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(report.errors, 1, "{lines:#?}");
        assert!(lines[0].starts_with(
            "t.yaml:doc#2 OdooConnection/default/odoo: spec.credentialsSecretRef.apiKeyKey: Secret default/creds has no key \"apiKey\""
        ), "{lines:#?}");
        assert_eq!(report.warnings, 1);
        assert!(lines[1].contains("ExceptionRule/other/r: spec.connectionRef.name: warning: OdooConnection other/odoo is not among"), "{lines:#?}");
    }

    #[test]
    fn duplicates_and_unknown_kinds_are_errors() {
        let yaml = "apiVersion: planops.io/v1alpha1\nkind: Nope\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
        let (report, _) = validate_documents(&docs(yaml), "default").unwrap();
        assert_eq!(report.errors, 1);
        assert_eq!(report.problems[0].field, "kind");
        assert_eq!(report.skipped, 2);
    }

    #[test]
    fn yaml_syntax_error_is_a_problem_of_its_document() {
        let (found, problem) = parse_documents("t.yaml", "a: 1\n---\nb: [\n");
        assert_eq!(found.len(), 1);
        assert_eq!(problem.map(|p| p.document), Some(2));
    }
}
