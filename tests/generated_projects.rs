//! The generated-project matrix: systems generated through the real binary, then held
//! to what a reviewer would demand of hand-written code. Each cell checks file hygiene
//! (no trailing spaces, no blank-line debris, no template leftovers, every YAML, TOML and
//! JSON file parses) and then runs, in the generated workspace, `cargo fmt --check`,
//! `cargo clippy --all-targets -D warnings` and `cargo test`. All cells share one
//! target directory, so dependencies compile once for the whole matrix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde::Deserialize;

mod binary;
use binary::git;

/// One cell at a time, from generation to the last cargo command. The cells share a
/// target directory in which same-named crates of different systems share artifacts;
/// cargo tells them apart by source mtimes, so a cell's files must be written after the
/// previous cell's build finished.
static CELL: Mutex<()> = Mutex::new(());

/// Free text with everything that breaks naive escaping.
const NASTY_DESCRIPTION: &str =
    "He said \"hi\" \\ {{ name }} {% if x %} # not a comment: yes\nsecond line 'quoted' \\n";
const NASTY_OWNER: &str = "O'Brien \"Ops\" \\ team: #1 {{ owner }}";

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("../generated-target")
}

/// Takes the cell lock, generates a system with the real binary and returns its folder
/// with the lock, held until the cell is done.
fn generate(cell: &str, args: &[&str]) -> (PathBuf, std::sync::MutexGuard<'static, ()>) {
    let guard = CELL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("matrix");
    std::fs::create_dir_all(&root).unwrap();
    let target = root.join(cell);
    if target.exists() {
        std::fs::remove_dir_all(&target).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_new-service"))
        .args(["new", "demo", "--yes", "--no-git", "--output"])
        .arg(&target)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cell}: new failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (target, guard)
}

fn text_files(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n == "target" || n == ".git")
                {
                    continue;
                }
                walk(root, &path, out);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Layout and syntax checks on every text file of a generated system. Template leftovers
