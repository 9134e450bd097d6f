//! Request authentication schemes of the gateway's routes.
//!
//! Every comparison with secret material is constant-time. Failures carry an
//! [`AuthFailure`] for the gateway's own debug log and tests; the HTTP answer is
//! the same `401` whichever check failed, so a caller learns nothing about which
//! part of its request was wrong.

use std::fmt;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::actions::webhook::{SigningError, decode_secret, signed_content_mac};
use crate::odoo::Secret;

/// Default Standard Webhooks timestamp tolerance, past and future (the
/// reference libraries' 5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Default header of [`RouteAuth::HmacSha256`] (GitHub's spelling).
pub const DEFAULT_HMAC_HEADER: &str = "X-Signature-256";
/// Longest `webhook-id` accepted; ids are dedup keys held in memory.
pub const MAX_ID_LEN: usize = 256;
/// Shortest HMAC key accepted, in bytes: the decoded key of a `whsec_`
/// secret, the text of an `hmacSha256` secret. Standard Webhooks asks for 24
/// to 64 random bytes.
pub const MIN_KEY_BYTES: usize = 24;
/// Shortest bearer or query token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// What a secret is used as, which decides what it must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// A `whsec_` secret, to verify or sign Standard Webhooks.
    StandardWebhooks,
    /// The key of a hex HMAC-SHA256 signature.
    Hmac,
    /// A bearer or query token.
    Token,
}

/// Why a secret's value cannot be used. Never shows the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretValueError {
    #[error("is empty")]
    Empty,
    #[error("is not a Standard Webhooks secret (whsec_ followed by base64)")]
    NotStandard,
    #[error(
        "holds a key of fewer than {MIN_KEY_BYTES} bytes after base64 decoding (Standard Webhooks asks for 24 to 64 random bytes)"
    )]
    ShortStandardKey,
    #[error("is shorter than {min} bytes")]
    TooShort { min: usize },
}

/// Checks a secret for its use: format, and a length that guessing cannot
/// reach. Whitespace around the value does not count (it is trimmed when read).
pub fn check_secret(kind: SecretUse, secret: &Secret) -> Result<(), SecretValueError> {
    let text = secret.expose().trim();
    if text.is_empty() {
        return Err(SecretValueError::Empty);
    }
    match kind {
        SecretUse::StandardWebhooks => match decode_secret(&Secret::new(text)) {
            Ok(_) => Ok(()),
            Err(SigningError::ShortKey) => Err(SecretValueError::ShortStandardKey),
            Err(_) => Err(SecretValueError::NotStandard),
        },
        SecretUse::Hmac if text.len() < MIN_KEY_BYTES => {
            Err(SecretValueError::TooShort { min: MIN_KEY_BYTES })
        }
        SecretUse::Token if text.len() < MIN_TOKEN_BYTES => Err(SecretValueError::TooShort {
            min: MIN_TOKEN_BYTES,
        }),
        SecretUse::Hmac | SecretUse::Token => Ok(()),
    }
}

/// How a route authenticates its callers. Each list holds the secrets that are
/// valid right now: during a rotation the old and the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuth {
    /// Standard Webhooks 1.0, symmetric `v1`: headers `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`; HMAC-SHA256 over `id.ts.body`
    /// with the key inside each `whsec_` secret.
    StandardWebhooks { secrets: Vec<Secret> },
    /// Hex HMAC-SHA256 of the raw body in one header, e.g. GitHub's
    /// `X-Hub-Signature-256: sha256=<hex>`. The key is the secret text itself.
    HmacSha256 {
        secrets: Vec<Secret>,
        /// Header carrying the digest ([`DEFAULT_HMAC_HEADER`] by default).
        header: String,
        /// Text before the hex digest, e.g. `sha256=`; empty for none.
        prefix: String,
        /// Header with the Unix seconds the sender signed at. Set: the MAC
        /// covers `{timestamp}.{body}` and the timestamp must be within the
        /// route's tolerance, so a captured delivery cannot be replayed later,
        /// whatever the dedup memory lost. Unset: the MAC covers the body.
        timestamp_header: Option<String>,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { tokens: Vec<Secret> },
    /// `?token=<token>` in the URL: for Odoo's webhook action, which cannot
    /// sign or set headers, so the route's URL itself carries an unguessable
    /// per-rule token.
    QueryToken { tokens: Vec<Secret> },
}

