//! The container image as `scripts/image.sh` builds it, from the binary this
//! test run built (so CI compiles no release build for it): the OCI layout is
//! read blob by blob with its digests checked, the config must say what the
//! Dockerfile says (user, entrypoint, env, labels) and the platform the binary
//! is for, and the binary the image holds must run from the unpacked root
//! filesystem as the image's user: `--version` with its commit, and the demo
//! against the built-in simulator.
//!
//! As root, the binary runs in a chroot of the rootfs, remounted read-only in a
//! private mount namespace when the machine allows one (as the chart runs it:
//! `readOnlyRootFilesystem`). Otherwise it runs through the rootfs's own
//! dynamic loader and libraries.
//!
//! Needs crane from `scripts/envtest.sh build` (which `scripts/test.sh` runs),
//! and the simulator in the binary for the demo.
#![cfg(feature = "simulator")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

const NONROOT: &str = "65532:65532";
const ENTRYPOINT: &str = "/usr/local/bin/planops";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The chart's appVersion: the tag the chart deploys and the script's default.
fn app_version() -> String {
    let chart = std::fs::read_to_string(repo().join("charts/planops/Chart.yaml"))
        .expect("reading Chart.yaml");
    let chart: Value = serde_yaml_ng::from_str(&chart).expect("Chart.yaml is YAML");
    chart["appVersion"]
        .as_str()
        .expect("Chart.yaml has an appVersion")
        .to_owned()
}

fn image_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0")
}

/// An OCI image layout on disk, read through its index.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// A blob's bytes, checked against its descriptor's digest and size.
    fn blob(&self, descriptor: &Value) -> Vec<u8> {
        let digest = descriptor["digest"].as_str().expect("descriptor digest");
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let bytes = std::fs::read(self.dir.join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("reading blob {digest}: {e}"));
        assert_eq!(hex::encode(Sha256::digest(&bytes)), hex, "blob {digest}");
        assert_eq!(
            Some(bytes.len() as u64),
            descriptor["size"].as_u64(),
            "size of {digest}"
        );
        bytes
    }

    fn json(&self, descriptor: &Value) -> Value {
        serde_json::from_slice(&self.blob(descriptor)).expect("a JSON blob")
    }

    /// The one image of the layout: its manifest and config.
    fn image(&self) -> (Value, Value) {
        let index: Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("index.json")).expect("reading index.json"),
        )
        .expect("index.json is JSON");
        let manifests = index["manifests"].as_array().expect("index manifests");
        assert_eq!(manifests.len(), 1, "one image in {index}");
        assert_eq!(
            manifests[0]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let manifest = self.json(&manifests[0]);
        let config = self.json(&manifest["config"]);
        (manifest, config)
    }
}

/// The final stage of the Dockerfile: what the image config must mirror.
#[derive(Debug, Default)]
struct DockerfileRuntime {
    user: String,
    workdir: String,
    entrypoint: Vec<String>,
    env: Vec<String>,
    labels: BTreeMap<String, String>,
    /// Build arguments with their defaults.
    args: BTreeMap<String, String>,
}

