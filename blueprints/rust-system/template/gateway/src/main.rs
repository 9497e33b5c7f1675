//! Runs the API gateway. Configuration: `HOST`, `PORT` (default 8080), `RUST_LOG`,
//! `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, one `<SERVICE>_URL` and
//! `<SERVICE>_TIMEOUT_MS` per service, the `UPSTREAM_*` resilience settings and the
//! edge protections' `RATE_LIMIT_*`, `CORS_*`, `MAX_*`, `TRUSTED_PROXY_HOPS` and
//! `HSTS_MAX_AGE`{% if auth.scheme == 'jwt' %}, and the `JWT_*` and `<SERVICE>_*_ROLE` settings of
//! authentication{% elsif auth.scheme == 'api-key' %}, and the `API_KEYS*` and `<SERVICE>_*_ROLE` settings of
//! authentication{% elsif auth.scheme == 'oidc' %}, and the `OIDC_*` and `<SERVICE>_*_ROLE` settings of
//! authentication{% endif %}; see `docs/runbooks/gateway.md`.
{% if auth.scheme == 'jwt' %}
//!
//! `gateway token <subject> [role...]` prints an HS256 token signed with `JWT_SECRET`,
//! valid for an hour, for trying the API locally.
{% endif %}
{% if auth.scheme == 'api-key' %}
//!
//! `gateway api-key create <id> [role...]` prints a new random API key (once, to give
//! to the client) and the entry that lets the gateway accept it (for `API_KEYS`); it
//! writes nothing.
{% endif %}

use std::process::ExitCode;

use gateway::{Config, NAME, router};
use platform::health::Readiness;
use platform::{config, telemetry};

const DEFAULT_PORT: u16 = 8080;
{% if auth.scheme == 'jwt' %}
/// How long a token of `gateway token` is valid.
const TOKEN_LIFETIME_SECONDS: u64 = 3600;
{% endif %}

#[tokio::main]
async fn main() -> ExitCode {
{% if auth.scheme == 'jwt' or auth.scheme == 'api-key' %}
    // Not `args()`, which panics on an argument that is not UTF-8.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
{% endif %}
{% if auth.scheme == 'jwt' %}
    if let Some(("token", rest)) = args.split_first().map(|(c, rest)| (c.as_str(), rest)) {
        return token(rest);
    }
{% endif %}
{% if auth.scheme == 'api-key' %}
    if let Some(("api-key", rest)) = args.split_first().map(|(c, rest)| (c.as_str(), rest)) {
        return api_key(rest);
    }
{% endif %}
    platform::main(NAME, DEFAULT_PORT, run).await
}
{% if auth.scheme == 'jwt' %}

/// `gateway token <subject> [role...]`: prints a development token.
fn token(args: &[String]) -> ExitCode {
    let Some((subject, roles)) = args.split_first() else {
        eprintln!("usage: {NAME} token <subject> [role...]");
        return ExitCode::from(2);
    };
    match gateway::auth::jwt::mint_token(subject, roles, TOKEN_LIFETIME_SECONDS) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{NAME} token: {error}");
            ExitCode::FAILURE
        }
    }
}
{% endif %}
{% if auth.scheme == 'api-key' %}

/// `gateway api-key create <id> [role...]`: prints a new key and its entry.
fn api_key(args: &[String]) -> ExitCode {
    let usage = || {
        eprintln!("usage: {NAME} api-key create <id> [role...]");
        ExitCode::from(2)
    };
    let Some(("create", rest)) = args.split_first().map(|(c, rest)| (c.as_str(), rest)) else {
        return usage();
    };
    let Some((id, roles)) = rest.split_first() else {
        return usage();
    };
    if let Err(reason) = gateway::auth::api_key::check_id(id).and_then(|()| {
        roles
            .iter()
            .try_for_each(|role| gateway::auth::api_key::check_role(role))
    }) {
        eprintln!("{NAME} api-key create: {reason}");
        return usage();
    }
    match gateway::auth::api_key::create_key(id, roles) {
        Ok(created) => {
            eprintln!(
                "The key (first line) is shown only this once: give it to the client. \
                 Add the entry (second line) to API_KEYS or API_KEYS_FILE."
            );
            println!("{}", created.key);
            println!("{}", created.entry);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{NAME} api-key create: {error}");
            ExitCode::FAILURE
        }
    }
}
{% endif %}

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
{% if auth.mtls %}
    // Plain HTTP for clients (TLS ends at the ingress); mutual TLS to the services.
    let served = platform::server::serve_public(addr, app, readiness).await;
{% else %}
    let served = platform::serve(addr, app, readiness).await;
{% endif %}
    telemetry.shutdown().await;
    served?;
    Ok(())
}
