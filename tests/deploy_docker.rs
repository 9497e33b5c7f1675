//! The container files of generated systems: one Dockerfile per binary, the build context
//! (`.dockerignore`) and `deploy/compose.yaml`. Rendered in memory through the library and
//! checked by parsing: every binary gets its image and its compose service, ports, health
//! checks and wiring agree with the code, and free text is escaped for a Dockerfile.

use std::collections::{BTreeMap, BTreeSet};

mod common;

use common::{answers, text};
use new_service::answers::{PartialAnswers, PartialMessaging};
use new_service::tree::FileTree;
use serde_yaml::Value;

/// Free text with everything a Dockerfile word or YAML could trip over.
const DESCRIPTION: &str =
    "a \"quoted\" #not-comment: {{x}} \\ back $HOME ${PATH} `tick`\nsecond line";
const OWNER: &str = "Team \"Q\" $USER \\o/";

/// (name, protocol) of the services of the systems under test: every protocol once.
const SERVICES: [(&str, &str); 5] = [
    ("catalog", "rest"),
    ("ledger", "grpc"),
    ("feed", "sse"),
    ("order-items", "graphql"),
    ("chat", "websocket"),
];

fn render(services: &[(&str, &str)], gateway: bool) -> FileTree {
    common::render(PartialAnswers {
        description: Some(DESCRIPTION.into()),
        owner: Some(OWNER.into()),
        ..answers(services, gateway)
    })
}

/// The binaries of a system: (name, port, Dockerfile path).
fn binaries(services: &[(&str, &str)], gateway: bool) -> Vec<(String, u16, String)> {
    let mut binaries: Vec<_> = services
        .iter()
        .zip(8081..)
        .map(|((name, _), port)| {
            (
                name.to_string(),
                port,
                format!("services/{name}/Dockerfile"),
            )
        })
        .collect();
    if gateway {
        binaries.push(("gateway".into(), 8080, "gateway/Dockerfile".into()));
    }
    binaries
}

/// One Dockerfile instruction: its keyword and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim_start();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => current.push_str(continued),
            None => {
                current.push_str(line);
                let (keyword, args) = current.trim().split_once(' ').unwrap();
                out.push(Instruction {
                    keyword: keyword.to_owned(),
                    args: args.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "unterminated instruction: {current}");
    out
}

/// The `key="value"` pairs of a LABEL or ENV instruction, unquoted the way BuildKit does
/// (a backslash escapes `"`, `$` and itself; an unescaped `$` would be a variable).
fn pairs(args: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(_) = chars.peek() else { break };
        let key: String = std::iter::from_fn(|| chars.next_if(|&c| c != '=')).collect();
        assert_eq!(chars.next(), Some('='), "no value for {key} in {args}");
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next().expect("unterminated quoted value") {
                    '"' => break,
                    '\\' if matches!(chars.peek(), Some('"' | '$' | '\\')) => {
                        value.push(chars.next().unwrap());
                    }
                    '$' => panic!("unescaped $ in the value of {key}: {args}"),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
            assert!(!value.contains(['$', '"']), "{key}={value}");
        }
        pairs.insert(key, value);
    }
    pairs
}

fn json_array(args: &str) -> Vec<String> {
    serde_yaml::from_str(args).unwrap_or_else(|e| panic!("not an exec-form array: {args}: {e}"))
}

/// Checks a file for the hygiene every generated file needs.
fn assert_clean(path: &str, contents: &str) {
    assert!(contents.ends_with('\n'), "{path}: no final newline");
    assert!(
        !contents.contains("\n\n\n"),
        "{path}: two blank lines in a row"
    );
    for (number, line) in contents.lines().enumerate() {
        assert_eq!(
            line,
            line.trim_end(),
            "{path}:{}: trailing space",
            number + 1
        );
    }
}

