//! One document of a dump, decoded as it streams: the items of a `List` are
//! each built, classified and cut down to the fields the report reads before
//! the next item is read, so memory follows the largest item, not the file.
//!
//! Every value built is charged to one budget for the whole input (see
//! [`Budget`]): YAML aliases replay a node as often as they are written, so a
//! small text can describe an enormous value (the "billion laughs").

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::lenient::{Item, Lenient};
use crate::observed::{Crd, Deployment, FluxObject};

/// Charge per node on top of its string bytes: about what a `Value` costs.
const NODE_COST: usize = 32;
/// The budget allows this many bytes of values per byte of input read...
pub const BYTES_PER_INPUT_BYTE: usize = 16;
/// ...plus this much, so that small inputs are never refused.
pub const BUDGET_FLOOR: usize = 64 << 20;
/// Marker in the error of a document that breached the budget.
pub const BUDGET_BREACHED: &str = "the dump expands past its memory budget";

thread_local! {
    /// Bytes of values built so far, across every document of the input.
    static CHARGED: Cell<usize> = const { Cell::new(0) };
    /// Bytes of input read so far (the budget grows with it).
    static INPUT: Cell<usize> = const { Cell::new(0) };
    /// Line (1-based) the reader is on, for documents that start mid-stream.
    static LINE: Cell<usize> = const { Cell::new(1) };
    /// Line of the next byte the JSON parser reads.
    static NEXT_LINE: Cell<usize> = const { Cell::new(1) };
}

/// One budget for the whole input: values built may cost at most
/// `BYTES_PER_INPUT_BYTE` × the input read so far, plus `BUDGET_FLOOR`.
/// A dump from kubectl (no aliases) costs at most a few bytes per input
/// byte; a file of aliases blows through it and is refused.
pub struct Budget;

impl Budget {
    pub fn reset() {
        CHARGED.with(|c| c.set(0));
        INPUT.with(|c| c.set(0));
        Self::set_line(1);
    }
    pub fn set_input(bytes: usize) {
        INPUT.with(|c| c.set(bytes));
    }
    pub fn allowance() -> usize {
        INPUT
            .with(Cell::get)
            .saturating_mul(BYTES_PER_INPUT_BYTE)
            .saturating_add(BUDGET_FLOOR)
    }
    pub fn charged() -> usize {
        CHARGED.with(Cell::get)
    }
    fn charge<E: de::Error>(bytes: usize) -> Result<(), E> {
        let total = CHARGED.with(|c| {
            let t = c.get().saturating_add(bytes).saturating_add(NODE_COST);
            c.set(t);
            t
        });
        if total > Self::allowance() {
            return Err(E::custom(BUDGET_BREACHED));
        }
        Ok(())
    }
    pub fn set_line(line: usize) {
        LINE.with(|c| c.set(line));
        NEXT_LINE.with(|c| c.set(line));
    }
    /// Follow the bytes a JSON parser consumes: the line of the last byte
    /// that is not whitespace is where the value being read starts or ends
    /// (a parser peeks past a number, often at the newline after it).
    pub fn saw_byte(b: u8) {
        if b == b'\n' {
            NEXT_LINE.with(|c| c.set(c.get() + 1));
        } else if !b.is_ascii_whitespace() {
            LINE.with(|c| c.set(NEXT_LINE.with(Cell::get)));
        }
    }
    pub fn line() -> usize {
        LINE.with(Cell::get)
    }
}

/// A `serde_json::Value` built under the budget.
pub struct Charged(pub Value);

impl<'de> Deserialize<'de> for Charged {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ChargedVisitor).map(Charged)
    }
}

struct ChargedVisitor;

