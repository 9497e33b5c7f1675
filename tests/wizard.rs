//! The wizard through a pseudo-terminal: a person's keystrokes, including a rejected
//! name, must produce the very same answers file as the equivalent flags.

use std::path::Path;
use std::process::Command;

use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};
use std::time::Duration;

const DOWN: &str = "\x1b[B";

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_new-service"));
    cmd.env("TERM", "xterm-256color").env("NO_COLOR", "1");
    cmd
}

/// Waits for `prompt`, gives the prompt time to put the terminal in raw mode (input
/// typed before that is discarded, as it would be for a person), then types `keys`.
fn answer(p: &mut PtySession, prompt: &str, keys: &str) {
    p.exp_string(prompt)
        .unwrap_or_else(|e| panic!("waiting for {prompt:?}: {e}"));
    std::thread::sleep(Duration::from_millis(300));
    p.send(keys).unwrap();
    p.flush().unwrap();
}

fn answers(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".new-service/answers.toml")).unwrap()
}

#[test]
fn wizard_answers_equal_the_flags_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let by_wizard = tmp.path().join("by-wizard");
    let by_flags = tmp.path().join("by-flags");

    let mut cmd = binary();
    cmd.args(["new", "shop", "--no-git", "--output"])
        .arg(&by_wizard);
    let mut p = spawn_command(cmd, Some(30_000)).unwrap();
    answer(&mut p, "System name", "\r");
    answer(&mut p, "Description", "Shop backend\r");
    answer(&mut p, "Owner", "team-a\r");
    answer(&mut p, "Service 1 name", "gateway\r");
    p.exp_string("is a reserved name").unwrap();
    answer(&mut p, "Service 1 name", "orders\r");
    answer(&mut p, "Protocol of orders", "\r");
    answer(&mut p, "Add another service?", "y");
    answer(&mut p, "Service 2 name", "users\r");
    answer(&mut p, "Protocol of users", "\r");
    answer(&mut p, "Add another service?", "n");
    answer(&mut p, "Messaging broker", "\r");
    answer(&mut p, "Authentication", "\r");
    answer(&mut p, "Mutual TLS between services?", "n");
    answer(&mut p, "Generate the API gateway?", "n");
    answer(&mut p, "CI provider", DOWN);
    answer(&mut p, "gitlab", "\r");
    p.exp_string("Summary").unwrap();
    answer(&mut p, "Generate shop in", "y");
    p.exp_string("Created shop").unwrap();
    p.exp_eof().unwrap();
    assert!(matches!(
        p.process().wait().unwrap(),
        WaitStatus::Exited(_, 0)
    ));

    let status = binary()
        .args(["new", "shop", "--yes", "--no-git", "--output"])
        .arg(&by_flags)
        .args(["--description", "Shop backend", "--owner", "team-a"])
        .args(["--service", "orders:rest", "--service", "users:rest"])
        .args([
            "--messaging",
            "none",
            "--auth",
            "jwt",
            "--mtls=false",
            "--no-gateway",
            "--ci",
            "gitlab",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(answers(&by_wizard), answers(&by_flags));
    assert!(answers(&by_flags).contains("provider = \"gitlab\""));
}

#[test]
fn declining_the_confirmation_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = binary();
    cmd.current_dir(tmp.path())
        .args(["new", "shop", "--no-git", "--service", "orders:rest"]);
    let mut p = spawn_command(cmd, Some(30_000)).unwrap();
    for prompt in ["System name", "Description", "Owner"] {
        answer(&mut p, prompt, "\r");
    }
    answer(&mut p, "Add another service?", "n");
    for prompt in ["Messaging broker", "Authentication"] {
        answer(&mut p, prompt, "\r");
    }
    answer(&mut p, "Mutual TLS between services?", "y");
    answer(&mut p, "Generate the API gateway?", "y");
    answer(&mut p, "CI provider", "\r");
    answer(&mut p, "Generate shop in", "n");
    p.exp_string("nothing was written").unwrap();
    p.exp_eof().unwrap();
    assert!(matches!(
        p.process().wait().unwrap(),
        WaitStatus::Exited(_, 1)
    ));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
