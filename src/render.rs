//! Rendering: blueprint + answers → [`FileTree`], with no I/O.
//!
//! Liquid is used strictly: an unknown variable or filter fails with the template path
//! and, where it can be found, the line. Before parsing, every line that holds nothing
//! but `{% %}` tags is reduced to its tags (indentation and newline dropped), the way
//! Jinja's `trim_blocks`/`lstrip_blocks` work, so conditionals leave no blank lines.
//! The manifest's file rules decide where each template lands, whether it fans out per
//! service, and whether it is rendered at all; nothing here names a blueprint's files.

use std::collections::BTreeMap;

use liquid::{Object, Parser, Template};
use serde::Serialize;

use crate::answers::{ANSWERS_PATH, Answers, Generator};
use crate::blueprint::{Blueprint, ChoiceValue, FileRule};
use crate::error::{Error, Result};
use crate::filters;
use crate::tree::{FileTree, TreeFile};

/// The version of this tool, recorded in generated repositories.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Renders `blueprint` with `answers` into an in-memory tree, including the recorded
/// answers file. Pure: same inputs, same tree.
pub fn render(blueprint: &Blueprint, answers: &Answers) -> Result<FileTree> {
    Renderer::new().render(blueprint, answers)
}

/// A liquid parser with this tool's filters; reuse it to render several times.
pub struct Renderer {
    parser: Parser,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer::new()
    }
}

/// What templates see; see `blueprints/README.md`.
#[derive(Serialize)]
struct Context<'a> {
    name: &'a str,
    description: &'a str,
    owner: &'a str,
    services: Vec<ServiceContext<'a>>,
    /// The distinct protocols of the services, in answer order, so that a file rule's
    /// `when` (a bare liquid condition, without filters) can ask `protocols contains 'x'`.
    protocols: Vec<&'a str>,
    messaging: &'a crate::answers::Messaging,
    auth: &'a crate::answers::Auth,
    gateway: &'a crate::answers::Gateway,
    ci: &'a crate::answers::Ci,
    /// The `vars` of each system-wide choice's chosen value: `vars.broker.port`.
    vars: BTreeMap<&'static str, &'a toml::Table>,
    tool: ToolContext,
    blueprint: BlueprintContext<'a>,
}

#[derive(Serialize)]
struct ServiceContext<'a> {
    name: &'a str,
    protocol: &'a str,
    index: usize,
}

#[derive(Serialize)]
struct ToolContext {
    version: &'static str,
}

#[derive(Serialize)]
struct BlueprintContext<'a> {
    name: &'a str,
    version: &'a str,
}

/// Variable that holds a template's literal text chunks; see [`compact`].
const RAW_VAR: &str = "__text";

/// A template file, compiled.
enum FileTemplate {
    /// No liquid in it: the bytes are the output.
    Static,
    /// Parsed compact template and the literal chunks it refers to.
    Liquid {
        template: Template,
        raw: liquid::model::Value,
    },
}

/// A rule's parsed `to` and `when`.
struct CompiledRule<'a> {
    rule: &'a FileRule,
    to: Option<Template>,
    when: Option<Template>,
}

impl Renderer {
    /// A parser with liquid's standard library and the case and escaping filters.
    pub fn new() -> Renderer {
        let parser = filters::register(liquid::ParserBuilder::with_stdlib())
            .build()
            .expect("the standard library and our filters always build");
        Renderer { parser }
    }

