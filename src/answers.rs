//! The answers: what the user chose, in one serde type.
//!
//! Flags, an answers file and the wizard all produce a [`PartialAnswers`] (every key
//! optional); layered together and checked against a blueprint's choices they become
//! [`Answers`], the single value that rendering reads and that is recorded in every
//! generated repository at `.new-service/answers.toml`. Validation here covers what does
//! not depend on a blueprint (the naming rule, uniqueness) and asks the blueprint's
//! manifest for the rest (known values, reserved names, defaults).

use serde::{Deserialize, Serialize};

use crate::blueprint::{Blueprint, ChoiceValue};
use crate::error::{Error, Result};

/// Where the answers are recorded inside a generated repository.
pub const ANSWERS_PATH: &str = ".new-service/answers.toml";

/// Longest allowed name.
pub const MAX_NAME_LEN: usize = 40;

/// Names no service may take, whatever the blueprint: Rust keywords and the crates of
/// the standard distribution (a service becomes a crate of the same name).
const RUST_RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// A complete, validated set of answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// System name: the repository folder and the prefix of everything deployed.
    pub name: String,
    /// Free text describing the system.
    pub description: String,
    /// Owning team or person; may be empty.
    pub owner: String,
    /// The services, in the order given.
    pub services: Vec<Service>,
    /// Messaging between services.
    pub messaging: Messaging,
    /// Authentication at the edge and between services.
    pub auth: Auth,
    /// The API gateway.
    pub gateway: Gateway,
    /// Continuous integration.
    pub ci: Ci,
}

/// One service of the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Service name; also its crate and folder name.
    pub name: String,
    /// Protocol it serves.
    pub protocol: String,
}

/// `messaging.*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    /// Message broker, or `none`.
    pub broker: String,
}

/// `auth.*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Authentication scheme at the gateway.
    pub scheme: String,
    /// Mutual TLS between services.
    pub mtls: bool,
}

/// `gateway.*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Whether to generate the gateway.
    pub enabled: bool,
}

/// `ci.*` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ci {
    /// CI provider, or `none`.
    pub provider: String,
}

/// Answers as they arrive from flags, a file or the wizard: any key may be missing.
/// The same keys as [`Answers`], plus the `[generator]` table a recorded file carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialAnswers {
    /// See [`Answers::name`].
    pub name: Option<String>,
    /// See [`Answers::description`].
    pub description: Option<String>,
    /// See [`Answers::owner`].
    pub owner: Option<String>,
    /// See [`Answers::services`].
    pub services: Option<Vec<Service>>,
    /// See [`Answers::messaging`].
    #[serde(default)]
    pub messaging: PartialMessaging,
    /// See [`Answers::auth`].
    #[serde(default)]
    pub auth: PartialAuth,
    /// See [`Answers::gateway`].
    #[serde(default)]
    pub gateway: PartialGateway,
    /// See [`Answers::ci`].
    #[serde(default)]
    pub ci: PartialCi,
    /// Versions recorded by a previous generation; informational on input.
    #[serde(skip_serializing)]
    pub generator: Option<Generator>,
}

/// Optional `messaging.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialMessaging {
    /// See [`Messaging::broker`].
    pub broker: Option<String>,
}

/// Optional `auth.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialAuth {
    /// See [`Auth::scheme`].
    pub scheme: Option<String>,
    /// See [`Auth::mtls`].
    pub mtls: Option<bool>,
}

/// Optional `gateway.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialGateway {
    /// See [`Gateway::enabled`].
    pub enabled: Option<bool>,
}

/// Optional `ci.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialCi {
    /// See [`Ci::provider`].
    pub provider: Option<String>,
}

/// The `[generator]` table of a recorded answers file: what produced the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// `new-service` version.
    pub tool_version: String,
    /// Blueprint name.
    pub blueprint: String,
    /// Blueprint version.
    pub blueprint_version: String,
}

/// The recorded file: the answers plus the generator table.
#[derive(Serialize)]
struct Recorded<'a> {
    #[serde(flatten)]
    answers: &'a Answers,
    generator: &'a Generator,
}

