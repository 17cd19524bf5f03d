//! `GET /api/openapi.json`: an OpenAPI 3 document, served without a token,
//! that documents every route `routes::configure` registers (except `/ws`,
//! which is documented but not required, and the chat page's static files,
//! which are not API), with resolvable `$ref`s.

use crate::helpers::spawn_app;
use serde_json::Value;
use std::path::Path;

/// `(method, path)` of every route registered in `src/routes/mod.rs`: each
/// `.service(module::handler)` there, resolved to the actix attribute
/// (`#[get("/path")]`, ...) on `fn handler` in `src/routes/module.rs`.
fn registered_routes() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    };
    let registry = read("mod.rs");
    let mut routes = Vec::new();
    for piece in registry.split(".service(").skip(1) {
        let target = piece.split(')').next().unwrap().trim();
        let (module, handler) = target
            .split_once("::")
            .unwrap_or_else(|| panic!("unexpected service registration {target:?}"));
        let source = read(&format!("{module}.rs"));
        let at = source
            .find(&format!("fn {handler}("))
            .unwrap_or_else(|| panic!("no fn {handler} in {module}.rs"));
        let (method, path) = ["get", "post", "put", "patch", "delete"]
            .iter()
            .filter_map(|m| {
                let marker = format!("#[{m}(\"");
                let start = source[..at].rfind(&marker)? + marker.len();
                let len = source[start..].find('"')?;
                Some((start, m.to_string(), source[start..start + len].to_owned()))
            })
            .max_by_key(|(start, _, _)| *start)
            .map(|(_, m, p)| (m, p))
            .unwrap_or_else(|| panic!("no route attribute on {module}::{handler}"));
        routes.push((method, path));
    }
    assert!(routes.len() >= 20, "parsed too few routes: {routes:?}");
    routes
}

/// Every `"$ref": "#/components/..."` in `node` points at something in `doc`.
fn check_refs(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "$ref" {
                    let target = value.as_str().expect("$ref is a string");
                    let pointer = target.strip_prefix('#').expect("local $ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                } else {
                    check_refs(doc, value);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_covers_every_registered_route() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = resp.json().await.unwrap();

    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "not OpenAPI 3: {version}");
    assert!(doc["info"]["title"].is_string());

    for (method, path) in registered_routes() {
        if path == "/ws" || path == "/" || path.starts_with("/web/") {
            continue;
        }
        let operation = &doc["paths"][&path][&method];
        assert!(
            operation.is_object(),
            "{} {path} is registered but not in the document",
            method.to_uppercase()
        );
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success response documented"
        );
    }

    // Operation ids are unique (tools generate function names from them).
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().expect("operationId"))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationId");

    // The bearer scheme exists and the authenticated routes require it.
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(
        doc["paths"]["/api/users/me"]["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert!(doc["paths"]["/api/auth/login"]["post"]["security"].is_null());

    // The error body, and request bodies that refuse unknown fields.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["ErrorBody"]["properties"]["error"].is_object());
    assert_eq!(schemas["RegisterBody"]["additionalProperties"], false);
    check_refs(&doc, &doc);
}

#[tokio::test]
async fn the_document_is_the_same_on_every_request() {
    let app = spawn_app().await;
    let get = || app.get_text("/api/openapi.json");
    assert_eq!(get().await, get().await);
}