#[test]
fn every_binary_gets_a_multi_stage_non_root_dockerfile() {
    let tree = render(&SERVICES, true);
    let toolchain: toml::Table = toml::from_str(&text(&tree, "rust-toolchain.toml")).unwrap();
    let channel = toolchain["toolchain"]["channel"].as_str().unwrap();
    for (binary, port, path) in binaries(&SERVICES, true) {
        let dockerfile = text(&tree, &path);
        assert_clean(&path, &dockerfile);
        let instructions = instructions(&dockerfile);
        let args = |keyword: &str| -> Vec<&str> {
            instructions
                .iter()
                .filter(|i| i.keyword == keyword)
                .map(|i| i.args.as_str())
                .collect()
        };

        // Stages, with pinned images: the builder's toolchain is the workspace's.
        let froms = args("FROM");
        assert_eq!(
            froms,
            [
                format!("rust:{channel}-slim-bookworm AS chef").as_str(),
                "chef AS planner",
                "chef AS builder",
                "gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f",
            ],
            "{path}"
        );
        let runs = args("RUN");
        assert!(
            runs.iter()
                .any(|r| r.starts_with("cargo install cargo-chef --version 0.1.")
                    && r.ends_with("--locked")),
            "{path}: cargo-chef unpinned: {runs:?}"
        );
        assert!(
            runs.contains(&"cargo chef prepare --recipe-path recipe.json"),
            "{path}"
        );
        // Only this binary's dependencies are cooked and only it is built, both with the
        // planner's lockfile.
        assert!(
            runs.contains(
                &format!("cargo chef cook --release --locked --package {binary} --recipe-path recipe.json").as_str()
            ),
            "{path}: {runs:?}"
        );
        assert!(
            runs.contains(
                &format!("cargo build --release --locked --package {binary} --bin {binary}")
                    .as_str()
            ),
            "{path}: {runs:?}"
        );
        let copies = args("COPY");
        let cook = instructions
            .iter()
            .position(|i| i.args.starts_with("cargo chef cook"))
            .unwrap();
        let sources = instructions
            .iter()
            .rposition(|i| i.keyword == "COPY" && i.args == ". .")
            .unwrap();
        let lockfile = instructions
            .iter()
            .position(|i| i.args == "--from=planner /app/Cargo.lock Cargo.lock")
            .unwrap_or_else(|| panic!("{path}: the planner's lockfile is not copied"));
        assert!(
            cook < sources && sources < lockfile,
            "{path}: dependencies must be cooked before the sources are copied, and the lockfile copied after them"
        );

        // The runtime stage: the binary alone, as the distroless non-root user.
        let runtime = instructions
            .iter()
            .rposition(|i| i.keyword == "FROM")
            .unwrap();
        let runtime: Vec<_> = instructions[runtime + 1..].iter().collect();
        let binary_path = format!("/usr/local/bin/{binary}");
        assert!(
            copies.contains(
                &format!("--from=builder /app/target/release/{binary} {binary_path}").as_str()
            ),
            "{path}: {copies:?}"
        );
        let only = |keyword: &str| -> &str {
            let found: Vec<_> = runtime.iter().filter(|i| i.keyword == keyword).collect();
            assert_eq!(found.len(), 1, "{path}: one {keyword} in the runtime stage");
            &found[0].args
        };
        assert_eq!(only("USER"), "65532:65532", "{path}");
        assert_eq!(only("EXPOSE"), port.to_string(), "{path}");
        let env = pairs(only("ENV"));
        assert_eq!(env["HOST"], "0.0.0.0", "{path}");
        assert_eq!(env["PORT"], port.to_string(), "{path}");
        let healthcheck = only("HEALTHCHECK");
        let (options, command) = healthcheck.split_once("CMD").unwrap();
        assert!(options.contains("--interval="), "{path}: {healthcheck}");
        assert_eq!(
            json_array(command.trim()),
            [binary_path.as_str(), "healthcheck"],
            "{path}"
        );
        assert_eq!(
            json_array(only("ENTRYPOINT")),
            [binary_path.as_str()],
            "{path}"
        );
        assert!(
            runtime
                .iter()
                .all(|i| i.keyword != "RUN" && i.keyword != "ADD"),
            "{path}: the runtime image has no shell to run anything"
        );

        // OCI labels, free text escaped: BuildKit reads back exactly the text, but for the
        // newline a Dockerfile word cannot hold.
        let labels = pairs(only("LABEL"));
        let description = DESCRIPTION.replace('\n', " ");
        let expected = if binary == "gateway" {
            format!("The API gateway of shop: {description}")
        } else {
            format!("The {binary} service of shop: {description}")
        };
        assert_eq!(labels["org.opencontainers.image.description"], expected);
        assert_eq!(labels["org.opencontainers.image.authors"], OWNER);
        assert_eq!(
            labels["org.opencontainers.image.title"],
            format!("shop-{binary}")
        );
        assert!(
            labels
                .keys()
                .all(|k| k.starts_with("org.opencontainers.image."))
        );
    }
}

