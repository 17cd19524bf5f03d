//! The REST API as the tests call it: one `TestApp` method per endpoint,
//! each a thin wrapper over [`rest`] that answers the same `(status, body)`,
//! so that a test reads `app.join_room(&token, room)` rather than a method,
//! a formatted path and a `None`. The two signed-out endpoints answer the
//! raw response ([`TestApp::try_register`], [`TestApp::login`]); and
//! [`TestApp::new_room`], [`TestApp::create_room`] are the room creations
//! that must succeed. Requests a method does not fit (odd paths, a method
//! chosen at run time) still go through [`rest`].

use crate::helpers::{TestApp, rest};
use serde_json::{Value, json};

/// `path`, with `?query` when there is one.
fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

impl TestApp {
    /// `POST /api/auth/register` as `username` with `password`: the raw answer.
    pub async fn try_register(&self, username: &str, password: &str) -> reqwest::Response {
        let body = json!({"username": username, "password": password});
        self.post("/api/auth/register", &body).await
    }

    /// `POST /api/auth/login` as `username` with `password`: the raw answer.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        let body = json!({"username": username, "password": password});
        self.post("/api/auth/login", &body).await
    }

    /// `method` on `/api/rooms/{room}{tail}`: the endpoints of one room.
    async fn on_room(
        &self,
        method: &str,
        room: i64,
        tail: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = format!("/api/rooms/{room}{tail}");
        rest(self, method, &path, token, body).await
    }

    /// `GET /api/rooms[?query]`: the rooms `token` may see.
    pub async fn rooms(&self, token: &str, query: &str) -> (u16, Value) {
        let path = with_query("/api/rooms".to_owned(), query);
        rest(self, "GET", &path, token, None).await
    }

    /// `POST /api/rooms` with `body`, whatever the answer.
    pub async fn create_room_raw(&self, token: &str, body: Value) -> (u16, Value) {
        rest(self, "POST", "/api/rooms", token, Some(body)).await
    }

    /// `POST /api/rooms` with `body`, which must answer 201: the new room's id.
    pub async fn new_room(&self, token: &str, body: Value) -> i64 {
        let (status, room) = self.create_room_raw(token, body).await;
        assert_eq!(status, 201, "{room}");
        room["id"].as_i64().unwrap()
    }

    /// A room named `name`, public or private, created by `token`: its id.
    pub async fn create_room(&self, token: &str, name: &str, private: bool) -> i64 {
        self.new_room(token, json!({"name": name, "is_private": private}))
            .await
    }

    /// `GET /api/rooms/{room}`.
    pub async fn room(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("GET", room, "", token, None).await
    }

    /// `PATCH /api/rooms/{room}` with `body`.
    pub async fn update_room(&self, token: &str, room: i64, body: Value) -> (u16, Value) {
        self.on_room("PATCH", room, "", token, Some(body)).await
    }

    /// `DELETE /api/rooms/{room}`.
    pub async fn delete_room(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("DELETE", room, "", token, None).await
    }

    /// `PUT /api/rooms/{room}/read` with `{"seq": seq}`.
    pub async fn mark_read(&self, token: &str, room: i64, seq: i64) -> (u16, Value) {
        self.on_room("PUT", room, "/read", token, Some(json!({"seq": seq})))
            .await
    }

    /// `POST /api/rooms/{room}/join`.
    pub async fn join_room(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("POST", room, "/join", token, None).await
    }

    /// `POST /api/rooms/{room}/leave`.
    pub async fn leave_room(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("POST", room, "/leave", token, None).await
    }

    /// `POST /api/rooms/{room}/members` adding `user` with the default role.
    pub async fn add_member(&self, token: &str, room: i64, user: i64) -> (u16, Value) {
        self.post_member(token, room, json!({"user_id": user}))
            .await
    }

    /// `POST /api/rooms/{room}/members` adding `user` as `role`.
    pub async fn add_member_as(
        &self,
        token: &str,
        room: i64,
        user: i64,
        role: &str,
    ) -> (u16, Value) {
        self.post_member(token, room, json!({"user_id": user, "role": role}))
            .await
    }

    /// `POST /api/rooms/{room}/members` with `body`.
    async fn post_member(&self, token: &str, room: i64, body: Value) -> (u16, Value) {
        self.on_room("POST", room, "/members", token, Some(body))
            .await
    }

    /// `GET /api/rooms/{room}/members`.
    pub async fn members(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("GET", room, "/members", token, None).await
    }

    /// `PATCH /api/rooms/{room}/members/{user}` to `role`.
    pub async fn set_role(&self, token: &str, room: i64, user: i64, role: &str) -> (u16, Value) {
        let (tail, body) = (format!("/members/{user}"), json!({"role": role}));
        self.on_room("PATCH", room, &tail, token, Some(body)).await
    }

    /// `DELETE /api/rooms/{room}/members/{user}`: a kick.
    pub async fn remove_member(&self, token: &str, room: i64, user: i64) -> (u16, Value) {
        let tail = format!("/members/{user}");
        self.on_room("DELETE", room, &tail, token, None).await
    }

    /// `POST /api/rooms/{room}/messages` with `body`.
    pub async fn post_message(&self, token: &str, room: i64, body: Value) -> (u16, Value) {
        self.on_room("POST", room, "/messages", token, Some(body))
            .await
    }

    /// `PATCH /api/rooms/{room}/messages/{id}` to `content`.
    pub async fn edit_message(
        &self,
        token: &str,
        room: i64,
        id: i64,
        content: &str,
    ) -> (u16, Value) {
        let (tail, body) = (format!("/messages/{id}"), json!({"content": content}));
        self.on_room("PATCH", room, &tail, token, Some(body)).await
    }

    /// `DELETE /api/rooms/{room}/messages/{id}`.
    pub async fn delete_message(&self, token: &str, room: i64, id: i64) -> (u16, Value) {
        let tail = format!("/messages/{id}");
        self.on_room("DELETE", room, &tail, token, None).await
    }

    /// `GET /api/rooms/{room}/online`.
    pub async fn online(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("GET", room, "/online", token, None).await
    }

    /// `GET /api/rooms/{room}/messages[?query]`: a page of history.
    pub async fn messages(&self, token: &str, room: i64, query: &str) -> (u16, Value) {
        let tail = with_query("/messages".to_owned(), query);
        self.on_room("GET", room, &tail, token, None).await
    }

    /// `POST /api/rooms/{room}/bans` with `body`.
    pub async fn ban(&self, token: &str, room: i64, body: Value) -> (u16, Value) {
        self.on_room("POST", room, "/bans", token, Some(body)).await
    }

    /// `GET /api/rooms/{room}/bans`.
    pub async fn bans(&self, token: &str, room: i64) -> (u16, Value) {
        self.on_room("GET", room, "/bans", token, None).await
    }

    /// `DELETE /api/rooms/{room}/bans/{user}`.
    pub async fn unban(&self, token: &str, room: i64, user: i64) -> (u16, Value) {
        let tail = format!("/bans/{user}");
        self.on_room("DELETE", room, &tail, token, None).await
    }

    /// `GET /api/users/me`.
    pub async fn me(&self, token: &str) -> (u16, Value) {
        rest(self, "GET", "/api/users/me", token, None).await
    }

    /// `PATCH /api/users/me` with `body`.
    pub async fn update_me(&self, token: &str, body: Value) -> (u16, Value) {
        rest(self, "PATCH", "/api/users/me", token, Some(body)).await
    }

    /// `POST /api/dms` with `user`: the caller's direct-message room with them.
    pub async fn open_dm(&self, token: &str, user: i64) -> (u16, Value) {
        rest(
            self,
            "POST",
            "/api/dms",
            token,
            Some(json!({"user_id": user})),
        )
        .await
    }

    /// `DELETE /api/users/me`.
    pub async fn delete_me(&self, token: &str) -> (u16, Value) {
        rest(self, "DELETE", "/api/users/me", token, None).await
    }
}
