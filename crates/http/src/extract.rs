//! Extractors whose rejections are problem details with precise, per-field messages.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header;
use http::request::Parts;
use serde::de::DeserializeOwned;

use microframework_core::{ErrorKind, FieldError};

use crate::error::ApiError;

/// JSON body extractor and response. Like `axum::Json`, but every rejection is problem+json:
/// a missing or wrong `Content-Type` is `415`, malformed JSON is `400` with line and column, and
/// a body of the wrong shape is `422` naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn is_json_content_type(parts: &http::HeaderMap) -> bool {
    parts
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// A deserializer that reads a struct only from a JSON object: serde_json also accepts an array
/// of the fields in order (`[null, null]` for `{"name": null, "description": null}`), which no
/// API document describes. Everything else is passed through. It applies to the top level, where
/// request payloads are structs.
struct ObjectsOnly<D>(D);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: serde::de::Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }

    forward! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32();
        deserialize_i64(); deserialize_i128(); deserialize_u8(); deserialize_u16(); deserialize_u32();
        deserialize_u64(); deserialize_u128(); deserialize_f32(); deserialize_f64(); deserialize_char();
        deserialize_str(); deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit(); deserialize_seq(); deserialize_map();
        deserialize_identifier(); deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Parses JSON bytes into `T`, mapping errors to problem details with the failing field. A
/// struct is read from a JSON object only (not from an array of its fields).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(ObjectsOnly(&mut de));
    if value.is_ok() {
        de.end().map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    }
    value.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Data => {
                let field = if path == "." || path.is_empty() {
                    missing_field(&inner.to_string()).unwrap_or_default()
                } else {
                    path
                };
                let message = strip_position(&inner.to_string());
                let field =
                    if field.is_empty() { missing_field(&message).unwrap_or_else(|| "body".to_owned()) } else { field };
                ApiError::validation(vec![FieldError::new(field, message)])
            }
            Category::Syntax | Category::Eof => {
                ApiError::bad_request(format!("The request body is not valid JSON: {inner}"))
            }
            Category::Io => ApiError::bad_request("The request body could not be read."),
        }
    })
}

fn missing_field(message: &str) -> Option<String> {
    let start = message.find("missing field `")? + "missing field `".len();
    let end = message[start..].find('`')? + start;
    Some(message[start..end].to_owned())
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "Expected a request body with `Content-Type: application/json`.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            ApiError::new(ErrorKind::from_http_status(status.as_u16()), rejection.body_text())
        })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that must also pass `validator` rules; failures are `422` with every field error.
///
/// ```ignore
/// #[derive(Deserialize, Validate)]
/// struct NewUser { #[validate(email)] email: String, #[validate(length(min = 1, max = 100))] name: String }
/// async fn create(Valid(user): Valid<NewUser>) -> ... {}
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Valid<T>(pub T);

impl<T, S> FromRequest<S> for Valid<T>
where
    T: DeserializeOwned + validator::Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        validate(&value)?;
        Ok(Valid(value))
    }
}

/// Runs `validator` rules and converts failures into a `422` [`ApiError`] listing every field.
pub fn validate<T: validator::Validate>(value: &T) -> Result<(), ApiError> {
    value.validate().map_err(|e| ApiError::validation(field_errors(&e)))
}

/// Flattens `validator` errors into field errors with readable messages.
pub fn field_errors(errors: &validator::ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(errors: &validator::ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    out.push(FieldError::new(path.clone(), describe(e)));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(inner, &format!("{path}.{i}"), out);
                }
            }
        }
    }
}

fn describe(e: &validator::ValidationError) -> String {
    if let Some(m) = &e.message {
        return m.to_string();
    }
    let param = |k: &str| e.params.get(k).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (param("min"), param("max"), param("equal")) {
            (_, _, Some(eq)) => format!("must be exactly {eq} characters long"),
            (Some(min), Some(max), _) => format!("must be between {min} and {max} characters long"),
            (Some(min), None, _) => format!("must be at least {min} characters long"),
            (None, Some(max), _) => format!("must be at most {max} characters long"),
            _ => "has an invalid length".to_owned(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".to_owned(),
        },
        "email" => "must be a valid email address".to_owned(),
        "url" => "must be a valid URL".to_owned(),
        "required" => "is required".to_owned(),
        "regex" => "has an invalid format".to_owned(),
        "must_match" => "does not match".to_owned(),
        other => format!("is invalid ({other})"),
    }
}

/// Query-string extractor whose rejection is a `400` problem naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            let field =
                if field == "." { missing_field(&message).unwrap_or_else(|| "query".to_owned()) } else { field };
            ApiError::new(ErrorKind::BadRequest, "The query string is invalid.").0.with_field(field, message).into()
        })
    }
}

/// Path-parameter extractor whose rejection is a `400` problem naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => {
                let status = rejection.status().as_u16();
                Err(ApiError::new(ErrorKind::from_http_status(status), rejection.body_text()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct User {
        name: String,
        age: u8,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<User>(br#"{"name":"a","age":"x"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert_eq!(e.0.fields()[0].field, "age");
        let e = parse_json::<User>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(e.0.fields()[0].field, "age");
        assert!(e.0.fields()[0].message.contains("missing field"));
        let e = parse_json::<User>(br#"{"name":"a","#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        let e = parse_json::<User>(br#"{"name":"a","age":1} trailing"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(parse_json::<User>(br#"{"name":"a","age":1}"#).is_ok());
    }

    #[test]
    fn structs_come_from_objects_only() {
        // serde_json alone would read `User { name: "a", age: 1 }` from this.
        let e = parse_json::<User>(br#"["a", 1]"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation, "{e:?}");
        assert!(e.0.fields()[0].message.contains("expected struct User"), "{:?}", e.0.fields());
        // Other shapes are untouched: arrays of structs, options, plain values.
        let users = parse_json::<Vec<User>>(br#"[{"name":"a","age":1}]"#).unwrap();
        assert_eq!(users.len(), 1);
        assert!(parse_json::<Option<u8>>(b"null").unwrap().is_none());
        assert_eq!(parse_json::<(u8, String)>(br#"[1, "x"]"#).unwrap().0, 1);
    }
}