    /// See [`render`].
    pub fn render(&self, blueprint: &Blueprint, answers: &Answers) -> Result<FileTree> {
        let globals = context(blueprint, answers);
        let rules: Vec<CompiledRule> = blueprint
            .manifest
            .files
            .iter()
            .map(|rule| self.compile_rule(blueprint, rule))
            .collect::<Result<_>>()?;
        let per_service: Vec<Object> = answers
            .services
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let mut scope = globals.clone();
                let service = ServiceContext {
                    name: &s.name,
                    protocol: &s.protocol,
                    index,
                };
                scope.insert(
                    "service".into(),
                    liquid::model::to_value(&service).expect("plain data"),
                );
                scope
            })
            .collect();

        let mut tree = FileTree::new();
        for (path, file) in &blueprint.templates {
            let compiled = blueprint
                .rule_for(path)
                .and_then(|r| rules.iter().find(|c| std::ptr::eq(c.rule, r)));
            let scopes: &[Object] = match compiled {
                Some(c) if c.rule.each.is_some() => &per_service,
                _ => std::slice::from_ref(&globals),
            };
            let render = compiled.is_none_or(|c| c.rule.render);
            let text = if render {
                std::str::from_utf8(&file.bytes).ok()
            } else {
                None
            };
            let source_path = blueprint.source_path(path);
            let template = text
                .map(|t| self.compile_file(&source_path, t))
                .transpose()?;
            let executable = file.executable || compiled.is_some_and(|c| c.rule.executable);

            for scope in scopes {
                if let Some(when) = compiled.and_then(|c| c.when.as_ref()) {
                    if self.run(&blueprint.manifest_path, when, scope)? != "true" {
                        continue;
                    }
                }
                let destination = match compiled {
                    Some(c) => match &c.to {
                        Some(to) => {
                            let to = self.run(&blueprint.manifest_path, to, scope)?;
                            format!("{to}{}", &path[c.rule.from.len().min(path.len())..])
                        }
                        None => path.clone(),
                    },
                    None => path.clone(),
                };
                let contents = match (&template, text) {
                    (Some(FileTemplate::Liquid { template, raw }), Some(source)) => {
                        let mut scope = scope.clone();
                        scope.insert(RAW_VAR.into(), raw.clone());
                        template
                            .render(&scope)
                            .map_err(|e| template_error(&source_path, source, &e))?
                            .into_bytes()
                    }
                    _ => file.bytes.to_vec(),
                };
                tree.insert(
                    destination,
                    TreeFile {
                        contents,
                        executable,
                    },
                )
                .map_err(|e| Error::Template {
                    file: source_path.clone(),
                    line: None,
                    message: e.to_string(),
                })?;
            }
        }

        let generator = Generator {
            tool_version: TOOL_VERSION.to_owned(),
            blueprint: blueprint.manifest.blueprint.name.clone(),
            blueprint_version: blueprint.manifest.blueprint.version.clone(),
        };
        let recorded = TreeFile {
            contents: answers.to_recorded_toml(&generator).into_bytes(),
            executable: false,
        };
        tree.insert(ANSWERS_PATH.to_owned(), recorded)
            .map_err(|e| Error::Template {
                file: ANSWERS_PATH.to_owned(),
                line: None,
                message: format!("{e}: the blueprint must not render the engine's answers file"),
            })?;
        Ok(tree)
    }

    /// Whether liquid condition `expr` holds for these answers (hooks use it).
    pub fn condition(&self, blueprint: &Blueprint, answers: &Answers, expr: &str) -> Result<bool> {
        let template = self.parse(&blueprint.manifest_path, &condition_source(expr))?;
        Ok(self.run(
            &blueprint.manifest_path,
            &template,
            &context(blueprint, answers),
        )? == "true")
    }

    /// Renders a one-off template with only `name` bound (for defaults such as the description).
    pub fn render_with_name(&self, file: &str, source: &str, name: &str) -> Result<String> {
        let template = self.parse(file, source)?;
        let mut scope = Object::new();
        scope.insert("name".into(), liquid::model::Value::scalar(name.to_owned()));
        self.run(file, &template, &scope)
    }

    fn compile_rule<'a>(
        &self,
        blueprint: &Blueprint,
        rule: &'a FileRule,
    ) -> Result<CompiledRule<'a>> {
        let file = &blueprint.manifest_path;
        Ok(CompiledRule {
            rule,
            to: rule
                .to
                .as_deref()
                .map(|to| self.parse(file, to))
                .transpose()?,
            when: rule
                .when
                .as_deref()
                .map(|w| self.parse(file, &condition_source(w)))
                .transpose()?,
        })
    }

    /// A template file ready to render: static when it holds no liquid at all, otherwise
    /// parsed in its compact form (see [`compact`]).
    fn compile_file(&self, file: &str, source: &str) -> Result<FileTemplate> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(FileTemplate::Static);
        }
        let (compact, chunks) = compact(&trim_tag_lines(source));
        let template = self.parser.parse(&compact).map_err(|e| {
            // The compact form's error shows `__text` references, not the author's
            // text: parse the original to report what and where it really is.
            match self.parse(file, source) {
                Err(original) => original,
                Ok(_) => template_error(file, source, &e),
            }
        })?;
        let raw = liquid::model::Value::Array(
            chunks
                .into_iter()
                .map(liquid::model::Value::scalar)
                .collect(),
        );
        Ok(FileTemplate::Liquid { template, raw })
    }

    fn parse(&self, file: &str, source: &str) -> Result<Template> {
        self.parser
            .parse(&trim_tag_lines(source))
            .map_err(|e| template_error(file, source, &e))
    }

    fn run(&self, file: &str, template: &Template, scope: &Object) -> Result<String> {
        template.render(scope).map_err(|e| Error::Template {
            file: file.to_owned(),
            line: None,
            message: summarize(&e.to_string()),
        })
    }
}

