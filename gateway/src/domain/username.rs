//! A login name: 3–32 characters of ASCII letters, digits, `_`, `.` and `-`.

use super::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        let len = s.chars().count();
        if !(3..=32).contains(&len) {
            return Err(ValidationError::new(
                "username",
                "must be 3 to 32 characters",
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ValidationError::new(
                "username",
                "may contain only letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Username(s.to_owned()))
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
        for ok in ["bob", "alice_01", "a.b-c", &"x".repeat(32), "  padded  "] {
            assert!(Username::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "has space",
            "émile",
            "<script>",
            "a\0b",
        ] {
            assert_eq!(
                Username::parse(bad).unwrap_err().field,
                "username",
                "{bad:?}"
            );
        }
        assert_eq!(Username::parse(" bob ").unwrap().as_str(), "bob");
    }
}
