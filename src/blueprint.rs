//! Blueprint sources, manifests and choices: blueprints as data.
//!
//! A [`Source`] is read whole into memory, from the copy embedded in the binary or from a
//! folder (`--blueprints DIR`), and holds `blueprints/<name>/` folders and a `hooks/`
//! folder. Each blueprint is a `blueprint.toml` manifest ([`Manifest`]) and a `template/`
//! tree. The manifest declares the blueprint's choices (which values it renders, which
//! are planned), its defaults, its file rules and its hooks, so a new choice value or a
//! new file is a blueprint change and never an engine change. Nothing here renders.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Name of the manifest file inside a blueprint folder.
pub const MANIFEST_FILE: &str = "blueprint.toml";

/// One file of a source: its bytes and whether it is executable.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// File contents.
    pub bytes: Cow<'static, [u8]>,
    /// Whether the file carries an executable bit.
    pub executable: bool,
}

/// A set of blueprints and the hooks they may run.
#[derive(Debug)]
pub struct Source {
    /// Where it came from, for messages ("built-in" or a path).
    pub label: String,
    blueprints: Vec<Blueprint>,
    hooks: BTreeMap<String, SourceFile>,
}

/// One blueprint: a manifest and its template files.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// The parsed `blueprint.toml`.
    pub manifest: Manifest,
    /// Template files keyed by path relative to `template/`, with `/` separators.
    pub templates: BTreeMap<String, SourceFile>,
    /// Path of the manifest inside the source, for messages.
    pub manifest_path: String,
}

/// `blueprint.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Identity of the blueprint.
    pub blueprint: Meta,
    /// Defaults for free-text answers.
    pub defaults: Defaults,
    /// The choices and the values this blueprint renders.
    pub choices: Choices,
    /// Rules that place, fan out and condition template files.
    #[serde(default)]
    pub files: Vec<FileRule>,
    /// Scripts run after rendering.
    #[serde(default)]
    pub hooks: Vec<HookRule>,
}

/// `[blueprint]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Blueprint name.
    pub name: String,
    /// Blueprint version, recorded in generated repositories.
    pub version: String,
    /// One line on what it generates.
    pub description: String,
    /// Whether `new` uses it when no `--blueprint` is given.
    #[serde(default)]
    pub default: bool,
    /// Service names this blueprint reserves (its own crates, for instance).
    #[serde(default)]
    pub reserved_names: Vec<String>,
}

/// `[defaults]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Liquid template for the default description (sees `name`).
    pub description: String,
    /// Name of the one service a system gets by default.
    pub service_name: String,
}

/// `[choices.*]`, one per answer key that has a fixed set of values.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Choices {
    /// `services[].protocol`.
    pub protocol: Choice,
    /// `messaging.broker`.
    pub broker: Choice,
    /// `auth.scheme`.
    pub auth: Choice,
    /// `auth.mtls`.
    pub mtls: Choice,
    /// `gateway.enabled`.
    pub gateway: Choice,
    /// `ci.provider`.
    pub ci: Choice,
}

/// The values one choice may take in this blueprint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// Value taken when the user gives none.
    pub default: ChoiceValue,
    /// Values this blueprint renders.
    pub values: Vec<ChoiceOption>,
    /// Values known to the product that this blueprint cannot render yet.
    #[serde(default)]
    pub planned: Vec<ChoiceValue>,
}

/// One renderable value with its help line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    /// The value.
    pub value: ChoiceValue,
    /// Shown in the wizard and `blueprints show`.
    pub help: String,
    /// Facts about this value that templates read as `vars.<choice>.<key>` when it is
    /// chosen (a broker's URL variable, its port…), so that a file common to every
    /// value needs no `case` over them.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub vars: toml::Table,
}

/// A choice value: text for most keys, a boolean for switches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ChoiceValue {
    /// A switch such as `auth.mtls`.
    Bool(bool),
    /// A named value such as `rest`.
    Text(String),
}

impl fmt::Display for ChoiceValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceValue::Bool(b) => write!(f, "{b}"),
            ChoiceValue::Text(s) => f.write_str(s),
        }
    }
}

