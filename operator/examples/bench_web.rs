//! Benchmark of the status page at N synthetic objects (default 1,000,
//! 10,000 and 100,000; `web::fixture::many`: six kinds in 50 namespaces,
//! 5% failing, some waiting on them, some suspended): for each page and JSON
//! answer the median render time and its size, what a render allocates, the
//! one-off index build (lookups and root causes, on the first page view after
//! a run), and the heap the details add to the metric rows. It prints
//! figures; it asserts no timings.
//!
//! cargo run --release -p flux-reporter --example bench_web [N...]

// The counting allocator below must implement `GlobalAlloc`, an unsafe trait;
// it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flux_reporter::web::fixture::{self, Obj};
use flux_reporter::web::index::Index;
use flux_reporter::web::model::Change;
use flux_reporter::web::pages::{self, Ctx, Mode};
use flux_reporter::web::query::{Filter, Params};
use flux_reporter::web::{Snapshot, json};
use flux_reporter_report::metrics::ResourceRowsBuilder;

/// Counts bytes allocated, to show what a render allocates.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ITERATIONS: usize = 21;

/// One page's render.
type Render<'a> = Box<dyn Fn() -> String + 'a>;
const T: i64 = 1_800_000_000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn kb(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2} MB", n as f64 / 1e6)
    } else {
        format!("{:.1} kB", n as f64 / 1e3)
    }
}

/// Median time, size and bytes allocated of `f`.
fn measure(f: impl Fn() -> String) -> (Duration, usize, usize) {
    let mut times = Vec::with_capacity(ITERATIONS);
    let mut size = 0;
    let mut allocated = 0;
    for _ in 0..ITERATIONS {
        let before = ALLOCATED.load(Ordering::Relaxed);
        let start = Instant::now();
        let out = f();
        times.push(start.elapsed());
        allocated = ALLOCATED.load(Ordering::Relaxed) - before;
        size = out.len();
        std::hint::black_box(out);
    }
    (median(times), size, allocated)
}

fn params(pairs: &[(&str, &str)]) -> Filter {
    let mut p = Params::default();
    for (k, v) in pairs {
        let v = Some(v.to_string());
        match *k {
            "kind" => p.kind = v,
            "ready" => p.ready = v,
            "q" => p.q = v,
            "per_page" => p.per_page = v,
            "page" => p.page = v,
            "failing" => p.failing = v,
            _ => unreachable!(),
        }
    }
    Filter::from_params(&p)
}

