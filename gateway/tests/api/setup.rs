//! Setup that many tests share: users registered with a connection in room
//! 1, upgrades that must be refused or accepted again, and rows put straight
//! into the store.

use crate::helpers::{TestApp, WsClient, spawn_with};
use serde_json::Value;
use std::time::Duration;

impl TestApp {
    /// Register `name` and open its connection in room 1 (past its
    /// `online_users`): (user id, token, connection).
    pub async fn user_in_general(&self, name: &str) -> (i64, String, WsClient) {
        let (id, token) = self.register(name).await;
        let ws = self.ws_in_general(&token).await;
        (id, token, ws)
    }

    /// Register every one of `names`, in order: (user id, token) per name.
    pub async fn register_all<const N: usize>(&self, names: [&str; N]) -> [(i64, String); N] {
        let mut users = Vec::with_capacity(N);
        for name in names {
            users.push(self.register(name).await);
        }
        users.try_into().expect("one per name")
    }

    /// Register every one of `names`, then open their connections in room 1
    /// in the same order: (user id, token, connection) per name.
    pub async fn users_in_general<const N: usize>(
        &self,
        names: [&str; N],
    ) -> [(i64, String, WsClient); N] {
        let users = self.register_all(names).await;
        let mut all = Vec::with_capacity(N);
        for (id, token) in users {
            let ws = self.ws_in_general(&token).await;
            all.push((id, token, ws));
        }
        all.try_into().ok().expect("one per name")
    }

    /// An upgrade as `token` that the node must refuse: its status and body.
    pub async fn refused_ws(&self, token: &str) -> (u16, String) {
        match self.try_ws(&format!("token={token}")).await {
            Ok(_) => panic!("an upgrade as {token} was accepted"),
            Err(refusal) => refusal,
        }
    }

    /// Wait up to `within` until an upgrade as `token` is accepted again;
    /// meanwhile only refusals with `status` are allowed.
    pub async fn ws_accepted_again(&self, token: &str, status: u16, within: Duration) {
        crate::eventually::eventually(within, "an upgrade accepted again", || async {
            match self.try_ws(&format!("token={token}")).await {
                Ok(_) => Ok(()),
                Err((s, body)) if s == status => Err(format!("{s} {body}")),
                Err(other) => panic!("refused otherwise: {other:?}"),
            }
        })
        .await;
    }

    /// A public room inserted straight into the store (no owner); its id.
    pub async fn insert_public_room(&self, name: &str) -> i64 {
        self.app_state
            .store
            .create_room(name, "", false, None, gateway::clock::now())
            .await
            .expect("room")
            .id
            .0
    }

    /// The newest `limit` messages stored in `room`, newest first.
    pub async fn stored_messages(
        &self,
        room: i64,
        limit: u64,
    ) -> Vec<gateway::store::MessageRecord> {
        self.app_state
            .store
            .messages_before(shared::ids::RoomId(room), None, limit)
            .await
            .expect("stored messages")
    }
}

/// Assert that `resp` has `status` and a JSON error body with `code`.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// A node whose frame rate limit is `rate` frames a second per connection,
/// with bursts of `burst`, and the new user `name`'s connection in room 1.
pub async fn user_at_frame_rate(rate: u32, burst: u32, name: &str) -> (TestApp, WsClient) {
    let app = spawn_with(|s| {
        s.limits.msg_rate = rate;
        s.limits.msg_burst = burst;
    })
    .await;
    let (_, _, ws) = app.user_in_general(name).await;
    (app, ws)
}

/// The user ids of an `online_users` frame, in its order.
pub fn online_ids(frame: &Value) -> Vec<i64> {
    frame["data"]["users"]
        .as_array()
        .expect("a list of users")
        .iter()
        .map(|u| u["id"].as_i64().expect("a user id"))
        .collect()
}
