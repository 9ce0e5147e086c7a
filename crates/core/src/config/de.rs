//! A forgiving deserialiser over merged configuration values.
//!
//! Environment variables and flags are text, so `"8080"` must fill a `u16` and `12345` must fill
//! a `String` (a numeric secret). This deserialiser converts between scalars where the target
//! type asks for it; everything else is strict.

use std::fmt;

use figment::value::{Num, Value};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// A deserialisation error message.
#[derive(Debug)]
pub(super) struct DeError(pub(super) String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

pub(super) struct LenientDe<'a>(pub(super) &'a Value);

fn num_to_string(n: &Num) -> String {
    match *n {
        Num::U8(v) => v.to_string(),
        Num::U16(v) => v.to_string(),
        Num::U32(v) => v.to_string(),
        Num::U64(v) => v.to_string(),
        Num::U128(v) => v.to_string(),
        Num::USize(v) => v.to_string(),
        Num::I8(v) => v.to_string(),
        Num::I16(v) => v.to_string(),
        Num::I32(v) => v.to_string(),
        Num::I64(v) => v.to_string(),
        Num::I128(v) => v.to_string(),
        Num::ISize(v) => v.to_string(),
        Num::F32(v) => v.to_string(),
        Num::F64(v) => v.to_string(),
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::String(_, s) => de::Unexpected::Str(s),
        Value::Char(_, c) => de::Unexpected::Char(*c),
        Value::Bool(_, b) => de::Unexpected::Bool(*b),
        Value::Num(_, n) => match n.to_i128() {
            Some(i) => match i64::try_from(i) {
                Ok(i) => de::Unexpected::Signed(i),
                Err(_) => de::Unexpected::Other("a large integer"),
            },
            None => n.to_f64().map(de::Unexpected::Float).unwrap_or(de::Unexpected::Other("a number")),
        },
        Value::Empty(..) => de::Unexpected::Unit,
        Value::Dict(..) => de::Unexpected::Map,
        Value::Array(..) => de::Unexpected::Seq,
    }
}

macro_rules! number {
    ($($method:ident => $visit:ident : $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self.0 {
                Value::String(_, s) => match s.trim().parse::<$ty>() {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
                },
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for LenientDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(_, s) => visitor.visit_str(s),
            Value::Char(_, c) => visitor.visit_char(*c),
            Value::Bool(_, b) => visitor.visit_bool(*b),
            Value::Num(_, n) => match *n {
                Num::U8(v) => visitor.visit_u8(v),
                Num::U16(v) => visitor.visit_u16(v),
                Num::U32(v) => visitor.visit_u32(v),
                Num::U64(v) => visitor.visit_u64(v),
                Num::U128(v) => visitor.visit_u128(v),
                Num::USize(v) => visitor.visit_u64(v as u64),
                Num::I8(v) => visitor.visit_i8(v),
                Num::I16(v) => visitor.visit_i16(v),
                Num::I32(v) => visitor.visit_i32(v),
                Num::I64(v) => visitor.visit_i64(v),
                Num::I128(v) => visitor.visit_i128(v),
                Num::ISize(v) => visitor.visit_i64(v as i64),
                Num::F32(v) => visitor.visit_f32(v),
                Num::F64(v) => visitor.visit_f64(v),
            },
            Value::Empty(..) => visitor.visit_unit(),
            Value::Dict(_, d) => visitor.visit_map(DictAccess { iter: d.iter(), value: None }),
            Value::Array(_, a) => visitor.visit_seq(ArrayAccess { iter: a.iter() }),
        }
    }

    number! {
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => visitor.visit_bool(true),
                "false" | "no" | "off" | "0" => visitor.visit_bool(false),
                _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
            },
            // Environment variables such as APP_X__ENABLED=1 arrive as numbers.
            Value::Num(_, n) if n.to_u128() == Some(1) => visitor.visit_bool(true),
            Value::Num(_, n) if n.to_u128() == Some(0) => visitor.visit_bool(false),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Num(_, n) => visitor.visit_string(num_to_string(n)),
            Value::Bool(_, b) => visitor.visit_string(b.to_string()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Empty(..) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            // A comma-separated string fills a list: APP_HTTP__CORS__ALLOWED_ORIGINS=a,b
            Value::String(_, s) => {
                let items: Vec<String> =
                    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
                visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(_, s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Dict(_, d) if d.len() == 1 => {
                visitor.visit_enum(de::value::MapAccessDeserializer::new(DictAccess { iter: d.iter(), value: None }))
            }
            _ => Err(de::Error::invalid_type(unexpected(self.0), &visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

struct DictAccess<'a> {
    iter: std::collections::btree_map::Iter<'a, String, Value>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for DictAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(LenientDe(v)),
            None => Err(de::Error::custom("value requested before key")),
        }
    }
}

struct ArrayAccess<'a> {
    iter: std::slice::Iter<'a, Value>,
}

impl<'de> SeqAccess<'de> for ArrayAccess<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(v) => seed.deserialize(LenientDe(v)).map(Some),
            None => Ok(None),
        }
    }
}
