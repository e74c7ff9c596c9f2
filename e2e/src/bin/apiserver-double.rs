//! Runs the API server double until Ctrl-C, for developers and benchmarks.
//!
//! ```text
//! apiserver-double [--port PORT] [--kubeconfig PATH] [--bookmark-interval SECONDS] [FILE...]
//! ```
//!
//! FILEs are YAML (several documents and `kind: List` allowed) or JSON, or directories of such
//! files; their objects are seeded into the store before the server answers (CRDs first, then
//! Namespaces, then the rest).
//!
//! `GET /debug/apiserver-double/serving` answers what it has served so far (requests, time spent
//! in its handlers, requests in flight), as JSON; the same figures are printed when it stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flux_reporter_e2e::ApiServer;
use serde_json::Value;

struct Args {
    port: u16,
    kubeconfig: Option<PathBuf>,
    bookmark_interval: Option<u64>,
    files: Vec<PathBuf>,
}

const USAGE: &str = "usage: apiserver-double [--port PORT] [--kubeconfig PATH] [--bookmark-interval SECONDS] [FILE...]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        kubeconfig: None,
        bookmark_interval: None,
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--kubeconfig" => args.kubeconfig = Some(PathBuf::from(value("--kubeconfig")?)),
            "--bookmark-interval" => {
                args.bookmark_interval = Some(
                    value("--bookmark-interval")?
                        .parse()
                        .map_err(|e| format!("--bookmark-interval: {e}"))?,
                )
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other if other.starts_with("--") => {
                return Err(format!("unknown flag {other}\n{USAGE}"));
            }
            file => args.files.push(PathBuf::from(file)),
        }
    }
    Ok(args)
}

/// A file, or the `.yaml`, `.yml` and `.json` files of a directory (not recursive), sorted.
fn expand(path: &PathBuf) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.clone()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The objects in a file: one object, several YAML documents, or `kind: List`; documents
/// without `apiVersion` and `kind` are skipped.
fn objects_in(path: &PathBuf) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs: Vec<Value> = if path.extension().is_some_and(|e| e == "json") {
        vec![serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?]
    } else {
        let mut options = serde_saphyr::Options::default();
        options.budget = None;
        serde_saphyr::from_multiple_with_options(&text, options)
            .map_err(|e| format!("{}: {e}", path.display()))?
    };
    let mut out = Vec::new();
    for mut doc in docs {
        // Documents that are not Kubernetes objects (a `kubectl version -o yaml` in a dump, say).
        if doc.get("kind").is_none() || doc.get("apiVersion").is_none() {
            continue;
        }
        let is_list = doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List" || k.ends_with("List"))
            && doc.get("items").is_some_and(Value::is_array);
        match doc.get_mut("items").filter(|_| is_list).map(Value::take) {
            Some(Value::Array(items)) => out.extend(items),
            // Documents that are not objects (e.g. `kubectl version -o yaml` in a
            // flux-reporter dump) are not for the API server.
            _ if doc.get("apiVersion").is_none() && doc.get("kind").is_none() => {}
            _ => out.push(doc),
        }
    }
    Ok(out)
}

fn order(obj: &Value) -> u8 {
    match obj.get("kind").and_then(Value::as_str) {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let server = match ApiServer::start_on(SocketAddr::from(([127, 0, 0, 1], args.port))).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on port {}: {e}", args.port);
            std::process::exit(1);
        }
    };
    if let Some(secs) = args.bookmark_interval {
        server.set_bookmark_interval(Duration::from_secs(secs));
    }
    let mut files = Vec::new();
    for f in &args.files {
        match expand(f) {
            Ok(found) => files.extend(found),
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                std::process::exit(1);
            }
        }
    }
    let mut objects = Vec::new();
    for f in &files {
        match objects_in(f) {
            Ok(o) => objects.extend(o),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
    objects.sort_by_key(order);
    let count = match server.insert_many(objects) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("cannot load an object: {e}");
            std::process::exit(1);
        }
    };
    if let Some(path) = &args.kubeconfig
        && let Err(e) = server.write_kubeconfig(path)
    {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    println!("{}", server.url());
    eprintln!(
        "apiserver-double: serving {} with {count} seeded objects; Ctrl-C stops it",
        server.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    let s = server.serving();
    eprintln!(
        "apiserver-double: served {} requests ({} GETs, watches not counted), {:.3}s in handlers, \
         at most {} at once",
        s.requests,
        s.gets,
        Duration::from_nanos(s.busy_nanos).as_secs_f64(),
        s.peak_in_flight
    );
    server.shutdown().await;
}
