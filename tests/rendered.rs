//! Snapshots of rendered files that reviewers want to see change: the file list, the
//! workspace manifest and the architecture diagram of a two-service system, with and
//! without the gateway. Rendered in memory through the library; nothing is written.

mod common;

use common::{answers, text};
use new_service::answers::PartialAnswers;
use new_service::tree::FileTree;

fn render(gateway: bool) -> FileTree {
    common::render(PartialAnswers {
        owner: Some("Team Shop".into()),
        ..answers(&[("catalog", "rest"), ("order-items", "rest")], gateway)
    })
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
