//! Runs the `{{ service.name }}` service.
//! Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`.

use std::process::ExitCode;

use platform::health::Readiness;
use platform::server::shutdown_signal;
use platform::{config, telemetry};

use {{ service.name | snake_case }}::{AppState, NAME, router};

const DEFAULT_PORT: u16 = {{ 8081 | plus: service.index }};

#[tokio::main]
async fn main() -> ExitCode {
    platform::main(NAME, DEFAULT_PORT, run).await
}

async fn run() -> Result<(), platform::Error> {
    let telemetry = telemetry::init(NAME)?;
    let addr = config::listen_addr(DEFAULT_PORT)?;
    let state = AppState::in_memory().await;
    let readiness = Readiness::new();
    let app = router(state.clone(), readiness.clone());
    // Watch streams never end on their own: end them when shutdown begins, so that
    // draining the server completes.
    tokio::spawn(async move {
        shutdown_signal().await;
        state.shut_down().await;
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
