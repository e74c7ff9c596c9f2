//! YAML output in kubectl's style: long lines stay on one line, multi-line
//! strings are literal blocks.

use serde::Serialize;

/// Serialize `value` as one YAML document (no leading `---`).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, options)
}
