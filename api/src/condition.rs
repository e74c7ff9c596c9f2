//! `metav1.Condition`, with the schema the Kubernetes API gives it.
//!
//! Our own type rather than k8s-openapi's, so the CRD schema carries the same
//! validation as upstream Go types without the k8s-openapi `schemars` feature.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition contains details for one aspect of the current state of this API Resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// type of condition in CamelCase or in foo.example.com/CamelCase.
    #[serde(rename = "type")]
    #[schemars(
        length(max = 316),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        )
    )]
    pub type_: String,
    /// status of the condition, one of True, False, Unknown.
    pub status: ConditionStatus,
    /// observedGeneration represents the .metadata.generation that the condition was set based upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// lastTransitionTime is the last time the condition transitioned from one status to another.
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub last_transition_time: Time,
    /// reason contains a programmatic identifier indicating the reason for the condition's last transition.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// message is a human readable message indicating details about the transition.
    #[schemars(length(max = 32768))]
    pub message: String,
}

/// Status of a condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// The API server caps condition messages; Flux caps them at 32768 characters.
pub const MAX_MESSAGE_LEN: usize = 32768;

/// Cut `message` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate_message(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while end > 0 && !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end])
}

impl Condition {
    /// A new condition stamped now.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        observed_generation: Option<i64>,
        now: Time,
    ) -> Self {
        Condition {
            type_: type_.to_string(),
            status,
            observed_generation,
            last_transition_time: now,
            reason: reason.to_string(),
            message: truncate_message(message, MAX_MESSAGE_LEN),
        }
    }
}

/// Find the condition of the given type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Insert or replace `new` in `conditions`. The transition time is kept from
/// the old condition when status, reason and message are all unchanged, as
/// Flux's condition helpers do.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) {
    if let Some(old) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if old.status == new.status && old.reason == new.reason && old.message == new.message {
            new.last_transition_time = old.last_transition_time.clone();
        }
        *old = new;
    } else {
        conditions.push(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_messages() {
        assert_eq!(truncate_message("hello", 10), "hello");
    }

    #[test]
    fn truncate_cuts_on_char_boundary() {
        let s = "ééééé"; // 10 bytes
        let t = truncate_message(s, 6);
        assert!(t.len() <= 6, "{t:?} is {} bytes", t.len());
        assert!(t.ends_with('…'));
    }
}
