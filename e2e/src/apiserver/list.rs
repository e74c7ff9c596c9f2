//! Lists: label and field selectors, `limit`/`continue` paging with tokens shaped like the real
//! ones, `remainingItemCount`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry::{ResourceType, Special};
use super::status::ApiError;
use super::store::ObjKey;

// ---------------------------------------------------------------- label selectors

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Exists,
    NotExists,
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<(String, LabelOp)>);

#[derive(Debug, Clone, PartialEq)]
enum LTok {
    Ident(String),
    Op(&'static str),
}

fn ltokens(s: &str) -> Vec<LTok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if two == "==" || two == "!=" {
            out.push(LTok::Op(if two == "==" { "==" } else { "!=" }));
            i += 2;
            continue;
        }
        let single = match c {
            '=' => Some("="),
            '!' => Some("!"),
            '(' => Some("("),
            ')' => Some(")"),
            ',' => Some(","),
            '>' => Some(">"),
            '<' => Some("<"),
            _ => None,
        };
        if let Some(op) = single {
            out.push(LTok::Op(op));
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !"=!(),<>".contains(chars[i]) {
            i += 1;
        }
        out.push(LTok::Ident(chars[start..i].iter().collect()));
    }
    out
}

fn describe(t: Option<&LTok>) -> String {
    match t {
        Some(LTok::Ident(s)) => s.clone(),
        Some(LTok::Op(o)) => (*o).to_string(),
        None => String::new(),
    }
}