impl Answers {
    /// The TOML text recorded at [`ANSWERS_PATH`].
    pub fn to_recorded_toml(&self, generator: &Generator) -> String {
        let body = toml::to_string(&Recorded {
            answers: self,
            generator,
        })
        .expect("answers always serialize to TOML");
        format!(
            "# Answers this repository was generated from, by new-service.\n\
             # `new-service add` and `new-service update` read them; `--answers` accepts them.\n\n{body}"
        )
    }
}

impl From<Answers> for PartialAnswers {
    fn from(a: Answers) -> Self {
        PartialAnswers {
            name: Some(a.name),
            description: Some(a.description),
            owner: Some(a.owner),
            services: Some(a.services),
            messaging: PartialMessaging {
                broker: Some(a.messaging.broker),
            },
            auth: PartialAuth {
                scheme: Some(a.auth.scheme),
                mtls: Some(a.auth.mtls),
            },
            gateway: PartialGateway {
                enabled: Some(a.gateway.enabled),
            },
            ci: PartialCi {
                provider: Some(a.ci.provider),
            },
            generator: None,
        }
    }
}

impl PartialAnswers {
    /// Parses an answers file's text; `path` is for the error message.
    pub fn from_toml(text: &str, path: &std::path::Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            Error::AnswersFile {
                path: path.to_owned(),
                message: e.message().trim().to_owned(),
                line,
                column,
            }
        })
    }

    /// These answers with every key that `other` sets taken from `other`.
    pub fn overlay(self, other: PartialAnswers) -> PartialAnswers {
        PartialAnswers {
            name: other.name.or(self.name),
            description: other.description.or(self.description),
            owner: other.owner.or(self.owner),
            services: other.services.or(self.services),
            messaging: PartialMessaging {
                broker: other.messaging.broker.or(self.messaging.broker),
            },
            auth: PartialAuth {
                scheme: other.auth.scheme.or(self.auth.scheme),
                mtls: other.auth.mtls.or(self.auth.mtls),
            },
            gateway: PartialGateway {
                enabled: other.gateway.enabled.or(self.gateway.enabled),
            },
            ci: PartialCi {
                provider: other.ci.provider.or(self.ci.provider),
            },
            generator: other.generator.or(self.generator),
        }
    }

    /// The keys still unanswered, each with the flag that answers it.
    pub fn missing(&self) -> Vec<String> {
        let keys: [(&str, &str, bool); 9] = [
            ("name", "NAME", self.name.is_some()),
            ("description", "--description", self.description.is_some()),
            ("owner", "--owner", self.owner.is_some()),
            (
                "services",
                "--service NAME:PROTOCOL",
                self.services.is_some(),
            ),
            (
                "messaging.broker",
                "--messaging",
                self.messaging.broker.is_some(),
            ),
            ("auth.scheme", "--auth", self.auth.scheme.is_some()),
            ("auth.mtls", "--mtls", self.auth.mtls.is_some()),
            (
                "gateway.enabled",
                "--gateway / --no-gateway",
                self.gateway.enabled.is_some(),
            ),
            ("ci.provider", "--ci", self.ci.provider.is_some()),
        ];
        keys.iter()
            .filter(|(_, _, present)| !present)
            .map(|(key, flag, _)| format!("{key} ({flag})"))
            .collect()
    }

    /// Completes the answers with the blueprint's defaults and validates them.
    ///
    /// With `take_defaults` false, any missing key is an error that lists them all.
    pub fn resolve(self, blueprint: &Blueprint, take_defaults: bool) -> Result<Answers> {
        let missing = self.missing();
        if !take_defaults && !missing.is_empty() {
            return Err(Error::MissingAnswers { missing });
        }
        let choices = &blueprint.manifest.choices;
        let name = self.name.ok_or_else(|| Error::MissingAnswers {
            missing: vec!["name (NAME)".into()],
        })?;
        validate_name("name", &name)?;
        let description = match self.description {
            Some(d) => d,
            None => blueprint.default_description(&name)?,
        };
        let services = self.services.unwrap_or_else(|| {
            vec![Service {
                name: blueprint.manifest.defaults.service_name.clone(),
                protocol: choices.protocol.default.to_string(),
            }]
        });
        let answers = Answers {
            name,
            description,
            owner: self.owner.unwrap_or_default(),
            services,
            messaging: Messaging {
                broker: self
                    .messaging
                    .broker
                    .unwrap_or_else(|| choices.broker.default.to_string()),
            },
            auth: Auth {
                scheme: self
                    .auth
                    .scheme
                    .unwrap_or_else(|| choices.auth.default.to_string()),
                mtls: self
                    .auth
                    .mtls
                    .unwrap_or(choices.mtls.default == ChoiceValue::Bool(true)),
            },
            gateway: Gateway {
                enabled: self
                    .gateway
                    .enabled
                    .unwrap_or(choices.gateway.default == ChoiceValue::Bool(true)),
            },
            ci: Ci {
                provider: self
                    .ci
                    .provider
                    .unwrap_or_else(|| choices.ci.default.to_string()),
            },
        };
        answers.validate(blueprint)?;
        Ok(answers)
    }
}

