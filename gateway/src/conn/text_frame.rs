//! A text frame as queued for connections: its JSON, encoded once per
//! broadcast, and its permessage-deflate form, compressed once, by the
//! writer of the first receiving connection that negotiated compression
//! with the full window, and shared by every other such connection. A
//! broadcast is never compressed per member, and a room where no member
//! asked for compression never pays for it.

use crate::deflate;
use bytes::Bytes;
use bytestring::ByteString;
use std::sync::{Arc, OnceLock};

/// Cheap to clone: every member's queue holds the same allocation.
#[derive(Clone)]
pub struct TextFrame(Arc<Shared>);

struct Shared {
    json: ByteString,
    /// `None` inside: too short, or would not get smaller.
    deflated: OnceLock<Option<Bytes>>,
}

impl TextFrame {
    pub fn new(json: impl Into<ByteString>) -> Self {
        TextFrame(Arc::new(Shared {
            json: json.into(),
            deflated: OnceLock::new(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.json
    }

    /// The payload compressed for a connection whose server window is
    /// `window_bits`: the shared copy for the full window (what every
    /// browser gets), a copy of its own for a smaller one. `None`: send it
    /// as it is.
    pub fn deflated(&self, window_bits: u8) -> Option<Bytes> {
        if self.0.json.len() < deflate::MIN_COMPRESSED {
            return None;
        }
        if window_bits == deflate::MAX_WINDOW_BITS {
            return self
                .0
                .deflated
                .get_or_init(|| deflate::compress(self.0.json.as_bytes(), window_bits))
                .clone();
        }
        deflate::compress(self.0.json.as_bytes(), window_bits)
    }
}

impl std::fmt::Debug for TextFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for TextFrame {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<&str> for TextFrame {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::ops::Deref for TextFrame {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TextFrame {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for TextFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for TextFrame {
    fn from(json: String) -> Self {
        TextFrame::new(json)
    }
}

impl From<&'static str> for TextFrame {
    fn from(json: &'static str) -> Self {
        TextFrame::new(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_compressed_once_for_all_its_receivers() {
        let json = format!(r#"{{"type":"message","data":"{}"}}"#, "hello ".repeat(100));
        let frame = TextFrame::new(json.clone());
        let copies: Vec<TextFrame> = (0..100).map(|_| frame.clone()).collect();
        let before = crate::metrics::metrics().ws_messages_compressed.get();
        let first = copies[0].deflated(15).expect("compresses");
        for copy in &copies {
            assert_eq!(copy.deflated(15).as_ref(), Some(&first));
        }
        let after = crate::metrics::metrics().ws_messages_compressed.get();
        assert_eq!(after - before, 1, "one compression for 100 receivers");
        assert_eq!(
            deflate::inflate(&first, json.len()).unwrap(),
            json.as_bytes()
        );
        // A smaller window gets its own copy, which inflates the same.
        let small = frame.deflated(9).unwrap();
        assert_eq!(
            deflate::inflate(&small, json.len()).unwrap(),
            json.as_bytes()
        );
        // Short frames are never compressed.
        assert_eq!(TextFrame::from(r#"{"type":"pong"}"#).deflated(15), None);
    }
}