/// The code listens on the port the Dockerfile and compose file give it.
#[test]
fn dockerfile_ports_are_the_binaries_default_ports() {
    let tree = render(&SERVICES, true);
    for (binary, port, path) in binaries(&SERVICES, true) {
        let main = if binary == "gateway" {
            text(&tree, "gateway/src/main.rs")
        } else {
            text(&tree, &format!("services/{binary}/src/main.rs"))
        };
        assert!(
            main.contains(&format!("const DEFAULT_PORT: u16 = {port};")),
            "{binary}'s main.rs does not default to {port}"
        );
        assert!(text(&tree, &path).contains(&format!("\nEXPOSE {port}\n")));
    }
}

/// The gateway's Dockerfile is the services' one with the gateway's name, port and text.
#[test]
fn gateway_and_service_dockerfiles_do_not_drift_apart() {
    let tree = render(&[("ledger", "grpc")], true);
    let normalize = |path: &str, binary: &str, port: &str, what: &str| -> String {
        text(&tree, path)
            .lines()
            .map(|line| {
                if line.contains("org.opencontainers.image.description=") {
                    "DESCRIPTION".to_owned()
                } else {
                    line.replace(path, "PATH")
                        .replace(what, "WHAT")
                        .replace(binary, "BINARY")
                        .replace(port, "PORT")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let service = normalize(
        "services/ledger/Dockerfile",
        "ledger",
        "8081",
        "the ledger service",
    );
    let gateway = normalize("gateway/Dockerfile", "gateway", "8080", "the API gateway");
    assert_eq!(service, gateway);
}

/// A minimal `.dockerignore` matcher (Docker's rules: a pattern matching a path or any of
/// its parent folders matches it, `*` stays within one segment, `**` spans any number,
/// the last matching pattern wins).
fn ignored(dockerignore: &str, path: &str) -> bool {
    fn matches(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, None) => true,
            (Some(&"**"), _) => {
                matches(&pattern[1..], path) || (!path.is_empty() && matches(pattern, &path[1..]))
            }
            (Some(p), Some(s)) => segment(p, s) && matches(&pattern[1..], &path[1..]),
            _ => false,
        }
    }
    fn segment(pattern: &str, s: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == s,
            Some((prefix, rest)) => {
                s.starts_with(prefix) && (prefix.len()..=s.len()).any(|i| segment(rest, &s[i..]))
            }
        }
    }
    let segments: Vec<&str> = path.split('/').collect();
    let mut result = false;
    for line in dockerignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
        if (1..=segments.len()).any(|n| matches(&pattern, &segments[..n])) {
            result = !negated;
        }
    }
    result
}

