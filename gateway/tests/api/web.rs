//! `GET /` and `GET /web/{file}`: the embedded chat page (its behaviour in a
//! browser is `scripts/browser-test.sh`).

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_page_is_served_as_html_with_a_strict_policy() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/web/app.js"></script>"#));
    // No inline script (the policy would block it): every <script> has a src.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script type=\"module\" src=").count()
    );

    // An unchanged page costs a 304.
    let etag = header("etag");
    let again = app
        .http
        .get(app.url("/"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn the_scripts_and_styles_have_their_content_types() {
    let app = spawn_app().await;
    for (file, content_type, marker) in [
        (
            "chat-client.js",
            "text/javascript",
            "export class ChatClient",
        ),
        (
            "app.js",
            "text/javascript",
            "import { ChatClient } from './chat-client.js'",
        ),
        (
            "members.js",
            "text/javascript",
            "export async function showMembers",
        ),
        (
            "messages.js",
            "text/javascript",
            "export function createMessages",
        ),
        (
            "presence.js",
            "text/javascript",
            "export function createPresence",
        ),
        ("style.css", "text/css", ":root"),
        ("icon.svg", "image/svg+xml", "<svg"),
        ("index.html", "text/html", "<!doctype html>"),
    ] {
        let resp = app
            .http
            .get(app.url(&format!("/web/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{file}");
        let got = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(got.starts_with(content_type), "{file}: {got}");
        assert!(resp.headers().contains_key("etag"), "{file}: no ETag");
        let body = resp.text().await.unwrap();
        assert!(body.contains(marker), "{file} does not contain {marker:?}");
        if file.ends_with(".js") {
            // User data reaches the DOM as text only.
            for sink in [
                ".innerHTML",
                ".outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!body.contains(sink), "{file} uses {sink}");
            }
        }
    }
}

#[tokio::test]
async fn unknown_static_files_get_the_json_404() {
    let app = spawn_app().await;
    for path in [
        "/web/nope.js",
        "/web/",
        "/web/..%2FCargo.toml",
        "/index.html",
        "/web/app.js/x",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}