/// Why a route's auth configuration cannot be used. Never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("at least one secret is required")]
    NoSecret,
    #[error("secret #{0} is not a Standard Webhooks secret (whsec_ followed by base64)")]
    BadStandardSecret(usize),
    #[error("secret #{0} is empty")]
    EmptySecret(usize),
    #[error("secret #{index} {problem}")]
    WeakSecret {
        index: usize,
        problem: SecretValueError,
    },
    #[error("the signature header name {0:?} is not a valid HTTP header name")]
    BadHeader(String),
}

/// Which check refused a request. For logs at debug level and tests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingHeader,
    BadId,
    BadTimestamp,
    StaleTimestamp,
    FutureTimestamp,
    NoMatchingSignature,
    MissingToken,
    WrongToken,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::MissingHeader => "missing_header",
            AuthFailure::BadId => "bad_id",
            AuthFailure::BadTimestamp => "bad_timestamp",
            AuthFailure::StaleTimestamp => "stale_timestamp",
            AuthFailure::FutureTimestamp => "future_timestamp",
            AuthFailure::NoMatchingSignature => "no_matching_signature",
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::WrongToken => "wrong_token",
        }
    }
}

/// Key material decoded once per route configuration. `Debug` shows only the
/// scheme and the number of keys.
#[derive(Clone)]
pub(crate) enum Verifier {
    Standard {
        keys: Vec<Vec<u8>>,
        tolerance: Duration,
    },
    Hmac {
        keys: Vec<Vec<u8>>,
        header: axum::http::HeaderName,
        prefix: String,
        timestamp: Option<(axum::http::HeaderName, Duration)>,
    },
    Bearer {
        digests: Vec<[u8; 32]>,
    },
    Query {
        digests: Vec<[u8; 32]>,
    },
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, keys) = match self {
            Verifier::Standard { keys, .. } => ("StandardWebhooks", keys.len()),
            Verifier::Hmac { keys, .. } => ("HmacSha256", keys.len()),
            Verifier::Bearer { digests } => ("Bearer", digests.len()),
            Verifier::Query { digests } => ("QueryToken", digests.len()),
        };
        write!(f, "Verifier({scheme}, {keys} key(s))")
    }
}

/// What a verified request told about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Verified {
    /// `webhook-id` of a Standard Webhooks delivery (signed, so usable as the
    /// dedup key).
    pub webhook_id: Option<String>,
}

/// Every secret of a route, checked for its use.
fn usable(secrets: &[Secret], kind: SecretUse) -> Result<(), AuthConfigError> {
    if secrets.is_empty() {
        return Err(AuthConfigError::NoSecret);
    }
    for (index, secret) in secrets.iter().enumerate() {
        check_secret(kind, secret).map_err(|problem| match problem {
            SecretValueError::Empty => AuthConfigError::EmptySecret(index),
            SecretValueError::NotStandard => AuthConfigError::BadStandardSecret(index),
            problem => AuthConfigError::WeakSecret { index, problem },
        })?;
    }
    Ok(())
}

