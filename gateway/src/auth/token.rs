//! HS256 JWTs: the one algorithm accepted (pinned), `exp` required and
//! checked, `nbf` checked when present, `aud` checked when
//! `auth.audience` is set. Who a token names depends on its `iss`
//! ([`Subject`]):
//! - no `iss` (tokens minted before issuers, load tests) or the gateway's
//!   own (`auth.issuer`): `sub` is a local user id, 1 to [`MAX_LOCAL_ID`];
//! - an issuer of `auth.external_issuers`: `sub` is that provider's own
//!   name for the user (any string up to 255 characters), mapped to a local
//!   user through `external_identities`, so it never touches local ids;
//! - any other issuer: refused.

use crate::config::AuthSettings;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};
use shared::ids::UserId;

/// The largest local user id a token may name (2^31 - 1). A user first seen
/// through a token is created with that id, and the id sequence moves past
/// it: a bound keeps the sequence far from its end (a `sub` of i64::MAX
/// once made every later registration fail).
pub const MAX_LOCAL_ID: i64 = i32::MAX as i64;
/// The longest external `sub` accepted.
const MAX_EXTERNAL_SUB: usize = 255;

/// What the gateway reads from (and writes into) a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user: a local id (issued as a string, RFC 7519; accepted as a
    /// string or a number), or an external provider's name for the user.
    #[serde(deserialize_with = "string_or_number")]
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A local user, by id (no `iss`, or the gateway's own).
    Local(UserId),
    /// A user of an external identity provider.
    External { iss: String, sub: String },
}

/// A verified token: its claims and who it names.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Claims,
    pub subject: Subject,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
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
    issuer: String,
    external_issuers: Vec<String>,
    audience: Option<String>,
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
        (Self::new(&secret, settings), generated)
    }

    pub fn new(secret: &[u8], settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp"]);
            }
        }
        TokenService {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: settings.token_ttl_secs,
            issuer: settings.issuer.clone(),
            external_issuers: settings.external_issuers.clone(),
            audience: settings.audience.clone(),
        }
    }

    pub fn issue(&self, user: UserId, username: &str, nickname: &str) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user.0.to_string(),
            exp: now + self.ttl_secs,
            iss: Some(self.issuer.clone()),
            aud: self.audience.clone(),
            iat: Some(now),
            nbf: None,
            username: Some(username.to_owned()),
            nickname: Some(nickname.to_owned()),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet"),
                    ErrorKind::InvalidSignature => TokenError::Invalid("bad signature"),
                    ErrorKind::InvalidAlgorithm => TokenError::Invalid("algorithm not accepted"),
                    ErrorKind::InvalidAudience => TokenError::Invalid("audience not accepted"),
                    ErrorKind::MissingRequiredClaim(_) => TokenError::Invalid("missing claim"),
                    _ => TokenError::Invalid("malformed"),
                }
            })?;
        let claims = data.claims;
        let subject = match claims.iss.as_deref() {
            None => local(&claims.sub)?,
            Some(iss) if iss == self.issuer => local(&claims.sub)?,
            Some(iss) if self.external_issuers.iter().any(|e| e == iss) => {
                if claims.sub.is_empty() || claims.sub.chars().count() > MAX_EXTERNAL_SUB {
                    return Err(TokenError::Invalid("sub must be 1 to 255 characters"));
                }
                Subject::External {
                    iss: iss.to_owned(),
                    sub: claims.sub.clone(),
                }
            }
            Some(_) => return Err(TokenError::Invalid("issuer not accepted")),
        };
        Ok(Verified { claims, subject })
    }
}

/// A local user id, 1 to [`MAX_LOCAL_ID`].
fn local(sub: &str) -> Result<Subject, TokenError> {
    match sub.parse::<i64>() {
        Ok(id) if (1..=MAX_LOCAL_ID).contains(&id) => Ok(Subject::Local(UserId(id))),
        _ => Err(TokenError::Invalid(
            "sub must be a user id from 1 to 2147483647",
        )),
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

    fn service() -> TokenService {
        TokenService::new(KEY, &settings())
    }

    fn settings() -> AuthSettings {
        AuthSettings {
            token_ttl_secs: 60,
            leeway_secs: 0,
            external_issuers: vec!["https://idp.example".into()],
            ..AuthSettings::default()
        }
    }

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
        let svc = service();
        let v = svc.verify(&svc.issue(UserId(42), "bob", "Bob")).unwrap();
        assert_eq!(v.subject, Subject::Local(UserId(42)));
        assert_eq!(v.claims.username.as_deref(), Some("bob"));
        assert_eq!(
            v.claims.iss.as_deref(),
            Some("chat-gateway"),
            "issued with our iss"
        );
    }

    #[test]
    fn issuers_decide_what_sub_means() {
        let svc = service();
        let exp = now_secs() + 60;
        let v = |claims| svc.verify(&sign(claims, Algorithm::HS256, KEY));
        assert_eq!(
            v(json!({"sub": "abc|42", "exp": exp, "iss": "https://idp.example"}))
                .unwrap()
                .subject,
            Subject::External {
                iss: "https://idp.example".into(),
                sub: "abc|42".into()
            }
        );
        assert_eq!(
            v(json!({"sub": "9", "exp": exp, "iss": "chat-gateway"}))
                .unwrap()
                .subject,
            Subject::Local(UserId(9))
        );
        assert!(v(json!({"sub": "9", "exp": exp, "iss": "https://evil.example"})).is_err());
        assert!(v(json!({"sub": "", "exp": exp, "iss": "https://idp.example"})).is_err());
        // No iss: a local id, bounded.
        assert!(v(json!({"sub": "2147483647", "exp": exp})).is_ok());
        assert!(v(json!({"sub": "2147483648", "exp": exp})).is_err());
        assert!(v(json!({"sub": 9223372036854775807i64, "exp": exp})).is_err());
    }

    #[test]
    fn an_audience_when_set_is_required() {
        let with_aud = TokenService::new(
            KEY,
            &AuthSettings {
                audience: Some("chat".into()),
                ..settings()
            },
        );
        let exp = now_secs() + 60;
        let ok = sign(
            json!({"sub": "1", "exp": exp, "aud": "chat"}),
            Algorithm::HS256,
            KEY,
        );
        assert!(with_aud.verify(&ok).is_ok());
        for claims in [
            json!({"sub": "1", "exp": exp}),
            json!({"sub": "1", "exp": exp, "aud": "other"}),
        ] {
            assert!(
                with_aud
                    .verify(&sign(claims, Algorithm::HS256, KEY))
                    .is_err()
            );
        }
        let issued = with_aud.issue(UserId(3), "c", "C");
        assert!(with_aud.verify(&issued).is_ok(), "our own tokens carry it");
        assert!(service().verify(&ok).is_ok(), "not checked when unset");
    }

    #[test]
    fn numeric_sub_is_accepted() {
        let svc = service();
        let t = sign(
            json!({"sub": 7, "exp": now_secs() + 60}),
            Algorithm::HS256,
            KEY,
        );
        assert_eq!(svc.verify(&t).unwrap().subject, Subject::Local(UserId(7)));
    }

    #[test]
    fn bad_tokens_are_refused() {
        let svc = service();
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
