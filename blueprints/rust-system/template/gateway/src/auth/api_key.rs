//! API keys (`auth.scheme = "api-key"`).
//!
//! Every request to a service must carry a key, in `Authorization: ApiKey <key>` or in
//! `X-API-Key: <key>` (both only if they carry the same key). A key reads
//! `ak_<id>_<secret>`: the id names it and is not secret, the secret is 32 random bytes
//! from the operating system, base64url. `gateway api-key create <id> [role...]` makes
//! one.
//!
//! The gateway never stores a key, only entries `<id>:<sha256>:<roles>`: the id, the
//! SHA-256 digest of the whole key in hex, and the key's roles joined with `+`. They
//! come from `API_KEYS` (separated by commas or newlines) and `API_KEYS_FILE` (one a
//! line, `#` starts a comment line). A key is found by its id and its digest compared in
//! constant time; its subject is its id, its roles those of its entry.
//!
//! Rotation: add the entry of a new key (under a new id), move the clients to it, then
//! remove the old entry. Revocation: remove the entry, or name its id in
//! `API_KEYS_REVOKED` (comma-separated).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::header::{self, HeaderMap, HeaderName};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use platform::config::{self, ConfigError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Identity, Refusal};

/// The first part of every key, so that keys are easy to recognise (and to scan for).
pub const KEY_PREFIX: &str = "ak";
/// The header that may carry a key instead of `Authorization: ApiKey <key>`.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// The development key of `deploy/compose.yaml` and the README: an entry for it is
/// refused unless `API_KEYS_ALLOW_DEV_KEY=true`, so it can never protect a production
/// system by accident.
pub const DEV_KEY: &str = "ak_dev_dev-only-key-do-not-use-in-production-0123456789";
/// The random bytes of a key's secret.
const SECRET_BYTES: usize = 32;
/// The longest key id.
const MAX_ID_CHARS: usize = 64;
/// The refusal of every key that does not verify: it does not tell an unknown id, a
/// revoked key and a wrong secret apart.
const NOT_A_KEY: &str = "unknown, revoked or wrong API key";

/// A SHA-256 digest.
type Sha256Digest = [u8; 32];

/// What the gateway knows of one key.
#[derive(Clone)]
struct Entry {
    digest: Sha256Digest,
    roles: HashSet<String>,
}

/// API key verification against the entries of `API_KEYS` and `API_KEYS_FILE`; see
/// `docs/runbooks/gateway.md`.
#[derive(Clone)]
pub struct ApiKeyVerifier {
    keys: Arc<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ApiKeyVerifier {
    // Key ids only: never a digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort_unstable();
        f.debug_struct("ApiKeyVerifier")
            .field("ids", &ids)
            .finish_non_exhaustive()
    }
}

impl ApiKeyVerifier {
    /// The scheme of the `WWW-Authenticate` challenge.
    pub(crate) const CHALLENGE: &str = "ApiKey";
    /// The credentials a request must carry, as refusals word it.
    pub(crate) const EXPECTED: &str = "`Authorization: ApiKey <key>` or `X-API-Key: <key>`";