fn bench(n: usize) {
    let objects: Vec<Obj> = fixture::many(n, T);
    let s: Snapshot = fixture::snapshot(&objects, T);
    let with_details: usize = s.kinds.iter().map(|k| k.rows.heap_bytes()).sum();
    let mut plain = std::collections::BTreeMap::new();
    for o in &objects {
        plain
            .entry(o.kind.clone())
            .or_insert_with(|| ResourceRowsBuilder::new(&o.kind, 0))
            .push_row(&o.row());
    }
    let without: usize = plain.into_values().map(|b| b.finish().heap_bytes()).sum();
    println!("\n## {n} objects");
    println!(
        "rows {} without details, {} with ({} bytes per object more)",
        kb(without),
        kb(with_details),
        (with_details - without) / n.max(1)
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        std::hint::black_box(Index::build(&s));
        times.push(start.elapsed());
    }
    let f = &s.index().failing;
    println!(
        "index (first page view after a run): {}; {} failing, {} waiting, {} root causes",
        ms(median(times)),
        f.failing,
        f.waiting,
        f.groups.len()
    );
    let changes: VecDeque<Change> = (0..200)
        .map(|i| Change {
            at: T - i * 60,
            warning: i % 2 == 0,
            reason: "ComponentsNotReady".into(),
            message: format!(
                "component helm-controller is not ready: InProgress Available: 0/1 ({i})"
            ),
            object: "FluxInstance/flux".into(),
        })
        .collect();
    let c = Ctx {
        s: &s,
        mode: Mode::Server,
        now: T,
    };
    let (kind, row) = s.object((n / 2) as u32);
    let (kind, ns, name) = (
        kind.kind.clone(),
        row.exported_namespace().to_string(),
        row.name().to_string(),
    );
    let cases: Vec<(&str, Render<'_>)> = vec![
        ("overview", Box::new(|| pages::overview(&c))),
        ("failing, page 1", Box::new(|| pages::failing(&c, 1))),
        (
            "objects, page 1 (100)",
            Box::new(|| pages::objects(&c, &params(&[]))),
        ),
        (
            "objects, last page (100)",
            Box::new(|| {
                let pages = n.div_ceil(100).to_string();
                pages::objects(&c, &params(&[("page", &pages)]))
            }),
        ),
        (
            "objects, 500 per page",
            Box::new(|| pages::objects(&c, &params(&[("per_page", "500")]))),
        ),
        (
            "objects, kind=Kustomization&ready=False",
            Box::new(|| {
                pages::objects(
                    &c,
                    &params(&[("kind", "Kustomization"), ("ready", "False")]),
                )
            }),
        ),
        (
            "objects, search matching nothing",
            Box::new(|| pages::objects(&c, &params(&[("q", "no-such-text")]))),
        ),
        (
            "one object",
            Box::new(|| pages::object(&c, &kind, &ns, &name).unwrap_or_default()),
        ),
        ("changes (200)", Box::new(|| pages::changes(&c, &changes))),
        ("/api/v1/report", Box::new(|| json::report(&s))),
        (
            "/api/v1/objects (100)",
            Box::new(|| json::objects(&s, &params(&[]))),
        ),
        ("/api/v1/failing, page 1", Box::new(|| json::failing(&s, 1))),
    ];
    println!("| page | median | size | allocated per render |");
    println!("|---|---|---|---|");
    for (name, f) in &cases {
        let (t, size, allocated) = measure(f);
        println!("| {name} | {} | {} | {} |", ms(t), kb(size), kb(allocated));
    }
    let (t, size, _) = measure(|| pages::file(&s));
    println!(
        "| `report -o html` file ({} objects listed) | {} | {} | |",
        n.min(pages::FILE_MAX_OBJECTS),
        ms(t),
        kb(size)
    );
}

/// The worst case of the failing page: every object failing (each
/// Kustomization under its failing GitRepository).
fn bench_all_failing(n: usize) {
    let objects: Vec<Obj> = fixture::many(n, T)
        .into_iter()
        .map(|o| {
            if o.ready == "True" && !o.suspended {
                o.failing("ReconciliationFailed", "everything is failing")
            } else {
                o
            }
        })
        .collect();
    let s: Snapshot = fixture::snapshot(&objects, T);
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        std::hint::black_box(Index::build(&s));
        times.push(start.elapsed());
    }
    let f = &s.index().failing;
    println!(
        "\n## {n} objects, all failing\nindex: {}; {} failing, {} waiting, {} root causes",
        ms(median(times)),
        f.failing,
        f.waiting,
        f.groups.len()
    );
    let c = Ctx {
        s: &s,
        mode: Mode::Server,
        now: T,
    };
    println!("| page | median | size | allocated per render |");
    println!("|---|---|---|---|");
    for (name, f) in [
        (
            "failing, page 1",
            Box::new(|| pages::failing(&c, 1)) as Render<'_>,
        ),
        (
            "failing, last page",
            Box::new(|| pages::failing(&c, usize::MAX)),
        ),
        (
            "objects, failing=true",
            Box::new(|| pages::objects(&c, &params(&[("failing", "true")]))),
        ),
        ("/api/v1/failing, page 1", Box::new(|| json::failing(&s, 1))),
    ] {
        let (t, size, allocated) = measure(f);
        println!("| {name} | {} | {} | {} |", ms(t), kb(size), kb(allocated));
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!(
        "flux-reporter status page benchmark: median of {ITERATIONS} renders, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for &n in &sizes {
        bench(n);
    }
    if let Some(&n) = sizes.iter().max() {
        bench_all_failing(n);
    }
}
