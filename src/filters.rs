//! Liquid filters for blueprints: case conversion and escaping into file formats.
//!
//! Free text such as a description can contain quotes, backslashes, newlines and liquid
//! delimiters; each escaping filter turns it into one literal of its target format
//! (quotes included), so a blueprint never has to think about escaping rules.

use heck::{ToKebabCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use liquid::ParserBuilder;
use liquid_core::{
    Display_filter, Filter, FilterReflection, ParseFilter, Runtime, Value, ValueView,
};

macro_rules! string_filters {
    ($( $parser:ident / $filter:ident = $name:literal, $description:literal, $function:expr; )*) => {
        $(
            #[derive(Clone, ParseFilter, FilterReflection)]
            #[filter(name = $name, description = $description, parsed($filter))]
            struct $parser;

            #[derive(Debug, Default, Display_filter)]
            #[name = $name]
            struct $filter;

            impl Filter for $filter {
                fn evaluate(&self, input: &dyn ValueView, _: &dyn Runtime) -> liquid_core::Result<Value> {
                    let function: fn(&str) -> String = $function;
                    Ok(Value::scalar(function(&input.to_kstr())))
                }
            }
        )*

        /// Adds every filter of this module to a parser builder.
        pub(crate) fn register(builder: ParserBuilder) -> ParserBuilder {
            builder $( .filter($parser) )*
        }
    };
}

string_filters! {
    SnakeParser / Snake = "snake_case", "my-svc → my_svc", |s| s.to_snake_case();
    KebabParser / Kebab = "kebab_case", "MySvc → my-svc", |s| s.to_kebab_case();
    PascalParser / Pascal = "pascal_case", "my-svc → MySvc", |s| s.to_upper_camel_case();
    ScreamingParser / Screaming = "screaming_snake_case", "my-svc → MY_SVC", |s| s.to_shouty_snake_case();
    TomlParser / Toml = "toml_str", "a quoted TOML basic string", toml_str;
    YamlParser / Yaml = "yaml_str", "a double-quoted YAML scalar", yaml_str;
    JsonParser / Json = "json_str", "a quoted JSON string", json_str;
    RustParser / Rust = "rust_str", "a Rust string literal", rust_str;
    DockerfileParser / Dockerfile = "dockerfile_str", "a double-quoted Dockerfile word", dockerfile_str;
}

/// A TOML basic string: `"` and `\` escaped, control characters as escapes.
pub fn toml_str(s: &str) -> String {
    double_quoted(s, char::is_control)
}

/// A double-quoted YAML scalar, safe in any context a scalar may stand: YAML also treats
/// the Unicode line and paragraph separators and the byte-order mark specially.
pub fn yaml_str(s: &str) -> String {
    double_quoted(s, |c| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
    })
}

/// `s` in double quotes with `"`, `\`, newline, return and tab escaped the C way and every
/// other character for which `escape` holds as `\uXXXX`: the common ground of the TOML
/// and YAML double-quoted forms.
fn double_quoted(s: &str, escape: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escape(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serializes")
}

/// A Rust string literal (`"..."` with Rust escapes).
pub fn rust_str(s: &str) -> String {
    format!("{s:?}")
}

/// A double-quoted Dockerfile word, as in `LABEL key="value"`: `"`, `\` and `$` (which
/// would start a variable) escaped with a backslash. An instruction is one line and a
/// quoted word has no escape for control characters, so each of them, a newline
/// included, becomes a space.
pub fn dockerfile_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str =
        "It's \"quoted\" \\ back\nnew line\t{{ x }} {% if %} # not a comment: yes\u{7}\u{2028}é";

    #[test]
    fn case_filters() {
        let parser = register(ParserBuilder::with_stdlib()).build().unwrap();
        let template = parser
            .parse("{{ s | snake_case }} {{ s | kebab_case }} {{ s | pascal_case }} {{ s | screaming_snake_case }}")
            .unwrap();
        let out = template
            .render(&liquid::object!({ "s": "order-items2" }))
            .unwrap();
        assert_eq!(out, "order_items2 order-items2 OrderItems2 ORDER_ITEMS2");
    }

    #[test]
    fn toml_round_trips() {
        let doc: toml::Table = toml::from_str(&format!("v = {}", toml_str(NASTY))).unwrap();
        assert_eq!(doc["v"].as_str(), Some(NASTY));
    }

    #[test]
    fn yaml_round_trips() {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&format!("v: {}\n", yaml_str(NASTY))).unwrap();
        assert_eq!(doc["v"].as_str(), Some(NASTY));
    }

    #[test]
    fn json_round_trips() {
        let doc: serde_json::Value =
            serde_json::from_str(&format!("{{\"v\": {}}}", json_str(NASTY))).unwrap();
        assert_eq!(doc["v"].as_str(), Some(NASTY));
    }

    /// Reads a double-quoted word the way BuildKit's shell lexer does: a backslash escapes
    /// `"`, `$` and itself and is kept before anything else; `$` starts a variable.
    fn dockerfile_unquote(word: &str) -> String {
        let inner = word
            .strip_prefix('"')
            .and_then(|w| w.strip_suffix('"'))
            .expect("a quoted word");
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('"' | '$' | '\\')) => {
                    out.push(chars.next().unwrap());
                }
                '"' => panic!("unescaped quote in {word}"),
                '$' => panic!("unescaped $ in {word}"),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn dockerfile_round_trips_but_for_control_characters() {
        let word = dockerfile_str(NASTY);
        assert!(!word.contains(['\n', '\r', '\u{2028}']), "{word}");
        let expected: String = NASTY
            .chars()
            .map(|c| {
                if c.is_control() || c == '\u{2028}' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        assert_eq!(dockerfile_unquote(&word), expected);
        let money = "costs $HOME ${x} \\$";
        assert_eq!(dockerfile_unquote(&dockerfile_str(money)), money);
    }

    #[test]
    fn rust_literal_has_no_raw_newline_or_unescaped_quote() {
        let literal = rust_str(NASTY);
        assert!(!literal.contains('\n'));
        let inner = &literal[1..literal.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            assert!(escaped || c != '"', "unescaped quote in {literal}");
            escaped = !escaped && c == '\\';
        }
    }
}
