//! Helpers shared by the tests that render systems in memory through the library.

// Each test crate that includes this module uses only some of the helpers.
#![allow(dead_code)]

use new_service::answers::{PartialAnswers, PartialGateway, Service};
use new_service::blueprint::Source;
use new_service::tree::FileTree;

/// Answers for a system called `shop` with `services` (name, protocol) and with or
/// without the gateway; everything else is left to the defaults.
pub fn answers(services: &[(&str, &str)], gateway: bool) -> PartialAnswers {
    PartialAnswers {
        name: Some("shop".into()),
        services: Some(
            services
                .iter()
                .map(|(name, protocol)| Service {
                    name: (*name).into(),
                    protocol: (*protocol).into(),
                })
                .collect(),
        ),
        gateway: PartialGateway {
            enabled: Some(gateway),
        },
        ..Default::default()
    }
}

/// The default built-in blueprint rendered for `answers`, defaults taken for the rest.
pub fn render(answers: PartialAnswers) -> FileTree {
    let source = Source::builtin().unwrap();
    let blueprint = source.blueprint(None).unwrap();
    let answers = answers.resolve(blueprint, true).unwrap();
    new_service::render::render(blueprint, &answers).unwrap()
}

/// The text of the rendered file `path`.
pub fn text(tree: &FileTree, path: &str) -> String {
    String::from_utf8(
        tree.get(path)
            .unwrap_or_else(|| panic!("{path} missing"))
            .contents
            .clone(),
    )
    .unwrap()
}