impl Choice {
    /// The renderable option whose value is `value`.
    pub fn option(&self, value: &ChoiceValue) -> Option<&ChoiceOption> {
        self.values.iter().find(|o| &o.value == value)
    }

    /// The values this blueprint renders, as text.
    pub fn supported(&self) -> Vec<String> {
        self.values.iter().map(|o| o.value.to_string()).collect()
    }

    /// Checks `value` for answer key `field`: unknown values and planned ones are errors.
    pub fn check(&self, field: &str, value: &ChoiceValue, blueprint: &Blueprint) -> Result<()> {
        if self.values.iter().any(|o| &o.value == value) {
            return Ok(());
        }
        if self.planned.contains(value) {
            let meta = &blueprint.manifest.blueprint;
            return Err(Error::NotYetSupported {
                field: field.to_owned(),
                value: value.to_string(),
                blueprint: format!("{} {}", meta.name, meta.version),
                supported: self.supported(),
            });
        }
        let mut valid = self.supported();
        valid.extend(self.planned.iter().map(ToString::to_string));
        Err(Error::UnknownChoice {
            field: field.to_owned(),
            value: value.to_string(),
            valid,
        })
    }
}

/// `[[files]]`: how the template files under `from` are placed in the output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    /// A template file path, or a folder when it ends in `/`.
    pub from: String,
    /// Liquid template of the destination (a folder when `from` is one); defaults to `from`.
    pub to: Option<String>,
    /// `"service"`: one copy per service, with `service` bound in templates.
    pub each: Option<String>,
    /// Liquid condition; the files are skipped when it is false.
    pub when: Option<String>,
    /// Whether the files are liquid templates (true) or copied byte for byte.
    #[serde(default = "yes")]
    pub render: bool,
    /// Whether the output files are executable.
    #[serde(default)]
    pub executable: bool,
}

fn yes() -> bool {
    true
}

/// `[[hooks]]`: a script from the source's `hooks/` folder, run in the new repository.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookRule {
    /// Name shown in progress and errors.
    pub name: String,
    /// Script path relative to the source's `hooks/` folder.
    pub run: String,
    /// When it runs.
    pub stage: HookStage,
    /// Liquid condition; the hook is skipped when it is false.
    pub when: Option<String>,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookStage {
    /// After the files are written, before the commit: what it writes is committed.
    BeforeCommit,
    /// After the commit (or after writing, with `--no-git`): for set-up outside the tree.
    AfterCommit,
    /// In `update` and `add` only, in the repository once the merged files are written
    /// and before the merge commit: what it changes (a lock file brought in line) is
    /// committed with the merge, or undone with it. Skipped when the merge left conflicts.
    AfterMerge,
}

impl FileRule {
    /// Whether this rule governs template `path`.
    pub fn matches(&self, path: &str) -> bool {
        if self.from.ends_with('/') {
            path.starts_with(&self.from)
        } else {
            path == self.from
        }
    }
}

impl Source {
    /// The source embedded in this binary.
    pub fn builtin() -> Result<Source> {
        let files = embedded::FILES.iter().map(|(path, bytes, executable)| {
            (
                (*path).to_owned(),
                SourceFile {
                    bytes: Cow::Borrowed(*bytes),
                    executable: *executable,
                },
            )
        });
        Source::from_files("built-in", files.collect())
    }

    /// A source read from a folder holding `blueprints/` (and optionally `hooks/`).
    pub fn from_dir(dir: &Path) -> Result<Source> {
        let not_a_source = |message: &str| Error::BlueprintSource {
            path: dir.to_owned(),
            message: message.to_owned(),
        };
        if !dir.is_dir() {
            return Err(not_a_source("the folder does not exist"));
        }
        if !dir.join("blueprints").is_dir() {
            return Err(not_a_source("it has no blueprints/ folder"));
        }
        let mut files = BTreeMap::new();
        for top in ["blueprints", "hooks"] {
            crate::output::read_files(dir, &dir.join(top), &mut |path, bytes, executable| {
                files.insert(
                    path,
                    SourceFile {
                        bytes: Cow::Owned(bytes),
                        executable,
                    },
                );
                Ok(())
            })?;
        }
        Source::from_files(&dir.display().to_string(), files)
    }

