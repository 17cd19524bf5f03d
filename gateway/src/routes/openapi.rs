//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the REST API,
//! generated from the handlers' `#[utoipa::path]` annotations and the types
//! they return, so it cannot drift from the code. Built once, on first use.

use super::{
    auth, bans, direct_messages, health, members, message_edits, messages, metrics, read_markers,
    rooms, users, ws,
};
use actix_web::{HttpResponse, get, http::header::ContentType};
use std::sync::LazyLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every route of `routes::configure`, in the same order. `tests/api/openapi.rs`
/// checks that each registered route appears in the served document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-gateway",
        description = "REST API of the chat gateway. Errors have one shape, `ErrorBody`: \
            `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`. Any route may also answer \
            500 (`internal`) on an unexpected failure. Real-time chat is the WebSocket `/ws`; \
            its frames are described in the protocol crate's README."
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        auth::register,
        auth::login,
        users::me,
        users::edit_me,
        users::delete_me,
        rooms::create,
        rooms::list,
        rooms::read,
        rooms::edit,
        rooms::remove,
        rooms::online,
        read_markers::mark_read,
        direct_messages::open,
        members::join,
        members::leave,
        members::list,
        members::add,
        members::set_role,
        members::kick,
        bans::create,
        bans::lift,
        bans::list,
        messages::history,
        messages::post,
        message_edits::edit,
        message_edits::remove,
        ws::upgrade,
        document,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Register and log in: a user and a token"),
        (name = "users", description = "The caller's profile"),
        (name = "rooms", description = "Rooms (private rooms are invisible to non-members: 404)"),
        (name = "members", description = "Membership and roles"),
        (name = "messages", description = "History and posting"),
        (name = "websocket", description = "The real-time endpoint"),
        (name = "meta", description = "This document and the node's metrics"),
    )
)]
pub struct ApiDoc;

/// `bearer`: `Authorization: Bearer <JWT>` (HS256, from register/login).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
});

/// This OpenAPI document.
#[utoipa::path(
    operation_id = "openapi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
#[get("/api/openapi.json")]
pub(super) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(DOCUMENT.as_str())
}
