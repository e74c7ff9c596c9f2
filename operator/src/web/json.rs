//! The same data as JSON, under `/api/v1/`: the report, the objects with the
//! objects page's filters, one object, the failing objects by root cause,
//! and the changes. Shapes are documented in the README ("Status page").

use std::collections::VecDeque;

use flux_reporter_api::condition::{Condition, ConditionStatus};
use flux_reporter_api::constants::{READY_CONDITION, SINGLETON_NAME};
use flux_reporter_api::{FluxReport, FluxReportStatus};
use flux_reporter_report::metrics::{ObjRef, RowRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use super::index::{Group, Root, problem};
use super::model::{Change, Snapshot};
use super::query::{self, Filter};

/// Dependants listed per root cause in `/api/v1/failing`.
const JSON_DEPENDANTS: usize = 1000;

fn rfc3339(secs: i64) -> Option<String> {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .ok()
        .map(|t| t.to_string())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefJson<'a> {
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> From<ObjRef<'a>> for RefJson<'a> {
    fn from(r: ObjRef<'a>) -> Self {
        RefJson {
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionJson<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    status: &'a str,
    reason: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_transition_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectJson<'a> {
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    ready: &'a str,
    reason: &'a str,
    suspended: bool,
    /// Failing as the FluxReport counts it.
    failing: bool,
    /// Waiting on a dependency.
    waiting: bool,
    /// The Ready condition's `lastTransitionTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    revision: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    url: &'a str,
    #[serde(rename = "ref", skip_serializing_if = "str::is_empty")]
    ref_: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<RefJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<RefJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Vec<ConditionJson<'a>>>,
    /// `Kind/namespace/name` of its root cause, when it is under one.
    #[serde(skip_serializing_if = "Option::is_none")]
    root_cause: Option<String>,
}

fn object_json<'a>(s: &'a Snapshot, id: u32, full: bool) -> ObjectJson<'a> {
    let (kind, row): (_, RowRef<'a>) = s.object(id);
    let d = row.detail();
    let p = problem(&row);
    let root_cause = full
        .then(|| s.index().failing.group_of(id))
        .flatten()
        .filter(|g| !matches!(&g.root, Root::Object(r) if *r == id))
        .map(|g| g.key(s));
    ObjectJson {
        kind: &kind.kind,
        namespace: row.exported_namespace(),
        name: row.name(),
        ready: row.ready(),
        reason: row.reason(),
        suspended: d.map_or(row.suspended() == "True", |d| d.suspended()),
        failing: p == Some(true),
        waiting: p == Some(false),
        since: d.and_then(|d| d.since()).and_then(rfc3339),
        message: d.map_or("", |d| d.message()),
        revision: row.revision(),
        url: row.url(),
        ref_: row.ref_(),
        path: row.path(),
        source: d.and_then(|d| d.source()).map(RefJson::from),
        depends_on: d
            .map(|d| d.depends_on().map(RefJson::from).collect())
            .unwrap_or_default(),
        conditions: full.then(|| {
            d.map(|d| {
                d.conditions()
                    .map(|c| ConditionJson {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.since.and_then(rfc3339),
                    })
                    .collect()
            })
            .unwrap_or_default()
        }),
        root_cause,
    }
}

/// JSON with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026`: the
/// same data, and inert should a client ever put it into a page (they occur
/// only inside strings, where the escapes mean the same characters).
fn to_string(v: &impl Serialize) -> String {
    // Our own types of strings, numbers and lists: they always serialize.
    let text = serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    if !text.contains(['<', '>', '&']) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 64);
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

/// `/api/v1/report`: the FluxReport as this run computed it.
pub fn report(s: &Snapshot) -> String {
    let mut report = FluxReport::new(SINGLETON_NAME, s.spec.clone());
    report.metadata.namespace = Some(s.namespace.clone());
    let at = k8s_openapi::jiff::Timestamp::from_second(s.finished_at).unwrap_or_default();
    report.status = Some(FluxReportStatus {
        conditions: vec![Condition::new(
            READY_CONDITION,
            ConditionStatus::from(s.ready),
            &s.reason,
            &s.message,
            None,
            Time(at),
        )],
        last_handled_reconcile_at: None,
    });
    to_string(&report)
}

/// `/api/v1/objects`: one page of the objects the filter selects.
pub fn objects(s: &Snapshot, f: &Filter) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Page<'a> {
        total: usize,
        page: usize,
        pages: usize,
        per_page: usize,
        items: Vec<ObjectJson<'a>>,
    }
    let sel = query::select(s, f);
    to_string(&Page {
        total: sel.total,
        page: sel.page,
        pages: sel.pages,
        per_page: f.per_page,
        items: sel
            .ids
            .iter()
            .map(|id| object_json(s, *id, false))
            .collect(),
    })
}

/// `/api/v1/objects/{kind}/{namespace}/{name}`.
pub fn object(s: &Snapshot, id: u32) -> String {
    to_string(&object_json(s, id, true))
}

/// `/api/v1/failing`: the root causes of one page, each with its dependants.
pub fn failing(s: &Snapshot, page: usize) -> String {
    failing_in(s, page)
}

fn failing_in<'a>(s: &'a Snapshot, page: usize) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Cause<'a> {
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        object: Option<ObjectJson<'a>>,
        /// Referenced but absent: kind, namespace and name.
        #[serde(skip_serializing_if = "Option::is_none")]
        missing: Option<RefJson<'a>>,
        /// Objects waiting on each other.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        cycle: Vec<ObjectJson<'a>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct GroupJson<'a> {
        cause: Cause<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        newest: Option<String>,
        dependants_total: usize,
        dependants: Vec<ObjectJson<'a>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Failing<'a> {
        failing: usize,
        waiting: usize,
        root_causes: usize,
        page: usize,
        pages: usize,
        groups: Vec<GroupJson<'a>>,
    }
    let f = &s.index().failing;
    let pages = f.groups.len().div_ceil(query::GROUPS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let start = (page - 1) * query::GROUPS_PER_PAGE;
    let end = (start + query::GROUPS_PER_PAGE).min(f.groups.len());
    let group = |g: &'a Group| -> GroupJson<'a> {
        let cause = match &g.root {
            Root::Object(id) => Cause {
                key: g.key(s),
                object: Some(object_json(s, *id, false)),
                missing: None,
                cycle: Vec::new(),
            },
            Root::Missing {
                kind,
                namespace,
                name,
            } => Cause {
                key: g.key(s),
                object: None,
                missing: Some(RefJson {
                    kind,
                    namespace,
                    name,
                }),
                cycle: Vec::new(),
            },
            Root::Cycle(ids) => Cause {
                key: g.key(s),
                object: None,
                missing: None,
                cycle: ids.iter().map(|id| object_json(s, *id, false)).collect(),
            },
        };
        GroupJson {
            cause,
            newest: (g.newest != 0).then(|| rfc3339(g.newest)).flatten(),
            dependants_total: g.dependants.len(),
            dependants: g
                .dependants
                .iter()
                .take(JSON_DEPENDANTS)
                .map(|id| object_json(s, *id, false))
                .collect(),
        }
    };
    to_string(&Failing {
        failing: f.failing,
        waiting: f.waiting,
        root_causes: f.groups.len(),
        page,
        pages,
        groups: f.groups[start..end].iter().map(group).collect(),
    })
}

/// `/api/v1/changes`: newest first.
pub fn changes(changes: &VecDeque<Change>) -> String {
    #[derive(Serialize)]
    struct Item<'a> {
        time: Option<String>,
        #[serde(rename = "type")]
        type_: &'static str,
        reason: &'a str,
        message: &'a str,
        object: &'a str,
    }
    #[derive(Serialize)]
    struct Changes<'a> {
        items: Vec<Item<'a>>,
    }
    to_string(&Changes {
        items: changes
            .iter()
            .map(|c| Item {
                time: rfc3339(c.at),
                type_: if c.warning { "Warning" } else { "Normal" },
                reason: &c.reason,
                message: &c.message,
                object: &c.object,
            })
            .collect(),
    })
}

/// `{"error": …}` for a 4xx.
pub fn error(message: &str) -> String {
    to_string(&serde_json::json!({ "error": message }))
}
