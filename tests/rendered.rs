//! Snapshots of rendered files that reviewers want to see change: the file list, the
//! workspace manifest and the architecture diagram of a two-service system, with and
//! without the gateway. Rendered in memory through the library; nothing is written.

use new_service::answers::{PartialAnswers, PartialGateway, Service};
use new_service::blueprint::Source;
use new_service::tree::FileTree;

fn render(gateway: bool) -> FileTree {
    let source = Source::builtin().unwrap();
    let blueprint = source.blueprint(None).unwrap();
    let answers = PartialAnswers {
        name: Some("shop".into()),
        owner: Some("Team Shop".into()),
        services: Some(vec![
            Service {
                name: "catalog".into(),
                protocol: "rest".into(),
            },
            Service {
                name: "order-items".into(),
                protocol: "rest".into(),
            },
        ]),
        gateway: PartialGateway {
            enabled: Some(gateway),
        },
        ..Default::default()
    }
    .resolve(blueprint, true)
    .unwrap();
    new_service::render::render(blueprint, &answers).unwrap()
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
fn two_services_with_gateway() {
    let tree = render(true);
    insta::assert_snapshot!(
        "files_with_gateway",
        tree.paths().collect::<Vec<_>>().join("\n")
    );
    insta::assert_snapshot!("cargo_toml_with_gateway", text(&tree, "Cargo.toml"));
    insta::assert_snapshot!(
        "architecture_with_gateway",
        text(&tree, "docs/architecture.md")
    );
}

#[test]
fn two_services_without_gateway() {
    let tree = render(false);
    assert!(tree.paths().all(|p| !p.starts_with("gateway/")));
    insta::assert_snapshot!(
        "architecture_without_gateway",
        text(&tree, "docs/architecture.md")
    );
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render(true), render(true));
}
