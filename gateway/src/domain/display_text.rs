//! What a name shown to other people may hold: the rules nicknames and room
//! names share. A name must not be able to pass for someone else's, so
//! beyond "no control characters" it may hold no direction controls (an
//! RLO can make `Alice` render as another name, or reorder what follows it
//! on screen) and may not be blank or invisible (only zero-width
//! characters). Message content keeps direction controls (text in mixed
//! scripts needs them); the web page isolates each message so that they
//! cannot reach past it.

use super::ValidationError;

/// Whitespace and the zero-width / formatting characters that render as nothing.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}' | '\u{034F}'
        )
}

/// The bidirectional embeddings, overrides and isolates (and the Arabic
/// letter mark): they change how the text around them is laid out.
pub fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// A name of 1 to `max` characters once trimmed, visible, with no control
/// or direction control characters; `field` names it in the refusal.
pub fn name(raw: &str, field: &'static str, max: usize) -> Result<String, ValidationError> {
    let s = raw.trim();
    if !(1..=max).contains(&s.chars().count()) {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    if s.chars().any(is_direction_control) {
        return Err(ValidationError::new(
            field,
            "must not contain text-direction control characters (U+202A-U+202E, U+2066-U+2069)",
        ));
    }
    if s.chars().all(is_invisible) {
        return Err(ValidationError::new(field, "must have a visible character"));
    }
    Ok(s.to_owned())
}

/// What can be kept of a claim from a token minted elsewhere: control and
/// direction control characters dropped, trimmed, cut to `max` characters.
/// The caller still parses the result (it may be empty or invisible).
pub fn sanitize(raw: &str, max: usize) -> String {
    let kept: String = raw
        .chars()
        .filter(|c| !c.is_control() && !is_direction_control(*c))
        .collect();
    kept.trim()
        .chars()
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_pass_for_another_are_refused() {
        assert_eq!(name(" Alice ", "nickname", 64).unwrap(), "Alice");
        for bad in [
            "",
            "   ",
            "\u{200B}",
            "\u{200B}\u{FEFF}",
            "a\u{7}b",
            "evil\u{202E}gnp",
            "x\u{2067}y",
        ] {
            let e = name(bad, "nickname", 64).unwrap_err();
            assert_eq!(e.field, "nickname", "{bad:?}");
        }
        assert!(name(&"n".repeat(65), "name", 64).is_err());
    }

    #[test]
    fn claims_are_cleaned_not_refused() {
        assert_eq!(sanitize("\u{1b}[31mAdmin\u{7}\0 ", 64), "[31mAdmin");
        assert_eq!(sanitize("\u{202E}nimda", 64), "nimda");
        assert_eq!(sanitize(&"x".repeat(100), 32).len(), 32);
        assert_eq!(sanitize(" \u{0} ", 10), "");
    }
}