#[test]
fn the_build_context_holds_what_builds_need_and_nothing_else() {
    for (services, gateway) in [
        (&SERVICES[..], true),
        (&SERVICES[..1], false),
        (&SERVICES[1..2], false),
    ] {
        let tree = render(services, gateway);
        let dockerignore = text(&tree, ".dockerignore");
        assert_clean(".dockerignore", &dockerignore);
        // What `cargo build` reads: the workspace, its crates and the protos of build scripts.
        let needed = |path: &str| {
            let top = path.split('/').next().unwrap();
            matches!(
                top,
                "Cargo.toml" | "rust-toolchain.toml" | "crates" | "services" | "gateway" | "proto"
            ) && !path.ends_with("/Dockerfile")
        };
        for path in tree.paths() {
            assert_eq!(
                ignored(&dockerignore, path),
                !needed(path),
                "{path} (gateway: {gateway})"
            );
        }
        assert!(!ignored(&dockerignore, "Cargo.lock"));
        for local in [
            ".env",
            "services/catalog/.env.local",
            "target/release/catalog",
        ] {
            assert!(ignored(&dockerignore, local), "{local}");
        }
        for (top, present) in [
            ("gateway/", gateway),
            ("proto/", services.iter().any(|(_, p)| *p == "grpc")),
        ] {
            assert_eq!(
                dockerignore.contains(&format!("\n!{top}\n")),
                present,
                "{top} in:\n{dockerignore}"
            );
        }
    }
}

