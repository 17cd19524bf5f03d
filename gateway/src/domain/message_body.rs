//! Chat message content: trimmed, not empty, not only invisible characters,
//! no control characters but newline and tab, at most N characters.

/// Why content was refused; maps one-to-one onto `error` frame codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    Empty,
    TooLong { max_chars: usize },
    ControlCharacters,
}

text_type!(MessageBody);

use super::display_text::is_invisible;

impl MessageBody {
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, BodyError> {
        let s = raw.trim();
        if s.chars().all(is_invisible) {
            return Err(BodyError::Empty);
        }
        if s.chars().count() > max_chars {
            return Err(BodyError::TooLong { max_chars });
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(BodyError::ControlCharacters);
        }
        Ok(MessageBody(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_accepts_text() {
        assert_eq!(
            MessageBody::parse("  hi there \n", 100).unwrap().as_str(),
            "hi there"
        );
        assert_eq!(
            MessageBody::parse("line1\nline2\tx", 100).unwrap().as_str(),
            "line1\nline2\tx"
        );
        // 4 KiB of Chinese text is ~1,365 characters: within the default limit.
        assert!(MessageBody::parse(&"测".repeat(1365), 2000).is_ok());
    }

    #[test]
    fn refuses_empty_invisible_long_and_control() {
        assert_eq!(MessageBody::parse("", 10), Err(BodyError::Empty));
        assert_eq!(MessageBody::parse(" \n\t ", 10), Err(BodyError::Empty));
        assert_eq!(
            MessageBody::parse("\u{200B}\u{200D}\u{FEFF}", 10),
            Err(BodyError::Empty)
        );
        assert_eq!(
            MessageBody::parse("abcdefghijk", 10),
            Err(BodyError::TooLong { max_chars: 10 })
        );
        assert_eq!(
            MessageBody::parse("a\u{0}b", 10),
            Err(BodyError::ControlCharacters)
        );
        assert_eq!(
            MessageBody::parse("a\u{1b}[31mb", 10),
            Err(BodyError::ControlCharacters)
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(MessageBody::parse("ééééé", 5).is_ok());
        assert!(MessageBody::parse("éééééé", 5).is_err());
    }
}
