//! `Status` bodies, shaped exactly as the real API server sends them.

use serde_json::{Map, Value, json};

/// An error answer: an HTTP status plus a `Status` body (or plain text for `404 page not found`).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub body: ErrorBody,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum ErrorBody {
    Status(Value),
    Text(&'static str),
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// `plural.group` (or just `plural` for the core group), as in "widgets.example.io \"x\" not found".
pub(crate) fn group_resource(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// `Kind.group` (or just `Kind`), as in "Widget.example.io \"x\" is invalid".
pub(crate) fn group_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// The usual reason for an HTTP status code (apimachinery `StatusReason*`).
pub(crate) fn reason_for_code(code: u16) -> Option<&'static str> {
    Some(match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => return None,
    })
}

/// A generic message for a status code, as `apierrors.NewGenericServerResponse` writes them.
pub(crate) fn default_message(code: u16) -> &'static str {
    match code {
        400 => "the server rejected our request for an unknown reason",
        401 => "Unauthorized",
        403 => "forbidden",
        404 => "the server could not find the requested resource",
        405 => "the server does not allow this method on the requested resource",
        409 => "the server reported a conflict",
        410 => "the resource requested has been removed",
        415 => {
            "the server was unable to process this request because the media type is not supported"
        }
        422 => "the server rejected our request due to an error in our request",
        429 => "Too many requests, please try again later.",
        500 => "an error on the server has prevented the request from succeeding",
        503 => "the server is currently unable to handle the request",
        504 => {
            "the server was unable to return a response in the time allotted, but may still be processing the request"
        }
        _ => "the server responded with an unexpected status",
    }
}

fn status_body(code: u16, message: &str, reason: Option<&str>, details: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Failure"));
    m.insert("message".into(), json!(message));
    if let Some(r) = reason {
        m.insert("reason".into(), json!(r));
    }
    if let Some(d) = details {
        m.insert("details".into(), d);
    }
    m.insert("code".into(), json!(code));
    Value::Object(m)
}

fn details(name: Option<&str>, group: &str, kind: &str) -> Value {
    let mut d = Map::new();
    if let Some(n) = name {
        d.insert("name".into(), json!(n));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    Value::Object(d)
}

impl ApiError {
    pub fn new(
        code: u16,
        message: impl AsRef<str>,
        reason: Option<&str>,
        details: Option<Value>,
    ) -> Self {
        ApiError {
            code,
            body: ErrorBody::Status(status_body(code, message.as_ref(), reason, details)),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body of the `Status` (for watch ERROR events).
    pub fn status_value(&self) -> Value {
        match &self.body {
            ErrorBody::Status(v) => v.clone(),
            ErrorBody::Text(t) => status_body(self.code, t, reason_for_code(self.code), None),
        }
    }

    /// `404 page not found` in text/plain, what the real server answers for unknown groups.
    pub fn page_not_found() -> Self {
        ApiError {
            code: 404,
            body: ErrorBody::Text("404 page not found\n"),
            headers: Vec::new(),
        }
    }

    /// The JSON 404 for an unknown resource in the core group.
    pub fn resource_not_found() -> Self {
        Self::new(404, default_message(404), Some("NotFound"), Some(json!({})))
    }

    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            404,
            format!("{} \"{name}\" not found", group_resource(plural, group)),
            Some("NotFound"),
            Some(details(Some(name), group, plural)),
        )
    }

    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "{} \"{name}\" already exists",
                group_resource(plural, group)
            ),
            Some("AlreadyExists"),
            Some(details(Some(name), group, plural)),
        )
    }

    pub fn conflict(plural: &str, group: &str, name: &str) -> Self {
        Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                group_resource(plural, group)
            ),
            Some("Conflict"),
            Some(details(Some(name), group, plural)),
        )
    }

    pub fn bad_request(message: impl AsRef<str>) -> Self {
        Self::new(400, message, Some("BadRequest"), None)
    }

    pub fn internal(message: impl AsRef<str>) -> Self {
        Self::new(500, message, None, None)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            default_message(405),
            Some("MethodNotAllowed"),
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            Some("UnsupportedMediaType"),
            None,
        )
    }

    /// 422 `Invalid` for `Kind.group "name"` with field causes.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[FieldError]) -> Self {
        let qualified = group_kind(kind, group);
        let message = if causes.len() == 1 {
            format!(
                "{qualified} \"{name}\" is invalid: {}",
                causes[0].error_string()
            )
        } else {
            let all: Vec<String> = causes.iter().map(FieldError::error_string).collect();
            format!("{qualified} \"{name}\" is invalid: [{}]", all.join(", "))
        };
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        d.insert(
            "causes".into(),
            Value::Array(causes.iter().map(FieldError::cause).collect()),
        );
        Self::new(422, message, Some("Invalid"), Some(Value::Object(d)))
    }

    /// A `Status` for an arbitrary code, used by fault injection.
    pub fn for_code(code: u16, message: Option<&str>) -> Self {
        let message = message.unwrap_or_else(|| default_message(code));
        let details = match code {
            429 => Some(json!({ "retryAfterSeconds": 1 })),
            _ => None,
        };
        Self::new(code, message, reason_for_code(code), details)
    }
}

/// One validation failure (apimachinery `field.Error`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    /// The rejected value, already rendered (`"text"`, `-1`, `"object"`).
    pub value: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FieldErrorKind {
    Required,
    Invalid,
    TypeInvalid,
    NotSupported,
    Forbidden,
    TooMany,
    TooLong,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// The value rendered the way Go's `%#v`-ish field errors do: strings quoted, numbers bare.
    pub fn render(v: &Value) -> String {
        match v {
            Value::String(s) => format!("{s:?}"),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".to_string(),
            other => format!("{:?}", crate::apiserver::util::json_type_name(other)),
        }
    }

    pub fn message(&self) -> String {
        let value = self.value.clone().unwrap_or_default();
        let mut m = match self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => {
                format!("Invalid value: {value}")
            }
            FieldErrorKind::NotSupported => format!("Unsupported value: {value}"),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooMany => format!("Too many: {value}"),
            FieldErrorKind::TooLong => "Too long".to_string(),
        };
        if !self.detail.is_empty() {
            m.push_str(": ");
            m.push_str(&self.detail);
        }
        m
    }

    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::TooLong => "FieldValueTooLong",
        }
    }

    pub fn error_string(&self) -> String {
        format!("{}: {}", self.field, self.message())
    }

    pub fn cause(&self) -> Value {
        json!({ "reason": self.reason(), "message": self.message(), "field": self.field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_body_matches_the_transcript() {
        let err = ApiError::invalid(
            "Widget",
            "example.toolkit.fluxcd.io",
            "other",
            &[FieldError::invalid(
                "<nil>",
                "\"object\"",
                "a Widget must be named 'flux' or 'flux-<suffix>'",
            )],
        );
        assert_eq!(err.code, 422);
        let ErrorBody::Status(body) = err.body else {
            panic!("status body")
        };
        assert_eq!(
            body["message"],
            "Widget.example.toolkit.fluxcd.io \"other\" is invalid: <nil>: Invalid value: \"object\": a Widget must be named 'flux' or 'flux-<suffix>'"
        );
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }
}
