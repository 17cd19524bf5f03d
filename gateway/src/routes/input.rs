//! `Json<T>` and `Query<T>`: actix-web's extractors, with error messages that
//! name the field at fault. serde's own messages name a field only when it
//! is missing or unknown; a wrong type reads "invalid type: integer `42`,
//! expected a string". Deserialising through `serde_path_to_error` prefixes
//! the path: "name: invalid type: ...". Rejections keep the JSON error shape
//! (see `crate::error::json_config` / `query_config`).

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use std::ops::Deref;

/// A JSON request body.
pub struct Json<T>(pub T);

/// The client's address: the TCP peer, or behind a trusted proxy the one
/// `X-Forwarded-For` names (see `limits::client_ip`).
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peer = req
            .peer_addr()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let client = match req.app_data::<web::Data<crate::state::AppState>>() {
            Some(state) => state.limits.trusted_proxies.client(peer, req.headers()),
            None => peer,
        };
        std::future::ready(Ok(ClientIp(client)))
    }
}

/// A query string.
pub struct Query<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<NamedObject<T>>::from_request(req, payload);
        Box::pin(async move { body.await.map(|b| Json(b.into_inner().0)) })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let query = web::Query::<Named<T>>::from_request(req, payload).into_inner();
        std::future::ready(query.map(|q| Query(q.into_inner().0)))
    }
}

/// `T`, whose deserialisation errors carry the path of the field at fault.
struct Named<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_path_to_error::deserialize(deserializer)
            .map(Named)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    inner
                } else {
                    D::Error::custom(format!("{path}: {inner}"))
                }
            })
    }
}

/// A JSON body: `T` read from a JSON object only (serde would also fill a
/// struct from an array of its fields in order, which no client means), with
/// the errors of [`Named`].
struct NamedObject<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for NamedObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let found = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Array(_) => Some("sequence"),
            serde_json::Value::String(_) => Some("string"),
            serde_json::Value::Number(_) => Some("number"),
            serde_json::Value::Bool(_) => Some("boolean"),
            serde_json::Value::Null => Some("null"),
        };
        if let Some(found) = found {
            let why = format!("invalid type: {found}, expected a JSON object");
            return Err(D::Error::custom(why));
        }
        Named::<T>::deserialize(value)
            .map(|Named(t)| NamedObject(t))
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        is_private: Option<bool>,
    }

    fn json_error(text: &str) -> String {
        serde_json::from_str::<Named<Body>>(text)
            .err()
            .expect("refused")
            .to_string()
    }

    #[test]
    fn wrong_types_name_their_field() {
        assert!(json_error(r#"{"name": 42}"#).starts_with("name: invalid type"));
        assert!(
            json_error(r#"{"name": "a", "is_private": "yes"}"#)
                .starts_with("is_private: invalid type")
        );
        assert!(json_error(r#"{"name": "a", "colour": 1}"#).contains("unknown field `colour`"));
        assert!(json_error(r#"{}"#).contains("missing field `name`"));
    }

    #[test]
    fn a_body_is_an_object_not_an_array_of_the_fields() {
        let parsed = |text| serde_json::from_str::<NamedObject<Body>>(text).map(|b| b.0.name);
        assert_eq!(parsed(r#"{"name": "a"}"#).unwrap(), "a");
        for not_an_object in [r#"["a", null]"#, r#"[null, null]"#, r#""a""#, "null", "7"] {
            let e = parsed(not_an_object).expect_err(not_an_object).to_string();
            assert!(e.contains("JSON object"), "{not_an_object}: {e}");
        }
        let e = parsed(r#"{"name": 42}"#).unwrap_err().to_string();
        assert!(e.starts_with("name: invalid type"), "{e}");
    }

    #[test]
    fn query_values_name_their_field() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Page {
            limit: Option<u32>,
        }
        let e = web::Query::<Named<Page>>::from_query("limit=abc")
            .err()
            .unwrap();
        assert!(e.to_string().contains("limit: "), "{e}");
    }
}