/// Reads the instructions of the Dockerfile's last stage (continuation lines
/// joined); the `KEY=value` pairs of ENV and LABEL are each on their own line.
fn dockerfile_runtime() -> DockerfileRuntime {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("reading Dockerfile");
    let joined = text.replace("\\\n", " ");
    let last_stage = joined
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a multi-stage Dockerfile");
    let mut runtime = DockerfileRuntime::default();
    for line in last_stage.lines().map(str::trim) {
        let Some((instruction, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim();
        match instruction {
            "USER" => runtime.user = rest.to_owned(),
            "WORKDIR" => runtime.workdir = rest.to_owned(),
            "ENTRYPOINT" => {
                runtime.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form")
            }
            "ARG" => {
                let (name, default) = rest.split_once('=').unwrap_or((rest, ""));
                runtime.args.insert(name.to_owned(), default.to_owned());
            }
            "ENV" | "LABEL" => {
                for pair in split_pairs(rest) {
                    let (key, value) = pair.split_once('=').expect("KEY=value");
                    if instruction == "ENV" {
                        runtime.env.push(pair.clone());
                    } else {
                        runtime.labels.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    runtime
}

/// `KEY=value KEY="a value"` pairs, quotes removed.
fn split_pairs(rest: &str) -> Vec<String> {
    let mut pairs = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    pairs.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        pairs.push(current);
    }
    pairs
}

/// Extracts the layers in order into `rootfs`. As root, tar keeps the owners
/// the layer records (the nonroot home is 65532's).
fn unpack(layout: &Layout, manifest: &Value, rootfs: &Path) {
    std::fs::create_dir_all(rootfs).expect("creating the rootfs directory");
    for layer in manifest["layers"].as_array().expect("manifest layers") {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let blob = layout.dir.join("layer.tar.gz");
        std::fs::write(&blob, layout.blob(layer)).expect("writing the layer");
        run(Command::new("tar")
            .arg("-xzf")
            .arg(&blob)
            .arg("-C")
            .arg(rootfs));
        std::fs::remove_file(&blob).expect("removing the layer copy");
    }
}

/// Runs the image's entrypoint with `args` from the unpacked rootfs as the
/// image's user, with the image's environment only.
fn run_in_image(rootfs: &Path, env: &[String], args: &[&str]) -> Output {
    let mut command;
    if is_root() {
        let read_only = Command::new("unshare")
            .args(["--mount", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
        if read_only {
            command = Command::new("unshare");
            command.args([
                "--mount",
                "sh",
                "-c",
                r#"root="$0" user="$1"; shift
                mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" "$root" &&
                  exec chroot --userspec="$user" "$root" "$@""#,
            ]);
        } else {
            eprintln!("no private mount namespace here: the rootfs stays writable");
            command = Command::new("sh");
            command.args([
                "-c",
                r#"root="$0" user="$1"; shift; exec chroot --userspec="$user" "$root" "$@""#,
            ]);
        }
        command.arg(rootfs).arg(NONROOT).arg(ENTRYPOINT);
    } else {
        // Not root: no chroot, so the rootfs's own loader and libraries run the
        // binary (a static binary has neither and runs directly).
        let loader = ["lib64/ld-linux-x86-64.so.2", "lib/ld-linux-aarch64.so.1"]
            .iter()
            .map(|l| rootfs.join(l))
            .find(|l| l.exists());
        let binary = rootfs.join(ENTRYPOINT.trim_start_matches('/'));
        match loader {
            Some(loader) => {
                command = Command::new(loader);
                let libs = ["lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu", "lib64"]
                    .map(|d| rootfs.join(d).display().to_string())
                    .join(":");
                command.arg("--library-path").arg(libs).arg(binary);
            }
            None => command = Command::new(binary),
        }
    }
    command.args(args).env_clear().current_dir(rootfs);
    for pair in env {
        let (key, value) = pair.split_once('=').expect("KEY=value");
        command.env(key, value);
    }
    // The demo logs its scans on stderr; only failures need them.
    command.env("RUST_LOG", "warn");
    run(&mut command)
}

#[test]
fn image_script_builds_a_runnable_nonroot_image_that_mirrors_the_dockerfile() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let layout_dir = scratch.path().join("layout");
    let out = run(Command::new(repo().join("scripts/image.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_planops"))
        .arg("--output")
        .arg(&layout_dir));
    assert_eq!(text(&out.stdout).trim(), layout_dir.display().to_string());

    let layout = Layout { dir: layout_dir };
    let (manifest, config) = layout.image();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], image_arch());
    let cfg = &config["config"];
    assert_eq!(cfg["User"], NONROOT);
    assert_eq!(cfg["Entrypoint"], serde_json::json!([ENTRYPOINT]));
    assert!(cfg["Cmd"].is_null(), "no default command: {}", cfg["Cmd"]);

    // The commit the build script put in this test's binary, and in the one packed.
    let commit = env!("PLANOPS_GIT_COMMIT");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(cfg["Labels"].clone()).expect("string labels");
    let label = |key: &str| {
        labels
            .get(&format!("org.opencontainers.image.{key}"))
            .cloned()
            .unwrap_or_else(|| panic!("no {key} label in {labels:?}"))
    };
    assert_eq!(label("title"), "planops");
    assert_eq!(label("version"), app_version());
    assert_eq!(label("licenses"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(label("description"), env!("CARGO_PKG_DESCRIPTION"));
    assert!(label("source").starts_with("https://"), "{labels:?}");
    if commit != "unknown" {
        assert!(label("revision").starts_with(commit), "{labels:?}");
    }

    let docker = dockerfile_runtime();
    let env: Vec<String> = serde_json::from_value(cfg["Env"].clone()).expect("string env");
    assert_eq!(docker.user, NONROOT, "{docker:?}");
    assert_eq!(docker.entrypoint, [ENTRYPOINT], "{docker:?}");
    assert_eq!(cfg["WorkingDir"], docker.workdir.as_str());
    assert_eq!(env, docker.env, "the image's env is the Dockerfile's");
    assert_eq!(
        labels.keys().collect::<Vec<_>>(),
        docker.labels.keys().collect::<Vec<_>>(),
        "the image's labels are the Dockerfile's"
    );
    assert_eq!(
        docker.args.get("VERSION"),
        Some(&app_version()),
        "the Dockerfile's default version is the chart's appVersion"
    );
    for (key, value) in &docker.labels {
        if !value.contains('$') {
            assert_eq!(&labels[key], value, "label {key}");
        }
    }

    let rootfs = scratch.path().join("rootfs");
    unpack(&layout, &manifest, &rootfs);
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).expect("etc/group");
    assert!(group.lines().any(|l| l == "nonroot:x:65532:"), "{group}");
    let ca_bundle = env
        .iter()
        .find_map(|e| e.strip_prefix("SSL_CERT_FILE="))
        .expect("SSL_CERT_FILE in the env");
    let bundle = std::fs::read_to_string(rootfs.join(ca_bundle.trim_start_matches('/')))
        .expect("the CA bundle SSL_CERT_FILE names");
    assert!(bundle.contains("-----BEGIN CERTIFICATE-----"));

    let version = run_in_image(&rootfs, &env, &["--version"]);
    assert_eq!(
        text(&version.stdout).trim(),
        format!("planops {} ({commit})", env!("CARGO_PKG_VERSION"))
    );

    let demo = run_in_image(&rootfs, &env, &["demo", "--top", "1"]);
    let report = text(&demo.stdout);
    assert!(
        report.starts_with("Odoo simulator on http://127.0.0.1:"),
        "{report}"
    );
    for (path, _) in planops::cli::demo::EXAMPLES {
        assert!(report.contains(&format!(" ({path}, ")), "{path}:\n{report}");
    }
    let scans = report
        .lines()
        .filter(|l| l.contains(" exceptions over "))
        .count();
    assert_eq!(scans, planops::cli::demo::EXAMPLES.len(), "{report}");
    assert!(!report.lines().any(|l| l.starts_with("error:")), "{report}");
}
