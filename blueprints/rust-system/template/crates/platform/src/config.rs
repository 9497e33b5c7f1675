//! Typed configuration read from environment variables (12-factor).
//!
//! Every error names the variable and the offending value, so a misconfigured
//! deployment fails at startup with a message that says what to fix.

use std::env::{self, VarError};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::Uri;
use axum::http::uri::Scheme;

/// A configuration variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse as the expected type.
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        /// Name of the variable.
        name: &'static str,
        /// The value that was found.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The value is not valid Unicode.
    #[error("environment variable {name} is not valid Unicode")]
    NotUnicode {
        /// Name of the variable.
        name: &'static str,
    },
}

/// Reads and parses the variable `name`, using `default` when it is unset or empty.
pub fn var_or<T>(name: &'static str, default: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match optional_var(name)? {
        Some(value) => Ok(value),
        None => parse(name, default),
    }
}

/// Reads and parses the variable `name`; `None` when it is unset or empty.
pub fn optional_var<T>(name: &'static str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => parse(name, &value).map(Some),
        Ok(_) | Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
    }
}

/// Parses `value` as the content of the variable `name`.
pub fn parse<T>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|error: T::Err| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: error.to_string(),
        })
}

/// The address to listen on: `HOST` (default `0.0.0.0`) and `PORT` (default `default_port`).
pub fn listen_addr(default_port: u16) -> Result<SocketAddr, ConfigError> {
    let host: IpAddr = var_or("HOST", "0.0.0.0")?;
    let port: u16 = var_or("PORT", &default_port.to_string())?;
    Ok(SocketAddr::new(host, port))
}

{% if auth.mtls %}
/// What `ADMIN_PORT` defaults to: `PORT` plus this.
pub const ADMIN_PORT_OFFSET: u16 = 1000;

/// The plain HTTP admin address for probes and metrics: the host of `listen` and
/// `ADMIN_PORT` (default `PORT` + [`ADMIN_PORT_OFFSET`]).
pub fn admin_addr(listen: SocketAddr) -> Result<SocketAddr, ConfigError> {
    let port = match optional_var::<u16>("ADMIN_PORT")? {
        Some(port) => port,
        None => listen
            .port()
            .checked_add(ADMIN_PORT_OFFSET)
            .ok_or_else(|| ConfigError::Invalid {
                name: "PORT",
                value: listen.port().to_string(),
                reason: format!("PORT + {ADMIN_PORT_OFFSET} is not a port: set ADMIN_PORT"),
            })?,
    };
    if port == listen.port() {
        return Err(ConfigError::Invalid {
            name: "ADMIN_PORT",
            value: port.to_string(),
            reason: "must differ from PORT".to_owned(),
        });
    }
    Ok(SocketAddr::new(listen.ip(), port))
}

/// An absolute `http://` or `https://` URL without query, used as the base of
/// upstream requests.
{% else %}
/// An absolute `http://` URL without query, used as the base of upstream requests.
{% endif %}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(Uri);

impl HttpUrl {
    /// The URL for `path_and_query` (which starts with `/`) below this base URL.
    pub fn join(&self, path_and_query: &str) -> Result<Uri, axum::http::Error> {
        let base = self.0.path().trim_end_matches('/');
        Uri::builder()
{% if auth.mtls %}
            .scheme(self.0.scheme().cloned().unwrap_or(Scheme::HTTP))
{% else %}
            .scheme(Scheme::HTTP)
{% endif %}
            .authority(self.authority())
            .path_and_query(format!("{base}{path_and_query}"))
            .build()
    }

{% if auth.mtls %}
    /// Whether the URL is `https://`.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == Some(&Scheme::HTTPS)
    }

{% endif %}
    /// The `host[:port]` part of the URL.
    pub fn authority(&self) -> &str {
        self.0
            .authority()
            .map_or("", |authority| authority.as_str())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let uri: Uri = value
            .parse()
            .map_err(|error| format!("not a URL ({error})"))?;
{% if auth.mtls %}
        if uri.scheme() != Some(&Scheme::HTTP) && uri.scheme() != Some(&Scheme::HTTPS) {
            return Err("expected an http:// or https:// URL".to_owned());
        }
{% else %}
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err("expected an http:// URL".to_owned());
        }
{% endif %}
        if uri.authority().is_none() {
            return Err("the URL has no host".to_owned());
        }
        if uri.query().is_some() {
            return Err("the URL must not have a query".to_owned());
        }
        Ok(Self(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_port() {
        assert_eq!(parse::<u16>("PORT", " 8081 "), Ok(8081));
    }

    #[test]
    fn invalid_port_names_the_variable_and_value() {
        let error = parse::<u16>("PORT", "eighty").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("PORT"), "{message}");
        assert!(message.contains("eighty"), "{message}");
    }

    #[test]
    fn unset_variable_uses_the_default() {
        let port: u16 = var_or("PLATFORM_TEST_SURELY_UNSET_PORT", "9000").unwrap();
        assert_eq!(port, 9000);
    }

    #[test]
    fn unset_optional_variable_is_none() {
        let value: Option<u16> = optional_var("PLATFORM_TEST_SURELY_UNSET_PORT").unwrap();
        assert_eq!(value, None);
    }

    #[test]
    fn http_url_joins_paths_below_its_base() {
        let url: HttpUrl = parse("UPSTREAM_URL", "http://127.0.0.1:8081/base/").unwrap();
        assert_eq!(url.authority(), "127.0.0.1:8081");
        assert_eq!(
            url.join("/v1/items?limit=5").unwrap(),
            "http://127.0.0.1:8081/base/v1/items?limit=5"
        );
    }

{% if auth.mtls %}
    #[test]
    fn https_urls_keep_their_scheme() {
        let url: HttpUrl = parse("UPSTREAM_URL", "https://catalog:8081").unwrap();
        assert_eq!(
            url.join("/v1/items").unwrap(),
            "https://catalog:8081/v1/items"
        );
    }

    #[test]
    fn the_admin_port_defaults_to_port_plus_1000() {
        let listen: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(admin_addr(listen).unwrap().port(), 9081);
        let error = admin_addr("0.0.0.0:65000".parse().unwrap()).unwrap_err();
        assert!(error.to_string().contains("ADMIN_PORT"), "{error}");
    }

{% endif %}
    #[test]
    fn http_url_rejects_other_schemes_and_relative_urls() {
        for value in [
{% if auth.mtls %}
            "ftp://example.com",
{% else %}
            "https://example.com",
{% endif %}
            "example.com:80",
            "/v1",
            "http://host/?q=1",
        ] {
            let error = parse::<HttpUrl>("UPSTREAM_URL", value).unwrap_err();
            assert!(error.to_string().contains("UPSTREAM_URL"), "{error}");
        }
    }
}