impl Answers {
    /// Checks every rule: names, reserved words, uniqueness, and each choice against
    /// what the blueprint renders.
    pub fn validate(&self, blueprint: &Blueprint) -> Result<()> {
        validate_name("name", &self.name)?;
        if self.services.is_empty() {
            return Err(Error::InvalidValue {
                field: "services".into(),
                value: "[]".into(),
                rule: "a system has at least one service".into(),
            });
        }
        let manifest = &blueprint.manifest;
        for (i, service) in self.services.iter().enumerate() {
            validate_service_name(i, &service.name, &self.services[..i], blueprint)?;
            manifest.choices.protocol.check(
                &format!("services[{i}].protocol"),
                &ChoiceValue::Text(service.protocol.clone()),
                blueprint,
            )?;
        }
        let c = &manifest.choices;
        c.broker.check(
            "messaging.broker",
            &ChoiceValue::Text(self.messaging.broker.clone()),
            blueprint,
        )?;
        c.auth.check(
            "auth.scheme",
            &ChoiceValue::Text(self.auth.scheme.clone()),
            blueprint,
        )?;
        c.mtls
            .check("auth.mtls", &ChoiceValue::Bool(self.auth.mtls), blueprint)?;
        c.gateway.check(
            "gateway.enabled",
            &ChoiceValue::Bool(self.gateway.enabled),
            blueprint,
        )?;
        c.ci.check(
            "ci.provider",
            &ChoiceValue::Text(self.ci.provider.clone()),
            blueprint,
        )?;
        Ok(())
    }
}

/// Checks `value` against the naming rule `^[a-z][a-z0-9-]{0,38}[a-z0-9]$`
/// (a DNS-1123 label that is also a valid crate name).
pub fn validate_name(field: &str, value: &str) -> Result<()> {
    let problem = if value.is_empty() {
        Some("is empty")
    } else if value.chars().count() > MAX_NAME_LEN {
        Some("is longer than 40 characters")
    } else if !value.is_ascii() {
        Some("contains non-ASCII characters")
    } else if value.bytes().any(|b| b.is_ascii_uppercase()) {
        Some("contains uppercase letters")
    } else if value.contains('_') {
        Some("contains '_'")
    } else if value
        .bytes()
        .any(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        Some("contains characters other than a-z, 0-9 and '-'")
    } else if value.as_bytes()[0].is_ascii_digit() {
        Some("starts with a digit")
    } else if value.starts_with('-') {
        Some("starts with '-'")
    } else if value.ends_with('-') {
        Some("ends with '-'")
    } else if value.len() < 2 {
        Some("is shorter than 2 characters")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::InvalidName {
            field: field.to_owned(),
            value: value.to_owned(),
            problem,
            suggestion: suggest_name(value),
        }),
    }
}