    fn from_files(label: &str, files: BTreeMap<String, SourceFile>) -> Result<Source> {
        let mut hooks = BTreeMap::new();
        let mut by_blueprint: BTreeMap<String, BTreeMap<String, SourceFile>> = BTreeMap::new();
        for (path, file) in files {
            if let Some(rest) = path.strip_prefix("hooks/") {
                hooks.insert(rest.to_owned(), file);
            } else if let Some((name, rest)) = path
                .strip_prefix("blueprints/")
                .and_then(|p| p.split_once('/'))
            {
                by_blueprint
                    .entry(name.to_owned())
                    .or_default()
                    .insert(rest.to_owned(), file);
            }
        }
        let mut blueprints = Vec::new();
        for (folder, mut files) in by_blueprint {
            let manifest_path = format!("blueprints/{folder}/{MANIFEST_FILE}");
            let Some(manifest_file) = files.remove(MANIFEST_FILE) else {
                continue;
            };
            let manifest = Manifest::parse(&manifest_file.bytes, &manifest_path)?;
            let templates = files
                .into_iter()
                .filter_map(|(p, f)| p.strip_prefix("template/").map(|p| (p.to_owned(), f)))
                .collect();
            let blueprint = Blueprint {
                manifest,
                templates,
                manifest_path,
            };
            blueprint.check(&hooks)?;
            blueprints.push(blueprint);
        }
        if blueprints.is_empty() {
            return Err(Error::BlueprintSource {
                path: PathBuf::from(label),
                message: format!("no blueprints/<name>/{MANIFEST_FILE} found"),
            });
        }
        Ok(Source {
            label: label.to_owned(),
            blueprints,
            hooks,
        })
    }

    /// Every blueprint of the source, by name.
    pub fn blueprints(&self) -> &[Blueprint] {
        &self.blueprints
    }

    /// The blueprint called `name`, or the default one when `name` is `None`.
    pub fn blueprint(&self, name: Option<&str>) -> Result<&Blueprint> {
        let found = match name {
            Some(name) => self
                .blueprints
                .iter()
                .find(|b| b.manifest.blueprint.name == name),
            None if self.blueprints.len() == 1 => self.blueprints.first(),
            None => self
                .blueprints
                .iter()
                .find(|b| b.manifest.blueprint.default),
        };
        found.ok_or_else(|| Error::UnknownBlueprint {
            name: name.unwrap_or("(default)").to_owned(),
            source_label: self.label.clone(),
            available: self
                .blueprints
                .iter()
                .map(|b| b.manifest.blueprint.name.clone())
                .collect(),
        })
    }

    /// The script a hook rule names.
    pub fn hook(&self, run: &str) -> Option<&SourceFile> {
        self.hooks.get(run)
    }
}

impl Manifest {
    fn parse(bytes: &[u8], path: &str) -> Result<Manifest> {
        let invalid = |message: String| Error::Manifest {
            file: path.to_owned(),
            message,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| invalid(e.to_string()))?;
        toml::from_str(text).map_err(|e| invalid(e.to_string()))
    }
}

impl Blueprint {
    /// Consistency checks that make a broken blueprint fail on load, not halfway through
    /// rendering: defaults among the values, known fan-outs, rules that match files,
    /// hooks that exist.
    fn check(&self, hooks: &BTreeMap<String, SourceFile>) -> Result<()> {
        let invalid = |message: String| Error::Manifest {
            file: self.manifest_path.clone(),
            message,
        };
        let m = &self.manifest;
        let c = &m.choices;
        for (key, choice) in [
            ("protocol", &c.protocol),
            ("broker", &c.broker),
            ("auth", &c.auth),
            ("mtls", &c.mtls),
            ("gateway", &c.gateway),
            ("ci", &c.ci),
        ] {
            if !choice.values.iter().any(|o| o.value == choice.default) {
                return Err(invalid(format!(
                    "choices.{key}: default {} is not among its values",
                    choice.default
                )));
            }
        }
        for rule in &m.files {
            if let Some(each) = rule.each.as_deref().filter(|e| *e != "service") {
                return Err(invalid(format!(
                    "files: each = {each:?}: only \"service\" is known"
                )));
            }
            if let Some(to) = rule
                .to
                .as_deref()
                .filter(|to| rule.from.ends_with('/') != to.ends_with('/'))
            {
                return Err(invalid(format!(
                    "files: from = {:?} and to = {to:?} must both name folders (end in '/') or both files",
                    rule.from
                )));
            }
            if !self.templates.keys().any(|p| rule.matches(p)) {
                return Err(invalid(format!(
                    "files: from = {:?} matches no file under template/",
                    rule.from
                )));
            }
        }
        for hook in &m.hooks {
            if !hooks.contains_key(&hook.run) {
                return Err(invalid(format!(
                    "hooks: {} runs {:?}, which is not in the source's hooks/ folder",
                    hook.name, hook.run
                )));
            }
        }
        Ok(())
    }

