//! The soak: several hundred report runs of one `flux-reporter run` process while a seeded
//! pseudo-random walk creates, changes (Ready True/False/Unknown, suspended, revisions) and deletes
//! Flux objects between runs. After every run:
//!
//! - the FluxReport's `reconcilers` (running, failing, suspended, total size per kind), its
//!   components and its sync equal what this test computes from the objects it wrote (its own
//!   model below, not the report engine);
//! - the `flux_resource_info` series of the namespace are exactly one per object with the labels
//!   of the object as it is now: no series left for a deleted object, none with old labels;
//! - the operator's RSS (`VmRSS`) is sampled;
//! - the Kubernetes events about the FluxInstance and the notification POSTs are exactly one per
//!   transition the test induced (helm-controller goes unready for 10 runs every 50 runs), and
//!   none in between.
//!
//! Most runs are requested with `reconcile.fluxcd.io/requestedAt` and awaited through
//! `status.lastHandledReconcileAt`; every 20th run is left to the 1 s reporting interval. It prints
//! one line, `soak runs=… rss_first_kib=… rss_last_kib=… rss_max_kib=… wall_s=…` (first: after
//! a warm-up of 20 runs), and asserts only a generous bound on RSS growth; timings are printed,
//! never asserted.
//!
//! `SOAK_RUNS` (default 200) sets the number of runs, `SOAK_SEED` the seed of the walk (printed).
//! A requested run costs about 0.3 s against the real API server (the Controller's 200 ms
//! debounce, the run, the checks): 200 runs end well within the default profile's 3-minute
//! slow-timeout on 2 busy cores, where 300 came close to it. The summary line's `phases_s`
//! says where the time went.
//! Build the binary first: `cargo build -p flux-reporter`; run with
//! `cargo nextest run -p flux-reporter-e2e --test soak --no-capture`, plus `--profile soak` for
//! long runs (the default profile ends the soak after 9 minutes: `.config/nextest.toml`). Needs
//! the real API server of `E2E_KUBECONFIG` (`hack/envtest.sh start` gives one).

// The shared harness: each test binary uses only part of it.
#[allow(dead_code, unused_imports)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::env::{FIELD_MANAGER, REQUESTED_AT, unique};
use common::poll::eventually_every;
use common::prom::Sample;
use common::scenario::*;
use common::{Env, Operator, OperatorOpts, Stats, ensure};
use serde_json::{Value, json};

const DEFAULT_RUNS: usize = 200;
const DEFAULT_SEED: u64 = 0x5eed_0ff1;
/// RSS is compared with its value after this many runs (allocator pools, caches and the metric
/// set have grown to their working size by then).
const WARM_UP: usize = 20;
/// Every this many runs, one run is left to the interval instead of `requestedAt`.
const INTERVAL_EVERY: usize = 20;
/// helm-controller goes unready at run `DIP_EVERY * k + DIP_START` and ready again
/// `DIP_LENGTH` runs later: two FluxInstance transitions per dip.
const DIP_EVERY: usize = 50;
const DIP_START: usize = 25;
const DIP_LENGTH: usize = 10;
const DIP_COMPONENT: &str = "helm-controller";
/// The walk keeps between these many objects of its own (on top of the 12 fixture objects).
const MIN_OBJECTS: usize = 8;
const MAX_OBJECTS: usize = 40;
/// How often the per-run waits poll.
const POLL: Duration = Duration::from_millis(20);
/// The fixture objects (`fixtures/flux-objects.yaml`).
const FIXTURE_OBJECTS: usize = 12;

type Labels = BTreeMap<String, String>;

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators"): a
/// reproducible walk from a seed is all this needs, so no crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // The state must not be zero.
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    GitRepository,
    OciRepository,
    HelmRepository,
    Kustomization,
    HelmRelease,
}

const KINDS: [Kind; 5] = [
    Kind::GitRepository,
    Kind::OciRepository,
    Kind::HelmRepository,
    Kind::Kustomization,
    Kind::HelmRelease,
];

