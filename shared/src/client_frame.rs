//! What browsers send: one JSON object per text frame.
//!
//! [`ClientFrame::decode`] never panics and turns every bad input into a
//! [`DecodeError`] that the gateway answers with an `error` frame. It carries
//! the frame's `client_msg_id` (as `ref`) and `room_id` when they can still be
//! read, so a client can tell which of its frames was refused.

use crate::error_code::ErrorCode;
use crate::ids::RoomId;
use serde::{Deserialize, Serialize};

/// A decoded client frame. Unknown fields are ignored (forward compatibility);
/// missing required fields and wrong types are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// `{"type":"message","room_id":R,"content":"...","client_msg_id":"..."}`
    Message(SendMessage),
    /// `{"type":"join_room","room_id":R,"since_seq":S?}`
    JoinRoom {
        room_id: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_seq: Option<i64>,
    },
    /// `{"type":"leave_room","room_id":R?}`; without `room_id`: leave every room and close.
    LeaveRoom {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
    },
    /// `{"type":"ping"}`, answered by `{"type":"pong"}`.
    Ping,
    /// `{"type":"typing","room_id":R}`: the user is typing in the room. Not
    /// stored; relayed to the room's other members at most once per 2 s per
    /// user and room (the extra ones are dropped without an answer).
    Typing { room_id: RoomId },
    /// `{"type":"read","room_id":R,"seq":S}`: the user has read the room up
    /// to `seq`. The stored marker only moves forward, and never past the
    /// room's newest seq; the user's other connections in the room hear of it.
    Read { room_id: RoomId, seq: i64 },
}

/// The body of a `message` frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// May be left out when the connection is in exactly one room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    pub content: String,
    /// Echoed back with the stored message (and as `ref` of an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// The frame `type`s protocol v1 accepts.
pub const CLIENT_TYPES: [&str; 6] = [
    "message",
    "join_room",
    "leave_room",
    "ping",
    "typing",
    "read",
];

/// Why a text frame could not be decoded, ready to become an `error` frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    /// The frame's `client_msg_id`, when it was a readable string.
    pub reference: Option<String>,
    /// The frame's `room_id`, when it was a readable integer.
    pub room_id: Option<RoomId>,
}

impl ClientFrame {
    /// Decode one text frame.
    pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
        // The happy path is a single typed parse; the slower diagnosis below
        // runs only for frames that are already wrong.
        serde_json::from_str(text).map_err(|err| diagnose(text, err))
    }

    /// The frame's `type`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Message(_) => "message",
            ClientFrame::JoinRoom { .. } => "join_room",
            ClientFrame::LeaveRoom { .. } => "leave_room",
            ClientFrame::Ping => "ping",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Read { .. } => "read",
        }
    }

    /// The frame's `client_msg_id`, if any.
    pub fn reference(&self) -> Option<&str> {
        match self {
            ClientFrame::Message(m) => m.client_msg_id.as_deref(),
            _ => None,
        }
    }
}

/// Loosely typed view of a frame that failed the strict parse.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    room_id: Option<serde_json::Value>,
    client_msg_id: Option<serde_json::Value>,
}

fn diagnose(text: &str, strict: serde_json::Error) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return DecodeError {
                code: ErrorCode::InvalidJson,
                message: format!(
                    "frame is not valid JSON: {}",
                    strip_position(&e.to_string())
                ),
                reference: None,
                room_id: None,
            };
        }
    };
    if !value.is_object() {
        return DecodeError {
            code: ErrorCode::InvalidFrame,
            message: "a frame must be a JSON object with a \"type\"".into(),
            reference: None,
            room_id: None,
        };
    }
    let probe: Probe = serde_json::from_value(value).unwrap_or(Probe {
        kind: None,
        room_id: None,
        client_msg_id: None,
    });
    let reference = probe
        .client_msg_id
        .and_then(|v| v.as_str().map(str::to_owned));
    let room_id = probe.room_id.and_then(|v| v.as_i64()).map(RoomId);
    let (code, message) = match probe.kind {
        None => (ErrorCode::InvalidFrame, "missing field `type`".to_owned()),
        Some(serde_json::Value::String(t)) if !CLIENT_TYPES.contains(&t.as_str()) => (
            ErrorCode::UnknownType,
            format!(
                "unknown frame type {:?}; expected one of {}",
                truncate(&t, 40),
                CLIENT_TYPES.join(", ")
            ),
        ),
        Some(serde_json::Value::String(_)) => {
            (ErrorCode::InvalidFrame, strip_position(&strict.to_string()))
        }
        Some(_) => (
            ErrorCode::InvalidFrame,
            "field `type` must be a string".to_owned(),
        ),
    };
    DecodeError {
        code,
        message,
        reference,
        room_id,
    }
}