const NOT_AN_INTEGER: &str =
    "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer";

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let toks = ltokens(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        let err = |msg: String| Err(format!("unable to parse requirement: {msg}"));
        while i < toks.len() {
            let negate = toks[i] == LTok::Op("!");
            if negate {
                i += 1;
            }
            let key = match toks.get(i) {
                Some(LTok::Ident(k)) => k.clone(),
                other => return err(format!("found '{}', expected: identifier", describe(other))),
            };
            i += 1;
            if negate {
                reqs.push((key, LabelOp::NotExists));
            } else {
                match toks.get(i) {
                    None | Some(LTok::Op(",")) => reqs.push((key, LabelOp::Exists)),
                    Some(LTok::Op(op @ ("=" | "==" | "!=" | ">" | "<"))) => {
                        let op = *op;
                        i += 1;
                        let value = match toks.get(i) {
                            Some(LTok::Ident(v)) => {
                                i += 1;
                                v.clone()
                            }
                            _ => String::new(),
                        };
                        reqs.push((
                            key,
                            match op {
                                "!=" => LabelOp::NotEq(value),
                                ">" => LabelOp::Gt(
                                    value.parse().map_err(|_| NOT_AN_INTEGER.to_string())?,
                                ),
                                "<" => LabelOp::Lt(
                                    value.parse().map_err(|_| NOT_AN_INTEGER.to_string())?,
                                ),
                                _ => LabelOp::Eq(value),
                            },
                        ));
                    }
                    Some(LTok::Ident(w)) if w == "in" || w == "notin" => {
                        let notin = w == "notin";
                        i += 1;
                        if toks.get(i) != Some(&LTok::Op("(")) {
                            return err(format!("found '{}' expected: '('", describe(toks.get(i))));
                        }
                        i += 1;
                        let mut values = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(LTok::Ident(v)) => {
                                    values.push(v.clone());
                                    i += 1;
                                }
                                Some(LTok::Op(",")) => i += 1,
                                Some(LTok::Op(")")) => {
                                    i += 1;
                                    break;
                                }
                                other => {
                                    return err(format!(
                                        "found '{}', expected: ',', ')' or identifier",
                                        describe(other)
                                    ));
                                }
                            }
                        }
                        reqs.push((
                            key,
                            if notin {
                                LabelOp::NotIn(values)
                            } else {
                                LabelOp::In(values)
                            },
                        ));
                    }
                    other => {
                        return err(format!(
                            "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                            describe(other)
                        ));
                    }
                }
            }
            match toks.get(i) {
                None => break,
                Some(LTok::Op(",")) => i += 1,
                other => return err(format!("found '{}', expected: ','", describe(other))),
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.0.iter().all(|(k, op)| {
            let v = labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            match op {
                LabelOp::Exists => v.is_some(),
                LabelOp::NotExists => v.is_none(),
                LabelOp::Eq(x) => v == Some(x.as_str()),
                LabelOp::NotEq(x) => v != Some(x.as_str()),
                LabelOp::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                LabelOp::NotIn(xs) => !v.is_some_and(|v| xs.iter().any(|x| x == v)),
                LabelOp::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                LabelOp::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

// ---------------------------------------------------------------- field selectors

#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// Where a selectable field lives in the stored object.
fn field_path(rt: &ResourceType, field: &str) -> Option<String> {
    let common = matches!(field, "metadata.name" | "metadata.namespace");
    if common {
        return Some(field.to_string());
    }
    let events = |f: &str| -> Option<String> {
        let mapped = if let Some(rest) = f
            .strip_prefix("involvedObject.")
            .or_else(|| f.strip_prefix("regarding."))
        {
            format!("regarding.{rest}")
        } else {
            match f {
                "reason" | "type" => f.to_string(),
                "reportingComponent" | "reportingController" => "reportingController".into(),
                "source" => "deprecatedSource.component".into(),
                _ => return None,
            }
        };
        Some(mapped)
    };
    match rt.special {
        Special::CoreEvent | Special::Event => events(field),
        Special::Namespace if field == "status.phase" => Some(field.into()),
        _ if rt.plural == "secrets" && rt.group.is_empty() && field == "type" => Some(field.into()),
        _ if rt.plural == "pods"
            && rt.group.is_empty()
            && (field == "spec.nodeName" || field == "status.phase") =>
        {
            Some(field.into())
        }
        _ if rt.plural == "nodes" && rt.group.is_empty() && field == "spec.unschedulable" => {
            Some(field.into())
        }
        _ => None,
    }
}

impl FieldSelector {
    pub fn parse(s: &str, rt: &ResourceType) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, neg, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            let Some(path) = field_path(rt, field) else {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            };
            reqs.push((path, neg, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, neg, want)| {
            let mut cur = Some(obj);
            for p in path.split('.') {
                cur = cur.and_then(|c| c.get(p));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (got == *want) != *neg
        })
    }
}

// ---------------------------------------------------------------- continue tokens

#[derive(Debug, Serialize, Deserialize)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

fn engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// A token like the real server's: base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`.
pub(crate) fn encode_continue(rv: i64, start_key: &str) -> String {
    let token = Token {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{start_key}\u{0}"),
    };
    engine().encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The resourceVersion and start key of a token.
pub(crate) fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let bytes = engine().decode(token.as_bytes()).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            _ => token.len(),
        };
        ApiError::bad_request(format!(
            "invalid continue token: illegal base64 data at input byte {at}"
        ))
    })?;
    let parsed: Token = serde_json::from_slice(&bytes).map_err(|e| {
        let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
        let detail = match first {
            Some(b) if b != b'{' => {
                let shown = if b.is_ascii_graphic() {
                    format!("'{}'", b as char)
                } else {
                    format!("'\\u{:04x}'", b)
                };
                format!("invalid character {shown} looking for beginning of value")
            }
            _ => e.to_string(),
        };
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {detail}"
        ))
    })?;
    let start = parsed
        .start
        .strip_suffix('\u{0}')
        .unwrap_or(&parsed.start)
        .to_string();
    Ok((parsed.rv, start))
}

/// The 410 for a continue token whose snapshot is gone, with a fresh (inconsistent) token.
pub(crate) fn expired_continue(start_key: &str) -> ApiError {
    let mut err = ApiError::new(
        410,
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        Some("Expired"),
        None,
    );
    if let super::status::ErrorBody::Status(body) = &mut err.body {
        body["metadata"] = serde_json::json!({ "continue": encode_continue(-1, start_key) });
    }
    err
}

// ---------------------------------------------------------------- paging

/// One page of a list.
pub(crate) struct Page {
    pub items: Vec<Arc<Value>>,
    /// The key to continue after, when more items match.
    pub next_start: Option<String>,
    pub remaining: Option<u64>,
}

