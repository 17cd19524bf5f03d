//! Property tests over the client-frame decoder: whatever arrives, decoding
//! returns a frame or a typed error, never panics, and every error names a
//! code a client can switch on. Run at length with
//! `PROPTEST_CASES=200000 cargo test -p chat-shared --test decode_fuzz`.

use proptest::prelude::*;
use shared::client_frame::ClientFrame;
use shared::error_code::ErrorCode;

/// Arbitrary JSON values, nested a few levels, with the field names that matter.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("message"),
            Just("join_room"),
            Just("leave_room"),
            Just("ping"),
            Just("")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("room_id".to_owned()),
                    Just("content".to_owned()),
                    Just("client_msg_id".to_owned()),
                    Just("since_seq".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check(text: &str) {
    match ClientFrame::decode(text) {
        Ok(frame) => {
            // A decoded frame re-encodes and decodes to itself.
            let again = serde_json::to_string(&frame).unwrap();
            assert_eq!(ClientFrame::decode(&again).unwrap(), frame);
        }
        Err(e) => {
            assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidJson | ErrorCode::InvalidFrame | ErrorCode::UnknownType
                ),
                "{e:?}"
            );
            assert!(!e.message.is_empty() && e.message.len() < 400, "{e:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(3000), ..ProptestConfig::default() })]

    #[test]
    fn any_text_decodes_or_fails_cleanly(text in ".{0,300}") {
        check(&text);
    }

    #[test]
    fn any_json_decodes_or_fails_cleanly(value in json_value()) {
        check(&value.to_string());
    }

    #[test]
    fn truncated_and_spliced_frames_fail_cleanly(cut in 0usize..80, junk in ".{0,5}") {
        let valid = r#"{"type":"message","room_id":12,"content":"héllo 世界","client_msg_id":"abc-1"}"#;
        let mut s: String = valid.chars().take(cut).collect();
        s.push_str(&junk);
        check(&s);
    }
}
