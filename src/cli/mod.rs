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

/// The largest manifest text read, in bytes. The API server takes requests of
/// at most 3 MiB, so no real manifest file comes near it; the bound keeps
/// `planops validate` in a CI job from reading whatever it is pointed at.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// A document's number in its text (from 1) with what it holds or why it failed.
pub type Numbered<T> = (usize, T);

/// The documents of a multi-document YAML text as JSON values, numbered from 1,
/// empty documents (a leading `---`, comments only) left out. A syntax error
/// ends the list: the rest of the text cannot be trusted after it, so it comes
/// back with the number of the document it is in.
///
/// The YAML parser refuses nesting deeper than 128 levels and alias
/// expansion beyond its repetition limit, each in time linear in the input.
pub fn yaml_documents(text: &str) -> (Vec<Numbered<serde_json::Value>>, Option<Numbered<String>>) {
    if text.len() > MAX_MANIFEST_BYTES {
        let message = format!(
            "the text is {} bytes long; the limit is {MAX_MANIFEST_BYTES}",
            text.len()
        );
        return (Vec::new(), Some((1, message)));
    }
    let mut documents = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let yaml = match serde_yaml_ng::Value::deserialize(document) {
            Ok(yaml) => yaml,
            // The document iterator repeats an error forever: stop at the first.
            Err(e) => return (documents, Some((index, format!("invalid YAML: {e}")))),
        };
        if yaml.is_null() {
            continue;
        }
        match serde_json::to_value(&yaml) {
            Ok(value) => documents.push((index, value)),
            Err(e) => {
                let message = format!("YAML that JSON cannot hold: {e}");
                return (documents, Some((index, message)));
            }
        }
    }
    (documents, None)
}

/// The objects of `kind` in a multi-document YAML stream; other kinds are skipped.
pub fn objects_in<K: serde::de::DeserializeOwned>(
    yaml: &str,
    kind: &str,
) -> anyhow::Result<Vec<K>> {
    let (documents, error) = yaml_documents(yaml);
    if let Some((index, message)) = error {
        anyhow::bail!("document {index}: {message}");
    }
    let mut objects = Vec::new();
    for (index, value) in documents {
        if value.get("kind").and_then(|k| k.as_str()) != Some(kind) {
            continue;
        }
        objects.push(
            serde_json::from_value(value)
                .with_context(|| format!("reading an {kind} (document {index})"))?,
        );
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_yaml_is_refused_with_its_reason() {
        for text in ["[".repeat(100_000), "- ".repeat(100_000) + "x"] {
            let (documents, error) = yaml_documents(&text);
            assert!(documents.is_empty());
            let (index, message) = error.expect("an error");
            assert_eq!(index, 1);
            assert!(message.contains("recursion limit exceeded"), "{message}");
        }
        let nine = |alias: &str| [alias; 9].join(",");
        let mut laughs = format!("a: &a [{}]\n", nine("\"lol\""));
        for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip("abcdefgh".chars())
        {
            laughs.push_str(&format!(
                "{name}: &{name} [{}]\n",
                nine(&format!("*{previous}"))
            ));
        }
        let (_, error) = yaml_documents(&laughs);
        assert!(
            error
                .expect("an error")
                .1
                .contains("repetition limit exceeded")
        );
        let huge = format!("# {}", "x".repeat(MAX_MANIFEST_BYTES));
        let (_, error) = yaml_documents(&huge);
        assert_eq!(
            error.expect("an error").1,
            format!(
                "the text is {} bytes long; the limit is {MAX_MANIFEST_BYTES}",
                huge.len()
            )
        );
    }

    #[test]
    fn documents_are_numbered_and_empty_ones_skipped() {
        let (documents, error) =
            yaml_documents("---\n# nothing\n---\nkind: A\n---\nkind: B\n---\n[\n");
        let kinds: Vec<(usize, &str)> = documents
            .iter()
            .map(|(i, v)| (*i, v["kind"].as_str().unwrap_or("-")))
            .collect();
        assert_eq!(kinds, [(2, "A"), (3, "B")]);
        assert_eq!(error.map(|(i, _)| i), Some(4));
    }
}
