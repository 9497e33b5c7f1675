//! The API contract: the OpenAPI document the service serves is the one committed in
//! `openapi/{{ service.name }}.yaml`, and every operation it lists is routed.
//!
//! After changing the API, refresh the committed file and review its diff:
//! `UPDATE_OPENAPI=1 cargo test -p {{ service.name }} --test openapi`.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use platform::health::Readiness;
use serde_json::Value;
use tower::ServiceExt;

use {{ service.name | snake_case }}::{AppState, NAME, openapi, router};

fn app() -> Router {
    router(AppState::in_memory(), Readiness::new())
}

async fn get(path: &str) -> (StatusCode, String, Vec<u8>) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app().oneshot(request).await.unwrap();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, body.to_vec())
}

fn committed_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../openapi")
        .join(format!("{NAME}.yaml"))
}

#[tokio::test]
async fn served_document_is_the_committed_file() {
    let (status, content_type, body) = get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served["openapi"], "3.1.0");

    let path = committed_file();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, yaml_serde::to_string(&openapi()).unwrap()).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let committed: Value = yaml_serde::from_str(&text).unwrap();
    assert!(
        served == committed,
        "{} differs from the document the service serves; refresh it with \
         `UPDATE_OPENAPI=1 cargo test -p {{ service.name }} --test openapi`",
        path.display()
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let document = serde_json::to_value(openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v1/items"));
    for (path, operations) in paths {
        let uri = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let request = Request::builder()
                .method(&method)
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = app().oneshot(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let reply: Value = serde_json::from_slice(&body).unwrap_or_default();
            assert!(
                reply["status"] != 405
                    && !reply["detail"]
                        .as_str()
                        .is_some_and(|detail| detail.starts_with("no route")),
                "{method} {path} is documented but not routed: {reply}"
            );
        }
    }
}

#[tokio::test]
async fn docs_page_loads_the_document_next_to_it() {
    let (status, content_type, body) = get("/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("url: 'openapi.json'"), "{page}");
}
