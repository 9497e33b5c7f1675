//! `update` and `add service` through the real binary, on real repositories made by
//! `new` from the fixture blueprint `mini`, then moved to its version 2.1.0
//! (`tests/fixtures/source-v2`): untouched files updated, edited files merged, a true
//! conflict left as a git conflict, deleted files kept deleted, `--check` exit codes,
//! dry runs, and every refusal leaving the repository exactly as it was. The built-in
//! blueprint's `add` is compiled and tested in `generated_projects.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use predicates::prelude::*;

mod binary;
use binary::{fixture_source, fixture_source_v2, git, new_service};

/// `new demo` from the v1 fixture with one service, in a new temporary folder.
fn generated() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    new_service(tmp.path())
        .args(["new", "demo", "--yes", "--service", "alpha", "--blueprints"])
        .arg(fixture_source())
        .assert()
        .success();
    let repo = tmp.path().join("demo");
    (tmp, repo)
}

fn read(repo: &Path, path: &str) -> String {
    std::fs::read_to_string(repo.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn write(repo: &Path, path: &str, text: &str) {
    std::fs::write(repo.join(path), text).unwrap();
}

fn commit_all(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

/// Everything a run could change: refs, index and status, and every file's contents
/// (`.git` internals other than refs and state files aside).
fn state(repo: &Path) -> (String, BTreeMap<String, Vec<u8>>) {
    let mut files = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                if relative != ".git" {
                    walk(root, &path, files);
                }
            } else {
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    walk(repo, repo, &mut files);
    for name in ["MERGE_HEAD", "MERGE_MSG", "index"] {
        if let Ok(bytes) = std::fs::read(repo.join(".git").join(name)) {
            files.insert(format!(".git/{name}"), bytes);
        }
    }
    let refs = git(repo, &["show-ref"]) + &git(repo, &["status", "--porcelain", "--ignored"]);
    (refs, files)
}

/// Runs `update` with `args` in `repo` and returns its exit code and stdout.
fn update(repo: &Path, args: &[&str]) -> (i32, String) {
    let out = new_service(repo).arg("update").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn v2() -> String {
    fixture_source_v2().display().to_string()
}

#[test]
fn update_merges_the_new_blueprint_and_leaves_true_conflicts_to_git() {
    let (_tmp, repo) = generated();
    // Local edits: an appended section in the README (the blueprint changes another
    // line), the same line of compose.yaml that the blueprint changes, a deleted page
    // that the blueprint changes, and a file of the user's own.
    let readme = read(&repo, "README.md") + "\n## Our notes\n\nOn call: team blue.\n";
    write(&repo, "README.md", &readme);
    let compose = read(&repo, "compose.yaml").replace("on-failure", "always");
    write(&repo, "compose.yaml", &compose);
    std::fs::remove_file(repo.join("docs/notes.md")).unwrap();
    write(&repo, "OWN.md", "mine\n");
    commit_all(&repo, "Local edits");
    let head = git(&repo, &["rev-parse", "HEAD"]);

    let source_v1 = fixture_source().display().to_string();
    assert_eq!(
        update(&repo, &["--check", "--blueprints", &source_v1]),
        (
            0,
            "up to date: blueprint mini 2.0.0, new-service 0.1.0\n".into()
        )
    );
    let (code, line) = update(&repo, &["--check", "--blueprints", &v2()]);
    assert_eq!(code, 3, "{line}");
    assert!(
        line.starts_with("update available: blueprint mini 2.0.0 -> 2.1.0")
            && line.contains("7 files differ")
            && line.lines().count() == 1,
        "{line}"
    );
    let (code, json) = update(&repo, &["--check", "--json", "--blueprints", &v2()]);
    assert_eq!(code, 3);
    assert_eq!(json.lines().count(), 1, "one line: {json}");
    let check: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(check["up_to_date"], false);
    assert_eq!(check["recorded"]["blueprint_version"], "2.0.0");
    assert_eq!(check["current"]["blueprint_version"], "2.1.0");
    assert_eq!(check["files_changed"], 7);

    let before = state(&repo);
    let (code, plan) = update(&repo, &["--dry-run", "--blueprints", &v2()]);
    assert_eq!(code, 0, "{plan}");
    for line in [
        "  updated       .new-service/answers.toml",
        "  merged        README.md",
        "  conflict      compose.yaml",
        "  added         docs/new.md",
        "  kept-deleted  docs/notes.md  (deleted here; the blueprint's change is not applied)",
        "  removed       docs/old.md",
        "  updated       system.txt",
        "Three-way merge: 1 added, 2 updated, 1 merged, 1 conflict, 1 removed, 1 kept-deleted, \
         4 unchanged.",
    ] {
        assert!(plan.contains(line), "{line:?} missing from:\n{plan}");
    }
    assert!(
        !plan.contains("after-merge hooks would run"),
        "not with conflicts"
    );
    assert_eq!(state(&repo), before, "a dry run writes nothing");

    let (code, report) = update(&repo, &["--blueprints", &v2()]);
    assert_eq!(code, 1, "conflicts exit 1, as git merge does: {report}");
    assert!(report.contains("1 conflict(s) left for you"), "{report}");
    assert!(
        report.contains("After-merge hooks not run because of the conflicts"),
        "{report}"
    );

    // Untouched files take the new version; edited ones keep both sides.
    assert!(read(&repo, "system.txt").starts_with("# generated by mini\n"));
    let merged = read(&repo, "README.md");
    assert!(merged.contains("`docker compose up --wait`"), "{merged}");
    assert!(
        merged.ends_with("## Our notes\n\nOn call: team blue.\n"),
        "{merged}"
    );
    assert_eq!(read(&repo, "OWN.md"), "mine\n");
    assert!(read(&repo, ".new-service/answers.toml").contains("blueprint_version = \"2.1.0\""));
    assert_eq!(read(&repo, "docs/new.md"), "Added in version 2.1.0.\n");
    assert!(
        !repo.join("docs/old.md").exists(),
        "removed by the blueprint"
    );
    assert!(
        !repo.join("docs/notes.md").exists(),
        "deleted here, stays deleted"
    );
    // The conflict is an ordinary git conflict.
    let conflicted = read(&repo, "compose.yaml");
    assert!(
        conflicted.contains(
            "<<<<<<< HEAD\n    restart: always\n=======\n    restart: unless-stopped\n\
             >>>>>>> blueprint mini 2.1.0\n"
        ),
        "{conflicted}"
    );
    let status = git(&repo, &["status", "--porcelain"]);
    let mut lines: Vec<&str> = status.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "A  docs/new.md",
            "D  docs/old.md",
            "M  .new-service/answers.toml",
            "M  README.md",
            "M  system.txt",
            "UU compose.yaml",
        ]
    );
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD"]),
        head,
        "nothing committed"
    );
    assert!(git(&repo, &["status"]).contains("You have unmerged paths."));
    assert!(read(&repo, ".git/MERGE_MSG").starts_with("Update to blueprint mini 2.1.0"));
    assert!(
        !entries_with_suffix(&repo, ".rej") && !entries_with_suffix(&repo, ".orig"),
        "no reject files"
    );

    // The user resolves it the git way; the merge commit has the render as second parent.
    write(
        &repo,
        "compose.yaml",
        &compose.replace("always", "unless-stopped"),
    );
    git(&repo, &["add", "compose.yaml"]);
    git(&repo, &["commit", "-q", "--no-edit"]);
    let parents = git(&repo, &["rev-list", "--parents", "-n1", "HEAD"]);
    assert_eq!(parents.split_whitespace().count(), 3, "a merge commit");
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD^2"]),
        git(&repo, &["rev-parse", "new-service/pristine"])
    );
    assert_eq!(
        update(&repo, &["--check", "--blueprints", &v2()]),
        (
            0,
            "up to date: blueprint mini 2.1.0, new-service 0.1.0\n".into()
        )
    );
    let (code, again) = update(&repo, &["--blueprints", &v2()]);
    assert_eq!(
        (code, again.trim()),
        (
            0,
            &*format!("{} is up to date: nothing to merge.", repo.display())
        )
    );
}

