{% assign consumed = "" %}
{% for s in services %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endfor %}
{% assign consumed = consumed | remove_first: "," %}
{% if messaging.broker != 'none' and consumed != "" %}
//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `SSE_KEEP_ALIVE_MS`, `SSE_REPLAY_CAPACITY`, `SSE_MAX_EVENT_BYTES`, `{{ vars.broker.env }}` and the
//! `MESSAGING_*` settings.
{% else %}
//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `SSE_KEEP_ALIVE_MS`, `SSE_REPLAY_CAPACITY`, `SSE_MAX_EVENT_BYTES`.
{% endif %}

use std::process::ExitCode;

use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
use platform::messaging::{Messaging, handler_fn};
{% endif %}
use platform::{config, server, telemetry};

{% if messaging.broker != 'none' and consumed != "" %}
use {{ service.name | snake_case }}::{AppState, Config, NAME, forward_event, router};
{% else %}
use {{ service.name | snake_case }}::{AppState, Config, NAME, router};
{% endif %}

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
{% if messaging.broker != 'none' and consumed != "" %}
    messaging.stop().await;
{% endif %}
    telemetry.shutdown().await;
    served?;
    Ok(())
}
