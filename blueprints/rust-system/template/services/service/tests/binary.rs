//! The `{{ service.name }}` binary as a container runs it: served on a free port,
{% if auth.mtls %}
//! with development certificates, checked with its `healthcheck` command on its admin
//! port, and stopped with SIGTERM; without usable certificates it does not start.
{% else %}
//! checked with its `healthcheck` command, and stopped with SIGTERM.
{% endif %}

use std::net::TcpListener;
{% if auth.mtls %}
use std::path::{Path, PathBuf};
{% endif %}
use std::process::{Child, Command, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_{{ service.name }}");
const USAGE: &str = "usage: {{ service.name }} [healthcheck]";

/// Upper bound for the server to start or stop.
const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

{% if auth.mtls %}
fn healthcheck(port: u16, admin: u16) -> ExitStatus {
    Command::new(BINARY)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .env("ADMIN_PORT", admin.to_string())
        .status()
        .unwrap()
}

/// A development CA and this service's certificate and key, as `dev-certs` writes
/// them, in a new folder of the temporary directory.
fn certificates() -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    let dir = std::env::temp_dir().join(format!(
        "{{ service.name }}-binary-test-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    dir
}

/// The `{{ service.name }}` binary with the certificates in `dir`.
fn server_command(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env("TLS_CA_FILE", dir.join("ca.pem"))
        .env("TLS_CERT_FILE", dir.join("cert.pem"))
        .env("TLS_KEY_FILE", dir.join("key.pem"));
    command
}
{% else %}
fn healthcheck(port: u16) -> ExitStatus {
    Command::new(BINARY)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .status()
        .unwrap()
}
{% endif %}

/// Kills the server if a test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn healthcheck_passes_while_the_server_runs_and_sigterm_stops_it_cleanly() {
    let port = free_port();
{% if auth.mtls %}
    let admin = free_port();
    assert_eq!(
        healthcheck(port, admin).code(),
        Some(1),
        "nothing listens yet"
    );

    let certificates = certificates();
    let mut server = Server(
        server_command(&certificates)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("ADMIN_PORT", admin.to_string())
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !healthcheck(port, admin).success() {
{% else %}
    assert_eq!(healthcheck(port).code(), Some(1), "nothing listens yet");

    let mut server = Server(
        Command::new(BINARY)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !healthcheck(port).success() {
{% endif %}
        assert!(started.elapsed() < WAIT, "not healthy within {WAIT:?}");
        sleep(Duration::from_millis(50));
    }

    let terminated = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < WAIT, "running {WAIT:?} after SIGTERM");
        sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
{% if auth.mtls %}
    assert_eq!(healthcheck(port, admin).code(), Some(1), "stopped");
    std::fs::remove_dir_all(certificates).unwrap();
}

#[test]
fn missing_certificates_stop_the_start_with_the_variable_named() {
    let output = server_command(Path::new("/nonexistent/certs"))
        .env("HOST", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TLS_CA_FILE"), "{stderr}");
}
{% else %}
    assert_eq!(healthcheck(port).code(), Some(1), "stopped");
}
{% endif %}

#[test]
fn unknown_arguments_are_a_usage_error() {
    let output = Command::new(BINARY).arg("serve-please").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(USAGE), "{stderr}");
}
