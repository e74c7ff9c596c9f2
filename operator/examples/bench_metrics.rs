//! Benchmark of `/metrics` for N Flux objects (default 10,000): the median
//! `publish` time, the median scrape (prometheus-client encoding the whole
//! registry) in each format, the median whole `GET /metrics` over loopback
//! (encode + serve + read), the body size, and the heap the published set
//! holds. It prints figures; it asserts no timings.
//!
//! cargo run --release -p flux-reporter --example bench_metrics [N [FILE]]
//!
//! With FILE, the OpenMetrics body (legacy series on) is also written there,
//! and the text 0.0.4 body to FILE.004, to check them with other parsers.

// The counting allocator below must implement `GlobalAlloc`, an unsafe trait;
// it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use flux_reporter_api::FluxReportSpec;
use flux_reporter_report::metrics::{InstanceRow, ResourceRow};
use flux_reporter_report::{Failure, Outcome, Section};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use flux_reporter::metrics::{Format, Metrics, MetricsConfig};
use flux_reporter::server;

/// Counts live heap bytes, to weigh what the metric set keeps.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ITERATIONS: usize = 21;
const KINDS: [(&str, usize); 6] = [
    ("Kustomization", 30),
    ("HelmRelease", 30),
    ("GitRepository", 15),
    ("OCIRepository", 10),
    ("HelmRepository", 5),
    ("HelmChart", 10),
];
const PROPAGATE: [&str; 2] = ["team", "app.kubernetes.io/part-of"];
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    // The rows a run hands to `publish`, compact as the run builds them; the
    // snapshot shares them, so this is what the published set holds.
    let before = LIVE.load(Ordering::Relaxed);
    let outcome = outcome(n);
    let rows_held = LIVE.load(Ordering::Relaxed) - before;
    let spec = FluxReportSpec::default();
    println!(
        "flux-reporter metrics benchmark: {n} objects, {} propagated labels, median of {ITERATIONS} runs",
        PROPAGATE.len()
    );

    for legacy in [false, true] {
        let before = LIVE.load(Ordering::Relaxed);
        let m = Arc::new(Metrics::new(MetricsConfig {
            legacy,
            propagate_labels: PROPAGATE.map(String::from).to_vec(),
            ..MetricsConfig::default()
        }));
        m.publish(&outcome, &spec);
        let held = LIVE.load(Ordering::Relaxed) - before;

        let publish = median(|| m.publish(&outcome, &spec));
        let mut failed = outcome.clone();
        failed.resource_rows.remove("Kustomization");
        failed.failures.push(Failure {
            section: Section::Reconcilers,
            kind: Some("Kustomization".into()),
            error: "forbidden".into(),
        });
        let kept = median(|| m.publish(&failed, &spec));
        m.publish(&outcome, &spec);

        // Into a buffer that is reused (grown by the first run, which the median leaves out), as
        // `/metrics` reuses its chunk buffers: the encoding alone, not the growth of a string.
        let buf = std::cell::RefCell::new(String::new());
        let encode = |format| {
            let mut out = buf.borrow_mut();
            out.clear();
            m.encode_to(format, &mut *out).expect("encode");
            std::hint::black_box(out.len());
        };
        let encode_om = median(|| encode(Format::OpenMetrics));
        let encode_text = median(|| encode(Format::Text));
        let cpu_om = median_cpu(|| encode(Format::OpenMetrics));
        let cpu_text = median_cpu(|| encode(Format::Text));
        let body = m.encode(Format::OpenMetrics).expect("encode");
        if let (true, Some(file)) = (legacy, std::env::args().nth(2)) {
            std::fs::write(&file, &body).expect("write the body");
            let text = m.encode(Format::Text).expect("encode");
            std::fs::write(format!("{file}.004"), text).expect("write the 0.0.4 body");
        }
        let (get_om, om_bytes) = scrape(m.clone(), PROMETHEUS_ACCEPT);
        let (get_text, text_bytes) = scrape(m.clone(), "*/*");
        assert_eq!(om_bytes, body.len());
        let series = body.lines().filter(|l| !l.starts_with('#')).count();
        println!(
            "legacy={legacy:<5} {series} series, rows held {:.2} MiB ({} B/object), publish adds {} B\n  \
             publish {}  publish (one kind kept) {}\n  \
             scrape (encode) OpenMetrics {}  text 0.0.4 {}\n  \
             scrape (encode, CPU time of the encoding thread) OpenMetrics {}  text 0.0.4 {}\n  \
             GET /metrics OpenMetrics {} ({:.2} MB)  text 0.0.4 {} ({:.2} MB)",
            rows_held as f64 / (1024.0 * 1024.0),
            rows_held / n.max(1) as isize,
            held,
            ms(publish),
            ms(kept),
            ms(encode_om),
            ms(encode_text),
            ms(cpu_om),
            ms(cpu_text),
            ms(get_om),
            om_bytes as f64 / 1e6,
            ms(get_text),
            text_bytes as f64 / 1e6,
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..ITERATIONS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[ITERATIONS / 2]
}

/// Median CPU time of `f` on this thread (from /proc/thread-self/schedstat),
/// steadier than the wall clock on a shared machine.
fn median_cpu(mut f: impl FnMut()) -> Duration {
    let cpu = || -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let mut times: Vec<u64> = (0..ITERATIONS)
        .map(|_| {
            let start = cpu();
            f();
            cpu() - start
        })
        .collect();
    times.sort();
    Duration::from_nanos(times[ITERATIONS / 2])
}

/// Median time of a whole `GET /metrics` on a fresh connection, and the body size.
fn scrape(m: Arc<Metrics>, accept: &'static str) -> (Duration, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = server::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_metrics(listener, m, async {
            let _ = rx.await;
        }));
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..ITERATIONS {
            let start = Instant::now();
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            // HTTP/1.0: the body comes unchunked and ends with the connection, so its size is
            // the bytes after the head.
            let request =
                format!("GET /metrics HTTP/1.0\r\nHost: bench\r\nAccept: {accept}\r\n\r\n");
            s.write_all(request.as_bytes()).await.expect("write");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read");
            times.push(start.elapsed());
            let body = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
            assert!(buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200"));
            size = buf.len() - body;
        }
        let _ = tx.send(());
        task.await.expect("server task").expect("server");
        times.sort();
        (times[ITERATIONS / 2], size)
    })
}