fn entries_with_suffix(dir: &Path, suffix: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        path.to_string_lossy().ends_with(suffix)
            || (path.is_dir() && !path.ends_with(".git") && entries_with_suffix(&path, suffix))
    })
}

#[test]
fn add_service_from_a_subfolder_is_one_commit_that_keeps_local_edits() {
    let (_tmp, repo) = generated();
    let readme = read(&repo, "README.md").replace("Ask the platform team.", "Ask #demo-help.");
    write(&repo, "README.md", &readme);
    let env = "ALPHA=\"tuned here\"\n";
    write(&repo, "services/alpha/env.toml", env);
    commit_all(&repo, "Local edits");
    let head = git(&repo, &["rev-parse", "HEAD"]);

    new_service(&repo.join("services/alpha"))
        .args([
            "add",
            "service",
            "beta-two",
            "--protocol",
            "rest",
            "--blueprints",
        ])
        .arg(fixture_source())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "  added         services/beta-two/env.toml",
        ))
        .stdout(predicate::str::contains("  merged        README.md"))
        .stdout(predicate::str::contains("Committed "));

    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "clean afterwards"
    );
    assert_eq!(
        git(
            &repo,
            &[
                "rev-list",
                "--count",
                &format!("{}..HEAD", head.trim()),
                "--first-parent"
            ]
        ),
        "1\n",
        "one commit on main"
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s"]),
        "Add service beta-two (rest)\n"
    );
    let readme = read(&repo, "README.md");
    assert!(
        readme.contains("- beta-two (rest)") && readme.contains("Ask #demo-help."),
        "{readme}"
    );
    assert_eq!(read(&repo, "services/alpha/env.toml"), env);
    assert!(read(&repo, "compose.yaml").contains("  beta-two:\n    image: demo/beta-two:latest"));
    assert_eq!(
        read(&repo, "system.txt"),
        "name: demo\n- Alpha\n- BetaTwo\n"
    );
    assert_eq!(
        read(&repo, "STAMP"),
        "stamped demo\n",
        "the hook's file is unchanged"
    );
    let answers = read(&repo, ".new-service/answers.toml");
    assert!(
        answers.contains("name = \"beta-two\"\nprotocol = \"rest\""),
        "{answers}"
    );

    // The protocol defaults to the blueprint's; a second add builds on the first.
    new_service(&repo)
        .args(["add", "service", "gamma", "--json", "--blueprints"])
        .arg(fixture_source())
        .assert()
        .success()
        .stdout(predicate::str::contains("\"state\": \"committed\""));
    assert!(read(&repo, "system.txt").ends_with("- BetaTwo\n- Gamma\n"));
}

