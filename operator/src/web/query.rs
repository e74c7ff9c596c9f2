//! The objects filter (a plain GET form: a filtered view is a URL) and
//! pagination, shared by the objects page and `/api/v1/objects`.

use serde::Deserialize;

use super::html::Link;
use super::index::Group;
use super::model::Snapshot;
use flux_reporter_report::metrics::RowRef;

/// Objects per page unless asked otherwise, and the most a page shows: a
/// page of 500 rows stays well under 1 MB.
pub const PER_PAGE: usize = 100;
pub const MAX_PER_PAGE: usize = 500;
/// Root causes per page of the failing page.
pub const GROUPS_PER_PAGE: usize = 25;
/// Dependants shown under a root cause; the rest are a link away.
pub const DEPENDANTS_SHOWN: usize = 20;
/// Longest search text taken, in bytes.
const MAX_QUERY: usize = 256;

/// The query string as sent; every field optional, unknown ones ignored.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Params {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub ready: Option<String>,
    pub suspended: Option<String>,
    pub failing: Option<String>,
    pub q: Option<String>,
    pub cause: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
}

/// A filter on the objects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    pub kind: String,
    pub namespace: String,
    /// `True`, `False`, `Unknown`, or "" for any.
    pub ready: String,
    pub suspended: Option<bool>,
    pub failing: Option<bool>,
    /// Searched, ASCII case-insensitively, in kind, namespace, name, reason,
    /// message, revision, URL and source.
    pub q: String,
    /// Only the objects of one root cause (`Kind/namespace/name`).
    pub cause: String,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
}

fn flag(v: &Option<String>) -> Option<bool> {
    match v.as_deref().map(str::trim) {
        Some("true" | "True" | "1" | "yes" | "on") => Some(true),
        Some("false" | "False" | "0" | "no" | "off") => Some(false),
        _ => None,
    }
}

fn clip(s: &Option<String>) -> String {
    let s = s.as_deref().unwrap_or("").trim();
    let mut end = s.len().min(MAX_QUERY);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Filter {
    pub fn from_params(p: &Params) -> Filter {
        let ready = match p.ready.as_deref().map(str::trim) {
            Some(r @ ("True" | "False" | "Unknown")) => r.to_string(),
            Some("true") => "True".into(),
            Some("false") => "False".into(),
            Some("unknown") => "Unknown".into(),
            _ => String::new(),
        };
        let number = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<usize>().ok());
        Filter {
            kind: clip(&p.kind),
            namespace: clip(&p.namespace),
            ready,
            suspended: flag(&p.suspended),
            failing: flag(&p.failing),
            q: clip(&p.q),
            cause: clip(&p.cause),
            page: number(&p.page).unwrap_or(1).max(1),
            per_page: number(&p.per_page)
                .unwrap_or(PER_PAGE)
                .clamp(1, MAX_PER_PAGE),
        }
    }

    /// The same filter on another page, as a link from `path`.
    pub fn link(&self, path: &str, page: usize) -> Link {
        let b = |v: Option<bool>| match v {
            Some(true) => "true",
            Some(false) => "false",
            None => "",
        };
        let mut l = Link::path(path)
            .param("kind", &self.kind)
            .param("namespace", &self.namespace)
            .param("ready", &self.ready)
            .param("suspended", b(self.suspended))
            .param("failing", b(self.failing))
            .param("q", &self.q)
            .param("cause", &self.cause);
        if self.per_page != PER_PAGE {
            l = l.param("per_page", &self.per_page.to_string());
        }
        if page > 1 {
            l = l.param("page", &page.to_string());
        }
        l
    }

    fn matches(&self, kind: &str, row: &RowRef<'_>) -> bool {
        if !self.kind.is_empty() && kind != self.kind {
            return false;
        }
        if !self.namespace.is_empty() && row.exported_namespace() != self.namespace {
            return false;
        }
        if !self.ready.is_empty() && row.ready() != self.ready {
            return false;
        }
        let detail = row.detail();
        if let Some(want) = self.suspended {
            let got = detail.map_or(row.suspended() == "True", |d| d.suspended());
            if got != want {
                return false;
            }
        }
        if let Some(want) = self.failing
            && detail.is_some_and(|d| d.failing()) != want
        {
            return false;
        }
        if !self.q.is_empty() {
            let q = self.q.as_bytes();
            let source = detail.and_then(|d| d.source());
            let found = [
                kind,
                row.exported_namespace(),
                row.name(),
                row.reason(),
                row.revision(),
                row.url(),
                detail.map_or("", |d| d.message()),
                source.map_or("", |s| s.name),
            ]
            .iter()
            .any(|field| contains_ignore_ascii_case(field.as_bytes(), q));
            if !found {
                return false;
            }
        }
        true
    }
}