impl Kind {
    fn api_version(self) -> &'static str {
        match self {
            Kind::GitRepository | Kind::OciRepository | Kind::HelmRepository => {
                "source.toolkit.fluxcd.io/v1"
            }
            Kind::Kustomization => "kustomize.toolkit.fluxcd.io/v1",
            Kind::HelmRelease => "helm.toolkit.fluxcd.io/v2",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::GitRepository => "GitRepository",
            Kind::OciRepository => "OCIRepository",
            Kind::HelmRepository => "HelmRepository",
            Kind::Kustomization => "Kustomization",
            Kind::HelmRelease => "HelmRelease",
        }
    }

    /// Sources carry an artifact (revision and size); the others a `lastAttemptedRevision`.
    fn is_source(self) -> bool {
        matches!(
            self,
            Kind::GitRepository | Kind::OciRepository | Kind::HelmRepository
        )
    }

    fn success_reason(self) -> &'static str {
        match self {
            Kind::Kustomization => "ReconciliationSucceeded",
            Kind::HelmRelease => "UpgradeSucceeded",
            _ => "Succeeded",
        }
    }

    fn failure_reason(self) -> &'static str {
        match self {
            Kind::GitRepository => "GitOperationFailed",
            Kind::OciRepository => "OCIArtifactPullFailed",
            Kind::HelmRepository => "IndexationFailed",
            Kind::Kustomization => "ReconciliationFailed",
            Kind::HelmRelease => "UpgradeFailed",
        }
    }
}

/// The Ready condition of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Ready,
    Failing,
    /// Ready=False for a reason that is not a failure.
    DependencyNotReady,
    /// Ready=Unknown.
    Progressing,
    /// No conditions at all.
    NoCondition,
}

const HEALTHS: [Health; 5] = [
    Health::Ready,
    Health::Failing,
    Health::DependencyNotReady,
    Health::Progressing,
    Health::NoCondition,
];

/// One object of the walk, as last written.
#[derive(Clone, Debug)]
struct Obj {
    kind: Kind,
    name: String,
    uid: String,
    suspended: bool,
    health: Health,
    revision: u64,
    /// Artifact size (sources only).
    size: i64,
}

impl Obj {
    fn random(rng: &mut Rng, name: String) -> Obj {
        let kind = rng.pick(&KINDS);
        Obj {
            kind,
            name,
            uid: String::new(),
            suspended: rng.below(5) == 0,
            health: rng.pick(&HEALTHS),
            revision: rng.next() % 1000,
            size: if kind.is_source() {
                (rng.next() % 3_000_000) as i64
            } else {
                0
            },
        }
    }

    /// The `(status, reason)` of the Ready condition, if any.
    fn ready(&self) -> Option<(&'static str, &'static str)> {
        match self.health {
            Health::Ready => Some(("True", self.kind.success_reason())),
            Health::Failing => Some(("False", self.kind.failure_reason())),
            Health::DependencyNotReady => Some(("False", "DependencyNotReady")),
            Health::Progressing => Some(("Unknown", "Progressing")),
            Health::NoCondition => None,
        }
    }

    /// `status.artifact.revision` of a source, `status.lastAttemptedRevision` of the others.
    fn revision_text(&self) -> String {
        let r = self.revision;
        match self.kind {
            Kind::GitRepository => format!("{}@sha1:{r:040x}", self.tag()),
            Kind::OciRepository => format!("{}@sha256:{r:064x}", self.tag()),
            Kind::HelmRepository => format!("sha256:{r:064x}"),
            Kind::Kustomization => format!("refs/heads/main@sha1:{r:040x}"),
            Kind::HelmRelease => format!("1.{r}.0"),
        }
    }

    /// `spec.ref.tag` of a GitRepository or OCIRepository: it moves with the revision.
    fn tag(&self) -> String {
        format!("v1.{}.0", self.revision)
    }

