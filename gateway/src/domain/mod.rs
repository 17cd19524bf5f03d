//! Parse, don't validate: input becomes one of these types or a
//! [`ValidationError`] naming the field, and code past the edge never checks again.

/// A validated text: the newtype and its `as_str`. Each file adds the
/// `parse` that holds its rules; nothing else constructs one.
macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

mod client_msg_id;
mod description;
mod display_text;
mod dm_policy;
mod message_body;
mod nickname;
mod password;
mod role;
mod room_name;
mod username;

pub use client_msg_id::ClientMsgId;
pub use description::Description;
pub use dm_policy::DmPolicy;
pub use message_body::{BodyError, MessageBody};
pub use nickname::Nickname;
pub use password::Password;
pub use role::Role;
pub use room_name::RoomName;
pub use username::Username;

/// Input that breaks a rule; `field` is the JSON field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ValidationError {
            field,
            message: message.into(),
        }
    }
}
