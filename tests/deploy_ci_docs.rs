//! The generated CI configuration and docs, parsed rather than compared as text: every
//! binary gets its image job, each CI provider only its own file, actions are pinned,
//! permissions are least-privilege, deny.toml is a working cargo-deny policy, and the
//! architecture diagram, ADR and runbooks follow the answers. Rendered in memory.

mod common;

use common::{answers, text};
use new_service::answers::{PartialAnswers, PartialAuth, PartialCi, PartialMessaging};
use new_service::tree::FileTree;
use serde_yaml::Value;

const NASTY: &str = "He said \"hi\" \\ {{ name }} {% if x %} # not: a comment\n'quoted'";

fn render(services: &[(&str, &str)], gateway: bool, ci: &str) -> FileTree {
    common::render(PartialAnswers {
        description: Some(NASTY.into()),
        owner: Some(NASTY.into()),
        ci: PartialCi {
            provider: Some(ci.into()),
        },
        ..answers(services, gateway)
    })
}

fn yaml(tree: &FileTree, path: &str) -> Value {
    serde_yaml::from_str(&text(tree, path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const ALL: &[(&str, &str)] = &[
    ("catalog", "rest"),
    ("ledger", "grpc"),
    ("feed", "sse"),
    ("chat", "websocket"),
    ("order-items", "graphql"),
];

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn github_workflow_has_every_job_and_an_image_per_binary() {
    for gateway in [true, false] {
        let tree = render(ALL, gateway, "github");
        assert!(tree.get(".gitlab-ci.yml").is_none());
        let wf = yaml(&tree, ".github/workflows/ci.yml");
        let jobs = wf["jobs"].as_mapping().unwrap();
        let names: Vec<&str> = jobs.keys().map(str_of).collect();
        assert_eq!(
            names,
            ["fmt", "clippy", "test", "audit", "images", "manifests"]
        );

        // Least privilege: read-only at the top, packages: write only for images.
        assert_eq!(str_of(&wf["permissions"]["contents"]), "read");
        assert!(wf["permissions"]["packages"].is_null());
        for (name, job) in jobs {
            let name = str_of(name);
            assert!(
                job["timeout-minutes"].as_u64().is_some(),
                "{name}: no timeout"
            );
            let write = job["permissions"]["packages"].as_str() == Some("write");
            assert_eq!(write, name == "images", "{name}: permissions");
        }
        assert!(wf["concurrency"]["group"].as_str().is_some());

        // Every action pinned to a full commit SHA with its version in a comment.
        let source = text(&tree, ".github/workflows/ci.yml");
        let uses: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
            .collect();
        assert!(uses.len() >= 8);
        for u in uses {
            let (action, rest) = u.split_once('@').unwrap();
            let (sha, comment) = rest.split_once("  # v").unwrap_or_else(|| panic!("{u}"));
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{action} not pinned to a SHA"
            );
            assert!(comment.chars().next().unwrap().is_ascii_digit(), "{u}");
        }

        // The image matrix: one entry per service, plus the gateway when there is one.
        let include = wf["jobs"]["images"]["strategy"]["matrix"]["include"]
            .as_sequence()
            .unwrap();
        let mut expected: Vec<(String, String)> = ALL
            .iter()
            .map(|(s, _)| (s.to_string(), format!("services/{s}/Dockerfile")))
            .collect();
        if gateway {
            expected.push(("gateway".into(), "gateway/Dockerfile".into()));
        }
        let got: Vec<(String, String)> = include
            .iter()
            .map(|e| (str_of(&e["image"]).into(), str_of(&e["dockerfile"]).into()))
            .collect();
        assert_eq!(got, expected);

        // Images are pushed on main only; the build context is the repository root.
        let steps = wf["jobs"]["images"]["steps"].as_sequence().unwrap();
        let build = steps
            .iter()
            .find(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("docker/build-push-action@"))
            })
            .unwrap();
        assert_eq!(str_of(&build["with"]["context"]), ".");
        let push = str_of(&build["with"]["push"]);
        assert!(push.contains("github.event_name == 'push'") && push.contains("refs/heads/main"));

        // The jobs run the commands the README promises.
        let runs: String = jobs
            .values()
            .flat_map(|j| j["steps"].as_sequence().unwrap())
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "cargo fmt --all -- --check",
            "cargo clippy --workspace --all-targets -- -D warnings",
            "cargo test --workspace",
            "cargo deny check",
            "deploy/k8s/overlays/$overlay",
            "for overlay in dev prod",
        ] {
            assert!(runs.contains(needle), "workflow lacks {needle}");
        }
    }
}