#[test]
fn refusals_exit_2_and_change_nothing() {
    let (tmp, repo) = generated();
    let source = fixture_source().display().to_string();
    let refuse = |dir: &Path, args: &[&str], needles: &[&str]| {
        let before = state(&repo);
        let assert = new_service(dir)
            .args(args)
            .args(["--blueprints", &source])
            .assert()
            .code(2);
        let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: {needle:?} missing from:\n{stderr}"
            );
        }
        assert_eq!(state(&repo), before, "{args:?} changed the repository");
    };

    // Outside any generated repository.
    refuse(
        tmp.path(),
        &["update"],
        &["is not inside a repository made by new-service", "-C DIR"],
    );
    refuse(
        tmp.path(),
        &["add", "service", "beta"],
        &["not inside a repository"],
    );
    // Bad service names and duplicates.
    refuse(
        &repo,
        &["add", "service", "Beta_Two"],
        &["services[1].name", "try \"beta-two\""],
    );
    refuse(
        &repo,
        &["add", "service", "alpha"],
        &["\"alpha\" is used more than once"],
    );
    refuse(&repo, &["add", "service", "gateway"], &["reserved"]);
    refuse(
        &repo,
        &["add", "service", "beta", "--protocol", "soap"],
        &["unknown services[1].protocol"],
    );
    // Uncommitted changes, staged or not, and untracked files.
    write(&repo, "README.md", "changed\n");
    refuse(
        &repo,
        &["update"],
        &["has uncommitted changes", "M README.md", "git stash"],
    );
    // --check only compares renders, so it answers on a dirty tree too.
    new_service(&repo)
        .args(["update", "--check", "--blueprints", &source])
        .assert()
        .code(0);
    git(&repo, &["add", "README.md"]);
    refuse(&repo, &["add", "service", "beta"], &["uncommitted changes"]);
    git(&repo, &["reset", "-q", "--hard"]);
    write(&repo, "scratch.txt", "x\n");
    refuse(&repo, &["update"], &["?? scratch.txt"]);
    std::fs::remove_file(repo.join("scratch.txt")).unwrap();
    // A missing or broken answers file.
    write(&repo, ".new-service/answers.toml", "name = [\n");
    commit_all(&repo, "Break the answers");
    refuse(&repo, &["update"], &["cannot use answers file", "line 1"]);
    write(&repo, ".new-service/answers.toml", "name = \"demo\"\n");
    commit_all(&repo, "No generator table");
    refuse(&repo, &["update"], &["no [generator] table"]);
    git(&repo, &["rm", "-q", "-r", ".new-service"]);
    git(&repo, &["commit", "-q", "-m", "No answers"]);
    refuse(
        &repo,
        &["update"],
        &["not inside a repository made by new-service"],
    );
}