fn yaml(tree: &FileTree, path: &str) -> Value {
    let contents = text(tree, path);
    assert_clean(path, &contents);
    serde_yaml::from_str(&contents).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn compose_runs_every_binary_hardened_and_wired() {
    for gateway in [true, false] {
        let tree = render(&SERVICES, gateway);
        let compose = yaml(&tree, "deploy/compose.yaml");
        assert_eq!(compose["name"].as_str(), Some("shop"));
        let services = compose["services"].as_mapping().unwrap();
        let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
        let binaries = binaries(&SERVICES, gateway);
        assert_eq!(
            names,
            binaries.iter().map(|(name, ..)| name.as_str()).collect(),
            "gateway: {gateway}"
        );
        for (binary, port, dockerfile) in &binaries {
            let service = &compose["services"][binary.as_str()];
            assert_eq!(service["build"]["context"].as_str(), Some(".."));
            assert_eq!(
                service["build"]["dockerfile"].as_str(),
                Some(dockerfile.as_str())
            );
            assert!(tree.get(dockerfile).is_some(), "{dockerfile}");
            let env = &service["environment"];
            assert_eq!(env["HOST"].as_str(), Some("0.0.0.0"), "{binary}");
            assert_eq!(env["PORT"].as_str(), Some(port.to_string().as_str()));
            assert_eq!(env["RUST_LOG"].as_str(), Some("${RUST_LOG:-info}"));
            assert_eq!(env["OTEL_SERVICE_NAME"].as_str(), Some(binary.as_str()));
            assert_eq!(
                strings(&service["healthcheck"]["test"]),
                ["CMD", &format!("/usr/local/bin/{binary}"), "healthcheck"]
            );
            assert_eq!(service["read_only"].as_bool(), Some(true), "{binary}");
            assert_eq!(strings(&service["cap_drop"]), ["ALL"]);
            assert_eq!(
                strings(&service["security_opt"]),
                ["no-new-privileges:true"]
            );
            // Published on the host: the gateway alone, or each service without one.
            let published = binary == "gateway" || !gateway;
            match service.get("ports") {
                Some(ports) => {
                    assert!(published, "{binary} is published behind the gateway");
                    assert_eq!(strings(ports), [format!("127.0.0.1:{port}:{port}")]);
                }
                None => assert!(!published, "{binary} is not published"),
            }
        }
        if gateway {
            let gateway = &compose["services"]["gateway"];
            for ((name, _), port) in SERVICES.iter().zip(8081..) {
                let variable = format!("{}_URL", name.to_uppercase().replace('-', "_"));
                assert_eq!(
                    gateway["environment"][variable.as_str()].as_str(),
                    Some(format!("http://{name}:{port}").as_str())
                );
                assert_eq!(
                    gateway["depends_on"][name]["condition"].as_str(),
                    Some("service_healthy")
                );
            }
            assert_eq!(
                gateway["depends_on"].as_mapping().unwrap().len(),
                SERVICES.len()
            );
        }
    }
}

#[test]
fn yamllint_configuration_is_committed() {
    let config = yaml(&render(&SERVICES[..1], true), ".yamllint.yaml");
    assert_eq!(config["extends"].as_str(), Some("default"));
    assert_eq!(config["rules"]["document-start"].as_str(), Some("disable"));
    assert_eq!(config["rules"]["line-length"]["max"].as_u64(), Some(120));
    assert_eq!(
        config["rules"]["truthy"]["check-keys"].as_bool(),
        Some(false)
    );
}

fn render_with_broker(services: &[(&str, &str)], gateway: bool, broker: &str) -> FileTree {
    common::render(PartialAnswers {
        messaging: PartialMessaging {
            broker: Some(broker.into()),
        },
        ..answers(services, gateway)
    })
}

/// With `messaging.broker = "redis"`: Redis first, pinned, persistent, healthy before any
/// service starts, hardened like the binaries; every service (never the gateway) gets
/// `REDIS_URL` and waits for it.
#[test]
fn compose_with_redis_runs_the_broker_first_and_wires_every_service() {
    for gateway in [true, false] {
        let tree = render_with_broker(&SERVICES, gateway, "redis");
        let compose = yaml(&tree, "deploy/compose.yaml");
        let services = compose["services"].as_mapping().unwrap();
        assert_eq!(
            services.keys().next().and_then(Value::as_str),
            Some("redis"),
            "the broker comes first"
        );
        let redis = &compose["services"]["redis"];
        let image = redis["image"].as_str().unwrap();
        let (tag, digest) = image.split_once("@sha256:").expect("pinned by digest");
        assert_eq!(tag, "redis:7.4-alpine");
        assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(redis.get("build").is_none());
        assert_eq!(
            strings(&redis["command"]),
            ["redis-server", "--appendonly", "yes"]
        );
        assert_eq!(strings(&redis["volumes"]), ["redis-data:/data"]);
        assert!(
            compose["volumes"]
                .as_mapping()
                .unwrap()
                .contains_key("redis-data")
        );
        assert_eq!(
            strings(&redis["healthcheck"]["test"]),
            ["CMD", "redis-cli", "ping"]
        );
        assert_eq!(redis["user"].as_str(), Some("redis"));
        assert_eq!(redis["read_only"].as_bool(), Some(true));
        assert_eq!(strings(&redis["cap_drop"]), ["ALL"]);
        assert_eq!(strings(&redis["security_opt"]), ["no-new-privileges:true"]);
        // Published on loopback only, for cargo run and cargo test on the host.
        assert_eq!(strings(&redis["ports"]), ["127.0.0.1:6379:6379"]);

        for (binary, ..) in binaries(&SERVICES, gateway) {
            let service = &compose["services"][binary.as_str()];
            let url = service["environment"]["REDIS_URL"].as_str();
            let waits = service["depends_on"]["redis"]["condition"].as_str();
            if binary == "gateway" {
                assert_eq!(url, None, "the gateway does not use the broker");
                assert_eq!(waits, None);
            } else {
                assert_eq!(url, Some("redis://redis:6379"), "{binary}");
                assert_eq!(waits, Some("service_healthy"), "{binary}");
            }
        }
    }
}

/// Without a broker, nothing of it: no redis service, no REDIS_URL, no volume.
#[test]
fn compose_without_a_broker_has_no_redis() {
    let tree = render_with_broker(&SERVICES, true, "none");
    let text = text(&tree, "deploy/compose.yaml");
    assert!(!text.contains("redis") && !text.contains("REDIS"), "{text}");
    let compose = yaml(&tree, "deploy/compose.yaml");
    assert!(compose.get("volumes").is_none());
    for (name, _) in SERVICES {
        assert!(
            compose["services"][name].get("depends_on").is_none(),
            "{name}"
        );
    }
}
