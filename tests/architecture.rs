//! The layering of the workspace, checked from Cargo's own view of it: the
//! crates depend on each other only as docs/design.md draws it, the engine's
//! dependency tree holds no crate that does I/O, and a release build of the
//! operator leaves the simulator out.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crates that open sockets, files, processes or timers: none may be under the engine.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "hyper",
    "hyper-util",
    "h2",
    "reqwest",
    "rustls",
    "axum",
    "tower",
    "kube-client",
    "kube-runtime",
    "async-std",
    "smol",
];

fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running cargo {args:?}: {e}"));
    assert!(
        out.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

/// Every package in the normal dependency tree of `package`, by name.
fn normal_tree(package: &str, extra: &[&str]) -> BTreeSet<String> {
    let mut args = vec![
        "tree", "--locked", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
    ];
    args.extend_from_slice(extra);
    cargo(&args)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The workspace's crates and, for each, the workspace crates it depends on
/// (normal, build and dev dependencies alike).
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let metadata: Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--locked",
        "--no-deps",
        "--format-version",
        "1",
    ]))
    .expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_string();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| members.contains(*d))
                .map(str::to_string)
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn the_crates_depend_on_each_other_as_designed() {
    let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("planops-api", &[][..]),
        ("odoo-client", &[][..]),
        ("planops-engine", &["planops-api"][..]),
        ("odoo-sim", &["odoo-client"][..]),
        (
            "planops-sync",
            &["odoo-client", "planops-api", "planops-engine"][..],
        ),
        (
            "planops",
            &[
                "odoo-client",
                "odoo-sim",
                "planops-api",
                "planops-engine",
                "planops-sync",
            ][..],
        ),
    ]);
    let graph = workspace_graph();
    let actual: BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    let expected: BTreeMap<&str, Vec<&str>> =
        expected.into_iter().map(|(k, v)| (k, v.to_vec())).collect();
    assert_eq!(
        actual, expected,
        "the crate graph drifted from docs/design.md"
    );
}

#[test]
fn the_crate_graph_has_no_cycle() {
    let graph = workspace_graph();
    // Kahn's algorithm: a graph is acyclic when every node can be removed
    // once the nodes it depends on are gone.
    let mut remaining = graph.clone();
    while !remaining.is_empty() {
        let leaves: Vec<String> = remaining
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !remaining.contains_key(d)))
            .map(|(name, _)| name.clone())
            .collect();
        assert!(
            !leaves.is_empty(),
            "these crates depend on each other in a cycle: {:?}",
            remaining.keys().collect::<Vec<_>>()
        );
        for leaf in leaves {
            remaining.remove(&leaf);
        }
    }
}

#[test]
fn the_engine_depends_on_no_io_crate() {
    for package in ["planops-engine", "planops-api"] {
        let tree = normal_tree(package, &[]);
        assert!(tree.contains(package), "{tree:?}");
        let io: Vec<&&str> = IO_CRATES.iter().filter(|c| tree.contains(**c)).collect();
        assert!(io.is_empty(), "{package} depends on I/O crates {io:?}");
    }
}

#[test]
fn only_the_operator_talks_to_kubernetes() {
    // planops-sync reads and writes Odoo; the cluster is the controllers' business.
    for package in ["planops-sync", "odoo-client", "odoo-sim"] {
        let tree = normal_tree(package, &[]);
        assert!(tree.contains(package), "{tree:?}");
        for client in ["kube-client", "kube-runtime"] {
            assert!(!tree.contains(client), "{package} depends on {client}");
        }
    }
    assert!(normal_tree("planops", &[]).contains("kube-client"));
}

#[test]
fn the_engine_source_reaches_for_no_io() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/planops-engine/src");
    let forbidden = [
        "std::fs",
        "std::net",
        "std::process",
        "std::env",
        "std::thread",
    ];
    let mut stack = vec![dir];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading the engine's sources") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("reading a source file");
            for word in forbidden {
                assert!(
                    !text.contains(word),
                    "{} uses {word}: the engine takes its inputs as arguments",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 5, "found only {checked} engine source files");
}

#[test]
fn a_release_build_leaves_the_simulator_out() {
    let release = normal_tree("planops", &["--no-default-features"]);
    assert!(release.contains("planops-sync"), "{release:?}");
    assert!(!release.contains("odoo-sim"), "{release:?}");
    let default = normal_tree("planops", &[]);
    assert!(default.contains("odoo-sim"), "{default:?}");
}