fn token_digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Verifier {
    pub(crate) fn new(auth: &RouteAuth, tolerance: Duration) -> Result<Verifier, AuthConfigError> {
        Ok(match auth {
            RouteAuth::StandardWebhooks { secrets } => {
                usable(secrets, SecretUse::StandardWebhooks)?;
                let keys = secrets
                    .iter()
                    .enumerate()
                    .map(|(index, secret)| {
                        decode_secret(secret).map_err(|_| AuthConfigError::BadStandardSecret(index))
                    })
                    .collect::<Result<_, _>>()?;
                Verifier::Standard { keys, tolerance }
            }
            RouteAuth::HmacSha256 {
                secrets,
                header,
                prefix,
                timestamp_header,
            } => {
                usable(secrets, SecretUse::Hmac)?;
                let header_name = axum::http::HeaderName::try_from(header.as_str())
                    .map_err(|_| AuthConfigError::BadHeader(header.clone()))?;
                let timestamp = timestamp_header
                    .as_ref()
                    .map(|name| {
                        axum::http::HeaderName::try_from(name.as_str())
                            .map(|name| (name, tolerance))
                            .map_err(|_| AuthConfigError::BadHeader(name.clone()))
                    })
                    .transpose()?;
                Verifier::Hmac {
                    timestamp,
                    keys: secrets
                        .iter()
                        .map(|s| s.expose().as_bytes().to_vec())
                        .collect(),
                    header: header_name,
                    prefix: prefix.clone(),
                }
            }
            RouteAuth::Bearer { tokens } => {
                usable(tokens, SecretUse::Token)?;
                Verifier::Bearer {
                    digests: tokens
                        .iter()
                        .map(|t| token_digest(t.expose().as_bytes()))
                        .collect(),
                }
            }
            RouteAuth::QueryToken { tokens } => {
                usable(tokens, SecretUse::Token)?;
                Verifier::Query {
                    digests: tokens
                        .iter()
                        .map(|t| token_digest(t.expose().as_bytes()))
                        .collect(),
                }
            }
        })
    }

    /// Checks one request. `now` is Unix seconds.
    pub(crate) fn verify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, AuthFailure> {
        match self {
            Verifier::Standard { keys, tolerance } => {
                verify_standard(keys, headers, body, now, *tolerance).map(|id| Verified {
                    webhook_id: Some(id),
                })
            }
            Verifier::Hmac {
                keys,
                header,
                prefix,
                timestamp,
            } => {
                // The MAC covers the timestamp as sent, not as re-printed.
                let signed_at = match timestamp {
                    Some((name, tolerance)) => {
                        let text = header_text(headers, name.as_str())?;
                        checked_timestamp(text, now, *tolerance)?;
                        Some(text)
                    }
                    None => None,
                };
                verify_hmac(keys, headers, header, prefix, signed_at, body)
                    .map(|()| Verified::default())
            }
            Verifier::Bearer { digests } => {
                let token = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        let (scheme, token) = v.split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                    })
                    .ok_or(AuthFailure::MissingToken)?;
                match_token(digests, token.as_bytes()).map(|()| Verified::default())
            }
            Verifier::Query { digests } => {
                let token = query
                    .and_then(query_token)
                    .ok_or(AuthFailure::MissingToken)?;
                match_token(digests, token.as_bytes()).map(|()| Verified::default())
            }
        }
    }
}

/// The `token` parameter of a query string, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
    let axum::extract::Query(params) =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(&uri)
            .ok()?;
    params.get("token").cloned()
}

/// Tokens are compared by SHA-256 digest so the comparison takes the same time
/// whatever the length of the presented token.
fn match_token(digests: &[[u8; 32]], presented: &[u8]) -> Result<(), AuthFailure> {
    let presented = token_digest(presented);
    let mut matched = subtle::Choice::from(0);
    for digest in digests {
        matched |= digest.ct_eq(&presented);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(AuthFailure::WrongToken)
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthFailure> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthFailure::MissingHeader)
}

