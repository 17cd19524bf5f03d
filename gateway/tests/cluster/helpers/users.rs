//! The users a test acts as: a [`User`] with a token minted (HS256) with the
//! secret every node shares, so no login round-trip is needed.

use serde_json::{Value, json};

use super::SECRET;

/// A user the test minted a token for.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub token: String,
}

impl User {
    /// As in `online_users` / `user_joined`.
    pub fn public(&self) -> Value {
        json!({"id": self.id, "username": self.username, "nickname": self.nickname})
    }
}

/// Sign claims with the shared secret (HS256).
pub fn mint(claims: &Value) -> String {
    shared::token::mint(SECRET.as_bytes(), claims)
}
