//! The pages, rendered on the server from a [`Snapshot`]: Overview, Failing
//! (grouped by root cause), Objects (filtered, paginated) and one object,
//! Changes. The operator serves each at its own URL ([`Mode::Server`]); `report
//! -o html` writes them all into one self-contained file ([`Mode::File`]),
//! where sections are shown one at a time by CSS `:target`, with no script.

use std::collections::VecDeque;

use flux_reporter_report::metrics::RowRef;

use super::html::{CSS, FILE_CSP, Html, Link};
use super::index::{Group, Root};
use super::model::{Change, KindRows, Origin, Snapshot};
use super::query::{self, Filter, Selection};

/// Where the pages live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Served by the operator, one page per URL, refreshed every 30 s.
    Server,
    /// One file: every page a section of it, linked by fragment.
    File,
}

/// Objects a file lists in full; past this it names how many it left out.
pub const FILE_MAX_OBJECTS: usize = 10_000;
/// Dependants a file lists per root cause.
const FILE_MAX_DEPENDANTS: usize = 200;
/// Characters of a message shown in a table cell.
const CELL_MESSAGE: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Failing,
    Objects,
    Changes,
}

/// What every page is rendered with.
pub struct Ctx<'a> {
    pub s: &'a Snapshot,
    pub mode: Mode,
    /// Unix seconds, for "… ago" (server pages only).
    pub now: i64,
}

impl Ctx<'_> {
    fn nav_link(&self, nav: Nav) -> Link {
        match (self.mode, nav) {
            (Mode::Server, Nav::Overview) => Link::path("/"),
            (Mode::Server, Nav::Failing) => Link::path("/failing"),
            (Mode::Server, Nav::Objects) => Link::path("/objects"),
            (Mode::Server, Nav::Changes) => Link::path("/changes"),
            (Mode::File, Nav::Overview) => Link::fragment("overview"),
            (Mode::File, Nav::Failing) => Link::fragment("failing"),
            (Mode::File, Nav::Objects) => Link::fragment("objects"),
            (Mode::File, Nav::Changes) => Link::fragment("changes"),
        }
    }

    fn object_link(&self, id: u32) -> Link {
        match self.mode {
            Mode::Server => {
                let (kind, row) = self.s.object(id);
                object_path(&kind.kind, row.exported_namespace(), row.name())
            }
            Mode::File => Link::fragment(&format!("o{id}")),
        }
    }

    /// The objects of a kind, optionally failing or suspended only.
    fn kind_link(&self, kind: &str, failing: Option<bool>, suspended: Option<bool>) -> Link {
        match self.mode {
            Mode::Server => Filter {
                kind: kind.to_string(),
                failing,
                suspended,
                page: 1,
                per_page: query::PER_PAGE,
                ..Filter::default()
            }
            .link("/objects", 1),
            Mode::File => Link::fragment(&format!("k-{kind}")),
        }
    }

    fn cause_link(&self, key: &str) -> Link {
        match self.mode {
            Mode::Server => Link::path("/objects").param("cause", key),
            Mode::File => Link::fragment("objects"),
        }
    }
}

/// The path of one object's page.
pub fn object_path(kind: &str, namespace: &str, name: &str) -> Link {
    Link::path("/objects")
        .segment(kind)
        .segment(namespace)
        .segment(name)
}

/// `2026-11-21 14:02:11 UTC`.
pub fn time(secs: i64) -> String {
    match k8s_openapi::jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => secs.to_string(),
    }
}

/// `3d 4h`, `5m 2s`: the largest two units.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

fn since_cell(h: &mut Html, c: &Ctx<'_>, since: Option<i64>) {
    match since {
        Some(t) => {
            h.raw("<span class=\"nowrap\" title=\"")
                .text(&time(t))
                .raw("\">");
            if c.mode == Mode::Server && c.now >= t {
                h.text(&age(c.now - t)).raw(" ago");
            } else {
                h.text(&time(t));
            }
            h.raw("</span>");
        }
        None => {
            h.raw("<span class=\"muted\">unknown</span>");
        }
    }
}

