//! How an error reaches a person: once, with every cause.
//!
//! Error types keep their causes as `source()`, and many also name the cause
//! in their own message so that a status condition or a log line read alone is
//! complete. Printing such an error with its chain would say each cause twice;
//! [`chain`] prints each cause once, and is what the command line prints at
//! its edge.

use std::error::Error;

/// `error` and each of its sources, joined by `": "`, leaving out a source whose
/// text the message so far already carries.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Disk;

    #[derive(Debug, thiserror::Error)]
    enum Saving {
        #[error("saving the report: {0}")]
        Says(#[source] Disk),
        #[error("saving the report")]
        Keeps(#[source] Disk),
    }

    #[test]
    fn each_cause_is_printed_once() {
        assert_eq!(chain(&Saving::Says(Disk)), "saving the report: disk full");
        assert_eq!(chain(&Saving::Keeps(Disk)), "saving the report: disk full");
    }

    #[test]
    fn anyhow_contexts_are_a_chain_too() {
        let error = anyhow::Error::new(Saving::Keeps(Disk)).context("planops scan");
        assert_eq!(
            chain(error.as_ref()),
            "planops scan: saving the report: disk full"
        );
    }
}
