//! What every fuzz target shares: the run loop (a bounded number of cases in
//! `cargo test`, or as many as fit in `PLANOPS_FUZZ_SECONDS`), the committed
//! corpus under `tests/fuzz/corpus/<target>/`, a mutator that starts from that
//! corpus, and generators of JSON values and Odoo domains.
//!
//! The file is included with `#[path]` by each crate's `tests/fuzz.rs` (and
//! by the gateway's in-crate fuzz module), since a shared crate would add a
//! node to the workspace's crate graph for test code only. How to run the
//! targets and add a crash to the corpus: docs/reference/testing.md#fuzzing.

// Each including crate uses part of the file.
#![allow(dead_code)]

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestError, TestRunner};
use serde_json::{Map, Number, Value};

/// The repository root: the first ancestor of the crate holding `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The seconds each target should run, from `PLANOPS_FUZZ_SECONDS`; unset or
/// unparsable means one round of cases, as in CI.
fn budget() -> Option<Duration> {
    std::env::var("PLANOPS_FUZZ_SECONDS")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Cases per round: `PROPTEST_CASES` when set, else the target's own count,
/// chosen so that all targets together add seconds, not minutes, to `cargo test`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(default)
}

/// Runs `test` on values of `strategy`: one round of `default_cases` cases,
/// or rounds with fresh seeds until `PLANOPS_FUZZ_SECONDS` are spent. A
/// failing case is shrunk, its seed saved to `proptest-regressions/<name>.txt`
/// (replayed first by every later run) and the test panics naming the input.
pub fn fuzz<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let regressions = workspace_root()
        .join("proptest-regressions")
        .join(format!("{name}.txt"));
    // proptest wants a 'static path; one small leak per target and run.
    let regressions: &'static str = Box::leak(regressions.display().to_string().into_boxed_str());
    let per_round = cases(default_cases);
    let config = Config {
        cases: per_round,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        // Generators refuse little; a target whose filters refuse most cases
        // should fail loudly rather than test nothing.
        max_global_rejects: per_round.saturating_mul(4).max(1024),
        ..Config::default()
    };
    let budget = budget();
    let started = Instant::now();
    let (mut total, mut rounds) = (0u64, 0u32);
    loop {
        let mut runner = TestRunner::new(config.clone());
        match runner.run(&strategy, &test) {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => {
                panic!("fuzz target {name} failed: {reason}\nminimal input: {input:#?}")
            }
            Err(TestError::Abort(reason)) => panic!("fuzz target {name} aborted: {reason}"),
        }
        total += u64::from(per_round);
        rounds += 1;
        if budget.is_none_or(|budget| started.elapsed() >= budget) {
            break;
        }
    }
    // The figures a long run is judged by (seen with --nocapture).
    println!(
        "fuzz {name}: {total} cases in {rounds} round(s), {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}

/// The committed corpus of `target`: every file of
/// `tests/fuzz/corpus/<target>/`, sorted by name, as (name, bytes).
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = workspace_root().join("tests/fuzz/corpus").join(target);
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (name, bytes)
        })
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "the corpus {} is empty", dir.display());
    entries
}

/// Runs `check` on every corpus file of `target`, naming the file that fails.
pub fn replay(target: &str, check: impl Fn(&[u8])) {
    for (name, bytes) in corpus(target) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("tests/fuzz/corpus/{target}/{name}: {message}");
        }
    }
}

/// One edit of a byte string; positions are fractions of its length, so an
/// edit stays meaningful whatever the seed it is applied to.
#[derive(Debug, Clone)]
pub enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, &'static str),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let at = |index: &Index, len: usize| if len == 0 { 0 } else { index.index(len + 1) };
    match edit {
        Edit::Flip(i, mask) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= mask.max(&1);
        }
        Edit::Set(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Edit::Insert(i, token) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, token.bytes());
        }
        Edit::Delete(i, n) => {
            let i = at(i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Edit::Duplicate(i, n) => {
            let i = at(i, bytes.len());
            let end = (i + n).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Edit::Truncate(i) => {
            let i = at(i, bytes.len());
            bytes.truncate(i);
        }
        Edit::Flip(..) | Edit::Set(..) => {}
    }
}

/// A corpus file of `target` with up to eight edits, the inserted text drawn
/// from `dictionary` (the target's tokens): a mutation fuzzer on proptest.
pub fn mutated(
    target: &str,
    dictionary: &'static [&'static str],
) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, b)| b).collect();
    let interesting = prop_oneof![
        any::<u8>(),
        Just(0u8),
        Just(b'"'),
        Just(b'\''),
        Just(b'<'),
        Just(b'['),
        Just(0xff),
    ];
    let edit = prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<Index>(), interesting).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), proptest::sample::select(dictionary))
            .prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ];
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit, 0..8),
    )
        .prop_map(|(mut bytes, edits)| {
            for edit in &edits {
                apply(&mut bytes, edit);
            }
            bytes
        })
}

/// Text built from a target's tokens and a little noise: reaches the states
/// of a parser that random characters almost never do.
pub fn token_soup(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => proptest::sample::select(tokens).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => "[ \t\n]{1,3}",
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

/// Numbers at the edges: the extremes of i64 and u64, floats past i64, tiny
/// and huge floats, negative zero.
pub fn json_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        (-1000i64..1000).prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        Just(Number::from(i64::MIN)),
        Just(Number::from(u64::MAX)),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        prop_oneof![
            Just(0.1f64),
            Just(-0.0),
            Just(1e300),
            Just(-1e-300),
            Just(5e-324),
            Just(9.007_199_254_740_993e15),
            Just(1e16),
            Just(2.5),
        ]
        .prop_filter_map("finite", Number::from_f64),
    ]
}