impl<'de> Visitor<'de> for ChargedVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Budget::charge(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Charged::deserialize(d).map(|c| c.0)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Budget::charge(0)?;
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Budget::charge(0)?;
        Ok(Value::Number(i.into()))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Budget::charge(0)?;
        Ok(Value::Number(u.into()))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Budget::charge(0)?;
        // NaN and infinities (YAML `.nan`, `.inf`) have no JSON form.
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Budget::charge(s.len())?;
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Budget::charge(s.len())?;
        Ok(Value::String(s))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Value, E> {
        self.visit_str(&String::from_utf8_lossy(b))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        Budget::charge(0)?;
        let mut out = Vec::new();
        while let Some(Charged(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        Budget::charge(0)?;
        let mut out = Map::new();
        while let Some(Charged(key)) = map.next_key()? {
            let key = match key {
                Value::String(s) => s,
                // YAML allows any key; Kubernetes objects only have strings.
                other => other.to_string(),
            };
            let Charged(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// An object cut down to what the report reads, classified by kind.
#[derive(Debug)]
pub enum Slim {
    Crd(Box<Crd>),
    Node,
    Deployment(Box<Deployment>),
    /// Any other kind: Flux objects and whatever else the dump holds.
    Object {
        group: String,
        kind: String,
        namespace: String,
        name: String,
        object: Option<Box<FluxObject>>,
        invalid_fields: u32,
        /// A FluxInstance, whole: `report -o html` verifies it as the operator does.
        instance: Option<Box<flux_reporter_api::FluxInstance>>,
    },
}

/// Why an object was skipped.
#[derive(Debug, PartialEq)]
pub enum Skip {
    NotAnObject(&'static str),
    NoApiVersionOrKind,
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Classify one object and keep only the fields the report reads.
pub fn slim(value: &Value) -> Result<Slim, Skip> {
    if !value.is_object() {
        return Err(Skip::NotAnObject(type_name(value)));
    }
    let (Some(Value::String(api_version)), Some(Value::String(kind))) =
        (value.get("apiVersion"), value.get("kind"))
    else {
        return Err(Skip::NoApiVersionOrKind);
    };
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    Ok(match (group, kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            Slim::Crd(Box::new(decode::<Crd>(value).0.unwrap_or_default()))
        }
        ("", "Node") => Slim::Node,
        ("apps", "Deployment") => {
            Slim::Deployment(Box::new(decode::<Deployment>(value).0.unwrap_or_default()))
        }
        _ => {
            let field = |f: &str| {
                value
                    .get("metadata")
                    .and_then(|m| m.get(f))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (object, invalid_fields) = decode::<FluxObject>(value);
            let instance = (group == flux_reporter_api::constants::GROUP
                && kind == flux_reporter_api::constants::FLUX_INSTANCE_KIND)
                .then(|| serde_json::from_value(value.clone()).ok().map(Box::new))
                .flatten();
            Slim::Object {
                group: group.to_string(),
                kind: kind.clone(),
                namespace: field("namespace"),
                name: field("name"),
                object: object.map(Box::new),
                invalid_fields,
                instance,
            }
        }
    })
}

fn decode<T: for<'de> crate::lenient::Target<'de>>(v: &Value) -> (Option<T>, u32) {
    match Item::<T>::deserialize(v) {
        Ok(Item {
            value: Lenient::Valid(t),
            invalid_fields,
        }) => (Some(t), invalid_fields),
        Ok(item) => (None, item.invalid_fields.max(1)),
        Err(_) => (None, 1),
    }
}

/// One top-level document: its fields other than `items`, and its `items`
/// (when a list) already cut down, one result per item.
#[derive(Debug)]
pub struct Doc {
    /// Line the document starts on, as the reader saw it.
    pub line: usize,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    /// Not a map: its type.
    NotAnObject(&'static str),
    /// An empty document (YAML `~` or nothing).
    Null,
    Object {
        fields: Map<String, Value>,
        items: Option<Vec<Result<Slim, Skip>>>,
    },
}

impl Doc {
    fn new(body: Body) -> Doc {
        Doc {
            line: Budget::line(),
            body,
        }
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object or list")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Doc, E> {
        Ok(Doc::new(Body::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Doc, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc, D::Error> {
        Doc::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Doc, E> {
        Ok(Doc::new(Body::NotAnObject("a boolean")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Doc, E> {
        Ok(Doc::new(Body::NotAnObject("a number")))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Doc, E> {
        Ok(Doc::new(Body::NotAnObject("a number")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Doc, E> {
        Ok(Doc::new(Body::NotAnObject("a number")))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Doc, E> {
        Ok(Doc::new(Body::NotAnObject("a string")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let doc = Doc::new(Body::NotAnObject("a list"));
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(doc)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let line = Budget::line();
        let mut fields = Map::new();
        let mut items = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                match map.next_value::<Items>()? {
                    Items::List(list) => items = Some(list),
                    Items::Other(v) => {
                        fields.insert(key, v);
                    }
                }
            } else {
                let Charged(v) = map.next_value()?;
                fields.insert(key, v);
            }
        }
        Ok(Doc {
            line,
            body: Body::Object { fields, items },
        })
    }
}

/// `items`: a list is cut down item by item; anything else is kept as is.
enum Items {
    List(Vec<Result<Slim, Skip>>),
    Other(Value),
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemsVisitor)
    }
}

struct ItemsVisitor;

macro_rules! other {
    ($($f:ident: $t:ty),*) => {$(
        fn $f<E: de::Error>(self, v: $t) -> Result<Items, E> {
            ChargedVisitor.$f(v).map(Items::Other)
        }
    )*};
}

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }
    other!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str, visit_string: String);
    fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
        Ok(Items::Other(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Items, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Items, D::Error> {
        Items::deserialize(d)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
        ChargedVisitor.visit_map(map).map(Items::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let mut out = Vec::new();
        while let Some(Charged(item)) = seq.next_element()? {
            out.push(slim(&item));
        }
        Ok(Items::List(out))
    }
}
