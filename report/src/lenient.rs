//! Lenient decoding of objects that come from the cluster or a dump file.
//!
//! A Flux object with a wrong type somewhere (a number where a string should
//! be, a string where a list should be) must not stop a report: the field
//! reads as [`Lenient::Invalid`], the object is still counted, and the report
//! says how many objects were malformed. Decoding streams through the input:
//! fields the report does not name are skipped without being built, so a page
//! of objects costs only the fields we keep.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Strings longer than this are cut when decoded: Kubernetes caps condition
/// messages at 32768 characters, and nothing we report needs more.
pub const MAX_STRING_LEN: usize = 32 * 1024;

thread_local! {
    static INVALID_FIELDS: Cell<u32> = const { Cell::new(0) };
}

fn note_invalid() {
    INVALID_FIELDS.with(|c| c.set(c.get().saturating_add(1)));
}

pub(crate) fn invalid_count() -> u32 {
    INVALID_FIELDS.with(Cell::get)
}

/// A field that may be absent, valid, or present with the wrong shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Lenient<T> {
    #[default]
    Absent,
    Valid(T),
    Invalid,
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Lenient::Valid(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, Lenient::Invalid)
    }

    pub fn is_present(&self) -> bool {
        !matches!(self, Lenient::Absent)
    }

    pub fn into_option(self) -> Option<T> {
        match self {
            Lenient::Valid(v) => Some(v),
            _ => None,
        }
    }
}

impl Lenient<String> {
    /// The string, or "" when absent or invalid.
    pub fn str(&self) -> &str {
        self.get().map(String::as_str).unwrap_or("")
    }

    /// The string when present and non-empty.
    pub fn non_empty(&self) -> Option<&str> {
        self.get().map(String::as_str).filter(|s| !s.is_empty())
    }
}

impl Lenient<bool> {
    pub fn is_true(&self) -> bool {
        matches!(self, Lenient::Valid(true))
    }
}

impl Lenient<i64> {
    pub fn value(&self) -> Option<i64> {
        self.get().copied()
    }
}

impl<T> Lenient<Vec<Lenient<T>>> {
    /// The valid elements of a list field.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.get().into_iter().flatten().filter_map(Lenient::get)
    }
}

/// A string field.
pub type LStr = Lenient<String>;
/// A boolean field.
pub type LBool = Lenient<bool>;
/// An integer field.
pub type LInt = Lenient<i64>;
/// A list field whose elements are each lenient.
pub type LVec<T> = Lenient<Vec<Lenient<T>>>;
/// A string-to-string map (labels, annotations); non-string values are dropped.
pub type LMap = Lenient<BTreeMap<String, String>>;

/// What a type accepts; everything else it is given reads as invalid.
pub trait Target<'de>: Sized {
    const EXPECTED: &'static str;
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Target<'_> for String {
    const EXPECTED: &'static str = "a string";
    fn from_str(s: &str) -> Option<Self> {
        Some(cap(s).to_string())
    }
}

fn cap(s: &str) -> &str {
    if s.len() <= MAX_STRING_LEN {
        return s;
    }
    let mut end = MAX_STRING_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Target<'_> for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

impl Target<'_> for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_i64(i: i64) -> Option<Self> {
        Some(i)
    }
}

impl<'de, T: Target<'de>> Target<'de> for Vec<Lenient<T>> {
    const EXPECTED: &'static str = "a list";
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Lenient<T>>()? {
            out.push(item);
        }
        Ok(Some(out))
    }
}

impl<'de> Target<'de> for BTreeMap<String, String> {
    const EXPECTED: &'static str = "a map of strings";
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Lenient::Valid(v) = map.next_value::<LStr>()? {
                out.insert(key, v);
            }
        }
        Ok(Some(out))
    }
}