/// Whether `needle` occurs in `hay`, ASCII letters compared without case.
pub fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > hay.len() {
        return false;
    }
    let first = needle[0].to_ascii_lowercase();
    (0..=hay.len() - needle.len()).any(|i| {
        hay[i].to_ascii_lowercase() == first
            && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// One page of the objects a filter selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Objects matching, all pages.
    pub total: usize,
    /// This page's object ids.
    pub ids: Vec<u32>,
    pub page: usize,
    pub pages: usize,
    /// The root cause named by `cause=`, when found.
    pub cause_found: Option<bool>,
}

/// The page of objects `f` selects, in kind order, then as listed.
pub fn select(s: &Snapshot, f: &Filter) -> Selection {
    let skip = (f.page - 1).saturating_mul(f.per_page);
    let mut ids = Vec::with_capacity(f.per_page.min(s.len()));
    let mut total = 0;
    let mut take = |id: u32, ok: bool| {
        if ok {
            if total >= skip && ids.len() < f.per_page {
                ids.push(id);
            }
            total += 1;
        }
    };
    let mut cause_found = None;
    if !f.cause.is_empty() {
        let group: Option<&Group> = s.index().failing.group_by_key(s, &f.cause);
        cause_found = Some(group.is_some());
        if let Some(g) = group {
            for id in g.members() {
                let (kind, row) = s.object(id);
                take(id, f.matches(&kind.kind, &row));
            }
        }
    } else {
        for (k, kind) in s.kinds.iter().enumerate() {
            if !f.kind.is_empty() && kind.kind != f.kind {
                continue;
            }
            for (id, row) in s.ids_of(k).zip(kind.rows.refs()) {
                take(id, f.matches(&kind.kind, &row));
            }
        }
    }
    Selection {
        total,
        ids,
        page: f.page,
        pages: total.div_ceil(f.per_page).max(1),
        cause_found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::fixture::{Obj, snapshot};

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "kind" => p.kind = v,
                "namespace" => p.namespace = v,
                "ready" => p.ready = v,
                "suspended" => p.suspended = v,
                "failing" => p.failing = v,
                "q" => p.q = v,
                "cause" => p.cause = v,
                "page" => p.page = v,
                "per_page" => p.per_page = v,
                _ => panic!("{k}"),
            }
        }
        p
    }

    fn names(s: &Snapshot, sel: &Selection) -> Vec<String> {
        sel.ids
            .iter()
            .map(|id| s.object(*id).1.name().to_string())
            .collect()
    }

    fn sample() -> Snapshot {
        snapshot(
            &[
                Obj::new("GitRepository", "apps", "podinfo"),
                Obj::new("GitRepository", "team-a", "broken")
                    .failing("GitOperationFailed", "Auth FAILED"),
                Obj::new("Kustomization", "apps", "podinfo").suspended(),
                Obj::new("Kustomization", "team-a", "web")
                    .source("GitRepository", "team-a", "broken")
                    .failing("ArtifactFailed", "no artifact"),
                Obj::new("Kustomization", "team-a", "jobs")
                    .depends_on("Kustomization", "team-a", "web")
                    .waiting(),
            ],
            1_800_000_000,
        )
    }

    #[test]
    fn each_filter_narrows_the_objects() {
        let s = sample();
        let sel = |pairs: &[(&str, &str)]| {
            let r = select(&s, &Filter::from_params(&params(pairs)));
            names(&s, &r)
        };
        assert_eq!(sel(&[]).len(), 5);
        assert_eq!(sel(&[("kind", "GitRepository")]), ["podinfo", "broken"]);
        assert_eq!(sel(&[("namespace", "apps")]), ["podinfo", "podinfo"]);
        assert_eq!(sel(&[("ready", "False")]), ["broken", "web", "jobs"]);
        assert_eq!(sel(&[("failing", "true")]), ["broken", "web"]);
        assert_eq!(sel(&[("suspended", "true")]), ["podinfo"]);
        assert_eq!(
            sel(&[("suspended", "false"), ("namespace", "apps")]),
            ["podinfo"]
        );
        assert_eq!(sel(&[("q", "auth failed")]), ["broken"]);
        assert_eq!(
            sel(&[("q", "BROKEN")]),
            ["broken", "web"],
            "name and source name"
        );
        assert_eq!(
            sel(&[("cause", "GitRepository/team-a/broken")]),
            ["broken", "web", "jobs"]
        );
        assert!(sel(&[("kind", "Nope")]).is_empty());
    }

    #[test]
    fn pages_split_the_selection_and_bad_numbers_fall_back() {
        let s = sample();
        let f = Filter::from_params(&params(&[("per_page", "2"), ("page", "3")]));
        let r = select(&s, &f);
        assert_eq!(
            (r.total, r.pages, names(&s, &r)),
            (5, 3, vec!["jobs".to_string()])
        );
        let f = Filter::from_params(&params(&[("per_page", "0"), ("page", "-1")]));
        assert_eq!((f.per_page, f.page), (1, 1));
        let f = Filter::from_params(&params(&[("per_page", "100000")]));
        assert_eq!(f.per_page, MAX_PER_PAGE);
        let f = Filter::from_params(&params(&[("page", "99")]));
        assert!(select(&s, &f).ids.is_empty());
    }

    #[test]
    fn a_filter_is_a_url_that_gives_the_same_filter_back() {
        let f = Filter::from_params(&params(&[
            ("kind", "Kustomization"),
            ("namespace", "team-a"),
            ("ready", "False"),
            ("failing", "true"),
            ("q", "a&b <c>"),
            ("per_page", "50"),
        ]));
        let link = f.link("/objects", 2).0;
        assert_eq!(
            link,
            "/objects?kind=Kustomization&namespace=team-a&ready=False&failing=true&q=a%26b%20%3Cc%3E&per_page=50&page=2"
        );
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ignore_ascii_case(b"Hello World", b"o wo"));
        assert!(contains_ignore_ascii_case(b"abc", b""));
        assert!(!contains_ignore_ascii_case(b"ab", b"abc"));
        assert!(contains_ignore_ascii_case(
            "ünïcode".as_bytes(),
            "ïc".as_bytes()
        ));
    }
}
