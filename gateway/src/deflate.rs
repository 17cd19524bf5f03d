//! permessage-deflate (RFC 7692): which offer to accept, and a message's
//! compression and inflation. No I/O: the upgrade negotiates with
//! [`negotiate`], `conn::text_frame` compresses a broadcast once for all its
//! receivers, and the frame reader inflates what a client compressed.
//!
//! Both directions run without context takeover: each message is compressed
//! on its own, so a connection keeps no compressor or inflater state between
//! messages (an idle connection holds none of it). The state lives per
//! worker thread instead, reset before each message: compressing and
//! inflating never await, so one thread's messages never interleave.
//!
//! What a client can make us spend: an inflated message is capped at the
//! caller's limit (`limits.max_frame_bytes`, counted after inflation), so a
//! deflate bomb costs at most that much memory and the CPU to produce it.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// The token clients offer and we answer with.
pub const EXTENSION: &str = "permessage-deflate";
/// Messages shorter than this go uncompressed (RSV1 clear, which the
/// extension allows per message): below it, deflate's block overhead eats
/// most of the gain and the CPU is spent for a handful of bytes.
pub const MIN_COMPRESSED: usize = 256;
/// The window the server compresses with unless the client asks for less.
pub const MAX_WINDOW_BITS: u8 = 15;
/// The tail every flushed message ends with, removed on the wire (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What was agreed for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    /// The LZ77 window the server's messages may use (`server_max_window_bits`).
    pub server_window_bits: u8,
}

impl Deflate {
    /// The `Sec-WebSocket-Extensions` answer. Context takeover is off in
    /// both directions, whatever the offer said (a server may always ask
    /// for that, RFC 7692 §7.1.1).
    pub fn response(&self) -> String {
        let mut answer =
            format!("{EXTENSION}; server_no_context_takeover; client_no_context_takeover");
        if self.server_window_bits < MAX_WINDOW_BITS {
            answer.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_window_bits
            ));
        }
        answer
    }
}

/// The first acceptable permessage-deflate offer among the values of the
/// request's `Sec-WebSocket-Extensions` headers, if any. An offer with an
/// unknown, repeated or malformed parameter is declined (and the next one
/// considered), as §7.1 asks; so is `server_max_window_bits=8`, which zlib
/// cannot produce for raw deflate.
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Deflate> {
    headers
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(accept_offer)
}

fn accept_offer(offer: &str) -> Option<Deflate> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut seen = Vec::new();
    let mut server_window_bits = MAX_WINDOW_BITS;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(v)) => server_window_bits = window_bits(v)?,
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(v)) => {
                // We inflate with the largest window, which reads any smaller one.
                window_bits(v)?;
            }
            _ => return None,
        }
        seen.push(name);
    }
    (server_window_bits >= 9).then_some(Deflate { server_window_bits })
}

/// A window size parameter: 8 to 15, digits only.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

thread_local! {
    /// This thread's compressor for the full window (broadcasts), and one
    /// for the last smaller window asked for (rare: browsers never ask).
    static COMPRESSORS: RefCell<Vec<(u8, Compress)>> = const { RefCell::new(Vec::new()) };
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// `payload` compressed as one message, without the trailing `00 00 ff ff`;
/// `None` when it is under [`MIN_COMPRESSED`] or would not get smaller.
pub fn compress(payload: &[u8], window_bits: u8) -> Option<Bytes> {
    if payload.len() < MIN_COMPRESSED {
        return None;
    }
    let out = COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let at = match compressors.iter().position(|(b, _)| *b == window_bits) {
            Some(at) => at,
            None => {
                if compressors.len() == 2 {
                    compressors.pop();
                }
                let level = Compression::default();
                let c = Compress::new_with_window_bits(level, false, window_bits);
                compressors.push((window_bits, c));
                compressors.len() - 1
            }
        };
        let c = &mut compressors[at].1;
        c.reset();
        deflate_all(c, payload)
    })?;
    crate::metrics::metrics().ws_messages_compressed.inc();
    (out.len() < payload.len()).then(|| Bytes::from(out))
}

fn deflate_all(c: &mut Compress, payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity());
        }
        c.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .ok()?;
        // A sync flush is complete once all input is in and it stopped
        // short of filling the output.
        if c.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TAIL) {
        return None;
    }
    out.truncate(out.len() - TAIL.len());
    Some(out)
}

/// Why a compressed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the limit.
    TooBig,
    /// It is no valid deflate data.
    Invalid,
}