impl Blueprint {
    /// The default description for a system called `name`.
    pub fn default_description(&self, name: &str) -> Result<String> {
        Renderer::new().render_with_name(
            &self.manifest_path,
            &self.manifest.defaults.description,
            name,
        )
    }
}

fn context(blueprint: &Blueprint, answers: &Answers) -> Object {
    let context = Context {
        name: &answers.name,
        description: &answers.description,
        owner: &answers.owner,
        services: answers
            .services
            .iter()
            .enumerate()
            .map(|(index, s)| ServiceContext {
                name: &s.name,
                protocol: &s.protocol,
                index,
            })
            .collect(),
        protocols: answers.services.iter().fold(Vec::new(), |mut seen, s| {
            if !seen.contains(&s.protocol.as_str()) {
                seen.push(&s.protocol);
            }
            seen
        }),
        messaging: &answers.messaging,
        auth: &answers.auth,
        gateway: &answers.gateway,
        ci: &answers.ci,
        vars: chosen_vars(blueprint, answers),
        tool: ToolContext {
            version: TOOL_VERSION,
        },
        blueprint: BlueprintContext {
            name: &blueprint.manifest.blueprint.name,
            version: &blueprint.manifest.blueprint.version,
        },
    };
    liquid::to_object(&context).expect("the context is plain data")
}

/// The `vars` of the chosen value of each system-wide choice, by choice name; a
/// choice whose value has none is absent, so a template asking for it fails loudly.
fn chosen_vars<'a>(
    blueprint: &'a Blueprint,
    answers: &Answers,
) -> BTreeMap<&'static str, &'a toml::Table> {
    let choices = &blueprint.manifest.choices;
    let chosen = [
        (
            "broker",
            &choices.broker,
            ChoiceValue::Text(answers.messaging.broker.clone()),
        ),
        (
            "auth",
            &choices.auth,
            ChoiceValue::Text(answers.auth.scheme.clone()),
        ),
        ("mtls", &choices.mtls, ChoiceValue::Bool(answers.auth.mtls)),
        (
            "gateway",
            &choices.gateway,
            ChoiceValue::Bool(answers.gateway.enabled),
        ),
        (
            "ci",
            &choices.ci,
            ChoiceValue::Text(answers.ci.provider.clone()),
        ),
    ];
    chosen
        .into_iter()
        .filter_map(|(name, choice, value)| {
            let option = choice.option(&value)?;
            (!option.vars.is_empty()).then_some((name, &option.vars))
        })
        .collect()
}

fn condition_source(expr: &str) -> String {
    format!("{{% if {expr} %}}true{{% endif %}}")
}

/// A template error with the file and, where it can be found, the line: liquid quotes
/// either the offending tag (`from: ...`) or the unknown name (`requested variable=...`).
fn template_error(file: &str, source: &str, error: &liquid::Error) -> Error {
    let message = error.to_string();
    let line = message.lines().map(str::trim).find_map(|l| {
        let line_of = |snippet: &str| {
            source
                .find(snippet.trim())
                .map(|offset| source[..offset].matches('\n').count() + 1)
        };
        if let Some(snippet) = l.strip_prefix("from: ") {
            line_of(snippet)
        } else if let Some((number, snippet)) = l.split_once(" | ") {
            // A syntax error quotes its line as `N | text`; N counts the lines after
            // tag-only lines were trimmed, so find the text in the author's source.
            number
                .parse::<usize>()
                .ok()
                .filter(|_| !snippet.trim().is_empty())
                .and_then(|_| line_of(snippet))
        } else {
            let name = l
                .strip_prefix("requested variable=")
                .or_else(|| l.strip_prefix("requested filter="))?;
            line_using(source, name.trim())
        }
    });
    Error::Template {
        file: file.to_owned(),
        line,
        message: summarize(&message),
    }
}

