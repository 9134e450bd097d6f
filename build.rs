//! Records the git commit the `planops` binary is built from, for `planops
//! --version`, in the compile-time variable `PLANOPS_GIT_COMMIT`.
//!
//! In a git checkout it is `git rev-parse --short=12 HEAD`. A build without the
//! repository (the container build, whose context leaves `.git` out) takes the
//! `PLANOPS_GIT_COMMIT` environment variable instead, and `unknown` without it.
//!
//! Only the files that move HEAD are watched, so an edit to a source file does
//! not rerun git on every build.

use std::path::{Path, PathBuf};
use std::process::Command;

const COMMIT_VAR: &str = "PLANOPS_GIT_COMMIT";
const SHORT_LEN: usize = 12;

fn main() {
    println!("cargo:rerun-if-env-changed={COMMIT_VAR}");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let from_git = if root.join(".git").exists() {
        watch_head(&root);
        git(
            &root,
            &["rev-parse", &format!("--short={SHORT_LEN}"), "HEAD"],
        )
    } else {
        None
    };
    let commit = from_git
        .or_else(from_env)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env={COMMIT_VAR}={commit}");
}

/// The commit given by the builder, shortened like git's; anything that is not
/// a hex commit id is refused, so the version line cannot carry arbitrary text.
fn from_env() -> Option<String> {
    let value = std::env::var(COMMIT_VAR).ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.len() < 7 || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        println!("cargo:warning={COMMIT_VAR} is not a git commit id; the version says `unknown`");
        return None;
    }
    Some(value[..value.len().min(SHORT_LEN)].to_ascii_lowercase())
}

/// Reruns this script when HEAD moves: HEAD itself (a checkout, a detached
/// commit), the branch's loose ref (a commit) and packed-refs (a ref packed by
/// `git gc`). In a worktree these live in different git directories, which
/// `git rev-parse --git-path` resolves. A path that does not exist is left out:
/// cargo would take it as changed on every build.
fn watch_head(root: &Path) {
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        let Some(path) = git(root, &["rev-parse", "--git-path", &name]) else {
            continue;
        };
        let path = root.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The trimmed stdout of a git command that succeeded with output.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}