/// serde_json appends "at line 1 column 42", which means nothing to a client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_err(text: &str) -> DecodeError {
        ClientFrame::decode(text).expect_err(text)
    }

    #[test]
    fn v1_frames_decode() {
        assert_eq!(
            ClientFrame::decode(r#"{"type":"message","room_id":1,"content":"Hello, World!"}"#)
                .unwrap(),
            ClientFrame::Message(SendMessage {
                room_id: Some(RoomId(1)),
                content: "Hello, World!".into(),
                client_msg_id: None
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"{"type":"join_room","room_id":7}"#).unwrap(),
            ClientFrame::JoinRoom {
                room_id: RoomId(7),
                since_seq: None
            }
        );
        assert_eq!(
            ClientFrame::decode(r#"{"type":"leave_room"}"#).unwrap(),
            ClientFrame::LeaveRoom { room_id: None }
        );
        assert_eq!(
            ClientFrame::decode(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
    }

    #[test]
    fn typing_needs_its_room() {
        assert_eq!(
            ClientFrame::decode(r#"{"type":"typing","room_id":3}"#).unwrap(),
            ClientFrame::Typing { room_id: RoomId(3) }
        );
        let e = decode_err(r#"{"type":"typing"}"#);
        assert_eq!(e.code, ErrorCode::InvalidFrame);
        assert!(e.message.contains("room_id"), "{}", e.message);
    }

    #[test]
    fn read_needs_its_room_and_seq() {
        assert_eq!(
            ClientFrame::decode(r#"{"type":"read","room_id":3,"seq":41}"#).unwrap(),
            ClientFrame::Read {
                room_id: RoomId(3),
                seq: 41
            }
        );
        let e = decode_err(r#"{"type":"read","room_id":3}"#);
        assert_eq!(
            (e.code, e.room_id),
            (ErrorCode::InvalidFrame, Some(RoomId(3)))
        );
        assert!(e.message.contains("seq"), "{}", e.message);
        let e = decode_err(r#"{"type":"read","room_id":3,"seq":"7"}"#);
        assert_eq!(e.code, ErrorCode::InvalidFrame);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let f = ClientFrame::decode(r#"{"type":"ping","data":{"x":1},"extra":true}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping);
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = [
            ClientFrame::Message(SendMessage {
                room_id: None,
                content: "héllo\n世界".into(),
                client_msg_id: Some("c-1".into()),
            }),
            ClientFrame::JoinRoom {
                room_id: RoomId(3),
                since_seq: Some(41),
            },
            ClientFrame::LeaveRoom {
                room_id: Some(RoomId(3)),
            },
            ClientFrame::LeaveRoom { room_id: None },
            ClientFrame::Ping,
        ];
        for f in frames {
            let text = serde_json::to_string(&f).unwrap();
            assert_eq!(ClientFrame::decode(&text).unwrap(), f, "{text}");
        }
    }

    #[test]
    fn malformed_input_gives_typed_errors() {
        let cases: &[(&str, ErrorCode)] = &[
            ("", ErrorCode::InvalidJson),
            ("{", ErrorCode::InvalidJson),
            ("hello", ErrorCode::InvalidJson),
            ("[1,2]", ErrorCode::InvalidFrame),
            ("42", ErrorCode::InvalidFrame),
            ("{}", ErrorCode::InvalidFrame),
            (r#"{"type":7}"#, ErrorCode::InvalidFrame),
            (r#"{"type":"shout"}"#, ErrorCode::UnknownType),
            (r#"{"type":"message","room_id":1}"#, ErrorCode::InvalidFrame),
            (r#"{"type":"message","content":5}"#, ErrorCode::InvalidFrame),
            (r#"{"type":"join_room"}"#, ErrorCode::InvalidFrame),
            (
                r#"{"type":"join_room","room_id":"x"}"#,
                ErrorCode::InvalidFrame,
            ),
            (
                r#"{"type":"join_room","room_id":1e400}"#,
                ErrorCode::InvalidJson,
            ),
            (
                r#"{"type":"join_room","room_id":99999999999999999999999}"#,
                ErrorCode::InvalidFrame,
            ),
            (
                r#"{"type":"join_room","room_id":1.5}"#,
                ErrorCode::InvalidFrame,
            ),
        ];
        for (text, code) in cases {
            let err = decode_err(text);
            assert_eq!(err.code, *code, "input {text:?}: {err:?}");
            assert!(!err.message.is_empty());
            assert!(!err.message.contains("at line"), "{}", err.message);
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = decode_err(r#"{"type":"message","room_id":1}"#);
        assert!(err.message.contains("content"), "{}", err.message);
    }

    #[test]
    fn errors_carry_reference_and_room() {
        let err =
            decode_err(r#"{"type":"message","room_id":4,"content":null,"client_msg_id":"abc"}"#);
        assert_eq!(err.reference.as_deref(), Some("abc"));
        assert_eq!(err.room_id, Some(RoomId(4)));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(decode_err(&deep).code, ErrorCode::InvalidJson);
        let deep_obj = format!(
            r#"{{"type":"ping","x":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(decode_err(&deep_obj).code, ErrorCode::InvalidJson);
    }

    #[test]
    fn unknown_type_message_is_bounded() {
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
        let err = decode_err(&long);
        assert_eq!(err.code, ErrorCode::UnknownType);
        assert!(err.message.len() < 200);
    }
}
