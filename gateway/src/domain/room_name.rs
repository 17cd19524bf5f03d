//! A room's name: 1–64 characters once trimmed, no control characters.

use super::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if !(1..=64).contains(&s.chars().count()) {
            return Err(ValidationError::new("name", "must be 1 to 64 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(RoomName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            RoomName::parse("  Rust 中文  ").unwrap().as_str(),
            "Rust 中文"
        );
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("   ").is_err());
        assert!(RoomName::parse(&"r".repeat(65)).is_err());
        assert!(RoomName::parse(&"r".repeat(64)).is_ok());
        assert!(RoomName::parse("a\nb").is_err());
    }
}