/// 1-based number of the first line that uses `name` as a whole word inside a tag.
fn line_using(source: &str, name: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    source
        .lines()
        .position(|line| {
            (line.contains("{{") || line.contains("{%"))
                && line.match_indices(name).any(|(at, _)| {
                    let before = line[..at].chars().next_back();
                    let after = line[at + name.len()..].chars().next();
                    !before.is_some_and(is_word) && !after.is_some_and(is_word)
                })
        })
        .map(|index| index + 1)
}

/// Liquid's multi-line message folded to one readable line.
fn summarize(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("from:") && *l != "with:")
        .collect::<Vec<_>>()
        .join("; ")
}

/// Replaces every run of literal text between tags with a reference to it,
/// `{{ __text[i] }}`, and returns the compact source and the runs.
///
/// Liquid's parser walks literal text a character at a time and is slow on long files
/// (about 5 MB/s); tags are few, so parsing the compact form makes rendering nearly free.
/// `{% raw %}` blocks become literal runs, and the `-` whitespace-control markers are
/// applied here to the runs they touch, so the output is what liquid itself would give.
fn compact(source: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(source.len() / 4);
    let mut chunks = Vec::new();
    let mut pending = String::new();
    let mut rest = source;
    let mut trim_next = false;
    let flush = |pending: &mut String, out: &mut String, chunks: &mut Vec<String>| {
        if !pending.is_empty() {
            out.push_str(&format!("{{{{ {RAW_VAR}[{}] }}}}", chunks.len()));
            chunks.push(std::mem::take(pending));
        }
    };
    loop {
        let start = rest
            .as_bytes()
            .windows(2)
            .position(|w| w[0] == b'{' && (w[1] == b'{' || w[1] == b'%'));
        let (text, tail) = rest.split_at(start.unwrap_or(rest.len()));
        pending.push_str(if std::mem::take(&mut trim_next) {
            text.trim_start()
        } else {
            text
        });
        if tail.is_empty() {
            break;
        }
        let close = if tail.starts_with("{{") { "}}" } else { "%}" };
        let Some(end) = tail.find(close).map(|e| e + 2) else {
            // Unterminated: hand it to liquid as it is, so its error names the tag.
            flush(&mut pending, &mut out, &mut chunks);
            out.push_str(tail);
            break;
        };
        let tag = &tail[..end];
        if tag.as_bytes()[2] == b'-' {
            pending.truncate(pending.trim_end().len());
        }
        trim_next = tag.ends_with(&format!("-{close}"));
        rest = &tail[end..];
        if close == "%}" && tag_name(tag) == "raw" {
            if let Some((literal, endraw, after)) = split_raw(rest) {
                let literal = if std::mem::take(&mut trim_next) {
                    literal.trim_start()
                } else {
                    literal
                };
                let literal = if endraw.as_bytes()[2] == b'-' {
                    literal.trim_end()
                } else {
                    literal
                };
                pending.push_str(literal);
                trim_next = endraw.ends_with("-%}");
                rest = after;
                continue;
            }
        }
        flush(&mut pending, &mut out, &mut chunks);
        out.push_str(tag);
    }
    flush(&mut pending, &mut out, &mut chunks);
    (out, chunks)
}

/// The first word inside a `{% %}` tag.
fn tag_name(tag: &str) -> &str {
    tag.trim_start_matches("{%")
        .trim_end_matches("%}")
        .trim_matches(|c: char| c == '-' || c.is_whitespace())
        .split_whitespace()
        .next()
        .unwrap_or("")
}

/// Splits the text after a `{% raw %}` tag into its literal content, the `endraw` tag
/// and what follows it.
fn split_raw(after_raw: &str) -> Option<(&str, &str, &str)> {
    let mut offset = 0;
    while let Some(start) = after_raw[offset..].find("{%").map(|s| s + offset) {
        let end = after_raw[start..].find("%}")? + start + 2;
        let tag = &after_raw[start..end];
        if tag_name(tag) == "endraw" {
            return Some((&after_raw[..start], tag, &after_raw[end..]));
        }
        offset = start + 2;
    }
    None
}

