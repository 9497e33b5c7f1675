//! The `{{ service.name }}` binary as a container runs it: served on a free port,
//! checked with its `healthcheck` command, and stopped with SIGTERM.

use std::net::TcpListener;
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

fn healthcheck(port: u16) -> ExitStatus {
    Command::new(BINARY)
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .status()
        .unwrap()
}

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
    assert_eq!(healthcheck(port).code(), Some(1), "stopped");
}

#[test]
fn unknown_arguments_are_a_usage_error() {
    let output = Command::new(BINARY).arg("serve-please").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(USAGE), "{stderr}");
}
