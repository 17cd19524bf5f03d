//! A login name: 3–32 characters of ASCII letters, digits, `_`, `.` and `-`.

use super::ValidationError;

text_type!(Username);

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

    /// The form usernames are unique in and logins are matched by: Unicode
    /// NFKC, then lower case (`Alice_x` is `alice_x`; a full-width `Ａｌｉｃｅ`
    /// typed at login is `alice`). Migration `m20261203_000006` keeps a
    /// frozen copy of this function.
    pub fn key(raw: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        raw.trim().nfkc().collect::<String>().to_lowercase()
    }

    /// From a token minted elsewhere: cleaned (control and direction
    /// characters dropped, trimmed) and parsed; `None` if that is no valid
    /// username.
    pub fn from_claim(raw: &str) -> Option<Self> {
        Self::parse(&super::display_text::sanitize(raw, 32)).ok()
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
        assert_eq!(Username::key("Alice_X"), Username::key("alice_x"));
        assert_eq!(Username::key("ＡＬＩＣＥ"), "alice");
        assert!(Username::from_claim("<b>Admin</b> ").is_none());
        assert_eq!(
            Username::from_claim(" carol\u{7} ").unwrap().as_str(),
            "carol"
        );
    }
}