/// Drops indentation and the newline of every line that holds only `{% %}` tags, except
/// inside `{% raw %}` blocks, so block tags on their own lines leave no trace.
pub(crate) fn trim_tag_lines(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut in_raw = false;
    for line in source.split_inclusive('\n') {
        if !line.contains("{%") {
            out.push_str(line);
            continue;
        }
        let body = line.trim_end_matches(['\n', '\r']);
        let (tags, tag_only) = scan_tags(body);
        let closes_raw = tags.contains(&"endraw");
        let trimmed = tag_only && (!in_raw || closes_raw);
        for tag in &tags {
            match *tag {
                "raw" => in_raw = true,
                "endraw" => in_raw = false,
                _ => {}
            }
        }
        out.push_str(if trimmed { body.trim() } else { line });
    }
    out
}

/// The names of the `{% %}` tags on a line, and whether the line holds nothing else.
fn scan_tags(line: &str) -> (Vec<&str>, bool) {
    let mut tags = Vec::new();
    let mut rest = line;
    let mut only_tags = true;
    loop {
        let Some(start) = rest.find("{%") else {
            only_tags &= rest.trim().is_empty();
            break;
        };
        only_tags &= rest[..start].trim().is_empty();
        let Some(end) = rest[start..].find("%}") else {
            only_tags = false;
            break;
        };
        let inner =
            rest[start + 2..start + end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        tags.push(inner.split_whitespace().next().unwrap_or(""));
        rest = &rest[start + end + 2..];
    }
    let tag_only = only_tags && !tags.is_empty();
    (tags, tag_only)
}

/// A small blueprint for tests, built from inline files.
#[cfg(test)]
pub(crate) fn test_blueprint(manifest_extra: &str, templates: &[(&str, &str)]) -> Blueprint {
    use crate::blueprint::{Manifest, SourceFile};
    use std::borrow::Cow;
    let manifest = format!(
        r#"
[blueprint]
name = "test-bp"
reserved_names = ["gateway"]
version = "1.2.3"
description = "test"
[defaults]
description = "About {{{{ name }}}}."
service_name = "catalog"
[choices.protocol]
default = "rest"
values = [{{ value = "rest", help = "REST" }}, {{ value = "grpc", help = "gRPC" }}]
planned = ["graphql"]
[choices.broker]
default = "none"
values = [{{ value = "none", help = "none" }}]
planned = ["kafka"]
[choices.auth]
default = "none"
values = [{{ value = "none", help = "none" }}]
[choices.mtls]
default = false
values = [{{ value = false, help = "off" }}]
planned = [true]
[choices.gateway]
default = true
values = [{{ value = true, help = "on" }}, {{ value = false, help = "off" }}]
[choices.ci]
default = "github"
values = [{{ value = "github", help = "GitHub" }}, {{ value = "none", help = "none" }}]
{manifest_extra}
"#
    );
    let manifest: Manifest = toml::from_str(&manifest).expect("test manifest parses");
    let templates: std::collections::BTreeMap<String, SourceFile> = templates
        .iter()
        .map(|(p, t)| {
            (
                (*p).to_owned(),
                SourceFile {
                    bytes: Cow::Owned(t.as_bytes().to_vec()),
                    executable: false,
                },
            )
        })
        .collect();
    Blueprint {
        manifest,
        templates,
        manifest_path: "blueprints/test-bp/blueprint.toml".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::PartialAnswers;

    fn answers(bp: &Blueprint, services: &[(&str, &str)]) -> Answers {
        let partial = PartialAnswers {
            name: Some("demo".into()),
            services: Some(
                services
                    .iter()
                    .map(|(n, p)| crate::answers::Service {
                        name: (*n).into(),
                        protocol: (*p).into(),
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        partial.resolve(bp, true).unwrap()
    }

    fn text(tree: &FileTree, path: &str) -> String {
        String::from_utf8(
            tree.get(path)
                .unwrap_or_else(|| panic!("{path} missing"))
                .contents
                .clone(),
        )
        .unwrap()
    }

    #[test]
    fn tag_only_lines_vanish_and_others_stay() {
        let source = "a\n  {% if x %}\nb {{ y }}\n  {% endif %}\nc\n";
        assert_eq!(
            trim_tag_lines(source),
            "a\n{% if x %}b {{ y }}\n{% endif %}c\n"
        );
        let raw = "{% raw %}\n{% if not_a_tag %}\n{% endraw %}\n";
        assert_eq!(
            trim_tag_lines(raw),
            "{% raw %}{% if not_a_tag %}\n{% endraw %}"
        );
    }

    #[test]
    fn compact_form_renders_exactly_like_the_original() {
        let parser = filters::register(liquid::ParserBuilder::with_stdlib())
            .build()
            .unwrap();
        let globals = liquid::object!({ "x": true, "items": ["a", "b"], "n": "demo" });
        let sources = [
            "plain {{ n }} text\n{% if x %}yes{% else %}no{% endif %} tail",
            "{% for i in items %}- {{ i | upcase }}\n{% endfor %}",
            "keep   {%- if x -%}   trimmed   {%- endif -%}   both",
            "a {% raw %}${{ github.sha }} {% if %}{% endraw %} b",
            "  {%- raw -%}  spaced  {%- endraw -%}  ",
            "{{ n }}{{ n }}{% comment %}gone {{ n }}{% endcomment %}!",
            "{% assign y = n | append: \"-x\" %}{{ y }}",
        ];
        for source in sources {
            let expected = parser.parse(source).unwrap().render(&globals).unwrap();
            let (compact, chunks) = compact(source);
            let mut scope = globals.clone();
            scope.insert(
                RAW_VAR.into(),
                liquid::model::Value::Array(
                    chunks
                        .into_iter()
                        .map(liquid::model::Value::scalar)
                        .collect(),
                ),
            );
            let actual = parser.parse(&compact).unwrap().render(&scope).unwrap();
            assert_eq!(actual, expected, "{source:?} compacted to {compact:?}");
        }
    }

    #[test]
    fn conditionals_leave_no_blank_lines() {
        let bp = test_blueprint(
            "",
            &[(
                "a.txt",
                "one\n{% if gateway.enabled %}\ngw\n{% else %}\nno gw\n{% endif %}\ntwo\n{% for s in services %}\n- {{ s.name }}\n{% endfor %}\n",
            )],
        );
        let tree = render(
            &bp,
            &answers(&bp, &[("catalog", "rest"), ("orders", "rest")]),
        )
        .unwrap();
        assert_eq!(text(&tree, "a.txt"), "one\ngw\ntwo\n- catalog\n- orders\n");
    }

    #[test]
    fn fan_out_conditions_and_templated_paths() {
        let bp = test_blueprint(
            r#"
[[files]]
from = "svc/"
to = "services/{{ service.name }}/"
each = "service"
when = "service.protocol == 'rest'"
[[files]]
from = "gw.txt"
when = "gateway.enabled == false"
[[files]]
from = "raw.txt"
render = false
executable = true
"#,
            &[
                (
                    "svc/src/lib.rs",
                    "// {{ service.name | pascal_case }} #{{ service.index }}\n",
                ),
                ("gw.txt", "x"),
                ("raw.txt", "{{ untouched }}"),
                ("top.txt", "{{ name }}"),
            ],
        );
        let tree = render(
            &bp,
            &answers(
                &bp,
                &[
                    ("order-items", "rest"),
                    ("users", "grpc"),
                    ("carts", "rest"),
                ],
            ),
        )
        .unwrap();
        let paths: Vec<&str> = tree.paths().collect();
        assert_eq!(
            paths,
            [
                ".new-service/answers.toml",
                "raw.txt",
                "services/carts/src/lib.rs",
                "services/order-items/src/lib.rs",
                "top.txt"
            ]
        );
        assert_eq!(
            text(&tree, "services/order-items/src/lib.rs"),
            "// OrderItems #0\n"
        );
        assert_eq!(text(&tree, "services/carts/src/lib.rs"), "// Carts #2\n");
        assert_eq!(text(&tree, "raw.txt"), "{{ untouched }}");
        assert!(tree.get("raw.txt").unwrap().executable);
    }

    #[test]
    fn protocols_are_distinct_and_usable_in_conditions() {
        let bp = test_blueprint(
            r#"
[[files]]
from = "grpc.txt"
when = "protocols contains 'grpc'"
"#,
            &[("grpc.txt", "{{ protocols | join: ',' }}")],
        );
        let mixed = answers(&bp, &[("aa", "rest"), ("bb", "grpc"), ("cc", "grpc")]);
        let tree = render(&bp, &mixed).unwrap();
        assert_eq!(text(&tree, "grpc.txt"), "rest,grpc");
        let rest_only = render(&bp, &answers(&bp, &[("aa", "rest")])).unwrap();
        assert!(rest_only.get("grpc.txt").is_none());
    }

    #[test]
    fn the_chosen_values_vars_reach_the_templates() {
        let mut bp = test_blueprint("", &[("ci.txt", "{{ vars.ci.runner }} {{ vars.ci.jobs }}")]);
        let ci = &mut bp.manifest.choices.ci.values;
        ci[0].vars = toml::from_str("runner = \"ubuntu\"\njobs = 3").unwrap();
        ci[1].vars = toml::from_str("runner = \"nowhere\"\njobs = 0").unwrap();
        let mut a = answers(&bp, &[("catalog", "rest")]);
        assert_eq!(text(&render(&bp, &a).unwrap(), "ci.txt"), "ubuntu 3");
        a.ci.provider = "none".into();
        assert_eq!(text(&render(&bp, &a).unwrap(), "ci.txt"), "nowhere 0");

        bp.manifest.choices.ci.values[1].vars.clear();
        match render(&bp, &a) {
            Err(Error::Template { message, .. }) => assert!(message.contains("ci"), "{message}"),
            other => panic!("a value without vars must not render as empty: {other:?}"),
        }
    }

    #[test]
    fn unknown_variables_and_filters_fail_with_file_and_line() {
        let bp = test_blueprint("", &[("a.txt", "ok\nok\n{{ nmae }}\n")]);
        match render(&bp, &answers(&bp, &[("catalog", "rest")])) {
            Err(Error::Template {
                file,
                line,
                message,
            }) => {
                assert_eq!(file, "blueprints/test-bp/template/a.txt");
                assert_eq!(line, Some(3), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let bp = test_blueprint("", &[("b.txt", "{{ name | no_such_filter }}")]);
        match render(&bp, &answers(&bp, &[("catalog", "rest")])) {
            Err(Error::Template { file, message, .. }) => {
                assert_eq!(file, "blueprints/test-bp/template/b.txt");
                assert!(message.contains("no_such_filter"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_show_the_authors_text_and_line() {
        let source = "fn main() {\n    let x = 1;\n    println!(\"{{x=1}}\");\n}\n";
        let bp = test_blueprint("", &[("main.rs", source)]);
        match render(&bp, &answers(&bp, &[("catalog", "rest")])) {
            Err(Error::Template { line, message, .. }) => {
                assert_eq!(line, Some(3), "{message}");
                assert!(message.contains("{{x=1}}"), "{message}");
                assert!(!message.contains(RAW_VAR), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn free_text_is_never_evaluated() {
        let bp = test_blueprint("", &[("a.txt", "{{ description }}")]);
        let mut a = answers(&bp, &[("catalog", "rest")]);
        a.description = "{{ name }} {% if true %}x{% endif %}".into();
        let tree = render(&bp, &a).unwrap();
        assert_eq!(text(&tree, "a.txt"), "{{ name }} {% if true %}x{% endif %}");
    }

    #[test]
    fn records_the_answers_with_versions() {
        let bp = test_blueprint("", &[]);
        let a = answers(&bp, &[("catalog", "rest")]);
        let tree = render(&bp, &a).unwrap();
        let recorded = text(&tree, ANSWERS_PATH);
        let back = PartialAnswers::from_toml(&recorded, ANSWERS_PATH.as_ref()).unwrap();
        assert_eq!(back.clone().resolve(&bp, false).unwrap(), a);
        let generator = back.generator.unwrap();
        assert_eq!(generator.blueprint_version, "1.2.3");
        assert_eq!(generator.tool_version, TOOL_VERSION);
        assert_eq!(a.description, "About demo.");
    }
}
