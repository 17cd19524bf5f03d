//! Who may open a direct-message room with a user.

use super::ValidationError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DmPolicy {
    /// Any user.
    #[default]
    Anyone,
    /// Users who share a room with this one (other than room 1, the lobby
    /// everyone is in, and other direct-message rooms), and those this user
    /// already has a direct-message room with.
    SharedRooms,
}

impl DmPolicy {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "anyone" => Ok(DmPolicy::Anyone),
            "shared_rooms" => Ok(DmPolicy::SharedRooms),
            _ => Err(ValidationError::new(
                "dm_policy",
                "must be one of anyone, shared_rooms",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Anyone => "anyone",
            DmPolicy::SharedRooms => "shared_rooms",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in [DmPolicy::Anyone, DmPolicy::SharedRooms] {
            assert_eq!(DmPolicy::parse(p.as_str()).unwrap(), p);
        }
        assert!(DmPolicy::parse("nobody").is_err());
    }
}
