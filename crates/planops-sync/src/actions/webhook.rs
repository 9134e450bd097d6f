//! Outbound notifications signed with Standard Webhooks 1.0 (symmetric `v1`).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
//! `v1,` + base64(HMAC-SHA256(key, content)), where the key is the base64 text after
//! the secret's `whsec_` prefix.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use odoo_client::Secret;

use crate::outbound::{self, Redirects};

/// Timeout of one delivery.
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The client notifications go out with. It follows no redirect: the signed
/// body and the URL's token are for the receiver configured, not for wherever
/// it points next. It connects only where the process's outbound policy
/// ([`outbound::policy`]) allows.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    outbound::client(outbound::policy(), DELIVERY_TIMEOUT, Redirects::None)
}

/// Refuses a notify URL whose host is a refused literal address (names are
/// checked when they resolve). The URL is a credential: messages name its
/// host at most.
pub fn check_destination(url: &Secret) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url.expose())
        .map_err(|_| "the notify URL in the Secret is not a valid URL".to_string())?;
    outbound::policy()
        .check_url(&parsed)
        .map_err(|denied| denied.to_string())
}

/// Why a delivery failed, without the URL.
pub fn delivery_error(err: reqwest::Error) -> String {
    match outbound::denial(&err) {
        Some(denied) => denied.to_string(),
        None => format!("delivery failed: {}", err.without_url()),
    }
}

/// Shortest key accepted in a `whsec_` secret, in bytes: Standard Webhooks
/// asks for 24 to 64 random bytes, and a short key can be guessed.
pub const MIN_KEY_BYTES: usize = 24;

/// Why a signing secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The secret is not `whsec_` followed by base64.
    #[error("the signing secret is not a Standard Webhooks secret (whsec_ followed by base64)")]
    BadSecret,
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error(
        "the signing secret holds a key of fewer than {MIN_KEY_BYTES} bytes after base64 decoding (Standard Webhooks asks for 24 to 64 random bytes)"
    )]
    ShortKey,
    /// The id contains a `.`, which would make the signed content ambiguous.
    #[error("webhook-id must not contain '.'")]
    BadId,
}

/// The three Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: stable across retries, the receiver's dedup key.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds of the attempt.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64>`.
    pub signature: String,
}

/// Signs `body` for delivery `id` at `timestamp` with a `whsec_` secret.
pub fn sign(
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<SignedHeaders, SigningError> {
    if id.contains('.') {
        return Err(SigningError::BadId);
    }
    let key = decode_secret(secret)?;
    let tag = signed_content_mac(&key, id, timestamp, body);
    let signature = format!("v1,{}", STANDARD.encode(tag));
    Ok(SignedHeaders {
        id: id.to_string(),
        timestamp,
        signature,
    })
}

/// The HMAC key inside a `whsec_` secret. Padding is optional, as in the
/// reference libraries (Python's adds `==` before decoding), so secrets copied
/// from senders that strip it still work.
pub fn decode_secret(secret: &Secret) -> Result<Vec<u8>, SigningError> {
    let encoded = secret
        .expose()
        .strip_prefix("whsec_")
        .ok_or(SigningError::BadSecret)?;
    let key = LENIENT
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| SigningError::BadSecret)?;
    if key.is_empty() {
        return Err(SigningError::BadSecret);
    }
    if key.len() < MIN_KEY_BYTES {
        return Err(SigningError::ShortKey);
    }
    Ok(key)
}

/// HMAC-SHA256 of the Standard Webhooks signed content `{id}.{timestamp}.{body}`.
/// Signing and verification (the gateway) both go through here, so the two can
/// never disagree about what is signed.
pub fn signed_content_mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error branch is unreachable.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Base64 that accepts input with or without trailing padding.
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn known_vector() {
        let headers = sign(&Secret::new(SECRET), ID, TIMESTAMP, BODY.as_bytes()).unwrap();
        assert_eq!(headers.signature, EXPECTED);
        assert_eq!(headers.timestamp, TIMESTAMP);
    }

    #[test]
    fn any_change_changes_the_signature() {
        let secret = Secret::new(SECRET);
        let base = sign(&secret, ID, TIMESTAMP, BODY.as_bytes()).unwrap();
        let other_body = sign(&secret, ID, TIMESTAMP, br#"{"test": 2432232315}"#).unwrap();
        let other_time = sign(&secret, ID, TIMESTAMP + 1, BODY.as_bytes()).unwrap();
        let other_id = sign(&secret, "msg_other", TIMESTAMP, BODY.as_bytes()).unwrap();
        for other in [other_body, other_time, other_id] {
            assert_ne!(other.signature, base.signature);
        }
    }

    #[test]
    fn bad_secrets_and_ids_are_refused() {
        assert_eq!(
            sign(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ID, 1, b""),
            Err(SigningError::BadSecret)
        );
        assert_eq!(
            sign(&Secret::new("whsec_not base64!"), ID, 1, b""),
            Err(SigningError::BadSecret)
        );
        assert_eq!(
            sign(&Secret::new(SECRET), "a.b", 1, b""),
            Err(SigningError::BadId)
        );
        assert_eq!(
            sign(&Secret::new("whsec_"), ID, 1, b""),
            Err(SigningError::BadSecret)
        );
    }

    #[test]
    fn refused_destinations_are_named_by_host_only() {
        let err = check_destination(&Secret::new(
            "http://169.254.169.254/hooks/T000/B000/XXXXtoken",
        ))
        .unwrap_err();
        assert!(
            err.contains("169.254.169.254") && err.contains("--allow-outbound"),
            "{err}"
        );
        assert!(!err.contains("XXXXtoken"), "{err}");
        let err = check_destination(&Secret::new("not a url XXXXtoken")).unwrap_err();
        assert!(!err.contains("XXXXtoken"), "{err}");
        assert!(check_destination(&Secret::new("https://hooks.example.com/XXXXtoken")).is_ok());
    }

    #[tokio::test]
    async fn names_of_refused_addresses_fail_at_connection() {
        let err = client()
            .unwrap()
            .post("http://localhost:9/hook/XXXXtoken")
            .send()
            .await
            .unwrap_err();
        let message = delivery_error(err);
        assert!(
            message.contains("outbound request to localhost refused"),
            "{message}"
        );
        assert!(!message.contains("XXXXtoken"), "{message}");
    }

    #[test]
    fn unpadded_secrets_decode_to_the_same_key() {
        let padded =
            decode_secret(&Secret::new("whsec_dHdlbnR5LWZpdmUgYnl0ZXMgb2Yga2V5IQ==")).unwrap();
        let unpadded =
            decode_secret(&Secret::new("whsec_dHdlbnR5LWZpdmUgYnl0ZXMgb2Yga2V5IQ")).unwrap();
        assert_eq!(padded, b"twenty-five bytes of key!");
        assert_eq!(unpadded, padded);
    }

    #[test]
    fn keys_shorter_than_24_bytes_are_refused() {
        // 23 bytes once decoded.
        let short = Secret::new("whsec_dHdlbnR5LXRocmVlIGJ5dGVzIGtleSE=");
        assert_eq!(decode_secret(&short), Err(SigningError::ShortKey));
        assert_eq!(sign(&short, ID, 1, b""), Err(SigningError::ShortKey));
        assert!(!SigningError::ShortKey.to_string().contains("dHdl"));
        // The reference vector's key is exactly 24 bytes.
        assert_eq!(decode_secret(&Secret::new(SECRET)).unwrap().len(), 24);
    }
}