pub(crate) struct PageRequest<'a> {
    pub namespace: Option<&'a str>,
    pub namespaced_type: bool,
    pub labels: &'a LabelSelector,
    pub fields: &'a FieldSelector,
    pub limit: Option<u64>,
    pub start: Option<&'a str>,
}

fn start_bound(req: &PageRequest) -> Bound<ObjKey> {
    let Some(start) = req.start else {
        return match req.namespace {
            Some(ns) => Bound::Included((ns.to_string(), String::new())),
            None => Bound::Unbounded,
        };
    };
    let key = match (req.namespace, req.namespaced_type) {
        (Some(ns), _) => (
            ns.to_string(),
            start
                .rsplit_once('/')
                .map(|(_, n)| n)
                .unwrap_or(start)
                .to_string(),
        ),
        (None, true) => match start.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (String::new(), start.to_string()),
        },
        (None, false) => (String::new(), start.to_string()),
    };
    Bound::Excluded(key)
}

/// The key a continue token stores for an object.
fn token_key(req: &PageRequest, key: &ObjKey) -> String {
    if req.namespace.is_none() && req.namespaced_type {
        format!("{}/{}", key.0, key.1)
    } else {
        key.1.clone()
    }
}

pub(crate) fn page(collection: Option<&BTreeMap<ObjKey, Arc<Value>>>, req: &PageRequest) -> Page {
    let Some(collection) = collection else {
        return Page {
            items: Vec::new(),
            next_start: None,
            remaining: None,
        };
    };
    // Without selectors the objects themselves are never touched (counting the rest of a
    // 50 000-object collection then only walks the keys).
    let unfiltered = req.labels.is_empty() && req.fields.is_empty();
    let mut iter = collection
        .range((start_bound(req), Bound::Unbounded))
        .take_while(|(k, _)| req.namespace.is_none_or(|ns| k.0 == ns))
        .filter(|(_, v)| unfiltered || (req.labels.matches(v) && req.fields.matches(v)));
    let mut items = Vec::new();
    let mut last_key = None;
    let limit = req.limit.filter(|l| *l > 0);
    loop {
        if limit.is_some_and(|l| items.len() as u64 >= l) {
            break;
        }
        match iter.next() {
            Some((k, v)) => {
                items.push(v.clone());
                last_key = Some(k);
            }
            None => {
                return Page {
                    items,
                    next_start: None,
                    remaining: None,
                };
            }
        }
    }
    // With selectors the real server does not count the rest; one more match is enough to
    // know that there is a next page.
    let remaining = if unfiltered {
        iter.count() as u64
    } else {
        u64::from(iter.next().is_some())
    };
    if remaining == 0 {
        return Page {
            items,
            next_start: None,
            remaining: None,
        };
    }
    Page {
        items,
        next_start: last_key.map(|k| token_key(req, k)),
        remaining: if unfiltered { Some(remaining) } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_parse_and_match() {
        let obj =
            json!({"metadata": {"labels": {"tier": "gold", "app.kubernetes.io/part-of": "flux"}}});
        for (sel, want) in [
            ("tier=gold", true),
            ("tier==gold", true),
            ("tier!=gold", false),
            ("tier in (gold,silver)", true),
            ("tier notin (gold)", false),
            ("app.kubernetes.io/part-of=flux,!tier", false),
            ("!missing", true),
            ("tier", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&obj),
                want,
                "{sel}"
            );
        }
        assert_eq!(
            LabelSelector::parse("tier in gold").unwrap_err(),
            "unable to parse requirement: found 'gold' expected: '('"
        );
    }

    #[test]
    fn continue_tokens_match_the_real_format() {
        assert_eq!(
            encode_continue(56875, "flux-a"),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NTY4NzUsInN0YXJ0IjoiZmx1eC1hXHUwMDAwIn0"
        );
        assert_eq!(
            decode_continue(&encode_continue(-1, "ns/x")).unwrap(),
            (-1, "ns/x".to_string())
        );
        let err = decode_continue("garbage").unwrap_err();
        assert_eq!(
            err.status_value()["message"],
            "invalid continue token: continue key is not valid: invalid character '\\u0081' looking for beginning of value"
        );
    }
}