#[test]
fn update_refuses_an_older_blueprint_a_folder_without_git_and_a_busy_repository() {
    let (tmp, repo) = generated();
    let v1 = fixture_source().display().to_string();
    new_service(&repo)
        .args(["update", "--blueprints", &v2()])
        .assert()
        .success();
    new_service(&repo)
        .args(["update", "--blueprints", &v1])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "blueprint mini 2.0.0 is older than the recorded 2.1.0",
        ));

    new_service(tmp.path())
        .args(["new", "loose", "--yes", "--no-git", "--blueprints", &v1])
        .assert()
        .success();
    new_service(&tmp.path().join("loose"))
        .args(["update", "--blueprints", &v1])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not the root of a git repository",
        ));

    // A merge left in progress (here by --no-commit) must be finished first.
    new_service(&repo)
        .args([
            "add",
            "service",
            "beta",
            "--no-commit",
            "--blueprints",
            &v2(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("not committed"));
    new_service(&repo)
        .args(["update", "--blueprints", &v2()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("in the middle of a merge"));
}

#[test]
fn an_aborted_update_leaves_the_base_where_it_was() {
    let (_tmp, repo) = generated();
    let compose = read(&repo, "compose.yaml").replace("on-failure", "always");
    write(&repo, "compose.yaml", &compose);
    commit_all(&repo, "Local edit");
    let (code, first) = update(&repo, &["--blueprints", &v2()]);
    assert_eq!(code, 1, "{first}");
    git(&repo, &["merge", "--abort"]);
    assert_eq!(read(&repo, "compose.yaml"), compose);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    // The pristine branch moved on, but HEAD never merged it: the base is still v1.
    let (code, check) = update(&repo, &["--check", "--blueprints", &v2()]);
    assert_eq!(code, 3, "{check}");
    let (code, second) = update(&repo, &["--blueprints", &v2()]);
    assert_eq!((code, &second), (1, &first), "the same merge again");
}

#[test]
fn without_the_pristine_branch_the_base_is_rendered_again_for_the_recorded_versions_only() {
    let (_tmp, repo) = generated();
    git(&repo, &["branch", "-q", "-D", "new-service/pristine"]);
    let v1 = fixture_source().display().to_string();

    // Same versions as recorded: the base is the render of the recorded answers.
    new_service(&repo)
        .args(["add", "service", "beta", "--blueprints", &v1])
        .assert()
        .success();
    assert!(read(&repo, "system.txt").ends_with("- Beta\n"));
    git(&repo, &["branch", "-q", "-D", "new-service/pristine"]);

    // Other versions: --check compares versions; update refuses and says how to fix it.
    let (code, line) = update(&repo, &["--check", "--blueprints", &v2()]);
    assert_eq!(code, 3);
    assert!(
        line.contains("(no pristine branch here: versions compared)"),
        "{line}"
    );
    new_service(&repo)
        .args(["update", "--blueprints", &v2()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "git fetch origin new-service/pristine",
        ));

    // A clone that has the branch only as a remote-tracking one uses it.
    let tmp = tempfile::tempdir().unwrap();
    let (_tmp2, origin) = generated();
    git(
        tmp.path(),
        &["clone", "-q", origin.to_str().unwrap(), "copy"],
    );
    let copy = tmp.path().join("copy");
    assert!(git(&copy, &["branch", "-a"]).contains("remotes/origin/new-service/pristine"));
    new_service(&copy)
        .args(["update", "--blueprints", &v2()])
        .assert()
        .success();
    assert!(read(&copy, "system.txt").starts_with("# generated by mini\n"));
}

#[test]
fn an_untracked_ignored_file_in_the_way_is_never_overwritten() {
    let (_tmp, repo) = generated();
    write(&repo, ".gitignore", "/docs/new.md\n");
    commit_all(&repo, "Ignore a path");
    std::fs::write(repo.join("docs/new.md"), "precious\n").unwrap();
    let before = state(&repo);
    new_service(&repo)
        .args(["update", "--blueprints", &v2()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("docs/new.md would be overwritten"));
    assert_eq!(state(&repo), before);
}

#[test]
fn dry_run_json_lists_every_file_with_its_outcome() {
    let (_tmp, repo) = generated();
    let out = new_service(&repo)
        .args([
            "add",
            "service",
            "beta",
            "--dry-run",
            "--json",
            "--blueprints",
        ])
        .arg(fixture_source_v2())
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["counts"]["added"], 2, "{plan}");
    let outcome = |path: &str| {
        plan["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["outcome"].as_str().unwrap().to_owned())
    };
    assert_eq!(outcome("services/beta/env.toml").as_deref(), Some("added"));
    assert_eq!(outcome("docs/old.md").as_deref(), Some("removed"));
    assert_eq!(outcome("logo.bin").as_deref(), Some("unchanged"));
    assert_eq!(plan["answers"]["services"][1]["name"], "beta");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_local_pristine_branch_behind_a_pulled_update_does_not_move_the_base_back() {
    let (_tmp, origin) = generated();
    let v1 = fixture_source().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    git(
        tmp.path(),
        &["clone", "-q", origin.to_str().unwrap(), "mine"],
    );
    let mine = tmp.path().join("mine");
    git(
        &mine,
        &[
            "branch",
            "-q",
            "new-service/pristine",
            "origin/new-service/pristine",
        ],
    );
    // A teammate adds a service in the origin; here, `git pull` takes main only.
    new_service(&origin)
        .args(["add", "service", "beta", "--blueprints", &v1])
        .assert()
        .success();
    git(&mine, &["pull", "-q", "--ff-only"]);
    assert_ne!(
        git(&mine, &["rev-parse", "new-service/pristine"]),
        git(&mine, &["rev-parse", "origin/new-service/pristine"]),
        "the local branch is behind"
    );
    assert_eq!(update(&mine, &["--check", "--blueprints", &v1]).0, 0);
    new_service(&mine)
        .args(["add", "service", "gamma", "--blueprints", &v1])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "  added         services/gamma/env.toml",
        ))
        .stdout(predicate::str::contains("services/beta").not());
    assert_eq!(
        read(&mine, "system.txt"),
        "name: demo\n- Alpha\n- Beta\n- Gamma\n"
    );
    assert_eq!(
        git(&mine, &["rev-parse", "new-service/pristine^"]),
        git(&mine, &["rev-parse", "origin/new-service/pristine"]),
        "the new render follows the newest one"
    );
}

#[test]
fn an_interrupted_add_exits_130_and_leaves_the_repository_and_no_scratch_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture_source().display().to_string();
    // The fixture's `slow` hook (before-commit, 30 s) applies when the owner is "slow";
    // `new` skips it, `add` runs it on the new render in a scratch folder.
    new_service(tmp.path())
        .args(["new", "demo", "--yes", "--owner", "slow", "--no-hooks"])
        .args(["--blueprints", &source])
        .assert()
        .success();
    let repo = tmp.path().join("demo");
    let before = state(&repo);
    let scratch_root = tmp.path().join("tmp");
    std::fs::create_dir(&scratch_root).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_new-service"))
        .args(["add", "service", "beta", "--blueprints", &source])
        .current_dir(&repo)
        .env("TMPDIR", &scratch_root)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let hook_running = || {
        std::fs::read_dir(&scratch_root)
            .unwrap()
            .any(|e| e.unwrap().path().join("SLOW-STARTED").exists())
    };
    while !hook_running() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "hook never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(state(&repo), before);
    assert_eq!(
        std::fs::read_dir(&scratch_root).unwrap().count(),
        0,
        "the scratch render is removed"
    );
}

#[test]
fn help_names_every_flag_and_the_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("update_help", &["update", "--help"][..]),
        ("add_service_help", &["add", "service", "--help"][..]),
    ] {
        let help = new_service(tmp.path()).args(args).output().unwrap();
        assert!(help.status.success());
        insta::assert_snapshot!(name, String::from_utf8_lossy(&help.stdout));
    }
}