/// Checks the name of service number `index` given the services before it: the naming
/// rule, reserved names, uniqueness.
pub fn validate_service_name(
    index: usize,
    name: &str,
    before: &[Service],
    blueprint: &Blueprint,
) -> Result<()> {
    let field = format!("services[{index}].name");
    validate_name(&field, name)?;
    check_reserved(&field, name, blueprint)?;
    // `a-b` and `a--b` are different names but the same crate and environment prefix.
    let key = |n: &str| {
        n.split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("_")
    };
    if before.iter().any(|s| key(&s.name) == key(name)) {
        return Err(Error::DuplicateService {
            field,
            value: name.to_owned(),
        });
    }
    Ok(())
}

/// A valid name close to `value`, if one can be made.
fn suggest_name(value: &str) -> Option<String> {
    let mut out = String::new();
    for c in value.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        if out.is_empty() && c.is_ascii_digit() {
            continue;
        }
        out.push(c);
    }
    out.truncate(MAX_NAME_LEN);
    let out = out.trim_end_matches('-').to_owned();
    (out != value && validate_name("", &out).is_ok()).then_some(out)
}

fn check_reserved(field: &str, value: &str, blueprint: &Blueprint) -> Result<()> {
    let as_crate = value.replace('-', "_");
    let reserved_by = if RUST_RESERVED.contains(&as_crate.as_str()) {
        "Rust".to_owned()
    } else if blueprint
        .manifest
        .blueprint
        .reserved_names
        .iter()
        .any(|r| r == value)
    {
        format!("blueprint {}", blueprint.manifest.blueprint.name)
    } else {
        return Ok(());
    };
    Err(Error::ReservedName {
        field: field.to_owned(),
        value: value.to_owned(),
        reserved_by,
    })
}

/// 1-based line and column of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in ["ab", "orders", "order-items", "a1", "x".repeat(40).as_str()] {
            assert!(validate_name("name", name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_each_broken_rule_with_its_own_reason() {
        let cases = [
            ("", "is empty"),
            ("Orders", "contains uppercase letters"),
            ("1orders", "starts with a digit"),
            ("my_orders", "contains '_'"),
            ("a/b", "contains characters other than a-z, 0-9 and '-'"),
            ("..", "contains characters other than a-z, 0-9 and '-'"),
            (
                "my orders",
                "contains characters other than a-z, 0-9 and '-'",
            ),
            ("café", "contains non-ASCII characters"),
            ("orders-", "ends with '-'"),
            ("-orders", "starts with '-'"),
            ("a", "is shorter than 2 characters"),
        ];
        for (name, expected) in cases {
            match validate_name("name", name) {
                Err(Error::InvalidName { problem, .. }) => {
                    assert_eq!(problem, expected, "{name:?}")
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        let long = "a".repeat(41);
        assert!(matches!(
            validate_name("name", &long),
            Err(Error::InvalidName {
                problem: "is longer than 40 characters",
                ..
            })
        ));
    }

    #[test]
    fn suggests_a_valid_neighbour() {
        assert_eq!(suggest_name("My_Orders").as_deref(), Some("my-orders"));
        assert_eq!(suggest_name("1st service").as_deref(), Some("st-service"));
        assert_eq!(suggest_name("..").as_deref(), None);
    }

    #[test]
    fn toml_errors_carry_line_and_column() {
        let err = PartialAnswers::from_toml("name = \"a\"\nservices = [\n", "x.toml".as_ref())
            .unwrap_err();
        match err {
            Error::AnswersFile {
                line: Some(line),
                column: Some(_),
                ..
            } => assert!(line >= 2),
            other => panic!("{other:?}"),
        }
        let err = PartialAnswers::from_toml("colour = \"blue\"\n", "x.toml".as_ref()).unwrap_err();
        match err {
            Error::AnswersFile { message, line, .. } => {
                assert!(message.contains("colour"), "{message}");
                assert_eq!(line, Some(1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overlay_prefers_the_later_layer() {
        let file = PartialAnswers {
            name: Some("from-file".into()),
            ci: PartialCi {
                provider: Some("gitlab".into()),
            },
            ..Default::default()
        };
        let flags = PartialAnswers {
            name: Some("from-flags".into()),
            ..Default::default()
        };
        let merged = file.overlay(flags);
        assert_eq!(merged.name.as_deref(), Some("from-flags"));
        assert_eq!(merged.ci.provider.as_deref(), Some("gitlab"));
    }
}
