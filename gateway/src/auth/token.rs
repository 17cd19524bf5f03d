//! HS256 JWTs: the one algorithm accepted (pinned), `exp` required and checked,
//! `nbf` checked when present, `sub` the numeric user id (as a string or a number).

use crate::config::AuthSettings;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};
use shared::ids::UserId;

/// What the gateway reads from (and writes into) a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id. Issued as a string (RFC 7519); accepted as a string or a number.
    #[serde(deserialize_with = "user_id_from_string_or_number")]
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

impl Claims {
    /// Safe after [`TokenService::verify`], which refuses a non-numeric `sub`.
    pub fn user_id(&self) -> UserId {
        UserId(self.sub.parse().unwrap_or_default())
    }
}

fn user_id_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Sub {
        S(String),
        N(i64),
    }
    Ok(match Sub::deserialize(d)? {
        Sub::S(s) => s,
        Sub::N(n) => n.to_string(),
    })
}

/// Why a token was refused. The message never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token invalid: {0}")]
    Invalid(&'static str),
}

/// Issues and verifies tokens with one HS256 key.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl TokenService {
    /// Returns the service and whether the key was generated (no secret configured).
    pub fn from_settings(settings: &AuthSettings) -> (Self, bool) {
        let (secret, generated) = match &settings.jwt_secret {
            Some(s) => (s.expose().as_bytes().to_vec(), false),
            None => {
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                (key, true)
            }
        };
        (
            Self::new(&secret, settings.token_ttl_secs, settings.leeway_secs),
            generated,
        )
    }

    pub fn new(secret: &[u8], ttl_secs: u64, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = leeway_secs;
        TokenService {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    pub fn issue(&self, user: UserId, username: &str, nickname: &str) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user.0.to_string(),
            exp: now + self.ttl_secs,
            iat: Some(now),
            nbf: None,
            username: Some(username.to_owned()),
            nickname: Some(nickname.to_owned()),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet"),
                    ErrorKind::InvalidSignature => TokenError::Invalid("bad signature"),
                    ErrorKind::InvalidAlgorithm => TokenError::Invalid("algorithm not accepted"),
                    ErrorKind::MissingRequiredClaim(_) => TokenError::Invalid("missing claim"),
                    _ => TokenError::Invalid("malformed"),
                }
            })?;
        match data.claims.sub.parse::<i64>() {
            Ok(id) if id > 0 => Ok(data.claims),
            _ => Err(TokenError::Invalid("sub must be a positive user id")),
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sign(claims: serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn b64(s: &str) -> String {
        use std::fmt::Write;
        // Minimal base64url without padding, enough to forge test tokens.
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn issued_tokens_verify() {
        let svc = TokenService::new(KEY, 60, 0);
        let claims = svc.verify(&svc.issue(UserId(42), "bob", "Bob")).unwrap();
        assert_eq!(claims.user_id(), UserId(42));
        assert_eq!(claims.username.as_deref(), Some("bob"));
    }

    #[test]
    fn numeric_sub_is_accepted() {
        let svc = TokenService::new(KEY, 60, 0);
        let t = sign(
            json!({"sub": 7, "exp": now_secs() + 60}),
            Algorithm::HS256,
            KEY,
        );
        assert_eq!(svc.verify(&t).unwrap().user_id(), UserId(7));
    }

    #[test]
    fn bad_tokens_are_refused() {
        let svc = TokenService::new(KEY, 60, 0);
        let exp = now_secs() + 60;
        let cases = [
            (
                "expired",
                sign(
                    json!({"sub":"1","exp": now_secs() - 100}),
                    Algorithm::HS256,
                    KEY,
                ),
            ),
            (
                "wrong key",
                sign(
                    json!({"sub":"1","exp": exp}),
                    Algorithm::HS256,
                    b"another-key-another-key-another!",
                ),
            ),
            (
                "HS512",
                sign(json!({"sub":"1","exp": exp}), Algorithm::HS512, KEY),
            ),
            ("no exp", sign(json!({"sub":"1"}), Algorithm::HS256, KEY)),
            ("no sub", sign(json!({"exp": exp}), Algorithm::HS256, KEY)),
            (
                "sub not a number",
                sign(json!({"sub":"bob","exp": exp}), Algorithm::HS256, KEY),
            ),
            (
                "sub zero",
                sign(json!({"sub":"0","exp": exp}), Algorithm::HS256, KEY),
            ),
            (
                "not yet valid",
                sign(
                    json!({"sub":"1","exp": exp, "nbf": now_secs() + 30}),
                    Algorithm::HS256,
                    KEY,
                ),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(r#"{"alg":"none","typ":"JWT"}"#),
                    b64(&format!(r#"{{"sub":"1","exp":{exp}}}"#))
                ),
            ),
            ("RS256 header (algorithm confusion)", {
                let t = sign(json!({"sub":"1","exp": exp}), Algorithm::HS256, KEY);
                let rest = t.split_once('.').unwrap().1.to_owned();
                format!("{}.{rest}", b64(r#"{"alg":"RS256","typ":"JWT"}"#))
            }),
            ("garbage", "not.a.token".to_owned()),
            ("empty", String::new()),
        ];
        for (name, token) in cases {
            let err = svc.verify(&token).expect_err(name);
            assert!(
                !err.to_string().contains(&token) || token.is_empty(),
                "{name}: error leaks the token"
            );
        }
    }
}
