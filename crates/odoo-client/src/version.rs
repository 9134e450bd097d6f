//! Odoo server versions as reported by `common.version()` and
//! `/web/webclient/version_info`.

use std::fmt;

use serde_json::Value;

use super::error::{ErrorKind, OdooError};

/// Oldest and newest major versions the client speaks to.
pub const MIN_SUPPORTED_MAJOR: u32 = 16;
pub const MAX_SUPPORTED_MAJOR: u32 = 19;

/// A parsed server version. `full` keeps the server's own text
/// (`17.0+e`, `saas~17.4`) for status messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    /// Odoo Online builds (`saas~17.4`).
    pub saas: bool,
    /// The build carries the Enterprise marker (`+e`, or `"e"` in `server_version_info`).
    pub enterprise_marker: bool,
    pub full: String,
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl ServerVersion {
    /// Parses a version string: the first run of digits is the major, the
    /// run after the next `.` the minor. Works for `16.0`, `17.0+e`,
    /// `saas~17.4`, `saas-17.4`, `19.0-20251001` and `18.0e`.
    pub fn parse(text: &str) -> Result<ServerVersion, OdooError> {
        let unsupported = || {
            OdooError::new(ErrorKind::UnsupportedVersion {
                version: text.to_string(),
            })
        };
        let start = text
            .find(|c: char| c.is_ascii_digit())
            .ok_or_else(unsupported)?;
        let rest = &text[start..];
        let major_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u32 = rest[..major_len].parse().map_err(|_| unsupported())?;
        let after_major = &rest[major_len..];
        let minor = after_major
            .strip_prefix('.')
            .map(|tail| {
                let len = tail
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(tail.len());
                tail[..len].parse().unwrap_or(0)
            })
            .unwrap_or(0);
        let lower = text.to_ascii_lowercase();
        let saas = lower.contains("saas");
        // The Enterprise marker follows the numeric part: "+e" or a bare "e".
        let suffix = &lower[start + major_len..];
        let enterprise_marker = suffix.contains("+e")
            || suffix
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
                .starts_with('e');
        Ok(ServerVersion {
            major,
            minor,
            saas,
            enterprise_marker,
            full: text.to_string(),
        })
    }

    /// Parses the dict returned by `common.version()` / `version_info`
    /// (`server_version`, `server_version_info`), or 19's `/web/version`
    /// (`version`, `version_info`).
    pub fn from_version_info(info: &Value) -> Result<ServerVersion, OdooError> {
        let text = info
            .get("server_version")
            .or_else(|| info.get("version"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                OdooError::protocol(format!("version answer without a version: {info}"))
            })?;
        let mut version = ServerVersion::parse(text)?;
        let parts = info
            .get("server_version_info")
            .or_else(|| info.get("version_info"))
            .and_then(Value::as_array);
        if let Some(parts) = parts
            && parts.get(5).and_then(Value::as_str) == Some("e")
        {
            version.enterprise_marker = true;
        }
        Ok(version)
    }

    pub fn is_supported(&self) -> bool {
        (MIN_SUPPORTED_MAJOR..=MAX_SUPPORTED_MAJOR).contains(&self.major)
    }

    /// JSON-2 (`/json/2/<model>/<method>`) exists from 19 on.
    pub fn has_json2(&self) -> bool {
        self.major >= 19
    }

    /// `read_group` is deprecated in 19; `formatted_read_group` replaces it.
    pub fn has_formatted_read_group(&self) -> bool {
        self.major >= 19
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_version_strings_seen_in_the_wild() {
        let cases = [
            ("16.0", 16, 0, false, false),
            ("17.0+e", 17, 0, false, true),
            ("saas~17.4", 17, 4, true, false),
            ("saas~17.4+e", 17, 4, true, true),
            ("18.0e", 18, 0, false, true),
            ("19.0-20251001", 19, 0, false, false),
            ("19.1alpha1", 19, 1, false, false),
        ];
        for (text, major, minor, saas, enterprise) in cases {
            let v = ServerVersion::parse(text).unwrap();
            assert_eq!(
                (v.major, v.minor, v.saas, v.enterprise_marker),
                (major, minor, saas, enterprise),
                "{text}"
            );
            assert_eq!(v.full, text);
        }
    }

    #[test]
    fn rejects_text_without_a_number() {
        let err = ServerVersion::parse("master").unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::UnsupportedVersion { .. }));
    }

    #[test]
    fn reads_version_info_dicts() {
        let info = json!({"server_version": "17.0+e",
                          "server_version_info": [17, 0, 0, "final", 0, "e"],
                          "server_serie": "17.0", "protocol_version": 1});
        let v = ServerVersion::from_version_info(&info).unwrap();
        assert_eq!((v.major, v.enterprise_marker), (17, true));
        // SaaS: the first element is a string, never int() it.
        let info = json!({"server_version": "saas~17.2",
                          "server_version_info": ["saas~17", 2, 0, "final", 0, ""]});
        let v = ServerVersion::from_version_info(&info).unwrap();
        assert_eq!(
            (v.major, v.minor, v.saas, v.enterprise_marker),
            (17, 2, true, false)
        );
        let info = json!({"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"});
        let v = ServerVersion::from_version_info(&info).unwrap();
        assert!(v.has_json2() && v.is_supported());
        assert!(!ServerVersion::parse("15.0").unwrap().is_supported());
    }
}
