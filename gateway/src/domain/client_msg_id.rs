//! The sender's own id for a message: 1–64 printable ASCII characters, echoed back.

use super::ValidationError;

text_type!(ClientMsgId);

impl ClientMsgId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "client_msg_id",
                "must be 1 to 64 printable ASCII characters",
            ));
        }
        Ok(ClientMsgId(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(ClientMsgId::parse("c-1_2").is_ok());
        assert!(ClientMsgId::parse("550e8400-e29b-41d4-a716-446655440000").is_ok());
        for bad in ["", " ", "a b", "é", &"x".repeat(65)] {
            assert!(ClientMsgId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
