//! The gateway binary as a deployment starts it: without usable credentials settings
//! (`auth.scheme = "{{ auth.scheme }}"`) it refuses to start, with exit code 1 and a
//! message naming the variable to fix.{% if auth.scheme == 'api-key' %} And its `api-key create` command.{% endif %}

use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

/// Upper bound for the gateway to give up.
const WAIT: Duration = Duration::from_secs(10);

/// Kills the gateway if it starts after all.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the gateway with nothing but `vars` in its environment, asserts that it exits
/// with code 1, and returns what it printed on standard error.
fn refused_start(vars: &[(&str, &str)]) -> String {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("RUST_LOG", "off")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut gateway = Gateway(command.spawn().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = gateway.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < WAIT, "started with {vars:?}");
        sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(gateway.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{vars:?}: {stderr}");
    stderr
}

/// Asserts that the gateway refuses `vars`, naming `variable` and every one of `words`.
fn assert_refused(vars: &[(&str, &str)], variable: &str, words: &[&str]) {
    let stderr = refused_start(vars);
    assert!(stderr.contains(variable), "{vars:?}: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{vars:?}: {stderr}");
    }
}
{% if auth.scheme == 'jwt' %}

#[test]
fn no_key_is_refused() {
    assert_refused(&[], "JWT_SECRET", &["JWT_PUBLIC_KEY"]);
}

#[test]
fn the_development_secret_needs_its_opt_in() {
    let secret = gateway::auth::jwt::DEV_SECRET;
    assert_refused(
        &[("JWT_SECRET", secret)],
        "JWT_SECRET",
        &["JWT_ALLOW_DEV_SECRET"],
    );
    assert_refused(
        &[("JWT_SECRET", secret), ("JWT_ALLOW_DEV_SECRET", "false")],
        "JWT_SECRET",
        &["JWT_ALLOW_DEV_SECRET"],
    );
}

#[test]
fn a_short_secret_is_refused() {
    assert_refused(&[("JWT_SECRET", "too-short")], "JWT_SECRET", &["32 bytes"]);
}
{% endif %}
{% if auth.scheme == 'oidc' %}

#[test]
fn no_issuer_or_audience_is_refused() {
    assert_refused(&[], "OIDC_ISSUER", &["required"]);
    assert_refused(
        &[("OIDC_ISSUER", "https://idp.example.com/realms/demo")],
        "OIDC_AUDIENCE",
        &["required"],
    );
}

#[test]
fn a_plain_http_issuer_off_loopback_is_refused() {
    assert_refused(
        &[
            ("OIDC_ISSUER", "http://idp.example.com/realms/demo"),
            ("OIDC_AUDIENCE", "api"),
        ],
        "OIDC_ISSUER",
        &["OIDC_ALLOW_HTTP"],
    );
}

#[test]
fn symmetric_and_unsigned_algorithms_are_refused() {
    for algorithm in ["HS256", "none", "RS256,HS256"] {
        assert_refused(
            &[
                ("OIDC_ISSUER", "https://idp.example.com/realms/demo"),
                ("OIDC_AUDIENCE", "api"),
                ("OIDC_ALGORITHMS", algorithm),
            ],
            "OIDC_ALGORITHMS",
            &["not accepted"],
        );
    }
}
{% endif %}
{% if auth.scheme == 'api-key' %}

/// The entry of a new key with `roles`.
fn entry(id: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|role| (*role).to_owned()).collect();
    gateway::auth::api_key::create_key(id, &roles)
        .unwrap()
        .entry
}

#[test]
fn no_key_is_refused() {
    assert_refused(&[], "API_KEYS", &["API_KEYS_FILE"]);
    assert_refused(&[("API_KEYS", " , ")], "API_KEYS", &["no active key"]);
    // Every key revoked.
    let ci = entry("ci", &[]);
    assert_refused(
        &[("API_KEYS", &ci), ("API_KEYS_REVOKED", "ci")],
        "API_KEYS",
        &["no active key"],
    );
}

#[test]
fn malformed_entries_are_refused() {
    let ci = entry("ci", &["a:read"]);
    let digest = ci.split(':').nth(1).unwrap();
    let key = gateway::auth::api_key::create_key("ci", &[]).unwrap().key;
    for bad in [
        "ci".to_owned(),
        "ci:not-a-digest:a:read".to_owned(),
        format!("c_i:{digest}:a:read"),
        format!("ci:{digest}:a read"),
        format!("{ci},{ci}"),
    ] {
        assert_refused(&[("API_KEYS", &bad)], "API_KEYS", &[]);
    }
    // A key where its entry belongs: refused, and never printed.
    let stderr = refused_start(&[("API_KEYS", &key)]);
    assert!(stderr.contains("API_KEYS"), "{stderr}");
    assert!(!stderr.contains(&key), "the key is printed: {stderr}");
}

#[test]
fn the_development_key_needs_its_opt_in() {
    let dev = gateway::auth::api_key::entry_for(gateway::auth::api_key::DEV_KEY, &[]).unwrap();
    assert_refused(
        &[("API_KEYS", &dev)],
        "API_KEYS",
        &["API_KEYS_ALLOW_DEV_KEY"],
    );
}

#[test]
fn api_key_create_prints_a_key_and_its_entry_and_checks_its_arguments() {
    let output = Command::new(BINARY)
        .args(["api-key", "create", "ci", "a:read", "a:write"])
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("ak_ci_"), "{stdout}");
    assert!(lines[1].starts_with("ci:"), "{stdout}");
    assert!(lines[1].ends_with(":a:read+a:write"), "{stdout}");
    for args in [
        &["api-key"][..],
        &["api-key", "create"],
        &["api-key", "create", "c_i"],
        &["api-key", "create", "ci", "a,b"],
        &["api-key", "delete", "ci"],
    ] {
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("usage: gateway api-key create"), "{stderr}");
    }
}

#[test]
fn a_missing_keys_file_is_refused() {
    assert_refused(
        &[("API_KEYS_FILE", "/nonexistent/api-keys")],
        "API_KEYS_FILE",
        &["/nonexistent/api-keys"],
    );
}
{% endif %}
