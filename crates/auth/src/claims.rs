//! The verified claims that handlers see.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The claims of a verified token.
///
/// Registered claims have their own fields; every other claim is kept in
/// [`extra`](Self::extra) and can be read with [`Claims::get`].
///
/// Lenient where identity providers differ: `aud` and `roles` may be a string or a list, and
/// the dates (`exp`, `nbf`, `iat`) may be integers or decimals (rounded down).
///
/// ```
/// use microframework_auth::Claims;
/// let claims: Claims = serde_json::from_value(serde_json::json!({
///     "sub": "user-1",
///     "exp": 2_000_000_000u64,
///     "scope": "orders:read orders:write",
///     "roles": ["admin"],
///     "tenant": "acme"
/// })).unwrap();
/// assert_eq!(claims.subject(), Some("user-1"));
/// assert!(claims.has_scope("orders:write"));
/// assert!(claims.has_role("admin"));
/// assert_eq!(claims.get::<String>("tenant").as_deref(), Some("acme"));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Claims {
    /// Subject (`sub`): who the token is about, usually a user or client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer (`iss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (`aud`), normalised to a list.
    #[serde(default, deserialize_with = "opt_one_or_many", skip_serializing_if = "Option::is_none")]
    pub aud: Option<Vec<String>>,
    /// Expiry (`exp`), seconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_numeric_date", skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not-before (`nbf`), seconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_numeric_date", skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued-at (`iat`), seconds since the Unix epoch.
    #[serde(default, deserialize_with = "opt_numeric_date", skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Token id (`jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// OAuth 2 scopes (`scope`), space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Roles (`roles`).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// The subject (`sub`), if any.
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// Whether `roles` contains `role` (exact, case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the space-separated `scope` claim contains `scope` (exact, case-sensitive).
    ///
    /// When there is no `scope` claim, the `scp` claim used by some identity providers is read
    /// instead (a space-separated string or a list).
    pub fn has_scope(&self, scope: &str) -> bool {
        if let Some(s) = &self.scope {
            return s.split_ascii_whitespace().any(|s| s == scope);
        }
        match self.extra.get("scp") {
            Some(serde_json::Value::String(s)) => s.split_ascii_whitespace().any(|s| s == scope),
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(scope)),
            _ => false,
        }
    }

    /// Whether the audience contains `aud`.
    pub fn has_audience(&self, aud: &str) -> bool {
        self.aud.as_ref().is_some_and(|a| a.iter().any(|x| x == aud))
    }

    /// A non-registered claim from [`extra`](Self::extra), deserialised as `T`; `None` when
    /// absent or of another shape.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.extra.get(key).and_then(|v| T::deserialize(v).ok())
    }
}

fn opt_one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(de)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

fn one_or_many<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    Ok(opt_one_or_many(de)?.unwrap_or_default())
}

fn opt_numeric_date<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds since the Unix epoch")
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v).map(Some).map_err(|_| E::custom("a date before 1970"))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                // Truncation is the intent: fractional seconds are dropped.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(v as u64))
            } else {
                Err(E::custom("a date out of range"))
            }
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    de.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Claims {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn registered_and_extra_claims() {
        let c = parse(json!({
            "sub": "u1", "iss": "idp", "aud": "api", "exp": 10, "nbf": 5, "iat": 4, "jti": "j",
            "scope": "a b", "roles": ["r1", "r2"], "tenant": "acme", "level": 3
        }));
        assert_eq!(c.subject(), Some("u1"));
        assert_eq!(c.aud, Some(vec!["api".to_owned()]));
        assert!(c.has_audience("api"));
        assert_eq!((c.exp, c.nbf, c.iat), (Some(10), Some(5), Some(4)));
        assert!(c.has_scope("a") && c.has_scope("b") && !c.has_scope("a b") && !c.has_scope("c"));
        assert!(c.has_role("r2") && !c.has_role("R2"));
        assert_eq!(c.get::<String>("tenant").as_deref(), Some("acme"));
        assert_eq!(c.get::<u32>("level"), Some(3));
        assert_eq!(c.get::<u32>("tenant"), None);
        assert_eq!(c.get::<u32>("missing"), None);
        assert!(!c.extra.contains_key("sub"));
    }

    #[test]
    fn lenient_shapes() {
        let c = parse(json!({"aud": ["a", "b"], "roles": "admin", "exp": 1.9e9, "iat": null}));
        assert_eq!(c.aud.as_deref(), Some(&["a".to_owned(), "b".to_owned()][..]));
        assert!(c.has_role("admin"));
        assert_eq!(c.exp, Some(1_900_000_000));
        assert_eq!(c.iat, None);
    }

    #[test]
    fn bad_dates_are_errors() {
        assert!(serde_json::from_value::<Claims>(json!({"exp": -1})).is_err());
        assert!(serde_json::from_value::<Claims>(json!({"exp": "soon"})).is_err());
    }

    #[test]
    fn scp_is_a_fallback_for_scope() {
        assert!(parse(json!({"scp": "x y"})).has_scope("y"));
        assert!(parse(json!({"scp": ["x", "y"]})).has_scope("x"));
        assert!(!parse(json!({"scope": "a", "scp": "x"})).has_scope("x"));
    }

    #[test]
    fn round_trips_through_json() {
        let c = parse(json!({"sub": "u", "exp": 10, "roles": ["a"], "x": {"y": 1}}));
        let back: Claims = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let v = serde_json::to_value(Claims::default()).unwrap();
        assert_eq!(v, json!({}));
    }
}
