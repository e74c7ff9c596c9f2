//! Just enough of the Kubernetes protobuf encoding to read the bodies `kubectl create namespace`,
//! `kubectl create configmap|secret|serviceaccount` send (typed clients post protobuf).

use base64::Engine;
use serde_json::{Map, Value, json};

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let tag = varint(b, &mut pos)?;
        let value = match tag & 7 {
            0 => Wire::Varint(varint(b, &mut pos)?),
            1 => {
                pos += 8;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(b, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= b.len())
                    .ok_or("truncated field")?;
                let v = &b[pos..end];
                pos = end;
                Wire::Bytes(v)
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((tag >> 3, value));
    }
    if pos > b.len() {
        return Err("truncated message".into());
    }
    Ok(out)
}

fn string(w: &Wire) -> Option<String> {
    match w {
        Wire::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

fn map_entry(w: &Wire, bytes_value: bool) -> Result<Option<(String, Value)>, String> {
    let Wire::Bytes(b) = w else { return Ok(None) };
    let mut key = String::new();
    let mut value = json!("");
    for (n, f) in fields(b)? {
        match (n, &f) {
            (1, _) => key = string(&f).unwrap_or_default(),
            (2, Wire::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v))
            }
            (2, _) => value = json!(string(&f).unwrap_or_default()),
            _ => {}
        }
    }
    Ok(Some((key, value)))
}

fn non_empty(m: &mut Map<String, Value>, k: &str, v: Option<String>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        m.insert(k.into(), json!(v));
    }
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        match n {
            1 => non_empty(&mut m, "name", string(&f)),
            2 => non_empty(&mut m, "generateName", string(&f)),
            3 => non_empty(&mut m, "namespace", string(&f)),
            6 => non_empty(&mut m, "resourceVersion", string(&f)),
            11 => labels.extend(map_entry(&f, false)?),
            12 => annotations.extend(map_entry(&f, false)?),
            14 => finalizers.extend(string(&f).map(Value::String)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown`) of a supported kind into JSON.
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or("the body does not start with the protobuf magic")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Wire::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match tn {
                        1 => api_version = string(&tf).unwrap_or_default(),
                        2 => kind = string(&tf).unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut string_data = Map::new();
    for (n, f) in fields(raw)? {
        match (kind.as_str(), n, &f) {
            (_, 1, Wire::Bytes(b)) => {
                obj.insert("metadata".into(), object_meta(b)?);
            }
            ("ConfigMap", 2, _) => data.extend(map_entry(&f, false)?),
            ("ConfigMap", 3, _) => binary.extend(map_entry(&f, true)?),
            ("ConfigMap", 4, Wire::Varint(v)) | ("Secret", 5, Wire::Varint(v)) => {
                obj.insert("immutable".into(), json!(*v != 0));
            }
            ("Secret", 2, _) => data.extend(map_entry(&f, true)?),
            ("Secret", 3, _) => non_empty(&mut obj, "type", string(&f)),
            ("Secret", 4, _) => string_data.extend(map_entry(&f, false)?),
            ("ServiceAccount", 4, Wire::Varint(v)) => {
                obj.insert("automountServiceAccountToken".into(), json!(*v != 0));
            }
            ("Namespace" | "ServiceAccount" | "ConfigMap" | "Secret", _, _) => {}
            (other, _, _) => {
                return Err(format!(
                    "protobuf bodies of kind {other} are not supported by the double"
                ));
            }
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    if !string_data.is_empty() {
        obj.insert("stringData".into(), Value::Object(string_data));
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_kubectl_create_configmap_sends() {
        // `kubectl create configmap cm1 --from-literal=a=b`
        let body: Vec<u8> = [
            &b"k8s\0"[..],
            &[0x0a, 0x0f, 0x0a, 0x02],
            b"v1",
            &[0x12, 0x09],
            b"ConfigMap",
            &[0x12, 0x1d, 0x0a, 0x13, 0x0a, 0x03],
            b"cm1",
            &[
                0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00,
            ],
            &[0x12, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b'],
        ]
        .concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "b"}})
        );
    }
}
