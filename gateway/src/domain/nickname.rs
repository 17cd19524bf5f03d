//! A display name: 1–64 characters once trimmed, visible, no control or
//! direction control characters (see `display_text`).

use super::ValidationError;

text_type!(Nickname);

impl Nickname {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        super::display_text::name(raw, "nickname", 64).map(Nickname)
    }

    /// From a token minted elsewhere: cleaned (see `display_text::sanitize`)
    /// and parsed; `None` if nothing usable is left.
    pub fn from_claim(raw: &str) -> Option<Self> {
        Self::parse(&super::display_text::sanitize(raw, 64)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(Nickname::parse(" 测试用户 ").unwrap().as_str(), "测试用户");
        assert!(Nickname::parse("   ").is_err());
        assert!(Nickname::parse(&"n".repeat(65)).is_err());
        assert!(Nickname::parse("a\u{7}b").is_err());
        assert!(Nickname::parse("\u{200B}").is_err(), "invisible");
        assert!(Nickname::parse("Bob\u{202E}").is_err(), "direction control");
        assert_eq!(
            Nickname::from_claim("\u{1b}Bob\u{202E}\u{7}")
                .unwrap()
                .as_str(),
            "Bob"
        );
        assert!(Nickname::from_claim("\u{200B}\u{0}").is_none());
    }
}
