//! Identifier newtypes. Each is `#[serde(transparent)]`, so on the wire an id
//! is a plain JSON number (or string for [`NodeId`]), exactly as in protocol v1.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }
    };
}

int_id!(
    /// A user's database id (the JWT `sub`).
    UserId(i64)
);
int_id!(
    /// A room's database id. Room 1 ("general") always exists.
    RoomId(i64)
);
int_id!(
    /// A stored message's database id.
    MessageId(i64)
);
int_id!(
    /// One WebSocket connection, unique within one node's lifetime.
    ConnId(u64)
);

/// One gateway process. Random per start, so a restarted node never
/// inherits the presence entries of its previous life.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connection named cluster-wide: its node plus its node-local id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnKey {
    pub node: NodeId,
    pub conn: ConnId,
}

impl fmt::Display for ConnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.conn)
    }
}
