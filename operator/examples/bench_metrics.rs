//! Benchmark of the metrics text for N Flux objects (default 10,000): the
//! median `publish` time, the median time of a whole `GET /metrics` over
//! loopback (render + serve + read), and the text size; prometheus-client's
//! registry encoding the same `flux_resource_info` rows is timed for
//! comparison.
//!
//! cargo run --release -p flux-reporter --example bench_metrics [N [FILE]]
//!
//! With FILE, the text (legacy series on) is also written there, to check it
//! with another parser.

// The operator's modules are compiled in here, and only part of them is used.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use flux_reporter_api::FluxReportSpec;
use flux_reporter_report::metrics::{InstanceRow, ResourceRow};
use flux_reporter_report::{Failure, Outcome, Section};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../src/build_info.rs"]
mod build_info;
#[path = "../src/metrics.rs"]
mod metrics;
#[path = "../src/server.rs"]
mod server;
#[path = "../src/watchdog.rs"]
mod watchdog;

use metrics::{Metrics, MetricsConfig};

const ITERATIONS: usize = 20;
const KINDS: [(&str, usize); 6] = [
    ("Kustomization", 30),
    ("HelmRelease", 30),
    ("GitRepository", 15),
    ("OCIRepository", 10),
    ("HelmRepository", 5),
    ("HelmChart", 10),
];
const PROPAGATE: [&str; 2] = ["team", "app.kubernetes.io/part-of"];

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let outcome = outcome(n);
    let spec = FluxReportSpec::default();
    println!(
        "flux-reporter metrics benchmark: {n} objects, {} propagated labels, {ITERATIONS} iterations, median",
        PROPAGATE.len()
    );

    for legacy in [false, true] {
        let m = Arc::new(Metrics::new(MetricsConfig {
            legacy,
            propagate_labels: PROPAGATE.map(String::from).to_vec(),
        }));
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
        let render = median(|| drop(std::hint::black_box(m.render())));
        if let (true, Some(file)) = (legacy, std::env::args().nth(2)) {
            std::fs::write(&file, m.render().as_bytes()).expect("write the text");
        }
        let (scrape, bytes) = scrape(m.clone());
        let text = m.render();
        assert_eq!(bytes, text.len());
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!(
            "legacy={legacy:<5}  publish {}  publish (one kind kept) {}  render {}  GET /metrics {}  text {:.2} MB, {series} series",
            ms(publish),
            ms(kept),
            ns(render),
            ms(scrape),
            text.len() as f64 / 1e6,
        );
    }

    let pc = median(|| drop(std::hint::black_box(prometheus_client_text(&outcome))));
    println!(
        "for comparison, prometheus-client Registry + Family build and encode of flux_resource_info alone: {}",
        ms(pc)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn ns(d: Duration) -> String {
    format!("{} ns", d.as_nanos())
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

/// Median time of a whole `GET /metrics` on a fresh connection, and the body size.
fn scrape(m: Arc<Metrics>) -> (Duration, usize) {
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
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                .await
                .expect("write");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read");
            times.push(start.elapsed());
            let body = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
            assert!(buf.starts_with(b"HTTP/1.1 200"));
            size = buf.len() - body;
        }
        let _ = tx.send(());
        task.await.expect("server task").expect("server");
        times.sort();
        (times[ITERATIONS / 2], size)
    })
}

/// What `flux_resource_info` costs through prometheus-client's registry.
fn prometheus_client_text(outcome: &Outcome) -> String {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let mut reg = prometheus_client::registry::Registry::default();
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    reg.register(
        "flux_resource_info",
        "The current status of a Flux resource reconciliation",
        family.clone(),
    );
    for r in outcome.resource_rows.values().flatten() {
        let mut labels: Vec<(String, String)> = [
            ("uid", &r.uid),
            ("kind", &r.kind),
            ("name", &r.name),
            ("exported_namespace", &r.exported_namespace),
            ("ready", &r.ready),
            ("reason", &r.reason),
            ("suspended", &r.suspended),
            ("revision", &r.revision),
            ("url", &r.url),
            ("ref", &r.ref_),
            ("source_name", &r.source_name),
            ("path", &r.path),
        ]
        .map(|(k, v)| (k.to_string(), v.clone()))
        .to_vec();
        labels.push(("label_team".into(), r.extra[0].clone()));
        labels.push(("label_app_kubernetes_io_part_of".into(), r.extra[1].clone()));
        family.get_or_create(&labels).set(1);
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
    out
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
