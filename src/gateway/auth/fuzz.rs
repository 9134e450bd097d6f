//! Fuzz target `signatures`: the gateway's request authentication (Standard
//! Webhooks, hex HMAC-SHA256 with or without a signed timestamp header,
//! bearer and query tokens). See docs/reference/testing.md#fuzzing.
//!
//! In the crate rather than in tests/ because the verifier is crate-private.
//!
//! Properties: no configuration, header, query or body panics; a correctly
//! signed delivery verifies within the timestamp tolerance and only within it;
//! a delivery signed with a key the route does not hold is refused; any
//! single-byte change of the body, `webhook-id`, timestamp, signature or token
//! is refused. The one change that is no change: a hex digit of an HMAC
//! signature in the other case, which is the same digest.

#[path = "../../../tests/fuzz/harness.rs"]
mod harness;

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::sample::Index;
use sha2::Sha256;

use super::{AuthFailure, DEFAULT_TOLERANCE, MAX_ID_LEN, RouteAuth, Verified, Verifier};
use crate::actions::webhook::sign;
use crate::odoo::Secret;

/// Which part of a signed delivery a mutation changes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Body,
    Id,
    Timestamp,
    Signature,
}

/// One byte of a part replaced by itself XOR a non-zero mask.
#[derive(Debug, Clone)]
struct Mutation {
    part: Part,
    at: Index,
    mask: u8,
}

fn mutation(parts: &'static [Part]) -> impl Strategy<Value = Mutation> {
    (proptest::sample::select(parts), any::<Index>(), 1u8..=255)
        .prop_map(|(part, at, mask)| Mutation { part, at, mask })
}

/// `bytes` with the mutation applied, or `None` when it is empty.
fn mutate(bytes: &[u8], m: &Mutation) -> Option<Vec<u8>> {
    if bytes.is_empty() {
        return None;
    }
    let mut out = bytes.to_vec();
    let i = m.at.index(out.len());
    out[i] ^= m.mask;
    Some(out)
}

/// A header map; a value no HTTP request could carry leaves the header out
/// (the request would have been refused before the gateway saw it).
fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone)]
struct Standard {
    key: Vec<u8>,
    other_key: Vec<u8>,
    id: String,
    timestamp: i64,
    /// `now - timestamp`: within ±300 s the delivery is fresh.
    skew: i64,
    body: Vec<u8>,
    mutation: Mutation,
}

fn standard() -> impl Strategy<Value = Standard> {
    (
        proptest::collection::vec(any::<u8>(), 24..=64),
        proptest::collection::vec(any::<u8>(), 24..=64),
        prop_oneof!["msg_[A-Za-z0-9]{1,30}", "[!-\\-/-~]{1,256}"],
        prop_oneof![0i64..4_000_000_000, Just(0), Just(i64::MAX - 1)],
        prop_oneof![-TOLERANCE_SECS..=TOLERANCE_SECS, -2000i64..2000],
        proptest::collection::vec(any::<u8>(), 0..600),
        mutation(&[Part::Body, Part::Id, Part::Timestamp, Part::Signature]),
    )
        .prop_map(
            |(key, other_key, id, timestamp, skew, body, mutation)| Standard {
                key,
                other_key,
                id,
                timestamp,
                skew,
                body,
                mutation,
            },
        )
}

fn whsec(key: &[u8]) -> Secret {
    Secret::new(format!("whsec_{}", STANDARD.encode(key)))
}

fn standard_verifier(keys: &[&[u8]]) -> Result<Verifier, TestCaseError> {
    Verifier::new(
        &RouteAuth::StandardWebhooks {
            secrets: keys.iter().map(|k| whsec(k)).collect(),
        },
        DEFAULT_TOLERANCE,
    )
    .map_err(|e| TestCaseError::fail(format!("a valid configuration refused: {e}")))
}