/// are looked for only when the free text holds no liquid-looking text of its own.
fn check_hygiene(root: &Path, leftovers: bool) {
    let mut problems = Vec::new();
    for (path, text) in text_files(root) {
        let mut previous_blank = false;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line != line.trim_end() {
                problems.push(format!("{path}:{n}: trailing whitespace"));
            }
            let blank = line.trim().is_empty();
            if blank && (previous_blank || n == 1) {
                problems.push(format!("{path}:{n}: blank-line debris"));
            }
            previous_blank = blank;
        }
        if !text.is_empty() && (!text.ends_with('\n') || text.ends_with("\n\n")) {
            problems.push(format!("{path}: must end with exactly one newline"));
        }
        // GitHub Actions expressions and Go templates (kubeconform's schema locations in
        // the CI files) are not liquid.
        let scrubbed = text.replace("${{", "").replace("{{.", "");
        if leftovers
            && (scrubbed.contains("{{") || scrubbed.contains("{%") || scrubbed.contains("%}"))
        {
            problems.push(format!("{path}: liquid left in the output"));
        }
        let syntax = if path.ends_with(".toml") || path.ends_with("Cargo.lock") {
            text.parse::<toml::Table>().err().map(|e| e.to_string())
        } else if path.ends_with(".yaml") || path.ends_with(".yml") {
            // Kubernetes manifests hold several documents.
            serde_yaml::Deserializer::from_str(&text)
                .map(serde_yaml::Value::deserialize)
                .find_map(Result::err)
                .map(|e| e.to_string())
        } else if path.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .err()
                .map(|e| e.to_string())
        } else {
            None
        };
        if let Some(error) = syntax {
            problems.push(format!("{path}: does not parse: {error}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        root.display(),
        problems.join("\n")
    );
}

/// `cargo <args>` in the generated workspace, with the shared target directory and none
/// of the outer cargo's variables (its toolchain override included).
fn cargo(root: &Path, args: &[&str]) {
    let out = cargo_command(root, args).output().unwrap();
    assert!(
        out.status.success(),
        "{}: cargo {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        root.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command of [`cargo`], to run without asserting success.
fn cargo_command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(root);
    without_outer_cargo(&mut cmd);
    cmd.env("CARGO_TARGET_DIR", shared_target())
        // The matrix only builds and tests: incremental state and full debug info would
        // multiply the shared target directory's size for nothing.
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");
    cmd
}

/// Removes the outer cargo's variables (its toolchain override included) from `cmd`.
fn without_outer_cargo(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key == "RUSTUP_TOOLCHAIN"
            || key == "CARGO"
        {
            cmd.env_remove(key);
        }
    }
}

fn build_and_test(root: &Path) {
    cargo(root, &["fmt", "--all", "--", "--check"]);
    cargo(root, &["clippy", "--all-targets", "--", "-D", "warnings"]);
    cargo(root, &["test"]);
}

#[test]
fn one_rest_service_with_gateway() {
    let (root, _cell) = generate("one-gw", &["--service", "catalog:rest", "--ci", "github"]);
    assert!(
        root.join("gateway/tests").is_dir(),
        "the gateway has its end-to-end test"
    );
    assert!(root.join(".github/workflows/ci.yml").is_file());
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn three_rest_services_with_gateway_and_hostile_free_text() {
    let (root, _cell) = generate(
        "three-gw",
        &[
            "--service",
            "catalog:rest",
            "--service",
            "order-items:rest",
            "--service",
            "users:rest",
            "--ci",
            "gitlab",
            // The other cells with a gateway take the default, jwt, except the SSE
            // cell (api-key); this one keeps auth.scheme = "none" covered.
            "--auth",
            "none",
            "--description",
            NASTY_DESCRIPTION,
            "--owner",
            NASTY_OWNER,
        ],
    );
    assert!(root.join(".gitlab-ci.yml").is_file());
    assert!(!root.join(".github").exists());
    assert!(!root.join("gateway/tests/auth_jwt.rs").exists());
    check_hygiene(&root, false);
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        manifest["workspace"]["package"]["description"].as_str(),
        Some(NASTY_DESCRIPTION)
    );
    build_and_test(&root);
}

#[test]
fn three_rest_services_without_gateway_and_redis_events() {
    let (root, _cell) = generate(
        "three-no-gw",
        &[
            "--service",
            "catalog:rest",
            "--service",
            "orders:rest",
            "--service",
            "users:rest",
            "--no-gateway",
            "--ci",
            "none",
            // Each service publishes its items' events and consumes the other two's,
            // through the Redis at REDIS_URL (default 127.0.0.1:6379).
            "--messaging",
            "redis",
        ],
    );
    assert!(!root.join("gateway").exists());
    assert!(root.join("crates/platform/tests/messaging.rs").is_file());
    assert!(root.join("docs/events.md").is_file());
    assert!(!root.join(".github").exists() && !root.join(".gitlab-ci.yml").exists());
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn one_rest_service_without_gateway() {
    let (root, _cell) = generate(
        "one-no-gw",
        &["--service", "inventory:rest", "--no-gateway"],
    );
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn one_websocket_service_without_gateway() {
    let (root, _cell) = generate(
        "ws-no-gw",
        &[
            "--service",
            "chat:websocket",
            "--no-gateway",
            "--ci",
            "none",
        ],
    );
    assert!(root.join("services/chat/tests/websocket.rs").is_file());
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn one_sse_service_with_gateway_and_api_keys() {
    let (root, _cell) = generate(
        "sse-gw-api-key",
        &["--service", "feed:sse", "--auth", "api-key"],
    );
    assert!(root.join("services/feed/src/event_log.rs").is_file());
    assert!(root.join("gateway/tests/auth_api_key.rs").is_file());
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn rest_websocket_and_sse_services_with_gateway_and_rabbitmq_events() {
    let (root, _cell) = generate(
        "mixed-gw",
        &[
            "--service",
            "catalog:rest",
            "--service",
            "live-notifications-for-every-customer-1:websocket",
            "--service",
            "ab:sse",
            "--ci",
            "gitlab",
            // REST publishes; WebSocket and SSE consume through the RabbitMQ at AMQP_URL
            // (default amqp://guest:guest@127.0.0.1:5672/%2f).
            "--messaging",
            "rabbitmq",
        ],
    );
    let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).unwrap();
    assert!(compose.contains("AMQP_URL: amqp://"), "{compose}");
    assert!(root.join("deploy/k8s/overlays/dev/rabbitmq.yaml").is_file());
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for needle in [
        "(REST, `/v1/items`)",
        "(WebSocket, `/v1/ws`)",
        "`/v1/events`)",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn one_graphql_service_with_gateway_and_oidc() {
    let (root, _cell) = generate(
        "graphql-gw-oidc",
        &[
            "--service",
            "product-reviews-and-ratings-for-buyers-1:graphql",
            "--auth",
            "oidc",
        ],
    );
    assert!(
        root.join("schema/product-reviews-and-ratings-for-buyers-1.graphql")
            .is_file()
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("(GraphQL, `/graphql`)"), "{readme}");
    assert!(root.join("gateway/tests/auth_oidc.rs").is_file());
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn two_grpc_services_with_gateway_and_nats_events() {
    let (root, _cell) = generate(
        "grpc-gw",
        &[
            "--service",
            "ledger:grpc",
            "--service",
            "ledger-entries-for-every-customer-acct-1:grpc",
            "--ci",
            "none",
            // Each publishes its writes and consumes the other's, through NATS JetStream
            // at NATS_URL (default nats://127.0.0.1:4222).
            "--messaging",
            "nats",
        ],
    );
    assert!(root.join("deploy/k8s/overlays/dev/nats.yaml").is_file());
    for proto in [
        "proto/ledger/v1/service.proto",
        "proto/ledger_entries_for_every_customer_acct_1/v1/service.proto",
    ] {
        assert!(root.join(proto).is_file(), "{proto}");
    }
    let buf = std::fs::read_to_string(root.join("buf.yaml")).unwrap();
    assert!(buf.contains("- path: proto"), "{buf}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("(gRPC, `ledger.v1.ItemService`)"),
        "README lacks the gRPC service"
    );
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn all_five_protocols_behind_the_gateway_with_redis_events() {
    let (root, _cell) = generate(
        "all-five",
        &[
            "--service",
            "catalog:rest",
            "--service",
            "chat:websocket",
            "--service",
            "feed:sse",
            "--service",
            "reviews:graphql",
            "--service",
            "ledger:grpc",
            // REST, GraphQL and gRPC publish; every service consumes the others' events,
            // WebSocket and SSE forward them to their clients.
            "--messaging",
            "redis",
        ],
    );
    for path in [
        "openapi/catalog.yaml",
        "schema/reviews.graphql",
        "proto/ledger/v1/service.proto",
        "buf.yaml",
    ] {
        assert!(root.join(path).is_file(), "{path}");
    }
    check_hygiene(&root, true);
    build_and_test(&root);
}

#[test]
fn mutual_tls_between_the_gateway_and_rest_grpc_and_websocket_services_with_kafka_events() {
    let (root, _cell) = generate(
        "mtls-gw",
        &[
            "--service",
            "catalog:rest",
            "--service",
            "ledger:grpc",
            "--service",
            "chat:websocket",
            "--mtls",
            // REST and gRPC publish, every service consumes, through the Kafka at
            // KAFKA_BROKERS (default 127.0.0.1:9092; tansu in this repository's CI).
            "--messaging",
            "kafka",
        ],
    );
    assert!(root.join("deploy/k8s/overlays/dev/kafka.yaml").is_file());
    for path in [
        "tools/dev-certs/src/main.rs",
        "crates/platform/src/tls.rs",
        "crates/platform/tests/mtls.rs",
    ] {
        assert!(root.join(path).is_file(), "{path}");
    }
    let gitignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(gitignore.contains("/certs/"), "{gitignore}");
    check_hygiene(&root, true);
    build_and_test(&root);
    // The development CA tool writes the CA and a certificate and key per binary, keys
    // readable by their owner only, and keeps an existing CA without --force.
    cargo(&root, &["run", "-q", "-p", "dev-certs"]);
    for file in ["ca.pem", "ca-key.pem", "gateway.pem", "ledger-key.pem"] {
        assert!(root.join("certs").join(file).is_file(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("certs/gateway-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = cargo_command(&root, &["run", "-q", "-p", "dev-certs"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "dev-certs replaced an existing CA");
}

#[test]
fn mutual_tls_without_gateway() {
    let (root, _cell) = generate(
        "mtls-no-gw",
        &["--service", "inventory:rest", "--no-gateway", "--mtls"],
    );
    check_hygiene(&root, true);
    build_and_test(&root);
}

/// Replaces the one occurrence of `from` in the file at `path`.
fn edit(root: &Path, path: &str, from: &str, to: &str) {
    let text = std::fs::read_to_string(root.join(path)).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{path}: {from:?}");
    std::fs::write(root.join(path), text.replacen(from, to, 1)).unwrap();
}

/// `add service` on a repository with local edits: a system with one REST service and
/// Redis events, edited in a service, the README and compose and committed, gets a gRPC
/// service. The edits must survive, the new service must be wired into every layer
/// that lists services (the REST service now consumes its events), and the result must
/// build and pass its tests with no further edit.
#[test]
fn a_grpc_service_added_to_an_edited_rest_system_with_redis_events() {
    let _cell = CELL.lock().unwrap_or_else(|e| e.into_inner());
    let matrix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("matrix");
    std::fs::create_dir_all(&matrix).unwrap();
    let root = matrix.join("add-grpc");
    if root.exists() {
        std::fs::remove_dir_all(&root).unwrap();
    }
    // The tool runs the blueprint's after-merge hook, `cargo update --workspace`, which
    // must see the generated workspace's toolchain, not this test's.
    let tool = |dir: &Path, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_new-service"));
        without_outer_cargo(&mut cmd);
        let out = cmd.args(args).current_dir(dir).output().unwrap();
        assert!(
            out.status.success(),
            "new-service {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    tool(
        &matrix,
        &[
            "new",
            "demo",
            "--yes",
            "--output",
            "add-grpc",
            "--service",
            "catalog:rest",
            "--messaging",
            "redis",
            "--ci",
            "github",
        ],
    );

    // Local edits, committed: in the service's code (and a test of the user's own), in
    // the README and in compose; and the Cargo.lock, as the Dockerfiles advise.
    cargo(&root, &["generate-lockfile"]);
    edit(
        &root,
        "services/catalog/src/main.rs",
        "const DEFAULT_PORT: u16 = 8081;",
        "/// Where the catalog listens when `PORT` is not set; the team's port plan.\n\
         const DEFAULT_PORT: u16 = 8081;",
    );
    std::fs::write(
        root.join("services/catalog/tests/local.rs"),
        "//! A test the team added.\n\n#[test]\nfn the_team_test_runs() {\n    \
         assert_eq!(catalog::NAME, \"catalog\");\n}\n",
    )
    .unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap()
        + "\n## Team notes\n\nOn call: the catalog team.\n";
    std::fs::write(root.join("README.md"), readme).unwrap();
    edit(
        &root,
        "deploy/compose.yaml",
        "      OTEL_SERVICE_NAME: catalog\n",
        "      OTEL_SERVICE_NAME: catalog\n      CATALOG_PAGE_SIZE: \"25\"\n",
    );
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "Team edits"]);

    let report = tool(
        &root.join("services"),
        &["add", "service", "orders", "--protocol", "grpc"],
    );
    for line in [
        "  merged        README.md",
        "  merged        deploy/compose.yaml",
        "  merged        services/catalog/src/main.rs",
        "  added         services/orders/Cargo.toml",
        "  added         proto/orders/v1/service.proto",
        "  added         docs/runbooks/orders.md",
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
    assert!(!report.contains("conflict"), "{report}");
    assert!(report.contains("  hook          Cargo.lock\n"), "{report}");
    assert_eq!(git(&root, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&root, &["log", "--first-parent", "--format=%s"]),
        "Add service orders (grpc)\nTeam edits\nGenerate demo with new-service 0.1.0\n",
        "one commit on main"
    );

    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    // The edits survived.
    assert!(read("services/catalog/src/main.rs").contains("the team's port plan"));
    assert!(root.join("services/catalog/tests/local.rs").is_file());
    assert!(read("README.md").ends_with("On call: the catalog team.\n"));
    assert!(read("deploy/compose.yaml").contains("CATALOG_PAGE_SIZE: \"25\""));
    // The service is wired into every layer that lists services.
    let members: toml::Table = read("Cargo.toml").parse().unwrap();
    let members = members["workspace"]["members"].as_array().unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.as_str() == Some("services/orders"))
    );
    assert!(read("gateway/src/lib.rs").contains("name: \"orders\""));
    assert!(read("gateway/tests/end_to_end.rs").contains("orders"));
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("deploy/compose.yaml")).unwrap();
    assert!(compose["services"]["orders"]["build"].is_mapping());
    assert_eq!(
        compose["services"]["gateway"]["environment"]["ORDERS_URL"].as_str(),
        Some("http://orders:8082")
    );
    for manifest in [
        "deployments",
        "services",
        "networkpolicies",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
        "configmaps",
        "routes",
    ] {
        let text = read(&format!("deploy/k8s/base/{manifest}.yaml"));
        assert!(
            text.contains("app.kubernetes.io/name: orders"),
            "{manifest} lacks orders"
        );
    }
    for overlay in ["dev", "prod"] {
        let text = read(&format!("deploy/k8s/overlays/{overlay}/kustomization.yaml"));
        assert!(text.contains("orders"), "{overlay} overlay lacks orders");
    }
    assert!(read(".github/workflows/ci.yml").contains("dockerfile: services/orders/Dockerfile"));
    assert!(read("docs/architecture.md").contains("orders"));
    assert!(root.join("proto/orders/v1/service.proto").is_file());
    assert!(root.join("buf.yaml").is_file());
    assert!(read("docs/runbooks/orders.md").contains("`orders`"));
    assert!(
        read("services/catalog/src/main.rs").contains("let publishers = [\"orders\"];"),
        "the REST service consumes the new service's events"
    );
    assert!(read("services/orders/src/main.rs").contains("\"catalog\""));
    // The after-merge hook locked the new crate, in the merge commit: --locked works.
    assert!(read("Cargo.lock").contains("name = \"orders\""));
    let merged = git(&root, &["diff", "--name-only", "HEAD^1", "HEAD"]);
    assert!(merged.lines().any(|l| l == "Cargo.lock"), "{merged}");
    cargo(&root, &["metadata", "--locked", "--format-version", "1"]);
    check_hygiene(&root, true);
    build_and_test(&root);
}
