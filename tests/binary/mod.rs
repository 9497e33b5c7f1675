//! Helpers shared by the tests that run the real binary.

// Each test crate that includes this module uses only some of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use assert_cmd::Command;

/// The small blueprint source of the engine's tests (blueprint `mini` 2.0.0).
pub fn fixture_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source")
}

/// The same source one version later (`mini` 2.1.0), for `update`.
pub fn fixture_source_v2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source-v2")
}

/// The binary, run in `dir` with an empty, non-terminal stdin and a time limit, so a
/// prompt that waits for input fails the test instead of hanging it.
pub fn new_service(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("new-service").unwrap();
    cmd.current_dir(dir)
        .write_stdin("")
        .timeout(Duration::from_secs(60))
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com");
    cmd
}

/// `git ARGS` in `dir`, which must succeed; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