    /// Where template `path` lives inside the source, for messages.
    pub fn source_path(&self, path: &str) -> String {
        let folder = self
            .manifest_path
            .strip_suffix(MANIFEST_FILE)
            .unwrap_or_default();
        format!("{folder}template/{path}")
    }

    /// The rule that governs template `path`: the matching rule with the longest `from`.
    pub fn rule_for(&self, path: &str) -> Option<&FileRule> {
        self.manifest
            .files
            .iter()
            .filter(|r| r.matches(path))
            .max_by_key(|r| r.from.len())
    }
}

/// Reads every file under `dir` into `files`, keyed relative to `root`.
#[cfg(test)]
mod tests {
    use super::*;

    const CHOICES: &str = r#"
[defaults]
description = "d"
service_name = "svc"
[choices.protocol]
default = "rest"
values = [{ value = "rest", help = "" }]
[choices.broker]
default = "none"
values = [{ value = "none", help = "" }]
[choices.auth]
default = "none"
values = [{ value = "none", help = "" }]
[choices.mtls]
default = false
values = [{ value = false, help = "" }]
[choices.gateway]
default = true
values = [{ value = true, help = "" }]
[choices.ci]
default = "none"
values = [{ value = "none", help = "" }]
"#;

    fn load(manifest_tail: &str) -> Result<Source> {
        let manifest = format!(
            "[blueprint]\nname = \"bp\"\nversion = \"1.0.0\"\ndescription = \"x\"\n{CHOICES}{manifest_tail}"
        );
        let file = |text: &str| SourceFile {
            bytes: Cow::Owned(text.as_bytes().to_vec()),
            executable: false,
        };
        let mut files = BTreeMap::new();
        files.insert("blueprints/bp/blueprint.toml".to_owned(), file(&manifest));
        files.insert(
            "blueprints/bp/template/svc/main.rs".to_owned(),
            file("fn main() {}"),
        );
        files.insert("hooks/ok.sh".to_owned(), file("true"));
        Source::from_files("test", files)
    }

    fn manifest_error(manifest_tail: &str) -> String {
        match load(manifest_tail) {
            Err(Error::Manifest { message, .. }) => message,
            other => panic!("expected a manifest error, got {other:?}"),
        }
    }

    #[test]
    fn a_consistent_manifest_loads() {
        let source = load(
            "[[files]]\nfrom = \"svc/\"\nto = \"services/{{ service.name }}/\"\neach = \"service\"\n\
             [[hooks]]\nname = \"ok\"\nrun = \"ok.sh\"\nstage = \"after-commit\"\n",
        )
        .unwrap();
        assert_eq!(
            source.blueprint(None).unwrap().manifest.blueprint.name,
            "bp"
        );
    }

    #[test]
    fn broken_manifests_fail_on_load_naming_the_problem() {
        assert!(manifest_error("[[files]]\nfrom = \"nothing/\"\n").contains("matches no file"));
        assert!(
            manifest_error("[[files]]\nfrom = \"svc/\"\neach = \"team\"\n")
                .contains("only \"service\"")
        );
        assert!(
            manifest_error("[[files]]\nfrom = \"svc/\"\nto = \"x\"\n")
                .contains("both name folders")
        );
        assert!(
            manifest_error(
                "[[hooks]]\nname = \"h\"\nrun = \"missing.sh\"\nstage = \"after-commit\"\n"
            )
            .contains("not in the source's hooks/ folder")
        );
        assert!(manifest_error("colour = \"red\"\n").contains("colour"));
    }
}
