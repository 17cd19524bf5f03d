//! Which server frames are about presence, for the test clients'
//! `next_event`, which skips them to reach the room's next event.

use serde_json::Value;

/// `online_users`, `user_joined`, `user_left` or `presence_batch`.
pub fn is_presence(frame: &Value) -> bool {
    const PRESENCE: [&str; 4] = ["online_users", "user_joined", "user_left", "presence_batch"];
    PRESENCE.contains(&frame["type"].as_str().unwrap_or_default())
}