    /// Accepts the keys of `entries` (as in `API_KEYS`, the development key included)
    /// except those whose id is in `revoked`.
    pub fn new(entries: &str, revoked: &[&str]) -> Result<Self, ConfigError> {
        let mut keys = HashMap::new();
        parse_entries("API_KEYS", entries, true, &mut keys)?;
        for id in revoked {
            keys.remove(*id);
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// Reads `API_KEYS`, `API_KEYS_FILE`, `API_KEYS_REVOKED` and
    /// `API_KEYS_ALLOW_DEV_KEY`. Refuses to start without an active key, with a
    /// malformed entry, the same id twice, or the entry of [`DEV_KEY`] unless
    /// `API_KEYS_ALLOW_DEV_KEY=true`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let allow_dev = config::var_or::<bool>("API_KEYS_ALLOW_DEV_KEY", "false")?;
        let mut keys = HashMap::new();
        if let Some(entries) = config::optional_var::<String>("API_KEYS")? {
            parse_entries("API_KEYS", &entries, allow_dev, &mut keys)?;
        }
        if let Some(file) = config::optional_var::<PathBuf>("API_KEYS_FILE")? {
            let entries = std::fs::read_to_string(&file).map_err(|error| ConfigError::Invalid {
                name: "API_KEYS_FILE",
                value: file.display().to_string(),
                reason: error.to_string(),
            })?;
            let entries: String = entries
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .map(|line| format!("{line}\n"))
                .collect();
            parse_entries("API_KEYS_FILE", &entries, allow_dev, &mut keys)?;
        }
        if let Some(revoked) = config::optional_var::<String>("API_KEYS_REVOKED")? {
            for id in revoked
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
            {
                check_id(id).map_err(|reason| ConfigError::Invalid {
                    name: "API_KEYS_REVOKED",
                    value: id.to_owned(),
                    reason,
                })?;
                keys.remove(id);
            }
        }
        if keys.is_empty() {
            return Err(ConfigError::Invalid {
                name: "API_KEYS",
                value: String::new(),
                reason: "no active key: set API_KEYS or API_KEYS_FILE to the entries \
                         `gateway api-key create <id> [role...]` prints (and check \
                         API_KEYS_REVOKED)"
                    .to_owned(),
            });
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// The identity of the key a request carries.
    pub(crate) async fn verify(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        let key = presented_key(headers)?;
        let (id, _) = split_key(key).ok_or_else(|| {
            Refusal::Invalid(format!(
                "malformed API key: expected `{KEY_PREFIX}_<id>_<secret>`"
            ))
        })?;
        let entry = self.keys.get(id);
        // An unknown id costs a comparison too, against a digest no key has.
        let expected = entry.map_or([0; 32], |entry| entry.digest);
        let matches: bool = sha256(key).ct_eq(&expected).into();
        match entry {
            Some(entry) if matches => Ok(Identity {
                subject: id.to_owned(),
                roles: entry.roles.clone(),
            }),
            _ => Err(Refusal::Invalid(NOT_A_KEY.to_owned())),
        }
    }
}

/// The key of a request: `Authorization: ApiKey <key>`, `X-API-Key: <key>`, or both
/// when they agree.
fn presented_key(headers: &HeaderMap) -> Result<&str, Refusal> {
    let invalid = |reason: &str| Refusal::Invalid(reason.to_owned());
    if headers.get_all(header::AUTHORIZATION).iter().count() > 1
        || headers.get_all(&X_API_KEY).iter().count() > 1
    {
        return Err(invalid("more than one key"));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
                .map(|(_, key)| key.trim())
                .ok_or_else(|| invalid("expected `Authorization: ApiKey <key>`"))
        })
        .transpose()?;
    let x_api_key = headers
        .get(&X_API_KEY)
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| invalid("`X-API-Key` is not a key"))
        })
        .transpose()?;
    match (authorization, x_api_key) {
        (None, None) => Err(Refusal::Missing),
        (Some(one), Some(other)) if !bool::from(one.as_bytes().ct_eq(other.as_bytes())) => Err(
            invalid("`Authorization` and `X-API-Key` carry different keys"),
        ),
        (Some(key), _) | (None, Some(key)) => Ok(key),
    }
}

/// Removes the key headers, so that the key never reaches a service.
pub(crate) fn strip_key(headers: &mut HeaderMap) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(&X_API_KEY);
}

/// The id and secret of `ak_<id>_<secret>`.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key
        .strip_prefix(KEY_PREFIX)?
        .strip_prefix('_')?
        .split_once('_')?;
    (check_id(id).is_ok() && !secret.is_empty()).then_some((id, secret))
}

/// Reads the entries of `text` (from the variable `name`) into `keys`.
fn parse_entries(
    name: &'static str,
    text: &str,
    allow_dev: bool,
    keys: &mut HashMap<String, Entry>,
) -> Result<(), ConfigError> {
    let dev_digest = sha256(DEV_KEY);
    let entries = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for (index, entry) in entries.enumerate() {
        let invalid = |value: String, reason: &str| ConfigError::Invalid {
            name,
            value,
            reason: reason.to_owned(),
        };
        let number = index + 1;
        if entry.starts_with(&format!("{KEY_PREFIX}_")) && !entry.contains(':') {
            return Err(invalid(
                format!("<entry {number}>"),
                "this is a key, not an entry: store only the entry `gateway api-key create` prints",
            ));
        }
        let mut parts = entry.splitn(3, ':');
        let (id, digest, roles) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let value = format!("<entry {number}: {id}>");
        check_id(id).map_err(|reason| invalid(format!("<entry {number}>"), &reason))?;
        let Some(digest) = parse_digest(digest) else {
            return Err(invalid(
                value,
                "expected `<id>:<sha256 of the key, 64 hex digits>:<role>+<role>...`",
            ));
        };
        if !allow_dev && bool::from(digest.ct_eq(&dev_digest)) {
            return Err(invalid(
                value,
                "the published development key is refused unless API_KEYS_ALLOW_DEV_KEY=true; \
                 create a key with `gateway api-key create <id> [role...]`",
            ));
        }
        let roles = roles
            .split('+')
            .filter(|role| !role.is_empty())
            .map(|role| {
                check_role(role)
                    .map(|()| role.to_owned())
                    .map_err(|reason| invalid(value.clone(), &reason))
            })
            .collect::<Result<HashSet<_>, _>>()?;
        if keys.contains_key(id) {
            return Err(invalid(
                value,
                "the id is used twice: give every key its own id",
            ));
        }
        keys.insert(id.to_owned(), Entry { digest, roles });
    }
    Ok(())
}