fn check_standard(case: &Standard) -> Result<(), TestCaseError> {
    prop_assume!(case.key != case.other_key);
    let verifier = standard_verifier(&[&case.key])?;
    let signed = sign(&whsec(&case.key), &case.id, case.timestamp, &case.body)
        .map_err(|e| TestCaseError::fail(format!("signing failed: {e}")))?;
    let timestamp = signed.timestamp.to_string();
    // Near i64::MAX the clock saturates: the skew is what is left of it.
    let now = case.timestamp.saturating_add(case.skew);
    let skew = now - case.timestamp;
    let request = |id: &[u8], ts: &[u8], sig: &[u8], body: &[u8]| {
        let h = headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ]);
        verifier.verify(&h, None, body, now)
    };
    let (id, sig) = (case.id.as_bytes(), signed.signature.as_bytes());
    let outcome = request(id, timestamp.as_bytes(), sig, &case.body);
    let fresh = skew.abs() <= TOLERANCE_SECS;
    if fresh {
        prop_assert_eq!(
            &outcome,
            &Ok(Verified {
                webhook_id: Some(case.id.clone())
            })
        );
    } else if skew > 0 {
        prop_assert_eq!(&outcome, &Err(AuthFailure::StaleTimestamp));
    } else {
        prop_assert_eq!(&outcome, &Err(AuthFailure::FutureTimestamp));
    }
    if !fresh {
        return Ok(());
    }
    // Another key refuses it; the two keys of a rotation accept it.
    let h = headers(&[
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.as_bytes()),
        ("webhook-signature", sig),
    ]);
    prop_assert_eq!(
        standard_verifier(&[&case.other_key])?.verify(&h, None, &case.body, now),
        Err(AuthFailure::NoMatchingSignature)
    );
    prop_assert!(
        standard_verifier(&[&case.other_key, &case.key])?
            .verify(&h, None, &case.body, now)
            .is_ok()
    );
    // One byte changed anywhere: refused.
    let m = &case.mutation;
    let mutated = match m.part {
        Part::Body => mutate(&case.body, m).map(|b| request(id, timestamp.as_bytes(), sig, &b)),
        Part::Id => mutate(id, m).map(|i| request(&i, timestamp.as_bytes(), sig, &case.body)),
        Part::Timestamp => {
            mutate(timestamp.as_bytes(), m).map(|t| request(id, &t, sig, &case.body))
        }
        Part::Signature => {
            mutate(sig, m).map(|s| request(id, timestamp.as_bytes(), &s, &case.body))
        }
    };
    if let Some(outcome) = mutated {
        prop_assert!(outcome.is_err(), "{:?} changed and still {:?}", m, outcome);
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct HmacCase {
    secret: String,
    other_secret: String,
    header: &'static str,
    prefix: &'static str,
    timestamp_header: Option<&'static str>,
    timestamp: i64,
    skew: i64,
    body: Vec<u8>,
    mutation: Mutation,
}

fn hmac_case() -> impl Strategy<Value = HmacCase> {
    (
        "[!-~]{24,64}",
        "[!-~]{24,64}",
        proptest::sample::select(&["X-Signature-256", "X-Hub-Signature-256", "x-sig"][..]),
        proptest::sample::select(&["", "sha256=", "v1="][..]),
        proptest::option::of(proptest::sample::select(
            &["X-Signature-Timestamp", "x-ts"][..],
        )),
        0i64..4_000_000_000,
        prop_oneof![-TOLERANCE_SECS..=TOLERANCE_SECS, -2000i64..2000],
        proptest::collection::vec(any::<u8>(), 0..600),
        mutation(&[Part::Body, Part::Timestamp, Part::Signature]),
    )
        .prop_map(
            |(
                secret,
                other_secret,
                header,
                prefix,
                timestamp_header,
                timestamp,
                skew,
                body,
                mutation,
            )| {
                HmacCase {
                    secret,
                    other_secret,
                    header,
                    prefix,
                    timestamp_header,
                    timestamp,
                    skew,
                    body,
                    mutation,
                }
            },
        )
}

/// The header value a sender computes, independently of the verifier.
fn hex_signature(secret: &str, prefix: &str, timestamp: Option<&str>, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    if let Some(ts) = timestamp {
        mac.update(ts.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    format!("{prefix}{}", hex::encode(mac.finalize().into_bytes()))
}

fn check_hmac(case: &HmacCase) -> Result<(), TestCaseError> {
    prop_assume!(case.secret.trim() != case.other_secret.trim());
    let verifier = |secrets: &[&str]| {
        Verifier::new(
            &RouteAuth::HmacSha256 {
                secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
                header: case.header.into(),
                prefix: case.prefix.into(),
                timestamp_header: case.timestamp_header.map(str::to_string),
            },
            DEFAULT_TOLERANCE,
        )
        .map_err(|e| TestCaseError::fail(format!("a valid configuration refused: {e}")))
    };
    let ts = case.timestamp.to_string();
    let signed_ts = case.timestamp_header.map(|_| ts.as_str());
    let signature = hex_signature(&case.secret, case.prefix, signed_ts, &case.body);
    let now = case.timestamp.saturating_add(case.skew);
    let request = |v: &Verifier, ts: &[u8], sig: &[u8], body: &[u8]| {
        let mut pairs: Vec<(&str, &[u8])> = vec![(case.header, sig)];
        if let Some(name) = case.timestamp_header {
            pairs.push((name, ts));
        }
        v.verify(&headers(&pairs), None, body, now)
    };
    let route = verifier(&[&case.secret])?;
    let outcome = request(&route, ts.as_bytes(), signature.as_bytes(), &case.body);
    let fresh = case.timestamp_header.is_none() || case.skew.abs() <= TOLERANCE_SECS;
    if fresh {
        prop_assert_eq!(&outcome, &Ok(Verified::default()));
    } else {
        prop_assert!(
            matches!(
                outcome,
                Err(AuthFailure::StaleTimestamp | AuthFailure::FutureTimestamp)
            ),
            "{:?}",
            outcome
        );
        return Ok(());
    }
    prop_assert_eq!(
        request(
            &verifier(&[&case.other_secret])?,
            ts.as_bytes(),
            signature.as_bytes(),
            &case.body
        ),
        Err(AuthFailure::NoMatchingSignature)
    );
    let m = &case.mutation;
    let mutated = match m.part {
        Part::Body => mutate(&case.body, m).map(|b| {
            (
                request(&route, ts.as_bytes(), signature.as_bytes(), &b),
                false,
            )
        }),
        Part::Timestamp if case.timestamp_header.is_some() => mutate(ts.as_bytes(), m)
            .map(|t| (request(&route, &t, signature.as_bytes(), &case.body), false)),
        Part::Signature => mutate(signature.as_bytes(), m).map(|s| {
            // Hex is read in either case: a letter of the digest in the other
            // case is the same signature.
            let i = m.at.index(s.len());
            let same = i >= case.prefix.len()
                && s[i].eq_ignore_ascii_case(&signature.as_bytes()[i])
                && s[i].is_ascii_alphabetic();
            (request(&route, ts.as_bytes(), &s, &case.body), same)
        }),
        _ => None,
    };
    if let Some((outcome, same)) = mutated {
        if same {
            prop_assert!(outcome.is_ok(), "{:?}: {:?}", m, outcome);
        } else {
            prop_assert!(outcome.is_err(), "{:?} changed and still {:?}", m, outcome);
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct TokenCase {
    token: String,
    at: Index,
    replacement: char,
    query: bool,
}

fn token_case() -> impl Strategy<Value = TokenCase> {
    (
        "[!-~]{16,64}",
        any::<Index>(),
        proptest::char::range('!', '~'),
        any::<bool>(),
    )
        .prop_map(|(token, at, replacement, query)| TokenCase {
            token,
            at,
            replacement,
            query,
        })
}

/// `text` percent-encoded for a query string value.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn check_token(case: &TokenCase) -> Result<(), TestCaseError> {
    let tokens = vec![Secret::new(case.token.clone())];
    let auth = if case.query {
        RouteAuth::QueryToken { tokens }
    } else {
        RouteAuth::Bearer { tokens }
    };
    let verifier = Verifier::new(&auth, DEFAULT_TOLERANCE)
        .map_err(|e| TestCaseError::fail(format!("a valid configuration refused: {e}")))?;
    let present = |token: &str| {
        if case.query {
            let query = format!("x=1&token={}", query_value(token));
            verifier.verify(&HeaderMap::new(), Some(&query), b"", 0)
        } else {
            let value = format!("Bearer {token}");
            let h = headers(&[("authorization", value.as_bytes())]);
            verifier.verify(&h, None, b"", 0)
        }
    };
    prop_assert_eq!(present(&case.token), Ok(Verified::default()));
    let mut chars: Vec<char> = case.token.chars().collect();
    let i = case.at.index(chars.len());
    prop_assume!(chars[i] != case.replacement);
    chars[i] = case.replacement;
    let changed: String = chars.into_iter().collect();
    prop_assert!(present(&changed).is_err(), "{:?} accepted", changed);
    Ok(())
}

/// Requests of arbitrary headers, query and body at any time.
#[derive(Debug, Clone)]
struct Arbitrary {
    headers: Vec<(String, Vec<u8>)>,
    query: Option<String>,
    body: Vec<u8>,
    now: i64,
    tolerance: u64,
}

const HEADER_NAMES: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
    "x-signature-256",
    "x-signature-timestamp",
];

const HEADER_TOKENS: &[&str] = &[
    "v1,",
    "v1a,",
    "v2,",
    " ",
    "Bearer ",
    "bearer ",
    "sha256=",
    "=",
    "==",
    "msg_",
    ".",
    "0",
    "-1",
    "1614265330",
    "9223372036854775807",
    "99999999999999999999",
    "g0hM9SsE+OTPJTGt/tmIKtSyZlE3",
    "uFJELVlNIOLJ1OE=",
    "%",
    "\t",
];

fn arbitrary() -> impl Strategy<Value = Arbitrary> {
    let name = prop_oneof![
        4 => proptest::sample::select(HEADER_NAMES).prop_map(str::to_string),
        1 => "[a-z-]{1,12}",
    ];
    let value = prop_oneof![
        harness::token_soup(HEADER_TOKENS).prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..80),
    ];
    (
        proptest::collection::vec((name, value), 0..6),
        proptest::option::of(prop_oneof![
            any::<String>(),
            "(token=|x=1&|%[0-9A-Fa-f]{0,2}|[+&=;#]|[a-z0-9]{1,8}){0,8}",
        ]),
        proptest::collection::vec(any::<u8>(), 0..64),
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            0i64..4_000_000_000
        ],
        prop_oneof![Just(300u64), any::<u64>(), Just(u64::MAX)],
    )
        .prop_map(|(headers, query, body, now, tolerance)| Arbitrary {
            headers,
            query,
            body,
            now,
            tolerance,
        })
}

fn check_arbitrary(case: &Arbitrary) -> Result<(), TestCaseError> {
    let tolerance = Duration::from_secs(case.tolerance);
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let routes = [
        RouteAuth::StandardWebhooks {
            secrets: vec![Secret::new(secret)],
        },
        RouteAuth::HmacSha256 {
            secrets: vec![Secret::new("a-shared-hmac-secret-of-32-bytes")],
            header: "X-Signature-256".into(),
            prefix: "sha256=".into(),
            timestamp_header: Some("X-Signature-Timestamp".into()),
        },
        RouteAuth::Bearer {
            tokens: vec![Secret::new("t0ken-a-9f8e7d6c5b")],
        },
        RouteAuth::QueryToken {
            tokens: vec![Secret::new("t0ken-a-9f8e7d6c5b")],
        },
    ];
    let pairs: Vec<(&str, &[u8])> = case
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let h = headers(&pairs);
    for route in &routes {
        let verifier = Verifier::new(route, tolerance)
            .map_err(|e| TestCaseError::fail(format!("a valid configuration refused: {e}")))?;
        if let Ok(Verified {
            webhook_id: Some(id),
        }) = verifier.verify(&h, case.query.as_deref(), &case.body, case.now)
        {
            prop_assert!(!id.is_empty() && id.len() <= MAX_ID_LEN && !id.contains('.'));
        }
    }
    // Configurations from any text: refused or built, never a panic.
    for (i, (name, value)) in case.headers.iter().enumerate() {
        let text = String::from_utf8_lossy(value).into_owned();
        let auth = match i % 4 {
            0 => RouteAuth::StandardWebhooks {
                secrets: vec![Secret::new(text)],
            },
            1 => RouteAuth::HmacSha256 {
                secrets: vec![Secret::new(text.clone())],
                header: name.clone(),
                prefix: text.clone(),
                timestamp_header: Some(text),
            },
            2 => RouteAuth::Bearer {
                tokens: vec![Secret::new(text)],
            },
            _ => RouteAuth::QueryToken {
                tokens: vec![Secret::new(text)],
            },
        };
        if let Ok(verifier) = Verifier::new(&auth, tolerance) {
            let _ = verifier.verify(&h, case.query.as_deref(), &case.body, case.now);
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Input {
    Standard(Standard),
    Hmac(HmacCase),
    Token(TokenCase),
    Arbitrary(Arbitrary),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => standard().prop_map(Input::Standard),
        3 => hmac_case().prop_map(Input::Hmac),
        1 => token_case().prop_map(Input::Token),
        2 => arbitrary().prop_map(Input::Arbitrary),
    ]
}

fn check(input: Input) -> Result<(), TestCaseError> {
    match &input {
        Input::Standard(case) => check_standard(case),
        Input::Hmac(case) => check_hmac(case),
        Input::Token(case) => check_token(case),
        Input::Arbitrary(case) => check_arbitrary(case),
    }
}

#[test]
fn fuzz_signatures() {
    harness::fuzz("signatures", 3000, input(), check);
}

/// Corpus files are HTTP-like: `name: value` header lines, a blank line, the
/// body; a `?query` line may come first. Each is checked against every kind
/// of route at the time of its `webhook-timestamp` (or 0).
#[test]
fn signatures_corpus() {
    harness::replay("signatures", |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut query = None;
        let mut headers = Vec::new();
        for line in head.lines() {
            if let Some(q) = line.strip_prefix('?') {
                query = Some(q.to_string());
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().as_bytes().to_vec()));
            }
        }
        let now = headers
            .iter()
            .find(|(n, _)| n == "webhook-timestamp")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        let case = Arbitrary {
            headers,
            query,
            body: body.as_bytes().to_vec(),
            now,
            tolerance: 300,
        };
        if let Err(failure) = check_arbitrary(&case) {
            panic!("{failure}");
        }
    });
}