#[test]
fn after_merge_hooks_changes_are_committed_with_the_merge_or_undone_with_it() {
    let (_tmp, repo) = generated();
    let source = fixture_source().display().to_string();
    // The fixture's after-merge hook keeps LOCK, when there is one, in line with the
    // services, as the built-in blueprint's keeps a committed Cargo.lock.
    write(&repo, "LOCK", "alpha\n");
    commit_all(&repo, "Lock");
    new_service(&repo)
        .args([
            "add",
            "service",
            "beta",
            "--dry-run",
            "--blueprints",
            &source,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Then the after-merge hooks would run, and what they change be committed with \
             the merge: lock.",
        ));
    new_service(&repo)
        .args(["add", "service", "beta", "--blueprints", &source])
        .assert()
        .success()
        .stdout(predicate::str::contains("  hook          LOCK\n"))
        .stdout(predicate::str::contains("After-merge hooks: lock."));
    assert_eq!(read(&repo, "LOCK"), "alpha\nbeta\n");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let merged = git(&repo, &["diff", "--name-only", "HEAD^1", "HEAD"]);
    assert!(merged.lines().any(|l| l == "LOCK"), "{merged}");

    // A hook that fails (here after rewriting LOCK) undoes the whole add.
    let before = state(&repo);
    new_service(&repo)
        .args(["add", "service", "explode", "--blueprints", &source])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "hook lock failed: lock: cannot lock explode",
        ));
    assert_eq!(state(&repo), before);

    // --no-hooks leaves LOCK alone; the before-commit hook still runs on the render, so
    // its file (STAMP) is not taken for one the blueprint removed.
    new_service(&repo)
        .args([
            "add",
            "service",
            "gamma",
            "--no-hooks",
            "--blueprints",
            &source,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("hook").not());
    assert_eq!(read(&repo, "LOCK"), "alpha\nbeta\n");
    assert_eq!(read(&repo, "STAMP"), "stamped demo\n");
}
