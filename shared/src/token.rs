//! HS256 tokens the gateway accepts, minted outside its login route: by the
//! `gateway token` subcommand, the load generator and the test suites, which
//! all share this one function (k6 keeps its own: it is another runtime).
//! Only with the `mint` feature.
//!
//! A token whose `sub` is a user id the gateway has never seen creates that
//! user from the claims on first use (see the README, "Tokens"), so a
//! minted token needs no registration round trip.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

/// The claims of a minted token. `sub` is a local user id (`"42"`) unless
/// `iss` names an external issuer the gateway trusts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenClaims {
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

impl TokenClaims {
    /// For user `sub`, valid for `ttl_secs` from now.
    pub fn new(sub: impl Into<String>, ttl_secs: u64) -> TokenClaims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        TokenClaims {
            sub: sub.into(),
            exp: now + ttl_secs,
            iss: None,
            aud: None,
            username: None,
            nickname: None,
        }
    }

    /// The username a first-seen user is created with.
    pub fn username(mut self, username: impl Into<String>) -> TokenClaims {
        self.username = Some(username.into());
        self
    }
}

/// `claims` (a [`TokenClaims`], or any other JSON object a test needs)
/// signed with `secret`, HS256: the one algorithm the gateway accepts.
pub fn mint<C: Serialize>(secret: &[u8], claims: &C) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing of serializable claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn a_minted_token_is_hs256_with_exactly_the_claims_given() {
        let claims = TokenClaims::new("42", 60).username("ann");
        let token = mint(b"secret", &claims);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        let got =
            decode::<serde_json::Value>(&token, &DecodingKey::from_secret(b"secret"), &validation)
                .unwrap();
        assert_eq!(got.header.alg, Algorithm::HS256);
        assert_eq!(
            got.claims,
            serde_json::json!({"sub": "42", "exp": claims.exp, "username": "ann"}),
            "no claim that was not set"
        );
        let wrong =
            decode::<serde_json::Value>(&token, &DecodingKey::from_secret(b"other"), &validation);
        assert!(wrong.is_err());
    }
}