/// Standard Webhooks verification; returns the delivery's `webhook-id`.
pub(crate) fn verify_standard(
    keys: &[Vec<u8>],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<String, AuthFailure> {
    let id = header_text(headers, "webhook-id")?;
    let timestamp = header_text(headers, "webhook-timestamp")?;
    let signatures = header_text(headers, "webhook-signature")?;
    // A '.' would make `id.ts.body` ambiguous (a different split of the same
    // bytes could verify).
    if id.is_empty() || id.len() > MAX_ID_LEN || id.contains('.') {
        return Err(AuthFailure::BadId);
    }
    let timestamp = checked_timestamp(timestamp, now, tolerance)?;
    let presented: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let expected = signed_content_mac(key, id, timestamp, body);
        for signature in &presented {
            // ct_eq on slices of different lengths is false: an empty `v1,` or
            // a truncated signature can never match.
            matched |= expected.as_slice().ct_eq(signature.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(id.to_string())
    } else {
        Err(AuthFailure::NoMatchingSignature)
    }
}

/// Unix seconds, digits only, within `tolerance` of `now` either way.
fn checked_timestamp(text: &str, now: i64, tolerance: Duration) -> Result<i64, AuthFailure> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthFailure::BadTimestamp);
    }
    let timestamp: i64 = text.parse().map_err(|_| AuthFailure::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if timestamp < now.saturating_sub(tolerance) {
        return Err(AuthFailure::StaleTimestamp);
    }
    if timestamp > now.saturating_add(tolerance) {
        return Err(AuthFailure::FutureTimestamp);
    }
    Ok(timestamp)
}

