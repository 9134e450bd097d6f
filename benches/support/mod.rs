//! What the bench binaries share.

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs the same
/// binaries without it, as a smoke test that they still build and run. A
/// smoke run uses the smallest sizes and shortest runs, so the test suite
/// stays fast; its figures are not the ones to quote.
pub fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}
