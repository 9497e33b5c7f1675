//! The command line through the real binary: bad input (exit 2, field, value and rule
//! named, nothing written), the happy paths, the repository it makes, hooks, dry runs and
//! the JSON summary. Generated code is compiled by `generated_projects.rs`, not here.

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::Duration;

use predicates::prelude::*;

mod binary;
use binary::{fixture_source, git, new_service};

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `new` with `args` in an empty folder, expects exit 2 with every `needles` on
/// stderr, and checks that nothing was written.
fn rejects(args: &[&str], needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let assert = new_service(tmp.path())
        .arg("new")
        .args(args)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in:\n{stderr}"
        );
    }
    assert!(
        entries(tmp.path()).is_empty(),
        "{args:?} wrote {:?}",
        entries(tmp.path())
    );
}

#[test]
fn bad_system_names_exit_2_naming_field_value_and_rule() {
    let long = "a".repeat(41);
    let cases: [(&str, &str); 10] = [
        ("Demo", "contains uppercase letters"),
        ("1demo", "starts with a digit"),
        ("my_demo", "contains '_'"),
        ("a/b", "contains characters other than"),
        ("..", "contains characters other than"),
        ("my demo", "contains characters other than"),
        ("", "is empty"),
        (&long, "is longer than 40 characters"),
        ("démo", "contains non-ASCII characters"),
        ("demo-", "ends with '-'"),
    ];
    for (name, reason) in cases {
        rejects(
            &[name, "--yes"],
            &["field: name", &format!("value: {name:?}"), reason, "rule:"],
        );
    }
}

#[test]
fn bad_service_names_exit_2() {
    rejects(
        &["demo", "--yes", "--service", "Orders:rest"],
        &[
            "services[0].name",
            "\"Orders\"",
            "uppercase",
            "try \"orders\"",
        ],
    );
    rejects(
        &[
            "demo",
            "--yes",
            "--service",
            "ab:rest",
            "--service",
            "my_svc:rest",
        ],
        &["services[1].name", "'_'"],
    );
}

#[test]
fn reserved_service_names_exit_2() {
    for name in [
        "gateway",
        "platform",
        "std",
        "core",
        "test",
        "self",
        "proc-macro",
    ] {
        rejects(
            &["demo", "--yes", "--service", &format!("{name}:rest")],
            &["services[0].name", "reserved", name],
        );
    }
}

#[test]
fn duplicate_service_names_exit_2() {
    rejects(
        &[
            "demo",
            "--yes",
            "--service",
            "orders:rest",
            "--service",
            "orders:rest",
        ],
        &["services[1].name", "\"orders\"", "more than once", "unique"],
    );
    rejects(
        &[
            "demo",
            "--yes",
            "--service",
            "order-items:rest",
            "--service",
            "order--items:rest",
        ],
        &["services[1].name", "\"order--items\"", "a-b and a--b clash"],
    );
}

#[test]
fn unknown_choices_list_the_valid_ones() {
    rejects(
        &["demo", "--yes", "--service", "orders:soap"],
        &[
            "services[0].protocol",
            "\"soap\"",
            "rest",
            "graphql",
            "grpc",
            "websocket",
            "sse",
        ],
    );
    rejects(
        &["demo", "--yes", "--messaging", "kafak"],
        &[
            "messaging.broker",
            "\"kafak\"",
            "did you mean \"kafka\"",
            "none, kafka, rabbitmq, nats, redis",
        ],
    );
    rejects(
        &["demo", "--yes", "--auth", "saml"],
        &["auth.scheme", "\"saml\"", "jwt", "oidc", "api-key"],
    );
    rejects(
        &["demo", "--yes", "--ci", "jenkins"],
        &["ci.provider", "\"jenkins\"", "github, gitlab, none"],
    );
    rejects(
        &["demo", "--yes", "--service", "orders:rest:v2"],
        &["--service", "NAME:PROTOCOL"],
    );
}

#[test]
fn planned_choices_say_they_are_not_available_yet() {
    let fixture = fixture_source();
    rejects(
        &[
            "demo",
            "--yes",
            "--blueprints",
            fixture.to_str().unwrap(),
            "--service",
            "orders:grpc",
        ],
        &[
            "services[0].protocol",
            "not available yet",
            "blueprint mini 2.0.0",
            "rest",
        ],
    );
}

