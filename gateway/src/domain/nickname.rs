//! A display name: 1–64 characters once trimmed, no control characters.

use super::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(String);

impl Nickname {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        let len = s.chars().count();
        if !(1..=64).contains(&len) {
            return Err(ValidationError::new(
                "nickname",
                "must be 1 to 64 characters",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "nickname",
                "must not contain control characters",
            ));
        }
        Ok(Nickname(s.to_owned()))
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
        assert_eq!(Nickname::parse(" 测试用户 ").unwrap().as_str(), "测试用户");
        assert!(Nickname::parse("   ").is_err());
        assert!(Nickname::parse(&"n".repeat(65)).is_err());
        assert!(Nickname::parse("a\u{7}b").is_err());
    }
}