/// The first line of a message, cut to `max` characters.
fn clip(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() <= max && !s.contains('\n') {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push('…');
    cut
}

fn ready_badge(h: &mut Html, ready: &str) {
    let class = match ready {
        "True" => "<span class=\"badge b-ok\">",
        "False" => "<span class=\"badge b-bad\">",
        _ => "<span class=\"badge b-warn\">",
    };
    h.el(class, ready, "</span>");
}

fn bool_badge(h: &mut Html, ok: bool, yes: &str, no: &str) {
    if ok {
        h.el("<span class=\"badge b-ok\">", yes, "</span>");
    } else {
        h.el("<span class=\"badge b-bad\">", no, "</span>");
    }
}

/// The state of an object in one badge: failing, waiting, suspended, ready…
fn state_badge(h: &mut Html, row: &RowRef<'_>) {
    let d = row.detail();
    if d.is_some_and(|d| d.suspended()) {
        h.raw("<span class=\"badge b-muted\">suspended</span>");
    } else if d.is_some_and(|d| d.failing()) {
        h.raw("<span class=\"badge b-bad\">failing</span>");
    } else if row.reason() == flux_reporter_api::constants::DEPENDENCY_NOT_READY_REASON
        && row.ready() == "False"
    {
        h.raw("<span class=\"badge b-warn\">waiting</span>");
    } else {
        ready_badge(h, row.ready());
    }
}

fn head(h: &mut Html, c: &Ctx<'_>, title: &str, here: Option<Nav>) {
    h.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.raw("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    if c.mode == Mode::File {
        h.raw("<meta http-equiv=\"Content-Security-Policy\" content=\"")
            .text(&FILE_CSP)
            .raw("\">");
    }
    h.raw("<meta name=\"referrer\" content=\"no-referrer\"><title>")
        .text(title)
        .raw(" · flux-reporter</title><style>")
        .raw(CSS)
        .raw("</style>");
    if c.mode == Mode::Server {
        h.raw("<script src=\"/static/refresh.js\" defer></script>");
    }
    h.raw("</head><body>");
    if c.mode == Mode::File {
        // What the navigation targets: at the top, so the page does not
        // scroll away from the header; CSS shows the section named.
        h.raw("<i id=\"overview\" class=\"tab\"></i><i id=\"failing\" class=\"tab\"></i><i id=\"objects\" class=\"tab\"></i><i id=\"changes\" class=\"tab\"></i>");
    }
    h.raw("<header><span class=\"brand\">flux-reporter <small>")
        .text(&c.s.namespace);
    if let Some(cluster) = &c.s.spec.cluster {
        h.raw(" · Kubernetes ").text(&cluster.server_version);
    }
    h.raw("</small></span><nav>");
    let failing = c.s.index().failing.failing;
    for (nav, label) in [
        (Nav::Overview, "Overview"),
        (Nav::Failing, "Failing"),
        (Nav::Objects, "Objects"),
        (Nav::Changes, "Changes"),
    ] {
        h.raw("<a href=\"").text(&c.nav_link(nav).0).raw("\"");
        if here == Some(nav) {
            h.raw(" class=\"here\" aria-current=\"page\"");
        }
        h.raw(">").text(label);
        if nav == Nav::Failing {
            h.raw(" (").num(failing as i64).raw(")");
        }
        h.raw("</a>");
    }
    h.raw("</nav></header>");
}

fn foot(h: &mut Html, c: &Ctx<'_>) {
    h.raw("<footer>");
    match &c.s.origin {
        Origin::Operator { pod } => {
            h.raw("Served by ")
                .text(pod)
                .raw(" from its last report run, ");
        }
        Origin::OneShot { source } => {
            h.raw("Written by flux-reporter report from ")
                .text(source)
                .raw(", ");
        }
    }
    h.raw("finished ")
        .text(&time(c.s.finished_at))
        .raw(". Read-only; credentials in URLs are shown as ***.</footer></body></html>\n");
}

/// A page of its own (server) or a section (file).
fn open_page(h: &mut Html, c: &Ctx<'_>, id: &'static str, title: &'static str) {
    match c.mode {
        Mode::Server => {
            h.raw("<main>");
        }
        Mode::File => {
            h.raw("<section class=\"page\" id=\"p-").raw(id).raw("\">");
        }
    }
    h.raw("<h1>").raw(title).raw("</h1>");
}

fn close_page(h: &mut Html, c: &Ctx<'_>) {
    h.raw(match c.mode {
        Mode::Server => "</main>",
        Mode::File => "</section>",
    });
}

fn capacity(s: &Snapshot) -> usize {
    16 * 1024 + CSS.len() + s.kinds.len() * 256
}

/// The overview page.
pub fn overview(c: &Ctx<'_>) -> String {
    let mut h = Html::with_capacity(capacity(c.s));
    head(&mut h, c, "Overview", Some(Nav::Overview));
    overview_body(&mut h, c);
    foot(&mut h, c);
    h.finish()
}

fn overview_body(h: &mut Html, c: &Ctx<'_>) {
    let s = c.s;
    open_page(h, c, "overview", "Overview");
    h.raw(if s.ready {
        "<div class=\"banner\">"
    } else {
        "<div class=\"banner bad\">"
    });
    h.raw("<div class=\"title\">");
    bool_badge(h, s.ready, "Ready", "Not ready");
    h.raw(" ")
        .text(&s.reason)
        .raw("</div><div class=\"msg\">")
        .text(&s.message)
        .raw("</div>");
    h.raw("<div class=\"muted\">Last run finished ")
        .text(&time(s.finished_at));
    if c.mode == Mode::Server && c.now >= s.finished_at {
        h.raw(" (").text(&age(c.now - s.finished_at)).raw(" ago)");
    }
    h.raw(" and took ")
        .text(&flux_reporter_report::duration::format_run(s.duration))
        .raw(".</div></div>");

    let failing = &s.index().failing;
    if failing.failing + failing.waiting > 0 {
        h.raw("<div class=\"banner bad\"><a href=\"")
            .text(&c.nav_link(Nav::Failing).0)
            .raw("\">")
            .num(failing.failing as i64)
            .raw(" failing objects")
            .raw("</a>");
        if failing.waiting > 0 {
            h.raw(" and ")
                .num(failing.waiting as i64)
                .raw(" waiting on a dependency");
        }
        h.raw(", in ")
            .num(failing.groups.len() as i64)
            .raw(" root causes.</div>");
    }

    h.raw("<div class=\"grid\">");
    let d = &s.spec.distribution;
    h.raw("<div class=\"card\"><h3>Distribution</h3><dl><dt>Version</dt><dd>")
        .text(d.version.as_deref().unwrap_or("unknown"))
        .raw("</dd><dt>Status</dt><dd>")
        .text(&d.status)
        .raw("</dd><dt>Managed by</dt><dd>")
        .text(d.managed_by.as_deref().unwrap_or("unknown"))
        .raw("</dd><dt>Entitlement</dt><dd>")
        .text(&d.entitlement)
        .raw("</dd></dl></div>");
    h.raw("<div class=\"card\"><h3>Cluster</h3><dl>");
    match &s.spec.cluster {
        Some(cl) => {
            h.raw("<dt>Kubernetes</dt><dd>")
                .text(&cl.server_version)
                .raw("</dd><dt>Platform</dt><dd>")
                .text(&cl.platform)
                .raw("</dd><dt>Nodes</dt><dd>")
                .num(cl.nodes)
                .raw("</dd>");
        }
        None => {
            h.raw("<dt>Cluster</dt><dd class=\"muted\">could not be read</dd>");
        }
    }
    h.raw("<dt>Flux namespace</dt><dd>")
        .text(&s.namespace)
        .raw("</dd></dl></div>");
    h.raw("<div class=\"card\"><h3>FluxInstance</h3>");
    match &s.instance {
        Some(i) => {
            h.raw("<dl><dt>Name</dt><dd>")
                .text(&i.namespace)
                .raw("/")
                .text(&i.name)
                .raw("</dd><dt>Verified</dt><dd>");
            match i.ready {
                Some(ok) => bool_badge(h, ok, "Ready", "Not ready"),
                None => {
                    h.raw("<span class=\"badge b-warn\">Unknown</span>");
                }
            }
            h.raw("</dd><dt>Reason</dt><dd>")
                .text(&i.reason)
                .raw("</dd></dl>");
            if !i.message.is_empty() {
                h.raw("<div class=\"msg\">").text(&i.message).raw("</div>");
            }
            if !i.verified_here {
                h.raw("<div class=\"muted\">As its status says: this replica did not verify it this run (it is not the leader, or the Flux Operator owns the FluxInstance).</div>");
            }
        }
        None => {
            h.raw("<div class=\"muted\">No FluxInstance: the installation is judged by its components and sync.</div>");
        }
    }
    h.raw("</div>");
    h.raw("<div class=\"card\"><h3>Sync</h3>");
    match &s.spec.sync {
        Some(sync) => {
            h.raw("<dl><dt>Root</dt><dd>")
                .text(&sync.id)
                .raw("</dd><dt>Ready</dt><dd>");
            bool_badge(h, sync.ready, "True", "False");
            h.raw("</dd><dt>Source</dt><dd class=\"mono\">")
                .text(sync.source.as_deref().unwrap_or(""))
                .raw("</dd><dt>Path</dt><dd class=\"mono\">")
                .text(sync.path.as_deref().unwrap_or(""))
                .raw("</dd></dl><div class=\"msg mono\">")
                .text(&sync.status)
                .raw("</div>");
        }
        None => {
            h.raw("<div class=\"muted\">No sync found (see the notes below).</div>");
        }
    }
    h.raw("</div></div>");

    h.raw("<h2>Components</h2><div class=\"scroll\"><table><thead><tr><th>Name</th><th>Ready</th><th>Status</th><th class=\"hide-s\">Image</th></tr></thead><tbody>");
    for comp in &s.spec.components {
        h.raw("<tr><td>").text(&comp.name).raw("</td><td>");
        bool_badge(h, comp.ready, "True", "False");
        h.raw("</td><td>")
            .text(&comp.status)
            .raw("</td><td class=\"mono hide-s\">")
            .text(&comp.image)
            .raw("</td></tr>");
    }
    if s.spec.components.is_empty() {
        h.raw("<tr><td colspan=\"4\" class=\"muted\">No Flux controllers found.</td></tr>");
    }
    h.raw("</tbody></table></div>");

    h.raw("<h2>Reconcilers</h2><div class=\"scroll\"><table><thead><tr><th>Kind</th><th class=\"hide-s\">API version</th><th class=\"n\">Running</th><th class=\"n\">Failing</th><th class=\"n\">Suspended</th><th class=\"n\">Storage</th></tr></thead><tbody>");
    for r in &s.spec.reconcilers {
        h.raw("<tr><td>")
            .link(&c.kind_link(&r.kind, None, None), &r.kind)
            .raw("</td><td class=\"hide-s muted\">")
            .text(&r.api_version)
            .raw("</td><td class=\"n\">")
            .num(r.stats.running)
            .raw("</td><td class=\"n\">");
        if r.stats.failing > 0 {
            h.raw("<a class=\"badge b-bad\" href=\"")
                .text(&c.kind_link(&r.kind, Some(true), None).0)
                .raw("\">")
                .num(r.stats.failing)
                .raw("</a>");
        } else {
            h.num(0);
        }
        h.raw("</td><td class=\"n\">");
        if r.stats.suspended > 0 {
            h.link(
                &c.kind_link(&r.kind, None, Some(true)),
                &r.stats.suspended.to_string(),
            );
        } else {
            h.num(0);
        }
        h.raw("</td><td class=\"n\">")
            .text(r.stats.total_size.as_deref().unwrap_or(""))
            .raw("</td></tr>");
    }
    h.raw("</tbody></table></div>");

    if !s.failures.is_empty() || !s.notes.is_empty() {
        h.raw("<h2>Notes</h2><ul>");
        for f in &s.failures {
            h.raw("<li><span class=\"badge b-bad\">could not read</span> ")
                .text(f)
                .raw("</li>");
        }
        for n in &s.notes {
            h.raw("<li>").text(n).raw("</li>");
        }
        h.raw("</ul>");
    }
    close_page(h, c);
}

/// One row of an objects table: kind, namespace, name, state, reason, since, revision, message.
fn object_row(h: &mut Html, c: &Ctx<'_>, id: u32, kind: &KindRows, row: &RowRef<'_>) {
    h.raw("<tr><td>")
        .text(&kind.kind)
        .raw("</td><td>")
        .text(row.exported_namespace())
        .raw("</td><td>")
        .link(&c.object_link(id), row.name())
        .raw("</td><td>");
    state_to_message_cells(h, c, row);
}

/// The cells of an objects-table row after its name: state, reason, since, revision, message.
fn state_to_message_cells(h: &mut Html, c: &Ctx<'_>, row: &RowRef<'_>) {
    let d = row.detail();
    state_badge(h, row);
    h.raw("</td><td>")
        .text(row.reason())
        .raw("</td><td class=\"hide-s\">");
    since_cell(h, c, d.and_then(|d| d.since()));
    h.raw("</td><td class=\"mono hide-s\">")
        .text(&clip(row.revision(), 60))
        .raw("</td><td class=\"msg\">")
        .text(&clip(d.map_or("", |d| d.message()), CELL_MESSAGE))
        .raw("</td></tr>");
}

const OBJECTS_HEAD: &str = "<div class=\"scroll\"><table><thead><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>State</th><th>Reason</th><th class=\"hide-s\">Since</th><th class=\"hide-s\">Revision</th><th>Message</th></tr></thead><tbody>";
const TABLE_END: &str = "</tbody></table></div>";

fn pager(h: &mut Html, page: usize, pages: usize, link: impl Fn(usize) -> Link) {
    if pages <= 1 {
        return;
    }
    h.raw("<nav class=\"pager\" aria-label=\"pages\">");
    if page > 1 {
        h.link(&link(page - 1), "← previous");
    }
    let mut last = 0;
    for p in 1..=pages {
        let near = p == 1 || p == pages || p.abs_diff(page) <= 2;
        if !near {
            continue;
        }
        if last + 1 != p {
            h.raw("<span class=\"muted\">…</span>");
        }
        if p == page {
            h.raw("<span class=\"here\">").num(p as i64).raw("</span>");
        } else {
            h.link(&link(p), &p.to_string());
        }
        last = p;
    }
    if page < pages {
        h.link(&link(page + 1), "next →");
    }
    h.raw("</nav>");
}

/// The failing page: every failing object, grouped by root cause, newest first.
pub fn failing(c: &Ctx<'_>, page: usize) -> String {
    let mut h = Html::with_capacity(capacity(c.s) + 64 * 1024);
    head(&mut h, c, "Failing", Some(Nav::Failing));
    failing_body(&mut h, c, page);
    foot(&mut h, c);
    h.finish()
}

fn failing_body(h: &mut Html, c: &Ctx<'_>, page: usize) {
    let s = c.s;
    let f = &s.index().failing;
    open_page(h, c, "failing", "Failing");
    h.raw("<p>")
        .num(f.failing as i64)
        .raw(" failing objects (as the FluxReport counts them: <code>Ready=False</code>, not suspended, not waiting on a dependency) and ")
        .num(f.waiting as i64)
        .raw(" waiting on a dependency, in ")
        .num(f.groups.len() as i64)
        .raw(" root causes, newest first. An object that waits on a dependency, or whose source is failing, is shown under it.</p>");
    if f.groups.is_empty() {
        h.raw("<div class=\"banner\"><div class=\"title\">Nothing is failing.</div></div>");
    }
    let (groups, pages, shown) = match c.mode {
        Mode::Server => {
            let pages = f.groups.len().div_ceil(query::GROUPS_PER_PAGE).max(1);
            let page = page.clamp(1, pages);
            let start = (page - 1) * query::GROUPS_PER_PAGE;
            let end = (start + query::GROUPS_PER_PAGE).min(f.groups.len());
            (&f.groups[start..end], pages, query::DEPENDANTS_SHOWN)
        }
        Mode::File => (&f.groups[..], 1, FILE_MAX_DEPENDANTS),
    };
    for g in groups {
        group(h, c, g, shown);
    }
    pager(h, page, pages, |p| {
        if p > 1 {
            Link::path("/failing").param("page", &p.to_string())
        } else {
            Link::path("/failing")
        }
    });
    close_page(h, c);
}

fn group(h: &mut Html, c: &Ctx<'_>, g: &Group, shown: usize) {
    let s = c.s;
    match &g.root {
        Root::Object(id) => {
            let (kind, row) = s.object(*id);
            let d = row.detail();
            h.raw("<section class=\"group\"><div class=\"head\">")
                .el("<span class=\"badge b-info\">", &kind.kind, "</span>")
                .raw("<span class=\"who\">")
                .link(
                    &c.object_link(*id),
                    &format!("{}/{}", row.exported_namespace(), row.name()),
                )
                .raw("</span>");
            state_badge(h, &row);
            h.el("<span>", row.reason(), "</span>")
                .raw("<span class=\"muted\">since ");
            since_cell(h, c, d.and_then(|d| d.since()));
            h.raw("</span></div>");
            let message = d.map_or("", |d| d.message());
            if !message.is_empty() {
                h.raw("<div class=\"msg\">").text(message).raw("</div>");
            }
            h.raw("<div class=\"muted\">");
            if !row.revision().is_empty() {
                h.raw("revision <span class=\"mono\">")
                    .text(row.revision())
                    .raw("</span> ");
            }
            if !row.url().is_empty() {
                h.raw("from <span class=\"mono\">")
                    .text(row.url())
                    .raw("</span> ");
            }
            if let Some(src) = d.and_then(|d| d.source()) {
                h.raw("source ");
                ref_link(h, c, src);
            }
            h.raw("</div>");
        }
        Root::Missing {
            kind,
            namespace,
            name,
        } => {
            h.raw("<section class=\"group missing\"><div class=\"head\">")
                .el("<span class=\"badge b-info\">", kind, "</span>")
                .raw("<span class=\"who\">")
                .text(namespace)
                .raw("/")
                .text(name)
                .raw("</span><span class=\"badge b-warn\">not found</span></div>")
                .raw("<div class=\"muted\">Referenced, but there is no such ")
                .text(kind)
                .raw(".</div>");
        }
        Root::Cycle(ids) => {
            h.raw("<section class=\"group\"><div class=\"head\"><span class=\"badge b-warn\">dependency cycle</span><span class=\"who\">");
            for (n, id) in ids.iter().chain(ids.first()).enumerate() {
                if n > 0 {
                    h.raw(" → ");
                }
                let (kind, row) = s.object(*id);
                h.link(
                    &c.object_link(*id),
                    &format!("{} {}/{}", kind.kind, row.exported_namespace(), row.name()),
                );
            }
            h.raw("</span></div><div class=\"muted\">These objects wait on each other: none can become ready.</div>");
        }
    }
    if !g.dependants.is_empty() {
        h.raw("<div class=\"deps\">")
            .num(g.dependants.len() as i64)
            .raw(if g.dependants.len() == 1 {
                " object fails or waits because of it:"
            } else {
                " objects fail or wait because of it:"
            })
            .raw("</div>")
            .raw(OBJECTS_HEAD);
        for id in g.dependants.iter().take(shown) {
            let (kind, row) = s.object(*id);
            object_row(h, c, *id, kind, &row);
        }
        h.raw(TABLE_END);
        if g.dependants.len() > shown {
            h.raw("<div>")
                .link(
                    &c.cause_link(&g.key(s)),
                    &format!("all {} objects of this root cause", g.dependants.len()),
                )
                .raw("</div>");
        }
    }
    h.raw("</section>");
}

/// The objects page: the filter form, one page of objects, the pager.
pub fn objects(c: &Ctx<'_>, f: &Filter) -> String {
    let sel = query::select(c.s, f);
    let mut h = Html::with_capacity(capacity(c.s) + sel.ids.len() * 700);
    head(&mut h, c, "Objects", Some(Nav::Objects));
    h.raw("<main><h1>Objects</h1>");
    filter_form(&mut h, c.s, f);
    objects_table(&mut h, c, f, &sel);
    h.raw("</main>");
    foot(&mut h, c);
    h.finish()
}

fn option(h: &mut Html, value: &str, label: &str, selected: bool) {
    h.raw("<option value=\"").text(value).raw("\"");
    if selected {
        h.raw(" selected");
    }
    h.raw(">").text(label).raw("</option>");
}

fn filter_form(h: &mut Html, s: &Snapshot, f: &Filter) {
    h.raw("<form class=\"filters\" method=\"get\" action=\"/objects\">");
    h.raw("<label>Kind<select name=\"kind\">");
    option(h, "", "any", f.kind.is_empty());
    for k in &s.kinds {
        option(h, &k.kind, &k.kind, f.kind == k.kind);
    }
    h.raw("</select></label><label>Namespace<input name=\"namespace\" size=\"12\" value=\"")
        .text(&f.namespace)
        .raw("\"></label><label>Ready<select name=\"ready\">");
    for (v, label) in [
        ("", "any"),
        ("True", "True"),
        ("False", "False"),
        ("Unknown", "Unknown"),
    ] {
        option(h, v, label, f.ready == v);
    }
    let tri = |h: &mut Html, name: &'static str, label: &'static str, v: Option<bool>| {
        h.raw("<label>")
            .raw(label)
            .raw("<select name=\"")
            .raw(name)
            .raw("\">");
        option(h, "", "any", v.is_none());
        option(h, "true", "yes", v == Some(true));
        option(h, "false", "no", v == Some(false));
        h.raw("</select></label>");
    };
    h.raw("</select></label>");
    tri(h, "failing", "Failing", f.failing);
    tri(h, "suspended", "Suspended", f.suspended);
    h.raw("<label>Search<input type=\"search\" name=\"q\" size=\"18\" value=\"")
        .text(&f.q)
        .raw("\"></label>");
    if !f.cause.is_empty() {
        h.raw("<input type=\"hidden\" name=\"cause\" value=\"")
            .text(&f.cause)
            .raw("\">");
    }
    if f.per_page != query::PER_PAGE {
        h.raw("<input type=\"hidden\" name=\"per_page\" value=\"")
            .num(f.per_page as i64)
            .raw("\">");
    }
    h.raw("<button type=\"submit\">Filter</button><a href=\"/objects\">clear</a></form>");
}

fn objects_table(h: &mut Html, c: &Ctx<'_>, f: &Filter, sel: &Selection) {
    if !f.cause.is_empty() {
        h.raw("<p>Root cause <code>").text(&f.cause).raw("</code>");
        if sel.cause_found == Some(false) {
            h.raw(": not failing any more, or not found.");
        }
        h.raw("</p>");
    }
    let first = (sel.page - 1) * f.per_page + 1;
    h.raw("<p class=\"muted\">");
    if sel.ids.is_empty() {
        h.num(sel.total as i64).raw(" objects match.");
    } else {
        h.raw("Objects ")
            .num(first as i64)
            .raw("–")
            .num((first + sel.ids.len() - 1) as i64)
            .raw(" of ")
            .num(sel.total as i64)
            .raw(" (page ")
            .num(sel.page as i64)
            .raw(" of ")
            .num(sel.pages as i64)
            .raw("). This filter is a URL: copy it to share the view.");
    }
    h.raw("</p>");
    h.raw(OBJECTS_HEAD);
    for id in &sel.ids {
        let (kind, row) = c.s.object(*id);
        object_row(h, c, *id, kind, &row);
    }
    h.raw(TABLE_END);
    pager(h, sel.page, sel.pages, |p| f.link("/objects", p));
}

/// One object's page; `None` when there is no such object.
pub fn object(c: &Ctx<'_>, kind: &str, namespace: &str, name: &str) -> Option<String> {
    let id = find(c.s, kind, namespace, name)?;
    let (k, row) = c.s.object(id);
    let mut h = Html::with_capacity(capacity(c.s) + 16 * 1024);
    let title = format!("{} {}/{}", k.kind, row.exported_namespace(), row.name());
    head(&mut h, c, &title, Some(Nav::Objects));
    h.raw("<main><h1>").text(&title).raw("</h1>");
    object_body(&mut h, c, id);
    h.raw("</main>");
    foot(&mut h, c);
    Some(h.finish())
}

/// The id of an object.
pub fn find(s: &Snapshot, kind: &str, namespace: &str, name: &str) -> Option<u32> {
    let namespace = if namespace == "_" { "" } else { namespace };
    s.index().lookup(
        s,
        flux_reporter_report::metrics::ObjRef {
            kind,
            namespace,
            name,
        },
    )
}

fn object_body(h: &mut Html, c: &Ctx<'_>, id: u32) {
    let s = c.s;
    let (k, row) = s.object(id);
    let d = row.detail();
    let dd = |h: &mut Html, label: &'static str, value: &str, mono: bool| {
        if value.is_empty() {
            return;
        }
        h.raw("<dt>").raw(label).raw(if mono {
            "</dt><dd class=\"mono\">"
        } else {
            "</dt><dd>"
        });
        h.text(value).raw("</dd>");
    };
    h.raw("<div class=\"card\"><dl><dt>State</dt><dd>");
    state_badge(h, &row);
    h.raw(" ").text(row.reason()).raw("</dd>");
    dd(h, "Kind", &k.kind, false);
    dd(h, "API version", &k.api_version, false);
    dd(h, "Namespace", row.exported_namespace(), false);
    dd(h, "Name", row.name(), false);
    dd(h, "Ready", row.ready(), false);
    h.raw("<dt>Since</dt><dd>");
    since_cell(h, c, d.and_then(|d| d.since()));
    h.raw("</dd>");
    dd(
        h,
        "Suspended",
        if d.is_some_and(|d| d.suspended()) {
            "yes"
        } else {
            "no"
        },
        false,
    );
    dd(h, "Revision", row.revision(), true);
    dd(h, "URL", row.url(), true);
    dd(h, "Ref", row.ref_(), true);
    dd(h, "Path", row.path(), true);
    if let Some(src) = d.and_then(|d| d.source()) {
        h.raw("<dt>Source</dt><dd>");
        ref_link(h, c, src);
        h.raw("</dd>");
    }
    if let Some(d) = d
        && d.depends_on().len() > 0
    {
        h.raw("<dt>Depends on</dt><dd>");
        for (n, dep) in d.depends_on().enumerate() {
            if n > 0 {
                h.raw(", ");
            }
            ref_link(h, c, dep);
        }
        h.raw("</dd>");
    }
    if let Some(g) = s.index().failing.group_of(id) {
        let is_root = matches!(&g.root, Root::Object(r) if *r == id)
            || matches!(&g.root, Root::Cycle(ids) if ids.contains(&id));
        if !is_root {
            h.raw("<dt>Root cause</dt><dd>");
            match &g.root {
                Root::Object(r) => {
                    let (rk, rr) = s.object(*r);
                    h.link(
                        &c.object_link(*r),
                        &format!("{} {}/{}", rk.kind, rr.exported_namespace(), rr.name()),
                    );
                }
                Root::Missing {
                    kind,
                    namespace,
                    name,
                } => {
                    h.text(&format!("{kind} {namespace}/{name}"))
                        .raw(" <span class=\"badge b-warn\">not found</span>");
                }
                Root::Cycle(_) => {
                    h.link(&c.cause_link(&g.key(s)), "a dependency cycle");
                }
            }
            h.raw("</dd>");
        } else if !g.dependants.is_empty() {
            h.raw("<dt>Dependants</dt><dd>")
                .link(
                    &c.cause_link(&g.key(s)),
                    &format!("{} objects fail or wait because of it", g.dependants.len()),
                )
                .raw("</dd>");
        }
    }
    h.raw("</dl></div>");
    let conditions: Vec<_> = d.map(|d| d.conditions().collect()).unwrap_or_default();
    if conditions.is_empty() {
        h.raw("<p class=\"muted\">");
        if row.ready() == "True" {
            h.raw("Ready. The conditions of ready objects are not kept (docs/design.md, \"The status page\").");
        } else {
            h.raw("No conditions.");
        }
        h.raw("</p>");
    } else {
        h.raw("<h2>Conditions</h2><div class=\"scroll\"><table><thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Since</th><th>Message</th></tr></thead><tbody>");
        for cond in conditions {
            h.raw("<tr><td>").text(cond.type_).raw("</td><td>");
            ready_badge(h, cond.status);
            h.raw("</td><td>").text(cond.reason).raw("</td><td>");
            since_cell(h, c, cond.since);
            h.raw("</td><td class=\"msg\">")
                .text(cond.message)
                .raw("</td></tr>");
        }
        h.raw(TABLE_END);
    }
}

