//! A room's description: at most 500 characters once trimmed; may be empty.

use super::ValidationError;

text_type!(
    #[derive(Default)]
    Description
);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if s.chars().count() > 500 {
            return Err(ValidationError::new(
                "description",
                "must be at most 500 characters",
            ));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(ValidationError::new(
                "description",
                "must not contain control characters",
            ));
        }
        Ok(Description(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(Description::parse("").unwrap().as_str(), "");
        assert!(Description::parse(&"d".repeat(500)).is_ok());
        assert!(Description::parse(&"d".repeat(501)).is_err());
        assert!(Description::parse("line\nline").is_ok());
        assert!(Description::parse("bell\u{7}").is_err());
    }
}
