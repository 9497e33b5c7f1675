//! The schema contract: the SDL the service prints is the one committed in
//! `schema/{{ service.name }}.graphql`.
//!
//! After changing the schema, refresh the committed file and review its diff:
//! `UPDATE_SCHEMA=1 cargo test -p {{ service.name }} --test schema`.

use std::path::Path;

use {{ service.name | snake_case }}::{AppState, Config, NAME};

#[test]
fn printed_schema_is_the_committed_file() {
    let printed = AppState::new(Config::default()).schema().sdl();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schema")
        .join(format!("{NAME}.graphql"));
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &printed).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        printed == committed,
        "{} differs from the schema the service prints; refresh it with \
         `UPDATE_SCHEMA=1 cargo test -p {{ service.name }} --test schema`",
        path.display()
    );
}