fn ref_link(h: &mut Html, c: &Ctx<'_>, r: flux_reporter_report::metrics::ObjRef<'_>) {
    let label = format!("{} {}/{}", r.kind, r.namespace, r.name);
    match c.s.index().lookup(c.s, r) {
        Some(id) => {
            h.link(&c.object_link(id), &label);
        }
        None => {
            h.text(&label)
                .raw(" <span class=\"badge b-warn\">not found</span>");
        }
    }
}

/// The changes page: the health transitions this replica emitted.
pub fn changes(c: &Ctx<'_>, changes: &VecDeque<Change>) -> String {
    let mut h = Html::with_capacity(capacity(c.s) + changes.len() * 600);
    head(&mut h, c, "Changes", Some(Nav::Changes));
    changes_body(&mut h, c, changes);
    foot(&mut h, c);
    h.finish()
}

fn changes_body(h: &mut Html, c: &Ctx<'_>, changes: &VecDeque<Change>) {
    open_page(h, c, "changes", "Changes");
    if c.mode == Mode::File {
        h.raw("<p class=\"muted\">A dump has no history: the operator records the health transitions it emits (its events) and shows them here.</p>");
        close_page(h, c);
        return;
    }
    h.raw("<p class=\"muted\">The health transitions this replica emitted as events, newest first (the last ")
        .num(super::model::MAX_CHANGES as i64)
        .raw("; only the leader emits).</p>");
    h.raw("<div class=\"scroll\"><table><thead><tr><th>Time</th><th>Type</th><th>Reason</th><th class=\"hide-s\">Object</th><th>Message</th></tr></thead><tbody>");
    for ch in changes {
        h.raw("<tr><td>");
        since_cell(h, c, Some(ch.at));
        h.raw("</td><td>");
        if ch.warning {
            h.raw("<span class=\"badge b-bad\">Warning</span>");
        } else {
            h.raw("<span class=\"badge b-ok\">Normal</span>");
        }
        h.raw("</td><td>")
            .text(&ch.reason)
            .raw("</td><td class=\"hide-s\">")
            .text(&ch.object)
            .raw("</td><td class=\"msg\">")
            .text(&ch.message)
            .raw("</td></tr>");
    }
    if changes.is_empty() {
        h.raw("<tr><td colspan=\"5\" class=\"muted\">No transitions since this replica started.</td></tr>");
    }
    h.raw(TABLE_END);
    close_page(h, c);
}