/// Implement [`Target`] for a struct that derives `Deserialize` with lenient fields.
#[macro_export]
macro_rules! lenient_struct {
    ($($ty:ty),* $(,)?) => {$(
        impl<'de> $crate::lenient::Target<'de> for $ty {
            const EXPECTED: &'static str = "an object";
            fn from_map<A: ::serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                <$ty as ::serde::Deserialize>::deserialize(
                    ::serde::de::value::MapAccessDeserializer::new(map),
                ).map(Some)
            }
        }
    )*};
}

impl<'de, T: Target<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

fn judge<T>(v: Option<T>) -> Lenient<T> {
    match v {
        Some(v) => Lenient::Valid(v),
        None => {
            note_invalid();
            Lenient::Invalid
        }
    }
}

impl<'de, T: Target<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Absent)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Absent)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Lenient::<T>::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(judge(T::from_bool(b)))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(judge(T::from_i64(i)))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        Ok(judge(i64::try_from(u).ok().and_then(T::from_i64)))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        // Integers written as 1.0 by some tools still count as integers.
        let whole = f.fract() == 0.0 && f.abs() < 9.0e15;
        Ok(judge(whole.then_some(f as i64).and_then(T::from_i64)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(judge(T::from_str(s)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(judge(T::from_map(map)?))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(judge(T::from_seq(seq)?))
    }
}

/// One decoded list item with the number of its fields that had the wrong type.
#[derive(Debug)]
pub struct Item<T> {
    pub value: Lenient<T>,
    pub invalid_fields: u32,
}

impl<'de, T: Target<'de>> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let before = invalid_count();
        let value = Lenient::<T>::deserialize(deserializer)?;
        let invalid_fields = invalid_count().wrapping_sub(before);
        Ok(Item {
            value,
            invalid_fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default, Debug)]
    struct Inner {
        #[serde(default)]
        a: LStr,
        #[serde(default)]
        b: LBool,
        #[serde(default)]
        n: LInt,
        #[serde(default)]
        list: LVec<String>,
    }
    lenient_struct!(Inner);

    #[test]
    fn wrong_types_read_as_invalid_not_errors() {
        let item: Item<Inner> =
            serde_json::from_str(r#"{"a": 5, "b": "yes", "n": "7", "list": {"x": 1}}"#).unwrap();
        let inner = item.value.get().unwrap();
        assert!(inner.a.is_invalid());
        assert!(inner.b.is_invalid());
        assert!(inner.n.is_invalid());
        assert!(inner.list.is_invalid());
        assert_eq!(item.invalid_fields, 4);
    }

    #[test]
    fn valid_fields_decode_and_unknown_fields_are_skipped() {
        let item: Item<Inner> = serde_json::from_str(
            r#"{"a": "x", "b": true, "n": 3, "list": ["p", 1, "q"], "other": {"deep": [1,2]}}"#,
        )
        .unwrap();
        let inner = item.value.get().unwrap();
        assert_eq!(inner.a.str(), "x");
        assert!(inner.b.is_true());
        assert_eq!(inner.n.value(), Some(3));
        assert_eq!(
            inner.list.iter().cloned().collect::<Vec<_>>(),
            vec!["p", "q"]
        );
        assert_eq!(item.invalid_fields, 1, "the number in the list is invalid");
    }

    #[test]
    fn an_object_that_is_not_a_map_is_invalid() {
        let item: Item<Inner> = serde_json::from_str(r#""just a string""#).unwrap();
        assert!(item.value.is_invalid());
        let item: Item<Inner> = serde_json::from_str(r#"[1, 2]"#).unwrap();
        assert!(item.value.is_invalid());
    }

    #[test]
    fn absent_and_null_read_as_absent() {
        let inner: Inner = serde_json::from_str(r#"{"a": null}"#).unwrap();
        assert_eq!(inner.a, Lenient::Absent);
        assert_eq!(inner.b, Lenient::Absent);
    }

    #[test]
    fn huge_strings_are_capped() {
        let big = "é".repeat(MAX_STRING_LEN);
        let json = serde_json::to_string(&serde_json::json!({ "a": big })).unwrap();
        let inner: Inner = serde_json::from_str(&json).unwrap();
        assert!(inner.a.str().len() <= MAX_STRING_LEN);
    }
}
