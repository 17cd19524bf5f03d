//! A password on its way to the hasher: 8–128 characters, never printed.

use super::ValidationError;
use std::fmt;

#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The longest password accepted (and so the longest a login can match).
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if len < 8 {
            return Err(ValidationError::new(
                "password",
                "must be at least 8 characters",
            ));
        }
        if len > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "password",
                "must be at most 128 characters",
            ));
        }
        Ok(Password(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_redaction() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(129)).is_err());
        let p = Password::parse("correct horse".into()).unwrap();
        assert_eq!(format!("{p:?}"), "Password([redacted])");
    }
}
