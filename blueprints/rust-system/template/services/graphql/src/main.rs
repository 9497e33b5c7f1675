{% if messaging.broker != 'none' %}
//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `GRAPHQL_MAX_DEPTH`, `GRAPHQL_MAX_COMPLEXITY`, `{{ vars.broker.env }}` and the `MESSAGING_*` settings.
{% else %}
//! Runs the `{{ service.name }}` service. Configuration: `HOST`, `PORT` (default {{ 8081 | plus: service.index }}), `RUST_LOG`,
//! `GRAPHQL_MAX_DEPTH`, `GRAPHQL_MAX_COMPLEXITY`.
{% endif %}

use std::process::ExitCode;

{% assign consumed = "" %}
{% for s in services %}{% if s.name != service.name %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endif %}{% endfor %}
{% assign consumed = consumed | remove_first: "," %}
use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
use platform::messaging::{CloudEvent, HandlerError, Messaging, handler_fn};
{% elsif messaging.broker != 'none' %}
use platform::messaging::Messaging;
{% endif %}
use platform::{config, telemetry};

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
{% if messaging.broker != 'none' %}
    let ({% if consumed != "" %}mut {% endif %}messaging, events) = Messaging::start(NAME, &readiness)?;
{% if consumed != "" %}
    let publishers = ["{{ consumed | split: "," | join: '", "' }}"];
    messaging
        .subscribe(NAME, &publishers, handler_fn(on_event))
        .await?;
{% endif %}
    let app = router(state.with_events(events), readiness.clone());
{% else %}
    let app = router(state, readiness.clone());
{% endif %}
    tracing::info!(service = NAME, "starting");
{% if auth.mtls %}
    let served = platform::serve(NAME, addr, app, readiness).await;
{% else %}
    let served = platform::serve(addr, app, readiness).await;
{% endif %}
{% if messaging.broker != 'none' %}
    messaging.stop().await;
{% endif %}
    telemetry.shutdown().await;
    served?;
    Ok(())
}
{% if messaging.broker != 'none' and consumed != "" %}

/// Reacts to an event of another service (see `docs/events.md`). It logs the event for
/// now: put the service's reaction here, and keep it idempotent, since an event can
/// arrive twice. An error makes the event come again, with backoff, until it goes to
/// the dead-letter stream.
async fn on_event(event: CloudEvent) -> Result<(), HandlerError> {
    tracing::info!(
        event_type = event.event_type,
        subject = event.subject.as_deref().unwrap_or_default(),
        source = event.source,
        "event received"
    );
    Ok(())
}
{% endif %}