/// 64 hex digits, as a digest.
fn parse_digest(hex: &str) -> Option<Sha256Digest> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

fn sha256(key: &str) -> Sha256Digest {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `id` can name a key: 1 to 64 ASCII letters, digits and `-`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_ID_CHARS
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "a key id is 1 to {MAX_ID_CHARS} ASCII letters, digits and `-`"
        ));
    }
    Ok(())
}

/// Whether `role` can be a role of a key: visible ASCII without `,` or `+`.
pub fn check_role(role: &str) -> Result<(), String> {
    if role.is_empty()
        || !role
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'+')
    {
        return Err(format!(
            "invalid role {role:?}: a role is visible ASCII without `,` or `+`"
        ));
    }
    Ok(())
}

/// A new key and the entry that lets the gateway accept it.
pub struct NewKey {
    /// The key, for the client: shown once, stored nowhere.
    pub key: String,
    /// The entry for `API_KEYS` or `API_KEYS_FILE`.
    pub entry: String,
}

impl std::fmt::Debug for NewKey {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// The entry of `key` with `roles`, as `API_KEYS` takes it.
pub fn entry_for(key: &str, roles: &[String]) -> Result<String, String> {
    let (id, _) =
        split_key(key).ok_or_else(|| format!("not a `{KEY_PREFIX}_<id>_<secret>` key"))?;
    for role in roles {
        check_role(role)?;
    }
    let digest: String = sha256(key).iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{id}:{digest}:{}", roles.join("+")))
}

/// A new random key named `id` with `roles`: what `gateway api-key create` prints.
pub fn create_key(id: &str, roles: &[String]) -> Result<NewKey, String> {
    check_id(id)?;
    let mut secret = [0; SECRET_BYTES];
    getrandom::fill(&mut secret)
        .map_err(|error| format!("the operating system gave no random bytes: {error}"))?;
    let key = format!("{KEY_PREFIX}_{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let entry = entry_for(&key, roles)?;
    Ok(NewKey { key, entry })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(roles: &[&str]) -> Vec<String> {
        roles.iter().map(|role| (*role).to_owned()).collect()
    }

    #[test]
    fn created_keys_are_random_and_verify_against_their_entry() {
        let one = create_key("ci", &roles(&["a:read", "a:write"])).unwrap();
        let two = create_key("ci", &roles(&["a:read"])).unwrap();
        assert_ne!(one.key, two.key);
        assert!(one.key.starts_with("ak_ci_"));
        assert!(one.key.len() >= "ak_ci_".len() + 43);
        assert!(one.entry.starts_with("ci:"));
        assert!(one.entry.ends_with(":a:read+a:write"));
        assert!(!one.entry.contains(&one.key[6..]));
        assert!(!format!("{one:?}").contains(&one.key));
        ApiKeyVerifier::new(&one.entry, &[]).unwrap();
    }

    #[test]
    fn entries_are_checked() {
        let entry = create_key("ci", &[]).unwrap().entry;
        let digest = entry.split(':').nth(1).unwrap();
        for bad in [
            "ci".to_owned(),
            "ci:abc:r".to_owned(),
            format!("c_i:{digest}:r"),
            format!("ci:{digest}:a b"),
            format!("ci:{digest}:r,ci:{digest}:r"),
            create_key("ci", &[]).unwrap().key,
        ] {
            let error = ApiKeyVerifier::new(&bad, &[]).unwrap_err();
            assert!(error.to_string().contains("API_KEYS"), "{error}");
        }
        ApiKeyVerifier::new(&format!("ci:{}:", digest.to_uppercase()), &[]).unwrap();
    }

    #[test]
    fn the_development_key_needs_its_opt_in() {
        let entry = entry_for(DEV_KEY, &[]).unwrap();
        let mut keys = HashMap::new();
        let error = parse_entries("API_KEYS", &entry, false, &mut keys).unwrap_err();
        assert!(
            error.to_string().contains("API_KEYS_ALLOW_DEV_KEY"),
            "{error}"
        );
        parse_entries("API_KEYS", &entry, true, &mut keys).unwrap();
        // The digest of the entry in `deploy/compose.yaml`.
        assert!(
            entry.starts_with(
                "dev:5d19e90bcd7060b225eaabb6a46cdc124f24d0272ed814681a36498d70d54051:"
            )
        );
    }

    #[test]
    fn ids_and_roles_are_restricted() {
        assert!(check_id("ci-2026").is_ok());
        for id in ["", "a_b", "a:b", "a,b", "é", &"a".repeat(65)] {
            assert!(check_id(id).is_err(), "{id}");
        }
        assert!(check_role("fake:read").is_ok());
        for role in ["", "a,b", "a+b", "a b"] {
            assert!(check_role(role).is_err(), "{role}");
        }
    }
}