    fn url(&self) -> String {
        match self.kind {
            Kind::GitRepository => format!("https://github.com/example/{}.git", self.name),
            Kind::OciRepository => format!("oci://ghcr.io/example/{}", self.name),
            Kind::HelmRepository => format!("https://charts.example.com/{}", self.name),
            Kind::Kustomization | Kind::HelmRelease => String::new(),
        }
    }

    fn spec(&self, ns: &str) -> Value {
        match self.kind {
            Kind::GitRepository | Kind::OciRepository => json!({
                "interval": "5m0s", "url": self.url(), "ref": {"tag": self.tag()},
                "suspend": self.suspended,
            }),
            Kind::HelmRepository => json!({
                "interval": "1h0m0s", "url": self.url(), "suspend": self.suspended,
            }),
            Kind::Kustomization => json!({
                "interval": "10m0s", "path": format!("./apps/{}", self.name), "prune": true,
                "sourceRef": {"kind": "GitRepository", "name": ns},
                "suspend": self.suspended,
            }),
            Kind::HelmRelease => json!({
                "interval": "10m0s",
                "chart": {"spec": {
                    "chart": self.name, "version": "1.x",
                    "sourceRef": {"kind": "HelmRepository", "name": "bitnami"},
                }},
                "suspend": self.suspended,
            }),
        }
    }

    fn status(&self, ns: &str) -> Value {
        let conditions: Vec<Value> = self
            .ready()
            .map(|(status, reason)| {
                json!({
                    "type": "Ready", "status": status, "reason": reason,
                    "message": format!("soak: {reason}"),
                    "lastTransitionTime": "2026-11-21T14:00:00Z", "observedGeneration": 1,
                })
            })
            .into_iter()
            .collect();
        let mut status = json!({"observedGeneration": 1, "conditions": conditions});
        if self.kind.is_source() {
            let plural = self.kind.name().to_lowercase();
            let path = format!("{plural}/{ns}/{}/{:08x}.tar.gz", self.name, self.revision);
            status["artifact"] = json!({
                "path": path,
                "url": format!("http://source-controller.{ns}.svc.cluster.local./{path}"),
                "revision": self.revision_text(),
                "digest": format!("sha256:{:064x}", self.revision),
                "lastUpdateTime": "2026-11-21T14:00:00Z",
                "size": self.size,
            });
        } else {
            status["lastAttemptedRevision"] = json!(self.revision_text());
        }
        status
    }

    fn manifest(&self, ns: &str) -> Value {
        json!({
            "apiVersion": self.kind.api_version(),
            "kind": self.kind.name(),
            "metadata": {"name": self.name},
            "spec": self.spec(ns),
            "status": self.status(ns),
        })
    }

    /// What the object adds to its kind's reconciler stats: suspended objects are not running
    /// and never failing; Ready=False is a failure unless the reason is `DependencyNotReady`.
    fn stats(&self) -> Stats {
        let failing = !self.suspended && self.health == Health::Failing;
        Stats::new(
            i64::from(!self.suspended),
            i64::from(failing),
            i64::from(self.suspended),
            self.size,
        )
    }