#[test]
fn answers_file_errors_give_line_and_column_or_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken.toml");
    std::fs::write(&broken, "name = \"demo\"\n[auth]\nscheme = none\n").unwrap();
    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "name = \"demo\"\n[gateway]\nenabled = true\nreplicas = 3\n",
    )
    .unwrap();
    for (file, needles) in [
        (&broken, vec!["broken.toml", "line 3, column"]),
        (&unknown, vec!["unknown.toml", "replicas", "line 4"]),
    ] {
        let out = tempfile::tempdir().unwrap();
        let assert = new_service(out.path())
            .args(["new", "--yes", "--answers", file.to_str().unwrap()])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        for needle in needles {
            assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
        }
        assert!(entries(out.path()).is_empty());
    }
}

#[test]
fn a_non_empty_target_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("demo")).unwrap();
    std::fs::write(tmp.path().join("demo/mine.txt"), "keep me").unwrap();
    new_service(tmp.path())
        .args(["new", "demo", "--yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an empty folder"));
    assert_eq!(entries(&tmp.path().join("demo")), ["mine.txt"]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("demo/mine.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(
        entries(tmp.path()),
        ["demo"],
        "no staging folder left behind"
    );
}

#[test]
fn without_a_terminal_missing_answers_are_listed_not_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let assert = new_service(tmp.path())
        .args(["new", "demo", "--service", "orders:rest"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for key in [
        "messaging.broker (--messaging)",
        "auth.scheme (--auth)",
        "auth.mtls (--mtls)",
        "gateway.enabled",
        "ci.provider (--ci)",
        "description",
        "--yes",
    ] {
        assert!(stderr.contains(key), "{key:?} not in:\n{stderr}");
    }
    assert!(
        !stderr.contains("services ("),
        "services were given:\n{stderr}"
    );
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn new_with_yes_makes_one_clean_commit_on_main() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args(["new", "demo", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Created demo"));
    let repo = tmp.path().join("demo");
    assert_eq!(
        entries(tmp.path()),
        ["demo"],
        "no staging folder left behind"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["branch", "--show-current"]).trim(), "main");
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "1");
    let log = git(&repo, &["log", "-1", "--format=%an <%ae>%n%B"]);
    assert!(log.starts_with("Test Author <author@example.com>"), "{log}");
    assert!(
        log.contains("new-service 0.1.0") && log.contains("Blueprint rust-system"),
        "{log}"
    );
    let tracked = git(&repo, &["ls-files"]);
    assert!(
        tracked.lines().any(|l| l == ".new-service/answers.toml"),
        "{tracked}"
    );
    assert!(tracked.lines().any(|l| l == "Cargo.toml"), "{tracked}");
    let hook = repo.join(".git/hooks/pre-commit");
    assert!(
        std::fs::read_to_string(&hook)
            .unwrap()
            .contains("cargo fmt --all -- --check")
    );
}

#[test]
fn the_recorded_answers_drive_a_second_identical_system() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args([
            "new",
            "first",
            "--yes",
            "--no-git",
            "--service",
            "orders:rest",
            "--service",
            "users:rest",
            "--ci",
            "gitlab",
            "--owner",
            "team-a",
        ])
        .assert()
        .success();
    new_service(tmp.path())
        .args([
            "new",
            "second",
            "--no-git",
            "--answers",
            "first/.new-service/answers.toml",
        ])
        .assert()
        .success();
    let first =
        std::fs::read_to_string(tmp.path().join("first/.new-service/answers.toml")).unwrap();
    let second =
        std::fs::read_to_string(tmp.path().join("second/.new-service/answers.toml")).unwrap();
    assert!(
        first.contains("name = \"orders\"") && first.contains("provider = \"gitlab\""),
        "{first}"
    );
    // The NAME argument overrides the file's name; everything else, the description
    // made from the first name included, is the same.
    assert_eq!(
        first.replace("name = \"first\"", "name = \"second\""),
        second
    );
}

