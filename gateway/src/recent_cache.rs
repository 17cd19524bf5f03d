//! The format of a room's recent-messages cache in Redis (protocol v1's
//! `room:messages:{id}`, the last 100 entries), shared by the bus, which
//! writes it in its publish script (`bus/lua/publish.lua`), and the
//! history, which serves pages from it when it provably matches SQL.
//!
//! Every event with a place in the room's sequence has an entry, so that
//! the entries' seqs are contiguous exactly when the cache missed nothing:
//! a message is its `MessageData` JSON (which starts with `{"id":N,`, how the
//! script finds it again), an edit or a deletion is a marker
//! `{"seq":S,"event":...}`. An edit or a deletion also replaces the
//! message's entry with the message as it now is, carrying `"rev"`: the
//! event's seq. The script replaces only an entry of a lower rev, so that
//! two changes published out of order leave the later one.

use serde::Deserialize;
use shared::bus_envelope::BusEvent;
use shared::server_frame::MessageData;

/// One cache entry, as read.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Entry {
    Message(MessageData),
    /// An edit or a deletion: a place in the sequence, no message.
    Event {
        seq: i64,
    },
}

impl Entry {
    pub fn seq(&self) -> i64 {
        match self {
            Entry::Message(m) => m.seq,
            Entry::Event { seq } => *seq,
        }
    }
}

/// What the publish script does to the cache for `event`.
#[derive(Debug, Default, PartialEq)]
pub struct Update {
    /// The entry to push ("" for none).
    pub push: String,
    /// The id of the message whose entry is replaced ("" for none).
    pub replace_id: String,
    /// Its replacement, with `"rev"`.
    pub replacement: String,
    /// The rev: the change's seq.
    pub rev: String,
}

/// The cache update for `event`. `first_publish`: a message's entry is
/// pushed on its first publish only. A republish (after a failed first
/// attempt, or for a retried send) may come after the message was edited,
/// and would push a stale copy; without the entry the cache's seqs have a
/// hole there and pages that cross it are read from SQL.
pub fn update_for(event: &BusEvent, first_publish: bool) -> Update {
    match event {
        BusEvent::Message(m) if first_publish => Update {
            push: serde_json::to_string(m).expect("messages serialise"),
            ..Update::default()
        },
        BusEvent::MessageEdited { data, message } => change(data.seq, "message_edited", message),
        BusEvent::MessageDeleted { data, message } => change(data.seq, "message_deleted", message),
        _ => Update::default(),
    }
}

fn change(seq: i64, event: &str, message: &MessageData) -> Update {
    // As serialised (`id` first, which the script looks for), plus the rev.
    let mut replacement = serde_json::to_string(message).expect("messages serialise");
    replacement.pop();
    replacement.push_str(&format!(",\"rev\":{seq}}}"));
    Update {
        push: serde_json::json!({ "seq": seq, "event": event }).to_string(),
        replace_id: message.id.0.to_string(),
        replacement: replacement.to_string(),
        rev: seq.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{MessageId, RoomId, UserId};
    use shared::server_frame::{MessageDeletedData, UserPublic};

    fn message(id: i64, seq: i64) -> MessageData {
        MessageData {
            id: MessageId(id),
            room_id: RoomId(1),
            user_id: UserId(2),
            seq,
            content: String::new(),
            created_at: "2026-12-06T10:00:00.000Z".into(),
            user: UserPublic {
                id: UserId(2),
                username: "ann".into(),
                nickname: "Ann".into(),
            },
            client_msg_id: None,
            edited_at: None,
            deleted: true,
        }
    }

    #[test]
    fn a_message_entry_starts_with_its_id_as_the_script_looks_for_it() {
        let update = update_for(&BusEvent::Message(message(42, 7)), true);
        assert!(update.push.starts_with(r#"{"id":42,"#), "{}", update.push);
        assert_eq!(update.replace_id, "");
        let update = update_for(&BusEvent::Message(message(42, 7)), false);
        assert_eq!(update, Update::default(), "a republish pushes nothing");
    }

    #[test]
    fn a_deletion_pushes_its_marker_and_replaces_the_message_with_its_rev() {
        let event = BusEvent::MessageDeleted {
            data: MessageDeletedData {
                id: MessageId(42),
                seq: 9,
            },
            message: message(42, 7),
        };
        let update = update_for(&event, false);
        assert_eq!(update.replace_id, "42");
        assert_eq!(update.rev, "9");
        assert!(update.replacement.starts_with(r#"{"id":42,"#));
        let marker: Entry = serde_json::from_str(&update.push).unwrap();
        assert!(matches!(marker, Entry::Event { seq: 9 }));
        assert!(update.replacement.ends_with(r#","rev":9}"#));
        let replaced: Entry = serde_json::from_str(&update.replacement).unwrap();
        match replaced {
            Entry::Message(m) => assert_eq!((m.seq, m.deleted), (7, true)),
            Entry::Event { .. } => panic!("the replacement is the message"),
        }
    }
}
