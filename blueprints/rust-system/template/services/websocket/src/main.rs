{% assign consumed = "" %}
{% for s in services %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endfor %}
{% assign consumed = consumed | remove_first: "," %}
{% if messaging.broker != 'none' and consumed != "" %}
//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `WS_HEARTBEAT_INTERVAL_MS`, `WS_IDLE_TIMEOUT_MS`, `WS_MAX_MESSAGE_BYTES`, `{{ vars.broker.env }}` and
//! the `MESSAGING_*` settings.
{% else %}
//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `WS_HEARTBEAT_INTERVAL_MS`, `WS_IDLE_TIMEOUT_MS`, `WS_MAX_MESSAGE_BYTES`.
{% endif %}

use std::process::ExitCode;
use std::time::Duration;

use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
use platform::messaging::{Messaging, handler_fn};
{% endif %}
use platform::{config, telemetry};

{% if messaging.broker != 'none' and consumed != "" %}
use {{ service.name | snake_case }}::{AppState, Config, NAME, forward_event, router};
{% else %}
use {{ service.name | snake_case }}::{AppState, Config, NAME, router};
{% endif %}

const DEFAULT_PORT: u16 = {{ 8081 | plus: service.index }};

/// How long open connections get to finish their close handshake at shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    platform::main(NAME, DEFAULT_PORT, run).await
}

async fn run() -> Result<(), platform::Error> {
    let telemetry = telemetry::init(NAME)?;
    let addr = config::listen_addr(DEFAULT_PORT)?;
    let state = AppState::new(Config::from_env()?);
    let readiness = Readiness::new();
{% if messaging.broker != 'none' and consumed != "" %}
    // Only subscribes: this service publishes no events of its own.
    let (mut messaging, _) = Messaging::start(NAME, &readiness)?;
    let publishers = ["{{ consumed | split: "," | join: '", "' }}"];
    let forwarding = state.clone();
    messaging
        .subscribe(
            NAME,
            &publishers,
            handler_fn(move |event| forward_event(forwarding.clone(), event)),
        )
        .await?;
{% endif %}
    let app = router(state.clone(), readiness.clone());
    tracing::info!(service = NAME, "starting");
{% if auth.mtls %}
    let served = platform::serve(NAME, addr, app, readiness).await;
{% else %}
    let served = platform::serve(addr, app, readiness).await;
{% endif %}
{% if messaging.broker != 'none' and consumed != "" %}
    messaging.stop().await;
{% endif %}
    // Upgraded connections outlive the HTTP server: close them with 1001 (going away).
    if !state.hub().close_all(CLOSE_GRACE).await {
        tracing::warn!("some connections did not close in time");
    }
    telemetry.shutdown().await;
    served?;
    Ok(())
}