#[test]
fn dry_run_lists_files_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args([
            "new",
            "demo",
            "--yes",
            "--dry-run",
            "--service",
            "orders:rest",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("create  Cargo.toml"))
        .stdout(predicate::str::contains(
            "create  services/orders/Cargo.toml",
        ))
        .stdout(predicate::str::contains("Nothing was written"));
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn json_summary_describes_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let out = new_service(tmp.path())
        .args(["new", "demo", "--yes", "--json", "--service", "orders:rest"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["path"].as_str().unwrap().ends_with("/demo"));
    assert_eq!(
        summary["commit"].as_str().unwrap(),
        git(&tmp.path().join("demo"), &["rev-parse", "HEAD"]).trim()
    );
    assert!(
        summary["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "gateway/Cargo.toml")
    );
    assert_eq!(summary["answers"]["services"][0]["name"], "orders");
    assert_eq!(summary["blueprint"]["name"], "rust-system");

    let err = new_service(tmp.path())
        .args(["new", "Bad", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&err.stdout).unwrap();
    assert_eq!(error["error"]["field"], "name");
    assert_eq!(error["error"]["value"], "Bad");
    assert_eq!(error["error"]["exit_code"], 2);
}

#[test]
fn no_git_writes_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args(["new", "demo", "--yes", "--no-git", "--output", "out/here"])
        .assert()
        .success();
    let repo = tmp.path().join("out/here");
    assert!(repo.join("Cargo.toml").exists());
    assert!(!repo.join(".git").exists());
}

#[test]
fn fixture_source_keeps_bytes_modes_and_runs_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture_source();
    new_service(tmp.path())
        .args([
            "new",
            "demo",
            "--yes",
            "--blueprints",
            source.to_str().unwrap(),
            "--service",
            "alpha",
            "--service",
            "beta-two:rest",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("hooks: stamp"));
    let repo = tmp.path().join("demo");
    let original = std::fs::read(source.join("blueprints/mini/template/logo.bin")).unwrap();
    assert_eq!(
        std::fs::read(repo.join("logo.bin")).unwrap(),
        original,
        "binary copied byte for byte"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("system.txt")).unwrap(),
        "name: demo\n- Alpha\n- BetaTwo\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("STAMP")).unwrap(),
        "stamped demo\n",
        "before-commit hook ran"
    );
    let tracked = git(&repo, &["ls-files", "-s", "bin/check", "STAMP"]);
    assert!(
        tracked.contains("100755") && tracked.contains("bin/check"),
        "{tracked}"
    );
    assert!(
        tracked.contains("STAMP"),
        "the hook's file is committed: {tracked}"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_failing_hook_fails_the_run_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture_source();
    new_service(tmp.path())
        .args([
            "new",
            "demo",
            "--yes",
            "--owner",
            "explode",
            "--blueprints",
            source.to_str().unwrap(),
        ])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("hook explode failed").and(predicate::str::contains("boom")),
        );
    assert!(
        entries(tmp.path()).is_empty(),
        "left {:?}",
        entries(tmp.path())
    );
    new_service(tmp.path())
        .args([
            "new",
            "demo",
            "--yes",
            "--no-hooks",
            "--owner",
            "explode",
            "--blueprints",
            source.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert!(
        !tmp.path().join("demo/STAMP").exists(),
        "--no-hooks skips every hook"
    );
}

#[test]
fn a_blueprint_source_that_is_not_one_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args(["new", "demo", "--yes", "--blueprints", "nowhere"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a blueprint source"));
    new_service(tmp.path())
        .args(["new", "demo", "--yes", "--blueprint", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("rust-system"));
}

#[test]
fn blueprints_list_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args(["blueprints", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("rust-system 0.1.0 (default)"));
    new_service(tmp.path())
        .args(["blueprints", "show", "rust-system"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("services[].protocol")
                .and(predicate::str::contains("kafka      Kafka"))
                .and(predicate::str::contains("planned").not()),
        );
}

#[test]
fn help_and_error_rendering_are_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let help = new_service(tmp.path())
        .args(["new", "--help"])
        .output()
        .unwrap();
    insta::assert_snapshot!("new_help", String::from_utf8_lossy(&help.stdout));
    let err = new_service(tmp.path())
        .args(["new", "demo", "--yes", "--service", "Orders_API:rest"])
        .output()
        .unwrap();
    insta::assert_snapshot!("invalid_service_name", String::from_utf8_lossy(&err.stderr));
}

#[test]
fn an_interrupted_run_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_new-service"))
        .args(["new", "demo", "--yes", "--owner", "slow", "--blueprints"])
        .arg(fixture_source())
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the slow hook runs inside the staging folder, then interrupt.
    let started = std::time::Instant::now();
    let staging_started = || {
        entries(tmp.path())
            .iter()
            .any(|e| tmp.path().join(e).join("SLOW-STARTED").exists())
    };
    while !staging_started() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hook never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        entries(tmp.path()).is_empty(),
        "left {:?}",
        entries(tmp.path())
    );
}

#[test]
fn the_installed_pre_commit_hook_refuses_unformatted_rust() {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args(["new", "demo", "--yes"])
        .assert()
        .success();
    let repo = tmp.path().join("demo");
    let lib = repo.join("services/catalog/src/lib.rs");
    let mut source = std::fs::read_to_string(&lib).unwrap();
    source.push_str("fn  badly_formatted( ) {}\n");
    std::fs::write(&lib, source).unwrap();
    git(&repo, &["add", "-A"]);
    let commit = StdCommand::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "unformatted",
        ])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(
        !commit.status.success(),
        "the hook let an unformatted commit through"
    );
    assert!(String::from_utf8_lossy(&commit.stderr).contains("cargo fmt --all"));
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "1");
}
