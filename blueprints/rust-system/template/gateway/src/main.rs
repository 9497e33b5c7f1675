//! Runs the API gateway. Configuration: `HOST`, `PORT` (default 8080), `RUST_LOG`,
//! `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, one `<SERVICE>_URL` and
//! `<SERVICE>_TIMEOUT_MS` per service, the `UPSTREAM_*` resilience settings and the
//! edge protections' `RATE_LIMIT_*`, `CORS_*`, `MAX_*`, `TRUSTED_PROXY_HOPS` and
//! `HSTS_MAX_AGE`; see `docs/runbooks/gateway.md`.

use std::process::ExitCode;

use gateway::{Config, NAME, router};
use platform::health::Readiness;
use platform::{config, telemetry};

const DEFAULT_PORT: u16 = 8080;

#[tokio::main]
async fn main() -> ExitCode {
    platform::main(NAME, DEFAULT_PORT, run).await
}

async fn run() -> Result<(), platform::Error> {
    let telemetry = telemetry::init(NAME)?;
    let addr = config::listen_addr(DEFAULT_PORT)?;
    let config = Config::from_env()?;
    let readiness = Readiness::new();
    let app = router(config, readiness.clone());
    tracing::info!(service = NAME, "starting");
{% if auth.scheme == 'none' %}
    tracing::warn!(
        "authentication is off (auth.scheme = \"none\"): every route answers any client"
    );
{% endif %}
    let served = platform::serve(addr, app, readiness).await;
    telemetry.shutdown().await;
    served?;
    Ok(())
}
