//! Every Redis key and channel name the gateway uses.

use shared::ids::RoomId;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The room's pub/sub channel, e.g. `chat:{room:1}`.
    pub fn room_channel(&self, room: RoomId) -> String {
        format!("{}:{{room:{}}}", self.prefix, room.0)
    }

    /// The room id of a channel name, for routing received messages.
    pub fn room_of_channel(&self, channel: &str) -> Option<RoomId> {
        let rest = channel
            .strip_prefix(&self.prefix)?
            .strip_prefix(":{room:")?
            .strip_suffix('}')?;
        rest.parse().ok().map(RoomId)
    }

    /// The room's last 100 messages (JSON), newest first.
    pub fn recent(&self, room: RoomId) -> String {
        format!("{}:{{room:{}}}:recent", self.prefix, room.0)
    }

    /// The connections a user holds on every node: conn → expiry (ms).
    pub fn user_conns(&self, user: shared::ids::UserId) -> String {
        format!("{}:{{user:{}}}:conns", self.prefix, user.0)
    }

    /// Presence of a room: conn → user id, conn → expiry (ms), user → number of conns, user → profile.
    pub fn presence(&self, room: RoomId) -> [String; 4] {
        let base = format!("{}:{{room:{}}}:presence", self.prefix, room.0);
        [
            format!("{base}:conns"),
            format!("{base}:expiry"),
            format!("{base}:users"),
            format!("{base}:profiles"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_the_room_hash_tag() {
        let k = Keys::new("chat");
        assert_eq!(k.room_channel(RoomId(7)), "chat:{room:7}");
        assert_eq!(k.room_of_channel("chat:{room:7}"), Some(RoomId(7)));
        assert_eq!(k.room_of_channel("other:{room:7}"), None);
        assert_eq!(k.room_of_channel("chat:{room:x}"), None);
        assert!(k.recent(RoomId(7)).contains("{room:7}"));
        assert!(
            k.presence(RoomId(7))
                .iter()
                .all(|key| key.contains("{room:7}"))
        );
    }
}