/// A client's compressed message, inflated, at most `max` bytes of it.
pub fn inflate(compressed: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = slot.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        let mut out = Vec::with_capacity((compressed.len() * 4).clamp(64, max + 1));
        for input in [compressed, &TAIL[..]] {
            let mut used = 0;
            // Until the input is in and the output stopped short of its
            // space (a full output may have more to come).
            while used < input.len() || out.len() == out.capacity() {
                if out.len() > max {
                    return Err(InflateError::TooBig);
                }
                if out.len() == out.capacity() {
                    // Grow up to one byte past the limit: enough to tell
                    // "exactly max" from "more than max".
                    let room = out.capacity().max(64).min(max + 1 - out.len());
                    out.reserve_exact(room);
                }
                let (in_before, out_before) = (d.total_in(), out.len());
                let status = d
                    .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Invalid)?;
                used += (d.total_in() - in_before) as usize;
                let stuck = d.total_in() == in_before && out.len() == out_before;
                if status == Status::StreamEnd || stuck {
                    break;
                }
            }
        }
        if out.len() > max {
            return Err(InflateError::TooBig);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(h: &str) -> Option<Deflate> {
        negotiate([h])
    }

    #[test]
    fn offers_are_accepted_or_declined_by_rfc_7692() {
        let full = Some(Deflate {
            server_window_bits: 15,
        });
        assert_eq!(offer("permessage-deflate"), full);
        // What browsers send.
        assert_eq!(offer("permessage-deflate; client_max_window_bits"), full);
        assert_eq!(
            offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            full
        );
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=10").map(|d| d.response()),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
                    .into()
            )
        );
        assert_eq!(
            offer(r#"permessage-deflate; server_max_window_bits="12""#),
            Some(Deflate {
                server_window_bits: 12
            })
        );
        // Declined: unknown or repeated parameters, bad values, other extensions.
        for declined in [
            "x-webkit-deflate-frame",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits=+9",
        ] {
            assert_eq!(offer(declined), None, "{declined}");
        }
        // The first acceptable offer wins, across commas and header lines.
        assert_eq!(
            negotiate([
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=11",
                "permessage-deflate",
            ]),
            Some(Deflate {
                server_window_bits: 11
            })
        );
        assert_eq!(negotiate(["foo", "permessage-deflate"]), full);
        assert_eq!(negotiate([]), None);
    }

    fn chat_json(n: usize) -> Vec<u8> {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                r#"{{"type":"message","room_id":1,"data":{{"id":{i},"content":"hello number {i}","user":{{"id":7,"username":"alice"}}}}}}"#
            ));
        }
        s.into_bytes()
    }

    #[test]
    fn compressed_messages_inflate_to_themselves_in_every_window() {
        for bits in 9..=15 {
            for payload in [chat_json(3), chat_json(200)] {
                let z = compress(&payload, bits).expect("JSON compresses");
                assert!(
                    z.len() < payload.len() / 2,
                    "{} of {}",
                    z.len(),
                    payload.len()
                );
                assert_eq!(inflate(&z, payload.len()).unwrap(), payload);
            }
        }
        // Small or incompressible: sent as it is.
        assert_eq!(compress(b"{\"type\":\"pong\"}", 15), None);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64: bytes deflate cannot shrink
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(compress(&noise, 15), None);
    }

    #[test]
    fn inflation_stops_at_the_limit() {
        // A deflate bomb: 1 MiB of zeros is about a kilobyte compressed.
        let zeros = vec![0u8; 1 << 20];
        let z = compress(&zeros, 15).unwrap();
        assert!(z.len() < 2048, "{}", z.len());
        assert_eq!(inflate(&z, 4096), Err(InflateError::TooBig));
        assert_eq!(inflate(&z, (1 << 20) - 1), Err(InflateError::TooBig));
        assert_eq!(inflate(&z, 1 << 20).unwrap().len(), 1 << 20);
        // Exactly at the limit is fine.
        let json = chat_json(10);
        let z = compress(&json, 15).unwrap();
        assert_eq!(inflate(&z, json.len()).unwrap(), json);
        assert_eq!(inflate(&z, json.len() - 1), Err(InflateError::TooBig));
        // Garbage is refused, and the next message inflates fine.
        assert_eq!(
            inflate(&[0xff, 0xff, 0xff], 4096),
            Err(InflateError::Invalid)
        );
        assert_eq!(inflate(&z, 4096).unwrap(), json);
    }

    /// A message made by another deflater (flate2's own, as clients'
    /// zlib would), with and without the 4-byte tail, and empty.
    #[test]
    fn messages_from_other_deflaters_inflate() {
        let json = chat_json(5);
        let mut c = Compress::new(Compression::fast(), false);
        let mut out = Vec::with_capacity(4096);
        c.compress_vec(&json, &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - 4);
        assert_eq!(inflate(&out, 4096).unwrap(), json);
        // An empty message: the tail alone, or a single empty block.
        assert_eq!(inflate(&[0x00], 4096).unwrap(), b"");
        assert_eq!(inflate(&[], 4096).unwrap(), b"");
    }
}