    /// The labels of its `flux_resource_info` series.
    fn labels(&self, ns: &str) -> Labels {
        let (ready, reason) = self.ready().unwrap_or(("Unknown", ""));
        let bool_label = |b: bool| if b { "True" } else { "False" };
        let ref_ = match self.kind {
            Kind::GitRepository | Kind::OciRepository => self.tag(),
            _ => String::new(),
        };
        let source_name = match self.kind {
            Kind::Kustomization => ns.to_string(),
            Kind::HelmRelease => "bitnami".to_string(),
            _ => String::new(),
        };
        let path = match self.kind {
            Kind::Kustomization => format!("./apps/{}", self.name),
            _ => String::new(),
        };
        [
            ("uid", self.uid.clone()),
            ("kind", self.kind.name().to_string()),
            ("name", self.name.clone()),
            ("exported_namespace", ns.to_string()),
            ("ready", ready.to_string()),
            ("reason", reason.to_string()),
            ("suspended", bool_label(self.suspended).to_string()),
            ("revision", self.revision_text()),
            ("url", self.url()),
            ("ref", ref_),
            ("source_name", source_name),
            ("path", path),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The walk's objects, in creation order.
struct World {
    objects: Vec<Obj>,
    next_name: usize,
    /// helm-controller is unready.
    dip: bool,
}

impl World {
    fn stats(&self) -> Vec<(&'static str, Stats)> {
        KINDS
            .iter()
            .map(|k| {
                let sum = self
                    .objects
                    .iter()
                    .filter(|o| o.kind == *k)
                    .fold(Stats::default(), |s, o| s.add(o.stats()));
                (k.name(), sum)
            })
            .collect()
    }

    fn fresh_name(&mut self) -> String {
        self.next_name += 1;
        format!("soak-{:04}", self.next_name)
    }
}

/// Where the wall time of the runs went, for the summary line: writing the walk's changes,
/// listing what the report must count, awaiting the run, the metric series, the events and
/// POSTs.
#[derive(Debug, Default)]
struct Phases {
    write: Duration,
    expect: Duration,
    run: Duration,
    series: Duration,
    events: Duration,
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "write:{:.1},expect:{:.1},run:{:.1},series:{:.1},events:{:.1}",
            self.write.as_secs_f64(),
            self.expect.as_secs_f64(),
            self.run.as_secs_f64(),
            self.series.as_secs_f64(),
            self.events.as_secs_f64()
        )
    }
}

/// What the walk did, for the summary line.
#[derive(Debug, Default)]
struct Tally {
    created: usize,
    deleted: usize,
    recreated: usize,
    changed: usize,
    most_objects: usize,
}

async fn create(env: &Env, mut obj: Obj) -> Obj {
    let written = env.apply(obj.manifest(&env.ns)).await;
    obj.uid = written["metadata"]["uid"]
        .as_str()
        .expect("uid of a created object")
        .to_string();
    obj
}

async fn write_status(env: &Env, obj: &Obj) {
    env.merge_status_as(
        FIELD_MANAGER,
        obj.kind.api_version(),
        obj.kind.name(),
        &obj.name,
        obj.status(&env.ns),
    )
    .await;
}

/// One to three random changes to the world, written to the API.
async fn step(env: &Env, rng: &mut Rng, world: &mut World, tally: &mut Tally) {
    for _ in 0..1 + rng.below(3) {
        let n = world.objects.len();
        let roll = rng.below(100);
        if n < MIN_OBJECTS || (roll < 22 && n < MAX_OBJECTS) {
            let name = world.fresh_name();
            let obj = create(env, Obj::random(rng, name)).await;
            world.objects.push(obj);
            tally.created += 1;
            continue;
        }
        let i = rng.below(n);
        match roll {
            0..37 => {
                let obj = world.objects.remove(i);
                env.delete(obj.kind.api_version(), obj.kind.name(), &obj.name)
                    .await;
                tally.deleted += 1;
            }
            37..45 => {
                // Deleted and created again under the same name: a new uid, maybe another kind.
                let old = world.objects.remove(i);
                env.delete(old.kind.api_version(), old.kind.name(), &old.name)
                    .await;
                let obj = create(env, Obj::random(rng, old.name)).await;
                world.objects.push(obj);
                tally.recreated += 1;
            }
            45..65 => {
                let obj = &mut world.objects[i];
                let others: Vec<Health> =
                    HEALTHS.into_iter().filter(|h| *h != obj.health).collect();
                obj.health = rng.pick(&others);
                write_status(env, obj).await;
                tally.changed += 1;
            }
            65..80 => {
                let obj = &mut world.objects[i];
                obj.suspended = !obj.suspended;
                env.merge(
                    obj.kind.api_version(),
                    obj.kind.name(),
                    &obj.name,
                    json!({"spec": {"suspend": obj.suspended}}),
                )
                .await;
                tally.changed += 1;
            }
            _ => {
                let obj = &mut world.objects[i];
                obj.revision += 1 + rng.next() % 5;
                if obj.kind.is_source() {
                    obj.size = (rng.next() % 3_000_000) as i64;
                }
                if matches!(obj.kind, Kind::GitRepository | Kind::OciRepository) {
                    env.merge(
                        obj.kind.api_version(),
                        obj.kind.name(),
                        &obj.name,
                        json!({"spec": {"ref": {"tag": obj.tag()}}}),
                    )
                    .await;
                }
                write_status(env, obj).await;
                tally.changed += 1;
            }
        }
    }
    tally.most_objects = tally.most_objects.max(world.objects.len());
}

/// Sets `requestedAt` to a new value and waits until the run it causes has written the report
/// (`lastHandledReconcileAt`); returns that report.
async fn requested_run(env: &Env, op: &Operator, run: usize) -> Value {
    let token = unique(&format!("soak-{run}"));
    env.annotate_report(REQUESTED_AT, Some(&token)).await;
    let token = &token;
    eventually_every(
        &format!("run {run}: lastHandledReconcileAt {token}"),
        soon(env),
        POLL,
        || async move {
            op.assert_alive();
            let report = env.report().await.ok_or("no FluxReport")?;
            ensure(
                report["status"]["lastHandledReconcileAt"] == token.as_str(),
                || {
                    format!(
                        "lastHandledReconcileAt is {}",
                        report["status"]["lastHandledReconcileAt"]
                    )
                },
            )?;
            Ok(report)
        },
    )
    .await
}

/// The report says what the world is: reconcilers (one of the `accepted` sets), components, sync.
fn check_report(
    report: &Value,
    accepted: &[Vec<(String, String, Value)>],
    sync: &Value,
    dip: bool,
) -> Result<(), String> {
    check_ready(report, "True", "Succeeded")?;
    let mut errors = Vec::new();
    for reconcilers in accepted {
        match check_reconcilers(report, reconcilers) {
            Ok(()) => break,
            Err(e) => errors.push(e),
        }
    }
    ensure(errors.len() < accepted.len(), || errors.join("; or "))?;
    let component = report["spec"]["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == DIP_COMPONENT))
        .ok_or_else(|| format!("no component {DIP_COMPONENT}"))?;
    ensure(component["ready"] == !dip, || {
        format!("{DIP_COMPONENT} should be ready={}: {component}", !dip)
    })?;
    ensure(report["spec"]["sync"] == *sync, || {
        format!("sync {} changed from {sync}", report["spec"]["sync"])
    })
}

/// The `flux_resource_info` series of the namespace, and `flux_instance_info`, are exactly what
/// the world says.
async fn check_metrics(env: &Env, op: &Operator, want: &[Labels], dip: bool) -> Result<(), String> {
    let series = resource_series(&op.metric("flux_resource_info").await?, &env.ns);
    if let Some(s) = series.iter().find(|s| s.value != 1.0) {
        return Err(format!("a series with value {}: {s:?}", s.value));
    }
    let mut got: Vec<Labels> = series.into_iter().map(|s: Sample| s.labels).collect();
    got.sort();
    if got != want {
        let missing: Vec<&Labels> = want.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<&Labels> = got.iter().filter(|l| !want.contains(l)).collect();
        return Err(format!(
            "{} series, want {}; missing {missing:#?}; not expected (stale or wrong) {extra:#?}",
            got.len(),
            want.len()
        ));
    }
    let instance = resource_series(&op.metric("flux_instance_info").await?, &env.ns);
    let ready = if dip { "False" } else { "True" };
    ensure(
        instance.len() == 1 && instance[0].label("ready") == ready,
        || format!("flux_instance_info should be one series with ready={ready}: {instance:#?}"),
    )
}

/// Events about the FluxInstance (a series counts as its `count`) and notification POSTs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Transitions {
    warnings: i64,
    normals: i64,
    error_posts: i64,
    info_posts: i64,
}

impl Transitions {
    async fn seen(env: &Env, op: &Operator) -> Transitions {
        let mut t = Transitions::default();
        for e in env.events_about("FluxInstance", "flux").await {
            let count = e["series"]["count"].as_i64().unwrap_or(1);
            match (e["type"].as_str(), e["reason"].as_str()) {
                (Some("Warning"), Some("ComponentsNotReady")) => t.warnings += count,
                (Some("Normal"), Some("ReconciliationSucceeded")) => t.normals += count,
                _ => panic!("an event no transition of the soak explains: {e:#}"),
            }
        }
        for p in op.receiver.posts() {
            match (p["severity"].as_str(), p["reason"].as_str()) {
                (Some("error"), Some("ComponentsNotReady")) => t.error_posts += 1,
                (Some("info"), Some("ReconciliationSucceeded")) => t.info_posts += 1,
                _ => panic!("a POST no transition of the soak explains: {p:#}"),
            }
        }
        t
    }