/// Every page in one self-contained file (`report -o html`): inline CSS, no
/// script, no request; sections shown one at a time by `:target`.
pub fn file(s: &Snapshot) -> String {
    let c = Ctx {
        s,
        mode: Mode::File,
        now: s.finished_at,
    };
    let shown = s.len().min(FILE_MAX_OBJECTS);
    let mut h = Html::with_capacity(capacity(s) + shown * 900);
    head(&mut h, &c, "Flux status", None);
    h.raw("<main>");
    overview_body(&mut h, &c);
    failing_body(&mut h, &c, 1);
    h.raw("<section class=\"page\" id=\"p-objects\"><h1>Objects</h1><p class=\"muted\">Every object, by kind. Open a name for its conditions, source and dependencies.");
    if shown < s.len() {
        h.raw(" This file lists the first ")
            .num(shown as i64)
            .raw(" of ")
            .num(s.len() as i64)
            .raw(
                " objects; the operator's pages and <code>report -o json</code> have all of them.",
            );
    }
    h.raw("</p>");
    let mut left = shown;
    for (k, kind) in s.kinds.iter().enumerate() {
        if left == 0 {
            break;
        }
        h.raw("<h3 id=\"k-")
            .text(&kind.kind)
            .raw("\">")
            .text(&kind.kind)
            .raw(" (")
            .num(kind.rows.len() as i64)
            .raw(")</h3>")
            .raw(OBJECTS_HEAD);
        for (id, row) in s.ids_of(k).zip(kind.rows.refs()).take(left) {
            left -= 1;
            file_object_row(&mut h, &c, id, kind, &row);
        }
        h.raw(TABLE_END);
    }
    h.raw("</section>");
    changes_body(&mut h, &c, &VecDeque::new());
    h.raw("</main>");
    foot(&mut h, &c);
    h.finish()
}