/// `signed_at`: the checked timestamp header when the route has one;
/// the MAC then covers `{timestamp}.{body}`.
fn verify_hmac(
    keys: &[Vec<u8>],
    headers: &HeaderMap,
    header: &axum::http::HeaderName,
    prefix: &str,
    signed_at: Option<&str>,
    body: &[u8],
) -> Result<(), AuthFailure> {
    let value = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthFailure::MissingHeader)?;
    let digest = value
        .trim()
        .strip_prefix(prefix)
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .ok_or(AuthFailure::NoMatchingSignature)?;
    for key in keys {
        let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        if let Some(timestamp) = signed_at {
            mac.update(timestamp.as_bytes());
            mac.update(b".");
        }
        mac.update(body);
        // verify_slice is constant-time and refuses a tag of the wrong length.
        if mac.verify_slice(&digest).is_ok() {
            return Ok(());
        }
    }
    Err(AuthFailure::NoMatchingSignature)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::webhook::sign;
    use axum::http::HeaderValue;

    // The test vector of the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const OTHER_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

    fn standard(secrets: &[&str]) -> Verifier {
        Verifier::new(
            &RouteAuth::StandardWebhooks {
                secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            },
            DEFAULT_TOLERANCE,
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn sw_headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ])
    }

    fn check(v: &Verifier, h: &HeaderMap, body: &str, now: i64) -> Result<Verified, AuthFailure> {
        v.verify(h, None, body.as_bytes(), now)
    }

    #[test]
    fn known_vector_verifies() {
        let v = standard(&[SECRET]);
        let h = sw_headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(
            check(&v, &h, BODY, TIMESTAMP)
                .unwrap()
                .webhook_id
                .as_deref(),
            Some(ID)
        );
        // Any change to the signed content breaks it.
        assert_eq!(
            check(&v, &h, r#"{"test": 2432232315}"#, TIMESTAMP),
            Err(AuthFailure::NoMatchingSignature)
        );
        let other_id = sw_headers("msg_other", &TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(
            check(&v, &other_id, BODY, TIMESTAMP),
            Err(AuthFailure::NoMatchingSignature)
        );
    }

    #[test]
    fn signature_list_and_rotation() {
        // The header may list several signatures (sender mid-rotation); one
        // matching entry is enough, unknown versions are skipped.
        let listed = format!("v1a,AAAA v1,bm90LWl0 {SIGNATURE}");
        let h = sw_headers(ID, &TIMESTAMP.to_string(), &listed);
        assert!(check(&standard(&[SECRET]), &h, BODY, TIMESTAMP).is_ok());
        // The receiver holds both the new and the old secret during a rotation.
        let h = sw_headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        assert!(check(&standard(&[OTHER_SECRET, SECRET]), &h, BODY, TIMESTAMP).is_ok());
        assert_eq!(
            check(&standard(&[OTHER_SECRET]), &h, BODY, TIMESTAMP),
            Err(AuthFailure::NoMatchingSignature)
        );
        let signed_by_new =
            sign(&Secret::new(OTHER_SECRET), ID, TIMESTAMP, BODY.as_bytes()).unwrap();
        let h = sw_headers(ID, &TIMESTAMP.to_string(), &signed_by_new.signature);
        assert!(check(&standard(&[OTHER_SECRET, SECRET]), &h, BODY, TIMESTAMP).is_ok());
    }

    #[test]
    fn empty_and_wrong_length_signatures_are_refused() {
        let v = standard(&[SECRET]);
        let expected = STANDARD.decode(&SIGNATURE[3..]).unwrap();
        let truncated = format!("v1,{}", STANDARD.encode(&expected[..16]));
        let one_byte = format!("v1,{}", STANDARD.encode(&expected[..1]));
        let mut longer = expected.clone();
        longer.push(0);
        let longer = format!("v1,{}", STANDARD.encode(&longer));
        for bad in [
            "v1,",
            "v1",
            "",
            " ",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,!!!",
        ] {
            let h = sw_headers(ID, &TIMESTAMP.to_string(), bad);
            assert!(check(&v, &h, BODY, TIMESTAMP).is_err(), "{bad:?} verified");
        }
        for bad in [truncated, one_byte, longer] {
            let h = sw_headers(ID, &TIMESTAMP.to_string(), &bad);
            assert_eq!(
                check(&v, &h, BODY, TIMESTAMP),
                Err(AuthFailure::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let v = standard(&[SECRET]);
        let h = sw_headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        assert!(check(&v, &h, BODY, TIMESTAMP + 300).is_ok());
        assert!(check(&v, &h, BODY, TIMESTAMP - 300).is_ok());
        assert_eq!(
            check(&v, &h, BODY, TIMESTAMP + 301),
            Err(AuthFailure::StaleTimestamp)
        );
        assert_eq!(
            check(&v, &h, BODY, TIMESTAMP - 301),
            Err(AuthFailure::FutureTimestamp)
        );
        for bad in [
            "",
            "-1614265330",
            "1614265330.5",
            "16142653300000000000000",
            "abc",
        ] {
            let h = sw_headers(ID, bad, SIGNATURE);
            assert_eq!(
                check(&v, &h, BODY, TIMESTAMP),
                Err(AuthFailure::BadTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids_with_dots_and_missing_headers_are_refused() {
        let v = standard(&[SECRET]);
        // Signed with the dotted id, the signature itself is valid: the id must
        // be refused before any MAC is checked.
        let dotted = "msg.p5j";
        let signed = Verifier::Standard {
            keys: vec![decode_secret(&Secret::new(SECRET)).unwrap()],
            tolerance: DEFAULT_TOLERANCE,
        };
        let key = decode_secret(&Secret::new(SECRET)).unwrap();
        let sig = format!(
            "v1,{}",
            STANDARD.encode(signed_content_mac(&key, dotted, TIMESTAMP, BODY.as_bytes()))
        );
        let h = sw_headers(dotted, &TIMESTAMP.to_string(), &sig);
        assert_eq!(check(&signed, &h, BODY, TIMESTAMP), Err(AuthFailure::BadId));
        let long_id = "a".repeat(MAX_ID_LEN + 1);
        let h = sw_headers(&long_id, &TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(check(&v, &h, BODY, TIMESTAMP), Err(AuthFailure::BadId));
        let h = headers(&[("webhook-id", ID), ("webhook-signature", SIGNATURE)]);
        assert_eq!(
            check(&v, &h, BODY, TIMESTAMP),
            Err(AuthFailure::MissingHeader)
        );
    }

    #[test]
    fn bad_configurations_are_refused_without_showing_secrets() {
        let sw = |s: Vec<Secret>| {
            Verifier::new(
                &RouteAuth::StandardWebhooks { secrets: s },
                DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(sw(vec![]).unwrap_err(), AuthConfigError::NoSecret);
        let err = sw(vec![Secret::new(SECRET), Secret::new("plain-text-secret")]).unwrap_err();
        assert_eq!(err, AuthConfigError::BadStandardSecret(1));
        assert!(!err.to_string().contains("plain-text-secret"));
        assert_eq!(
            Verifier::new(
                &RouteAuth::Bearer {
                    tokens: vec![Secret::new("")]
                },
                DEFAULT_TOLERANCE
            )
            .unwrap_err(),
            AuthConfigError::EmptySecret(0)
        );
        let auth = RouteAuth::Bearer {
            tokens: vec![Secret::new("tok-3a9f1c-7d2e4b8a")],
        };
        assert!(!format!("{auth:?}").contains("tok-3a9f1c"));
        let verifier = Verifier::new(&auth, DEFAULT_TOLERANCE).unwrap();
        assert!(!format!("{verifier:?}").contains("tok-3a9f1c"));
    }

    #[test]
    fn short_secrets_are_refused_without_showing_them() {
        // 23 bytes once decoded.
        let short_whsec = "whsec_dHdlbnR5LXRocmVlIGJ5dGVzIGtleSE=";
        let err = Verifier::new(
            &RouteAuth::StandardWebhooks {
                secrets: vec![Secret::new(SECRET), Secret::new(short_whsec)],
            },
            DEFAULT_TOLERANCE,
        )
        .unwrap_err();
        assert_eq!(
            err,
            AuthConfigError::WeakSecret {
                index: 1,
                problem: SecretValueError::ShortStandardKey
            }
        );
        assert!(!err.to_string().contains("dHdl"), "{err}");
        let hmac = |secret: &str| {
            Verifier::new(
                &RouteAuth::HmacSha256 {
                    secrets: vec![Secret::new(secret)],
                    header: DEFAULT_HMAC_HEADER.into(),
                    prefix: String::new(),
                    timestamp_header: None,
                },
                DEFAULT_TOLERANCE,
            )
        };
        let err = hmac("23-byte-hmac-secret-xyz").unwrap_err();
        assert_eq!(err.to_string(), "secret #0 is shorter than 24 bytes");
        assert!(hmac("24-byte-hmac-secret-wxyz").is_ok());
        let bearer = |token: &str| {
            Verifier::new(
                &RouteAuth::Bearer {
                    tokens: vec![Secret::new(token)],
                },
                DEFAULT_TOLERANCE,
            )
        };
        let err = bearer("fifteen-bytes-x").unwrap_err();
        assert_eq!(err.to_string(), "secret #0 is shorter than 16 bytes");
        assert!(bearer("sixteen-bytes-xy").is_ok());
        // Whitespace does not count towards the length.
        assert!(check_secret(SecretUse::Token, &Secret::new("  fifteen-bytes-x \n")).is_err());
    }

    #[test]
    fn hmac_hex_header() {
        let secret = "It's a Secret to Everybody";
        let body = "Hello, World!";
        // GitHub's documented example for X-Hub-Signature-256.
        let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let v = Verifier::new(
            &RouteAuth::HmacSha256 {
                secrets: vec![
                    Secret::new("an-older-secret-for-rotation"),
                    Secret::new(secret),
                ],
                header: "X-Hub-Signature-256".into(),
                prefix: "sha256=".into(),
                timestamp_header: None,
            },
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        let ok = headers(&[("x-hub-signature-256", github)]);
        assert_eq!(check(&v, &ok, body, 0), Ok(Verified::default()));
        assert_eq!(
            check(&v, &ok, "Hello, World?", 0),
            Err(AuthFailure::NoMatchingSignature)
        );
        for bad in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e",
            "sha256=",
            "sha256=zz",
        ] {
            let h = headers(&[("x-hub-signature-256", bad)]);
            assert_eq!(
                check(&v, &h, body, 0),
                Err(AuthFailure::NoMatchingSignature),
                "{bad}"
            );
        }
        assert_eq!(
            check(&v, &HeaderMap::new(), body, 0),
            Err(AuthFailure::MissingHeader)
        );
    }

    #[test]
    fn hmac_with_a_timestamp_header_signs_the_time_and_refuses_old_deliveries() {
        let secret = "a-shared-hmac-secret-of-32-bytes";
        let v = Verifier::new(
            &RouteAuth::HmacSha256 {
                secrets: vec![Secret::new(secret)],
                header: "X-Signature".into(),
                prefix: "sha256=".into(),
                timestamp_header: Some("X-Signature-Timestamp".into()),
            },
            Duration::from_secs(300),
        )
        .unwrap();
        let body = r#"{"po":"ACME-1"}"#;
        let signature = |content: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(content.as_bytes());
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let sent_at = 1_700_000_000i64;
        let signed = signature(&format!("{sent_at}.{body}"));
        let delivery =
            |ts: &str, sig: &str| headers(&[("x-signature-timestamp", ts), ("x-signature", sig)]);
        let h = delivery(&sent_at.to_string(), &signed);
        assert_eq!(check(&v, &h, body, sent_at + 60), Ok(Verified::default()));
        // The same delivery replayed after the window: refused, with no memory
        // of having seen it (a restarted gateway).
        assert_eq!(
            check(&v, &h, body, sent_at + 301),
            Err(AuthFailure::StaleTimestamp)
        );
        assert_eq!(
            check(&v, &h, body, sent_at - 301),
            Err(AuthFailure::FutureTimestamp)
        );
        // A fresh timestamp on a replayed signature does not verify: the time is signed.
        let moved = delivery(&(sent_at + 400).to_string(), &signed);
        assert_eq!(
            check(&v, &moved, body, sent_at + 400),
            Err(AuthFailure::NoMatchingSignature)
        );
        // The body-only signature of a route without the header is refused here.
        let body_only = delivery(&sent_at.to_string(), &signature(body));
        assert_eq!(
            check(&v, &body_only, body, sent_at),
            Err(AuthFailure::NoMatchingSignature)
        );
        let missing = headers(&[("x-signature", signed.as_str())]);
        assert_eq!(
            check(&v, &missing, body, sent_at),
            Err(AuthFailure::MissingHeader)
        );
        for bad in ["", "17e8", "-1", "1700000000.5"] {
            assert_eq!(
                check(&v, &delivery(bad, &signed), body, sent_at),
                Err(AuthFailure::BadTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bearer_and_query_tokens() {
        let bearer = Verifier::new(
            &RouteAuth::Bearer {
                tokens: vec![
                    Secret::new("t0ken-a-9f8e7d6c5b"),
                    Secret::new("t0ken-b-9f8e7d6c5b"),
                ],
            },
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        for (value, ok) in [
            ("Bearer t0ken-a-9f8e7d6c5b", true),
            ("bearer t0ken-b-9f8e7d6c5b", true),
            ("Bearer t0ken-c-9f8e7d6c5b", false),
            ("Bearer t0ken-a-9f8e7d6c5b-longer", false),
            ("Basic t0ken-a-9f8e7d6c5b", false),
            ("t0ken-a-9f8e7d6c5b", false),
        ] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(check(&bearer, &h, "", 0).is_ok(), ok, "{value}");
        }
        let query = Verifier::new(
            &RouteAuth::QueryToken {
                tokens: vec![Secret::new("a b+c-0123456789ab")],
            },
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        let run = |q: Option<&str>| query.verify(&HeaderMap::new(), q, b"{}", 0);
        assert!(run(Some("token=a%20b%2Bc-0123456789ab")).is_ok());
        assert!(run(Some("x=1&token=a+b%2Bc-0123456789ab")).is_ok());
        assert_eq!(run(Some("token=a%20b")), Err(AuthFailure::WrongToken));
        assert_eq!(
            run(Some("tok=a%20b%2Bc-0123456789ab")),
            Err(AuthFailure::MissingToken)
        );
        assert_eq!(run(None), Err(AuthFailure::MissingToken));
    }
}