/// Short strings: plain words most of the time, any characters otherwise.
pub fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_.]{1,12}",
        2 => any::<String>(),
        1 => "[\\x00-\\x1f\"'\\\\&<>\\]\\[(),.]{0,6}",
        1 => Just(String::new()),
    ]
}

/// Any JSON value, a few levels deep.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number().prop_map(Value::Number),
        json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((json_string(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The operators of a domain leaf, with spellings Odoo also takes and a few it does not.
pub const OPERATORS: &[&str] = &[
    "=",
    "!=",
    "<>",
    ">",
    ">=",
    "<",
    "<=",
    "=?",
    "=like",
    "like",
    "not like",
    "ilike",
    "ILIKE",
    "not ilike",
    "=ilike",
    "in",
    "not in",
    "child_of",
    "parent_of",
    "any",
    "not any",
    "==",
    "",
];

/// Field paths of the models PlanOps reads, and some that exist nowhere.
pub const FIELDS: &[&str] = &[
    "id",
    "name",
    "state",
    "default_code",
    "product_id",
    "product_id.default_code",
    "categ_id.name",
    "partner_id",
    "order_line",
    "date_planned",
    "qty_available",
    "warehouse_id",
    "active",
    "write_date",
    "create_date",
    "nonexistent_field",
    "a.b.c.d",
];

/// A leaf's right-hand side: scalars, lists of scalars, now and then a
/// sub-domain or an object.
fn leaf_value(subdomain: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Bool(false)),
        Just(Value::Bool(true)),
        Just(Value::Null),
        json_number().prop_map(Value::Number),
        json_string().prop_map(Value::String),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]( [0-2][0-9]:[0-5][0-9]:[0-5][0-9])?"
            .prop_map(Value::String),
    ];
    prop_oneof![
        6 => scalar.clone(),
        2 => proptest::collection::vec(scalar.clone(), 0..5).prop_map(Value::Array),
        1 => subdomain,
        1 => proptest::collection::vec((json_string(), scalar), 0..2)
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
    ]
}

/// A domain as JSON: connectors and leaves in any order (so arity is often
/// wrong), leaves sometimes malformed, values of every kind, `any` leaves
/// holding sub-domains built the same way.
pub fn domain_json() -> impl Strategy<Value = Value> {
    let leaf_only = proptest::collection::vec(
        (
            proptest::sample::select(FIELDS),
            proptest::sample::select(OPERATORS),
            json_number(),
        )
            .prop_map(|(f, o, n)| Value::Array(vec![f.into(), o.into(), Value::Number(n)])),
        0..3,
    )
    .prop_map(Value::Array)
    .boxed();
    leaf_only.prop_recursive(3, 64, 8, |inner| {
        let leaf = (
            proptest::sample::select(FIELDS),
            proptest::sample::select(OPERATORS),
            leaf_value(inner.clone().boxed()),
        )
            .prop_map(|(field, op, value)| Value::Array(vec![field.into(), op.into(), value]));
        let term = prop_oneof![
            6 => leaf,
            2 => Just(Value::from("&")),
            2 => Just(Value::from("|")),
            1 => Just(Value::from("!")),
            1 => json_value(),
            1 => Just(serde_json::json!([1, "=", 1])),
            1 => Just(serde_json::json!([0, "=", 1])),
        ];
        proptest::collection::vec(term, 0..10)
            .prop_map(Value::Array)
            .boxed()
    })
}

/// A well-formed domain as JSON: every connector has its operands, leaves
/// use known operators and values the operator accepts.
pub fn valid_domain_json() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Bool(false)),
        Just(Value::Null),
        (-1000i64..1000).prop_map(Value::from),
        "[a-zA-Z0-9 %_-]{0,10}".prop_map(Value::String),
    ];
    let leaf = (
        proptest::sample::select(&FIELDS[..15]),
        proptest::sample::select(&OPERATORS[..21]),
        scalar.clone(),
        proptest::collection::vec(scalar, 0..4),
    )
        .prop_map(|(field, op, value, list)| {
            let value = match op {
                "in" | "not in" => Value::Array(list),
                // A sub-domain of one leaf.
                "any" | "not any" => serde_json::json!([["id", "=", value]]),
                _ => value,
            };
            vec![Value::Array(vec![field.into(), op.into(), value])]
        });
    // An expression in prefix notation: a leaf, or a connector and its operands.
    let expression = leaf.prop_recursive(6, 32, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| {
                let mut terms = vec![Value::from("&")];
                terms.extend(a);
                terms.extend(b);
                terms
            }),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| {
                let mut terms = vec![Value::from("|")];
                terms.extend(a);
                terms.extend(b);
                terms
            }),
            inner.prop_map(|a| {
                let mut terms = vec![Value::from("!")];
                terms.extend(a);
                terms
            }),
        ]
    });
    // Top-level expressions are implicitly and-ed.
    proptest::collection::vec(expression, 0..4)
        .prop_map(|expressions| Value::Array(expressions.into_iter().flatten().collect()))
}