/// An objects-table row whose name opens the object's details in place.
fn file_object_row(h: &mut Html, c: &Ctx<'_>, id: u32, kind: &KindRows, row: &RowRef<'_>) {
    h.raw("<tr><td>")
        .text(&kind.kind)
        .raw("</td><td>")
        .text(row.exported_namespace())
        .raw("</td><td><details><summary>")
        .text(row.name())
        .raw("</summary><div class=\"obj\" id=\"o")
        .num(id)
        .raw("\">");
    // The id is inside the details: a link to it opens them (HTML's
    // "ancestor details revealing algorithm" on fragment navigation).
    object_body(h, c, id);
    h.raw("</div></details></td><td>");
    state_to_message_cells(h, c, row);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::fixture::{Obj, snapshot};
    use crate::web::model::{Input, Origin};
    use flux_reporter_report::Outcome;
    use flux_reporter_report::compute::Readiness;
    use flux_reporter_report::metrics::ResourceRowsBuilder;
    use flux_reporter_report::observed::FluxObject;
    use serde_json::json;

    const T: i64 = 1_800_000_000;
    const XSS: &str = "<img src=x onerror=alert(1)>";

    /// A snapshot of objects read as a run reads them (so redaction applies),
    /// with hostile text everywhere the cluster decides it.
    fn hostile() -> Snapshot {
        let objects = [
            json!({
                "metadata": {"name": XSS, "namespace": "ns\"'<>&", "uid": "1"},
                "spec": {"url": "https://user:s3cr3t@git.example.com/<x>\"/repo.git?token=abc"},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "GitOperationFailed",
                    "message": format!("{XSS} clone 'https://x-access-token:ghs_SECRET@github.com/o/r.git' failed"),
                    "lastTransitionTime": "2027-01-15T08:00:00Z"}]}
            }),
            json!({
                "metadata": {"name": "app\"><script>alert(2)</script>", "namespace": "ns\"'<>&", "uid": "2"},
                "spec": {"sourceRef": {"kind": "GitRepository", "name": XSS}},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": XSS,
                    "message": XSS, "lastTransitionTime": "2027-01-15T08:01:00Z"}]}
            }),
        ];
        let mut outcome = Outcome::default();
        for (kind, v) in ["GitRepository", "Kustomization"].iter().zip(objects) {
            let obj: FluxObject = serde_json::from_value(v).unwrap();
            let mut b = ResourceRowsBuilder::new(kind, 0).with_details();
            b.push_object_as(&obj, &[], false);
            outcome.resource_rows.insert(kind.to_string(), b.finish());
        }
        let mut spec = flux_reporter_api::FluxReportSpec::default();
        spec.components
            .push(flux_reporter_api::FluxComponentStatus {
                name: XSS.into(),
                ready: false,
                status: XSS.into(),
                image: XSS.into(),
            });
        Snapshot::next(
            None,
            Input {
                origin: Origin::OneShot { source: XSS.into() },
                namespace: "flux-system",
                outcome: &outcome,
                spec: &spec,
                readiness: Readiness {
                    ready: false,
                    reason: "ReportIncomplete",
                    message: XSS.into(),
                },
                finished_at: T,
                instance: None,
            },
        )
    }

    fn assert_inert(page: &str) {
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            !page.contains("s3cr3t") && !page.contains("ghs_SECRET"),
            "{page}"
        );
        assert!(!page.contains("token=abc"), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
    }

    #[test]
    fn everything_from_the_cluster_is_shown_as_text_and_credentials_are_masked() {
        let s = hostile();
        for mode in [Mode::Server, Mode::File] {
            let c = Ctx {
                s: &s,
                mode,
                now: T,
            };
            assert_inert(&overview(&c));
            let failing = failing(&c, 1);
            assert_inert(&failing);
            assert!(failing.contains("https://***@git.example.com"), "{failing}");
            let all = objects(&c, &Filter::from_params(&Default::default()));
            assert_inert(&all);
            assert!(
                all.contains("&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"),
                "{all}"
            );
            let one = object(
                &c,
                "Kustomization",
                "ns\"'<>&",
                "app\"><script>alert(2)</script>",
            )
            .expect("the object page");
            assert_inert(&one);
            // The link to its source is percent-encoded, and the source is found.
            assert!(
                one.contains("/objects/GitRepository/ns%22%27%3C%3E%26/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E")
                    || mode == Mode::File,
                "{one}"
            );
        }
        let file = file(&s);
        assert_inert(&file);
        assert!(file.contains("Content-Security-Policy"));
        assert!(!file.contains("<script"), "a file has no script");
    }

    #[test]
    fn filters_in_a_form_are_escaped_back_into_the_form() {
        let s = hostile();
        let c = Ctx {
            s: &s,
            mode: Mode::Server,
            now: T,
        };
        let p = query::Params {
            q: Some("\"><img src=x onerror=alert(1)>".to_string()),
            ..Default::default()
        };
        let page = objects(&c, &Filter::from_params(&p));
        assert!(
            page.contains("value=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\""),
            "{page}"
        );
        assert!(!page.contains("<img"));
    }

    #[test]
    fn the_failing_page_shows_root_causes_with_their_dependants() {
        let s = snapshot(
            &[
                Obj::new("GitRepository", "apps", "fleet")
                    .failing("GitOperationFailed", "authentication required")
                    .since(T - 3600),
                Obj::new("Kustomization", "apps", "web")
                    .source("GitRepository", "apps", "fleet")
                    .failing("ArtifactFailed", "no artifact")
                    .since(T - 60),
                Obj::new("Kustomization", "apps", "jobs")
                    .depends_on("Kustomization", "apps", "web")
                    .waiting()
                    .since(T - 30),
            ],
            T,
        );
        let c = Ctx {
            s: &s,
            mode: Mode::Server,
            now: T,
        };
        let page = failing(&c, 1);
        assert!(
            page.contains("Failing (2)"),
            "nav counts the FluxReport's failing"
        );
        assert!(
            page.contains(">2</") || page.contains("2 failing objects"),
            "{page}"
        );
        assert!(
            page.contains("2 objects fail or wait because of it"),
            "{page}"
        );
        assert!(
            page.contains("href=\"/objects/GitRepository/apps/fleet\""),
            "{page}"
        );
        assert!(page.contains("authentication required"));
        assert!(page.contains("1h 0m ago"), "{page}");
        let web = page.find("/objects/Kustomization/apps/web").unwrap();
        let jobs = page.find("/objects/Kustomization/apps/jobs").unwrap();
        assert!(jobs < web, "newest first");
        let one = object(&c, "Kustomization", "apps", "jobs").unwrap();
        assert!(one.contains("Root cause"), "{one}");
        assert!(one.contains("GitRepository apps/fleet"), "{one}");
    }

    #[test]
    fn pages_stay_under_a_megabyte_at_100000_objects() {
        let s = snapshot(&crate::web::fixture::many(100_000, T), T);
        let c = Ctx {
            s: &s,
            mode: Mode::Server,
            now: T,
        };
        let p = query::Params {
            per_page: Some("500".into()),
            ..Default::default()
        };
        for page in [
            overview(&c),
            failing(&c, 1),
            objects(&c, &Filter::from_params(&p)),
            changes(&c, &VecDeque::new()),
        ] {
            assert!(page.len() < 1_000_000, "{} bytes", page.len());
        }
    }

    #[test]
    fn ages_and_times_read_well() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(61), "1m 1s");
        assert_eq!(age(3 * 3600 + 120), "3h 2m");
        assert_eq!(age(2 * 86_400 + 3600), "2d 1h");
        assert_eq!(time(T), "2027-01-15 08:00:00 UTC");
    }
}
