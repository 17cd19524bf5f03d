//! A room's name: 1–64 characters once trimmed, visible, no control or
//! direction control characters (see `display_text`).

use super::ValidationError;

text_type!(RoomName);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        super::display_text::name(raw, "name", 64).map(RoomName)
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
        assert!(RoomName::parse("\u{2066}general").is_err());
        assert!(RoomName::parse("\u{200B}\u{200B}").is_err());
        assert!(RoomName::parse(&"r".repeat(64)).is_ok());
        assert!(RoomName::parse("a\nb").is_err());
    }
}
