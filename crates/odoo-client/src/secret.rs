//! A string that must never be shown: API keys and passwords.

use std::fmt;

/// Text placed wherever a secret would otherwise be printed.
pub const REDACTED: &str = "<redacted>";

/// An API key or password. `Debug` and `Display` print [`REDACTED`], so a
/// secret embedded in a config, an error or a log line cannot leak by
/// accident; the only way to read it is the explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret text, for the single place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let key = Secret::new("6f1c0a9e4b2d7f3a8c5e1b0d9a7c3e5f1b2d4a6c");
        assert_eq!(format!("{key}"), REDACTED);
        assert!(!format!("{key:?}").contains("6f1c0a9e"));
        assert!(!format!("{:#?}", Some(&key)).contains("6f1c0a9e"));
        assert_eq!(key.expose(), "6f1c0a9e4b2d7f3a8c5e1b0d9a7c3e5f1b2d4a6c");
    }
}