#[test]
fn gitlab_pipeline_has_the_same_stages_and_an_image_per_binary() {
    let tree = render(&[("catalog", "rest"), ("ledger", "grpc")], false, "gitlab");
    assert!(tree.get(".github/workflows/ci.yml").is_none());
    let ci = yaml(&tree, ".gitlab-ci.yml");
    let stages: Vec<&str> = ci["stages"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(
        stages,
        ["fmt", "lint", "test", "audit", "images", "manifests"]
    );
    for job in ["fmt", "clippy", "test", "audit", "images", "manifests"] {
        assert!(
            stages.contains(&str_of(&ci[job]["stage"])),
            "{job} has no known stage"
        );
    }
    let matrix = ci["images"]["parallel"]["matrix"].as_sequence().unwrap();
    let images: Vec<(&str, &str)> = matrix
        .iter()
        .map(|e| (str_of(&e["IMAGE"]), str_of(&e["DOCKERFILE"])))
        .collect();
    assert_eq!(
        images,
        [
            ("catalog", "services/catalog/Dockerfile"),
            ("ledger", "services/ledger/Dockerfile")
        ]
    );
    // Pushed from the default branch only.
    let script = ci["images"]["script"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(script.contains(r#"if [ "$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH" ]"#));
    assert!(script.contains("--push"));
    // The Rust jobs cache the registry and the target directory.
    let paths: Vec<&str> = ci[".rust"]["cache"]["paths"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(paths.contains(&"target/") && paths.contains(&".cargo/registry/cache/"));
}

#[test]
fn no_ci_provider_generates_neither_file() {
    let tree = render(&[("catalog", "rest")], true, "none");
    assert!(tree.get(".gitlab-ci.yml").is_none());
    assert!(tree.paths().all(|p| !p.starts_with(".github/")));
    assert!(!text(&tree, "README.md").contains("## CI"));
    // The dependency policy is there whatever the CI.
    assert!(tree.get("deny.toml").is_some());
}

#[test]
fn deny_toml_is_a_cargo_deny_policy() {
    let tree = render(&[("catalog", "rest")], true, "github");
    let deny: toml::Table = toml::from_str(&text(&tree, "deny.toml")).unwrap();
    let allow: Vec<&str> = deny["licenses"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The licenses of the pinned dependency set (see the blueprint's Cargo.toml).
    for license in ["MIT", "Apache-2.0", "Unicode-3.0", "BSD-3-Clause", "Zlib"] {
        assert!(allow.contains(&license), "{license} not allowed");
    }
    assert!(!allow.iter().any(|l| l.contains("GPL")), "copyleft allowed");
    assert_eq!(deny["licenses"]["private"]["ignore"].as_bool(), Some(true));
    assert_eq!(deny["sources"]["unknown-git"].as_str(), Some("deny"));
    assert_eq!(deny["sources"]["unknown-registry"].as_str(), Some("deny"));
    assert_eq!(deny["bans"]["wildcards"].as_str(), Some("deny"));
}

#[test]
fn yamllint_config_disables_document_start_and_allows_on() {
    let tree = render(&[("catalog", "rest")], true, "github");
    let config = yaml(&tree, ".yamllint.yaml");
    assert_eq!(str_of(&config["rules"]["document-start"]), "disable");
    assert_eq!(config["rules"]["line-length"]["max"].as_u64(), Some(120));
    // `on:` (the workflow trigger key) passes: keys are not checked for truthiness.
    assert_eq!(
        config["rules"]["truthy"]["check-keys"].as_bool(),
        Some(false)
    );
    // The matrix lives under target/: the ignore patterns must be anchored at the root.
    let ignore = str_of(&config["ignore"]);
    assert!(
        ignore
            .lines()
            .all(|l| l.trim().is_empty() || l.trim().starts_with(['/', '#'])),
        "{ignore}"
    );
}

#[test]
fn architecture_diagram_has_a_node_and_an_edge_per_service() {
    for gateway in [true, false] {
        let tree = render(ALL, gateway, "github");
        let doc = text(&tree, "docs/architecture.md");
        let start = doc.find("```mermaid\n").unwrap() + "```mermaid\n".len();
        let diagram = &doc[start..start + doc[start..].find("```").unwrap()];
        assert!(diagram.starts_with("flowchart LR\n"));
        for (i, (name, _)) in ALL.iter().enumerate() {
            let node = format!("svc_{}[\"{name} :{}\"]", name.replace('-', "_"), 8081 + i);
            let from = if gateway { "gateway -->" } else { "client -->" };
            assert!(
                diagram
                    .lines()
                    .any(|l| l.trim_start().starts_with(from) && l.ends_with(&node)),
                "no edge to {node} (gateway: {gateway})"
            );
        }
        assert_eq!(
            diagram.contains("gateway[\"gateway :8080<br/>auth: jwt\"]"),
            gateway
        );
        assert!(diagram.contains("%% No message broker"));
        // Free text stays out of the diagram, where it could break the syntax.
        assert!(!diagram.contains("He said"));
        assert!(doc.contains("adr/0001-architecture-choices.md"));
    }
}

#[test]
fn adr_records_the_answers() {
    let tree = render(&[("catalog", "rest"), ("ledger", "grpc")], false, "gitlab");
    let adr = text(&tree, "docs/adr/0001-architecture-choices.md");
    assert!(adr.contains("| `catalog` | rest | 8081 |"));
    assert!(adr.contains("| `ledger` | grpc | 8082 |"));
    assert!(adr.contains("- **REST**") && adr.contains("- **gRPC**"));
    assert!(!adr.contains("- **GraphQL**") && !adr.contains("- **WebSocket**"));
    assert!(adr.contains("No gateway"));
    assert!(adr.contains("GitLab CI (`.gitlab-ci.yml`)"));
    assert!(adr.contains("`messaging.broker = \"none\"`"));
    // jwt, the default, is enforced by the gateway, which this system lacks.
    assert!(adr.contains("`auth.scheme = \"jwt\"`") && adr.contains("has none"));
    assert!(adr.contains("kubectl") || adr.contains("deploy/k8s/base/"));
}

#[test]
fn runbooks_have_deployment_notes_with_ports_and_names() {
    let tree = render(ALL, true, "github");
    for (i, (name, _)) in ALL.iter().enumerate() {
        let port = 8081 + i;
        let runbook = text(&tree, &format!("docs/runbooks/{name}.md"));
        let section = &runbook[runbook.find("## Deployment").unwrap()..];
        let section = &section[..section[3..].find("\n## ").unwrap()];
        for needle in [
            format!("Deployment `{name}` and Service `{name}` (port {port})"),
            format!("`GET /healthz` on port {port}"),
            format!("`GET /readyz` on port {port}"),
            format!("`{name} healthcheck`"),
            format!("services/{name}/Dockerfile"),
            format!("http://{name}:{port}"),
        ] {
            assert!(section.contains(&needle), "{name}: lacks {needle}");
        }
    }
    let gateway = text(&tree, "docs/runbooks/gateway.md");
    assert!(gateway.contains("Deployment `gateway` and Service `gateway` (port 8080)"));
    assert!(gateway.contains("`ORDER_ITEMS_URL=http://order-items:8085`"));
}

#[test]
fn readme_has_quick_starts_for_compose_and_kubernetes() {
    let tree = render(ALL, true, "github");
    let readme = text(&tree, "README.md");
    for needle in [
        "cargo run -p catalog",
        "docker compose -f deploy/compose.yaml up --build",
        "kubectl apply -k deploy/k8s/overlays/dev",
        "cargo deny check",
        "## CI",
        "(docs/runbooks/catalog.md)",
        "(docs/adr/0001-architecture-choices.md)",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
}

#[test]
fn without_authentication_the_readme_and_the_gateway_say_so() {
    let tree = common::render(PartialAnswers {
        auth: PartialAuth {
            scheme: Some("none".into()),
            mtls: None,
        },
        ..answers(&[("catalog", "rest")], true)
    });
    let readme = text(&tree, "README.md");
    assert!(readme.contains("> **No authentication.**"), "{readme}");
    let main = text(&tree, "gateway/src/main.rs");
    assert!(
        main.contains("tracing::warn!(") && main.contains("authentication is off"),
        "{main}"
    );
}

#[test]
fn with_jwt_the_readme_explains_tokens_and_compose_sets_the_dev_secret() {
    let tree = render(&[("catalog", "rest")], true, "github");
    let readme = text(&tree, "README.md");
    assert!(!readme.contains("> **No authentication.**"), "{readme}");
    for needle in [
        "## Authentication",
        "cargo run -q -p gateway -- token alice catalog:read catalog:write",
        "openssl rand -base64 48",
        "JWT_ALLOW_DEV_SECRET",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
    let compose = text(&tree, "deploy/compose.yaml");
    assert!(compose.contains("JWT_ALLOW_DEV_SECRET: \"true\""));
    let main = text(&tree, "gateway/src/main.rs");
    assert!(!main.contains("authentication is off"), "{main}");
    let runbook = text(&tree, "docs/runbooks/gateway.md");
    assert!(runbook.contains(
        "| `CATALOG_READ_ROLE`, `CATALOG_WRITE_ROLE` | `catalog:read`, `catalog:write` |"
    ));
    assert!(tree.get("gateway/tests/auth_jwt.rs").is_some());
}

#[test]
fn with_api_keys_the_readme_explains_keys_and_compose_sets_the_dev_entry() {
    let tree = common::render(PartialAnswers {
        auth: PartialAuth {
            scheme: Some("api-key".into()),
            mtls: None,
        },
        ..answers(&[("catalog", "rest"), ("feed", "sse")], true)
    });
    let readme = text(&tree, "README.md");
    assert!(!readme.contains("> **No authentication.**"), "{readme}");
    for needle in [
        "## Authentication",
        "X-API-Key: ak_dev_dev-only-key-do-not-use-in-production-0123456789",
        "cargo run -q -p gateway -- api-key create billing catalog:read feed:read",
        "API_KEYS_ALLOW_DEV_KEY",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
    let compose = yaml(&tree, "deploy/compose.yaml");
    let env = &compose["services"]["gateway"]["environment"];
    assert_eq!(
        str_of(&env["API_KEYS"]),
        "dev:5d19e90bcd7060b225eaabb6a46cdc124f24d0272ed814681a36498d70d54051:\
         catalog:read+catalog:write+feed:read+feed:write"
    );
    assert_eq!(str_of(&env["API_KEYS_ALLOW_DEV_KEY"]), "true");
    let main = text(&tree, "gateway/src/main.rs");
    assert!(main.contains("\"api-key\""), "{main}");
    assert!(!main.contains("\"token\""), "{main}");
    let runbook = text(&tree, "docs/runbooks/gateway.md");
    for needle in [
        "| `API_KEYS` |",
        "| `API_KEYS_REVOKED` |",
        "gateway api-key create <id> [role...]",
        "WWW-Authenticate: ApiKey realm=",
    ] {
        assert!(runbook.contains(needle), "runbook lacks {needle}");
    }
    assert!(!runbook.contains("JWT_"), "{runbook}");
    for path in [
        "gateway/src/auth/api_key.rs",
        "gateway/tests/auth_api_key.rs",
        "gateway/tests/startup.rs",
    ] {
        assert!(tree.get(path).is_some(), "{path}");
    }
    assert!(tree.get("gateway/src/auth/jwt.rs").is_none());
    assert!(tree.get("gateway/tests/auth_jwt.rs").is_none());
}

#[test]
fn with_oidc_the_docs_explain_the_issuer_and_compose_has_no_silent_default() {
    let tree = common::render(PartialAnswers {
        auth: PartialAuth {
            scheme: Some("oidc".into()),
            mtls: None,
        },
        ..answers(&[("catalog", "rest")], true)
    });
    let readme = text(&tree, "README.md");
    assert!(!readme.contains("> **No authentication.**"), "{readme}");
    for needle in [
        "## Authentication",
        "OIDC_ISSUER",
        "OIDC_AUDIENCE",
        "Keycloak",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
    let compose = text(&tree, "deploy/compose.yaml");
    assert!(
        compose.contains("OIDC_ISSUER: ${OIDC_ISSUER:-}"),
        "{compose}"
    );
    assert!(!compose.contains("JWT_"), "{compose}");
    let runbook = text(&tree, "docs/runbooks/gateway.md");
    for needle in [
        "| `OIDC_ISSUER` | required |",
        "| `OIDC_JWKS_MIN_REFRESH_SECONDS` | `30` |",
        "| `CATALOG_READ_ROLE`, `CATALOG_WRITE_ROLE` | `catalog:read`, `catalog:write` |",
        "503 (gRPC: `UNAVAILABLE`",
    ] {
        assert!(runbook.contains(needle), "runbook lacks {needle}");
    }
    let policies = text(&tree, "deploy/k8s/base/networkpolicies.yaml");
    assert!(policies.contains("port: 443"), "{policies}");
    for path in [
        "gateway/src/auth/oidc.rs",
        "gateway/src/auth/bearer.rs",
        "gateway/tests/auth_oidc.rs",
    ] {
        assert!(tree.get(path).is_some(), "{path}");
    }
    assert!(tree.get("gateway/src/auth/jwt.rs").is_none());
    assert!(tree.get("gateway/tests/auth_jwt.rs").is_none());
}

fn render_with_broker(
    services: &[(&str, &str)],
    gateway: bool,
    ci: &str,
    broker: &str,
) -> FileTree {
    common::render(PartialAnswers {
        messaging: PartialMessaging {
            broker: Some(broker.into()),
        },
        ci: PartialCi {
            provider: Some(ci.into()),
        },
        ..answers(services, gateway)
    })
}

/// With Redis, the test job of either CI runs it as a healthy service container and the
/// tests find it at REDIS_URL; without a broker neither has one.
#[test]
fn ci_runs_redis_as_a_service_container_for_the_tests() {
    let tree = render_with_broker(ALL, true, "github", "redis");
    let wf = yaml(&tree, ".github/workflows/ci.yml");
    let test = &wf["jobs"]["test"];
    let redis = &test["services"]["redis"];
    assert!(str_of(&redis["image"]).starts_with("redis:7.4-alpine@sha256:"));
    assert_eq!(redis["ports"][0], "6379:6379");
    assert!(str_of(&redis["options"]).contains("--health-cmd \"redis-cli ping\""));
    assert_eq!(str_of(&test["env"]["REDIS_URL"]), "redis://localhost:6379");
    // Only the test job needs it.
    for (name, job) in wf["jobs"].as_mapping().unwrap() {
        assert_eq!(job.get("services").is_some(), str_of(name) == "test");
    }

    let tree = render_with_broker(ALL, false, "gitlab", "redis");
    let ci = yaml(&tree, ".gitlab-ci.yml");
    let service = &ci["test"]["services"][0];
    assert!(str_of(&service["name"]).starts_with("redis:7.4-alpine@sha256:"));
    assert_eq!(str_of(&service["alias"]), "redis");
    assert_eq!(
        str_of(&ci["test"]["variables"]["REDIS_URL"]),
        "redis://redis:6379"
    );

    for ci in ["github", "gitlab"] {
        let tree = render_with_broker(ALL, true, ci, "none");
        let path = if ci == "github" {
            ".github/workflows/ci.yml"
        } else {
            ".gitlab-ci.yml"
        };
        let text = text(&tree, path);
        assert!(
            !text.contains("redis") && !text.contains("REDIS_URL"),
            "{path}"
        );
        let config = yaml(&tree, path);
        let test = if ci == "github" {
            &config["jobs"]["test"]
        } else {
            &config["test"]
        };
        assert!(test.get("services").is_none(), "{path}");
    }
}

/// docs/events.md exists only with a broker and lists every event type of the system,
/// its streams, consumer groups and dead-letter streams.
#[test]
fn events_md_lists_the_event_types_streams_and_dead_letters() {
    let tree = render_with_broker(ALL, true, "github", "redis");
    let events = text(&tree, "docs/events.md");
    for field in [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "subject",
        "data",
        "traceparent",
    ] {
        assert!(
            events.contains(&format!("| `{field}` |")),
            "no attribute {field}"
        );
    }
    // The publishers own items: REST, gRPC and GraphQL; websocket and sse do not.
    for (name, protocol) in ALL {
        let publishes = matches!(*protocol, "rest" | "grpc" | "graphql");
        for change in ["created", "updated", "deleted"] {
            let ty = format!("`shop.{name}.item.{change}.v1`");
            assert_eq!(events.contains(&ty), publishes, "{ty}");
        }
        assert_eq!(
            events.contains(&format!("`shop:events:{name}`")),
            publishes,
            "{name}"
        );
        // Every service consumes the other publishers' events.
        assert!(
            events.contains(&format!("`shop:dead-letter:{name}`")),
            "{name}"
        );
    }
    assert!(events.contains("| `chat` | `catalog`, `ledger`, `order-items` |"));
    assert!(events.contains("| `catalog` | `ledger`, `order-items` |"));
    for needle in [
        "`.v2`",
        "alongside",
        "XRANGE",
        "XADD",
        "MESSAGING_MAX_ATTEMPTS",
        "MESSAGING_CLAIM_IDLE_MS",
    ] {
        assert!(events.contains(needle), "events.md lacks {needle}");
    }
    assert!(!events.contains("He said"), "no free text in the contract");

    // A single service consumes nothing; no broker, no events.md.
    let tree = render_with_broker(&[("catalog", "rest")], true, "github", "redis");
    let events = text(&tree, "docs/events.md");
    assert!(events.contains("`shop.catalog.item.created.v1`"));
    assert!(!events.contains("shop:dead-letter:catalog"));
    let tree = render_with_broker(ALL, true, "github", "none");
    assert!(tree.get("docs/events.md").is_none());
    assert!(!text(&tree, "README.md").contains("events.md"));
}

/// The diagram has the broker with an edge from each publisher and to each consumer; the
/// runbooks, ADR and README explain Redis.
#[test]
fn docs_with_redis_show_the_broker_and_how_to_operate_it() {
    let services = &[("catalog", "rest"), ("feed", "sse")];
    let tree = render_with_broker(services, true, "github", "redis");
    let doc = text(&tree, "docs/architecture.md");
    let start = doc.find("```mermaid\n").unwrap();
    let diagram = &doc[start..start + doc[start + 3..].find("```").unwrap()];
    assert!(diagram.contains("broker[(\"redis :6379<br/>Redis Streams\")]"));
    assert!(diagram.contains("svc_catalog -->|\"events: shop:events:catalog\"| broker"));
    assert!(diagram.contains("broker -.->|\"group feed\"| svc_feed"));
    assert!(!diagram.contains("svc_feed -->"), "feed publishes nothing");
    assert!(!diagram.contains("No message broker"));
    assert!(doc.contains("| `messaging` |"));

    let feed = text(&tree, "docs/runbooks/feed.md");
    for needle in [
        "| `REDIS_URL` | `redis://127.0.0.1:6379` |",
        "| `MESSAGING_MAX_ATTEMPTS` | `5` |",
        "| `MESSAGING_RETRY_BASE_MS` | `100` |",
        "| `MESSAGING_RETRY_MAX_MS` | `5000` |",
        "| `MESSAGING_CLAIM_IDLE_MS` | `30000` |",
        "or while Redis is unreachable",
        "XLEN shop:dead-letter:feed",
        "XRANGE shop:dead-letter:feed",
        "redis_stream_length{stream=\"shop:dead-letter:feed\"}",
    ] {
        assert!(feed.contains(needle), "feed.md lacks {needle}");
    }
    let catalog = text(&tree, "docs/runbooks/catalog.md");
    assert!(catalog.contains("to `shop:events:catalog`"));
    assert!(
        !catalog.contains("shop:dead-letter:catalog"),
        "catalog consumes nothing"
    );

    let adr = text(&tree, "docs/adr/0001-architecture-choices.md");
    assert!(adr.contains("`messaging.broker = \"redis\"`") && adr.contains("**What it costs.**"));
    let readme = text(&tree, "README.md");
    assert!(readme.contains("docker compose -f deploy/compose.yaml up -d redis"));
    assert!(readme.contains("| `REDIS_URL` | services |"));

    // Without a broker, none of it.
    let tree = render_with_broker(services, true, "github", "none");
    for path in ["docs/runbooks/feed.md", "README.md", "docs/architecture.md"] {
        let text = text(&tree, path);
        assert!(!text.contains("REDIS") && !text.contains("redis"), "{path}");
    }
}

/// Every broker is named, started and documented for what it is: its URL variable in
/// compose, Kubernetes (from the Secret `messaging`), CI and the runbooks, its own
/// container and dev-overlay manifest, and its own destinations in `docs/events.md`;
/// no other broker's name leaks into a system.
#[test]
fn each_broker_is_wired_and_documented_as_itself() {
    let brokers = [
        (
            "kafka",
            "KAFKA_BROKERS",
            "kafka:9092",
            "shop.dead-letter.feed",
            "apache/kafka:",
        ),
        (
            "rabbitmq",
            "AMQP_URL",
            "amqp://guest:guest@rabbitmq:5672/%2f",
            "shop.dead-letter.feed",
            "rabbitmq:",
        ),
        (
            "nats",
            "NATS_URL",
            "nats://nats:4222",
            "shop-dead-letter-feed",
            "nats:",
        ),
        (
            "redis",
            "REDIS_URL",
            "redis://redis:6379",
            "shop:dead-letter:feed",
            "redis:",
        ),
    ];
    let services = &[("catalog", "rest"), ("feed", "sse")];
    for (broker, env, compose_url, dead_letters, image) in brokers {
        let tree = render_with_broker(services, true, "github", broker);
        let compose = yaml(&tree, "deploy/compose.yaml");
        let container = &compose["services"][broker];
        assert!(str_of(&container["image"]).starts_with(image), "{broker}");
        assert_eq!(
            str_of(&compose["services"]["feed"]["environment"][env]),
            compose_url
        );
        assert_eq!(
            str_of(&compose["services"]["feed"]["depends_on"][broker]["condition"]),
            "service_healthy"
        );
        assert!(
            tree.get(&format!("deploy/k8s/overlays/dev/{broker}.yaml"))
                .is_some()
        );
        let key = env.to_lowercase().replace('_', "-");
        let overlay = text(&tree, "deploy/k8s/overlays/dev/kustomization.yaml");
        assert!(
            overlay.contains(&format!("- {key}={compose_url}")),
            "{overlay}"
        );
        let deployments = text(&tree, "deploy/k8s/base/deployments.yaml");
        assert!(
            deployments.contains(&format!("- name: {env}"))
                && deployments.contains(&format!("key: {key}"))
        );

        let workflow = yaml(&tree, ".github/workflows/ci.yml");
        assert!(
            workflow["jobs"]["test"]["env"][env].as_str().is_some(),
            "{broker}"
        );

        let feed = text(&tree, "docs/runbooks/feed.md");
        assert!(feed.contains(&format!("| `{env}` |")), "{broker}");
        assert!(
            feed.contains(&format!("`{dead_letters}`")),
            "{broker}: {feed}"
        );
        let events = text(&tree, "docs/events.md");
        assert!(events.contains(&format!("(`messaging.broker = \"{broker}\"`)")));
        let adr = text(&tree, "docs/adr/0001-architecture-choices.md");
        assert!(adr.contains(&format!("(`messaging.broker = \"{broker}\"`)")));
        let readme = text(&tree, "README.md");
        assert!(readme.contains(&format!(
            "docker compose -f deploy/compose.yaml up -d {broker}"
        )));

        for (other, other_env, ..) in brokers {
            if other == broker {
                continue;
            }
            for (path, file) in tree.iter() {
                let Ok(content) = std::str::from_utf8(&file.contents) else {
                    continue;
                };
                assert!(
                    !content.contains(other_env),
                    "{broker}: {path} names {other_env}"
                );
                assert!(
                    !content.contains(&format!("messaging/{other}.rs")),
                    "{broker}: {path}"
                );
            }
        }
    }
}
