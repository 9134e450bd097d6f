//! Subcommands of the `planops` binary that are not a component of their own.

pub mod audit;
pub mod crdgen;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod outbound;
pub mod plan;
pub mod scan;
pub mod table;
pub mod validate;

use anyhow::Context as _;
use serde::Deserialize as _;

/// The exit status for a command that failed with `error`: 1, except for a scan
/// that completed with writes left undone ([`scan::EXIT_UNSETTLED`]), which a
/// script or a Job may want to tell from one that could not run.
pub fn exit_code(error: &anyhow::Error) -> std::process::ExitCode {
    if error.downcast_ref::<scan::UnsettledWrites>().is_some() {
        std::process::ExitCode::from(scan::EXIT_UNSETTLED)
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// The objects of `kind` in a multi-document YAML stream; other kinds are skipped.
pub fn objects_in<K: serde::de::DeserializeOwned>(
    yaml: &str,
    kind: &str,
) -> anyhow::Result<Vec<K>> {
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = serde_yaml_ng::Value::deserialize(document).context("parsing YAML")?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(kind) {
            continue;
        }
        objects
            .push(serde_yaml_ng::from_value(value).with_context(|| format!("reading an {kind}"))?);
    }
    Ok(objects)
}