/// N objects over six kinds, with label values of realistic lengths.
fn outcome(n: usize) -> Outcome {
    let total: usize = KINDS.iter().map(|k| k.1).sum();
    let mut o = Outcome {
        instance_rows: Some(vec![InstanceRow {
            uid: "8f6b2c1e-1b2d-4f4e-9c3a-0a1b2c3d4e5f".into(),
            kind: "FluxInstance".into(),
            name: "flux".into(),
            exported_namespace: "flux-system".into(),
            ready: "True".into(),
            reason: "ReconciliationSucceeded".into(),
            suspended: "False".into(),
            registry: "ghcr.io/fluxcd".into(),
            revision:
                "v2.7.3@sha256:4c0b6c1a4bd4a5a6f3b1d3c2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2"
                    .into(),
        }]),
        duration: Duration::from_secs(2),
        ..Default::default()
    };
    let mut i = 0;
    for (k, (kind, share)) in KINDS.iter().enumerate() {
        let count = if k + 1 == KINDS.len() {
            n - i
        } else {
            n * share / total
        };
        let rows = (i..i + count)
            .map(|i| {
                let failing = i % 20 == 0;
                let source = matches!(*kind, "GitRepository" | "OCIRepository" | "HelmRepository");
                ResourceRow {
                    uid: format!("{:08x}-1b2d-4f4e-9c3a-{:012x}", i * 7919, i * 104_729),
                    kind: kind.to_string(),
                    name: format!("app-{i:05}"),
                    exported_namespace: format!("team-{:02}", i % 50),
                    ready: if failing { "False" } else { "True" }.into(),
                    reason: if failing {
                        "HealthCheckFailed"
                    } else {
                        "ReconciliationSucceeded"
                    }
                    .into(),
                    suspended: if i % 97 == 0 { "True" } else { "False" }.into(),
                    revision: format!(
                        "refs/heads/main@sha1:{:040x}",
                        i as u128 * 0x9e37_79b9_7f4a_7c15
                    ),
                    url: if source {
                        format!("https://github.com/example-org/app-{i:05}.git")
                    } else {
                        String::new()
                    },
                    ref_: if source { "main".into() } else { String::new() },
                    source_name: if source {
                        String::new()
                    } else {
                        format!("app-{i:05}")
                    },
                    path: if *kind == "Kustomization" {
                        format!("./clusters/production/apps/app-{i:05}")
                    } else {
                        String::new()
                    },
                    extra: vec![format!("team-{:02}", i % 50), "platform".into()],
                    condition_status: if failing { "False" } else { "True" }.into(),
                }
            })
            .collect();
        o.resource_rows.insert(kind.to_string(), rows);
        o.artifact_bytes
            .insert(kind.to_string(), (count * 40_000) as i64);
        i += count;
    }
    o.objects = n + 1;
    o
}