    fn exceeds(self, want: Transitions) -> bool {
        self.warnings > want.warnings
            || self.normals > want.normals
            || self.error_posts > want.error_posts
            || self.info_posts > want.info_posts
    }
}

/// Waits until exactly `want` events and POSTs exist (they are written after the report, the
/// POSTs from a queue); fails at once on more: an event or POST without a transition.
async fn check_transitions(env: &Env, op: &Operator, run: usize, want: Transitions) {
    eventually_every(
        &format!("run {run}: events and POSTs {want:?}"),
        soon(env),
        POLL,
        || async move {
            let seen = Transitions::seen(env, op).await;
            assert!(
                !seen.exceeds(want),
                "run {run}: more events or POSTs than transitions: {seen:?}, want {want:?}; \
                 events {:#?}; POSTs {:#?}",
                env.events_about("FluxInstance", "flux").await,
                op.receiver.posts()
            );
            ensure(seen == want, || format!("{seen:?}"))
        },
    )
    .await;
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
        }
        _ => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_report_metrics_events_and_memory_hold_over_hundreds_of_runs() {
    let runs = env_number("SOAK_RUNS", DEFAULT_RUNS as u64) as usize;
    let seed = env_number("SOAK_SEED", DEFAULT_SEED);
    assert!(runs >= 1, "SOAK_RUNS={runs}: at least one run");
    let env = Env::with_flux("soak").await;
    let op = env.start_operator(OperatorOpts::every("1s")).await;
    let (env, op) = (&env, &op);

    let first = wait_full_report(env, &[]).await;
    let sync = first["spec"]["sync"].clone();
    assert_eq!(sync["ready"], true, "{sync}");
    // The fixture objects' series: the walk never touches them, so they must stay as they are.
    let fixture_series: Vec<Labels> = eventually_every(
        "a flux_resource_info series per fixture object",
        soon(env),
        POLL,
        || async move {
            let series = resource_series(&op.metric("flux_resource_info").await?, &env.ns);
            ensure(series.len() == FIXTURE_OBJECTS, || {
                format!("{} series: {series:#?}", series.len())
            })?;
            Ok(series.into_iter().map(|s| s.labels).collect())
        },
    )
    .await;
    check_transitions(env, op, 0, Transitions::default()).await;

    let mut rng = Rng::new(seed);
    let mut world = World {
        objects: Vec::new(),
        next_name: 0,
        dip: false,
    };
    let mut tally = Tally::default();
    let mut want = Transitions::default();
    let mut rss = Vec::with_capacity(runs);
    let mut interval_runs = 0;
    let mut dip_before = false;
    let start = Instant::now();
    let mut phases = Phases::default();
    for run in 1..=runs {
        let t = Instant::now();
        step(env, &mut rng, &mut world, &mut tally).await;
        if run % DIP_EVERY == DIP_START {
            env.set_component_ready(DIP_COMPONENT, false).await;
            world.dip = true;
            want.warnings += 1;
            want.error_posts += 1;
        } else if run % DIP_EVERY == DIP_START + DIP_LENGTH && world.dip {
            env.set_component_ready(DIP_COMPONENT, true).await;
            world.dip = false;
            want.normals += 1;
            want.info_posts += 1;
        }

        phases.write += t.elapsed();

        // The report counts the FluxInstance with the status the previous run left it: unready
        // (failing) during a dip. On the run where the dip starts or ends, a run on the interval
        // may or may not have come between the change and the run awaited here, so either
        // status is right; on every other run only one is.
        let t = Instant::now();
        let instance_failing = |dip: bool| ("FluxInstance", Stats::new(0, i64::from(dip), 0, 0));
        let mut stats = world.stats();
        stats.push(instance_failing(world.dip));
        let mut accepted = vec![expected_reconcilers(env, &stats).await];
        if world.dip != dip_before {
            *stats.last_mut().expect("the FluxInstance") = instance_failing(dip_before);
            accepted.push(expected_reconcilers(env, &stats).await);
        }
        dip_before = world.dip;
        phases.expect += t.elapsed();
        let t = Instant::now();
        let (accepted, sync) = (&accepted, &sync);
        let dip = world.dip;
        if run % INTERVAL_EVERY == 0 {
            // Left to the interval: a run on the interval happens, and the report shows the
            // changes (those that change it) by then or after a few more.
            let runs_before = op.runs().len();
            env.wait_report(
                &format!("run {run} (interval): a run and the report of the world"),
                soon(env),
                |r| {
                    let runs = op.runs().len();
                    ensure(runs > runs_before, || format!("still {runs} runs"))?;
                    check_report(r, accepted, sync, dip)
                },
            )
            .await;
            interval_runs += 1;
        } else {
            let report = requested_run(env, op, run).await;
            check_report(&report, accepted, sync, dip)
                .unwrap_or_else(|e| panic!("run {run}: the acknowledged report: {e}"));
        }

        phases.run += t.elapsed();

        let t = Instant::now();
        let mut want_series: Vec<Labels> = world
            .objects
            .iter()
            .map(|o| o.labels(&env.ns))
            .chain(fixture_series.iter().cloned())
            .collect();
        want_series.sort();
        let want_series = &want_series;
        eventually_every(
            &format!("run {run}: the metric series of the world"),
            soon(env),
            POLL,
            || async move { check_metrics(env, op, want_series, dip).await },
        )
        .await;
        phases.series += t.elapsed();
        let t = Instant::now();
        check_transitions(env, op, run, want).await;
        phases.events += t.elapsed();
        rss.push(op.rss_kib().expect("the operator's VmRSS"));
    }
    let wall = start.elapsed();

    // Late duplicates: two more runs, then the same count.
    more_runs(env, op, 2).await;
    check_transitions(env, op, runs, want).await;
    op.assert_alive();

    let first = rss[WARM_UP.min(rss.len()) - 1];
    let last = *rss.last().expect("at least one run");
    let max = rss.iter().copied().max().unwrap_or_default();
    println!(
        "soak runs={runs} rss_first_kib={first} rss_last_kib={last} rss_max_kib={max} \
         wall_s={:.1} warm_up={WARM_UP} interval_runs={interval_runs} operator_runs={} \
         transitions={} seed={seed:#x} created={} deleted={} recreated={} changed={} \
         most_objects={} phases_s={phases}",
        wall.as_secs_f64(),
        op.runs().len(),
        want.warnings + want.normals,
        tally.created,
        tally.deleted,
        tally.recreated,
        tally.changed,
        tally.most_objects,
    );
    if runs > WARM_UP {
        let bound = first + first / 2 + 8 * 1024;
        assert!(
            last <= bound,
            "RSS grew from {first} KiB (after {WARM_UP} runs) to {last} KiB after {runs} runs \
             (bound {bound} KiB): {rss:?}"
        );
    }
}
