//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `SSE_KEEP_ALIVE_MS`, `SSE_REPLAY_CAPACITY`, `SSE_MAX_EVENT_BYTES`.

use std::process::ExitCode;

use platform::health::Readiness;
use platform::{config, server, telemetry};

use {{ service.name | snake_case }}::{AppState, Config, NAME, router};

const DEFAULT_PORT: u16 = {{ 8081 | plus: service.index }};

#[tokio::main]
async fn main() -> ExitCode {
    platform::main(NAME, DEFAULT_PORT, run).await
}

async fn run() -> Result<(), platform::Error> {
    let telemetry = telemetry::init(NAME)?;
    let addr = config::listen_addr(DEFAULT_PORT)?;
    let state = AppState::new(Config::from_env()?);
    let readiness = Readiness::new();
    let app = router(state.clone(), readiness.clone());
    // Event streams never end by themselves: end them when shutdown begins, so that
    // draining finishes. Clients reconnect with Last-Event-ID.
    tokio::spawn(async move {
        server::shutdown_signal().await;
        state.events().close();
    });
    tracing::info!(service = NAME, "starting");
{% if auth.mtls %}
    let served = platform::serve(NAME, addr, app, readiness).await;
{% else %}
    let served = platform::serve(addr, app, readiness).await;
{% endif %}
    telemetry.shutdown().await;
    served?;
    Ok(())
}
