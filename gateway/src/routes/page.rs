//! `GET /` and `GET /web/{file}`: the chat page and its files (`gateway/web/`),
//! embedded in the binary so every node serves its own front end with no build
//! step and no file system access. Same origin as `/ws` and `/api`, so the page
//! works unchanged behind a load balancer.
//!
//! Every answer carries an `ETag` (a hash of the embedded bytes) and
//! `Cache-Control: no-cache` (browsers revalidate, a deploy is seen at once,
//! an unchanged file costs a 304), and a strict `Content-Security-Policy`: the
//! page runs no inline script or style and talks only to its own origin.
//! Unknown files get the JSON 404 of every other unknown path. These routes are
//! not part of the API document (`/api/openapi.json`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    /// The name under `/web/` (`index.html` is also `/`).
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// An [`Asset`] from `gateway/web/`, embedded at build time.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("chat-client.js", "text/javascript; charset=utf-8"),
    asset!("members.js", "text/javascript; charset=utf-8"),
    asset!("messages.js", "text/javascript; charset=utf-8"),
    asset!("presence.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The page's policy: its own scripts and styles only, no inline code, no
/// frames, and network access to its own origin (HTTP and WebSocket).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self' ws: wss:; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The ETag of each asset, in `ASSETS` order; computed once, on first use.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|file| {
            let mut hasher = DefaultHasher::new();
            file.body.hash(&mut hasher);
            format!("\"{:016x}\"", hasher.finish())
        })
        .collect()
});

fn serve(req: &HttpRequest, at: usize) -> HttpResponse {
    let file = &ASSETS[at];
    let etag = ETAGS[at].as_str();
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        resp.finish()
    } else {
        resp.content_type(file.content_type).body(file.body)
    }
}

/// The chat page.
#[get("/")]
pub(super) async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

/// The page's scripts, style sheet and icon; the JSON 404 for anything else.
#[get("/web/{file}")]
pub(super) async fn asset(
    req: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, crate::error::ApiError> {
    match ASSETS.iter().position(|a| a.name == file.as_str()) {
        Some(at) => Ok(serve(&req, at)),
        None => Err(crate::error::ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            crate::error::RestErrorCode::NotFound,
            "no such file",
        )),
    }
}
