//! The floor under a report run's lists: the same paginated GETs flux-reporter sends for each
//! Flux kind, with each body read whole and thrown away (only `metadata.continue` is picked out,
//! which paging needs). `hack/bench` compares `flux-reporter report` with it.
//!
//! ```text
//! list-floor [--page-size N] [--concurrency N] COLLECTION...
//! ```
//!
//! COLLECTIONs are list paths (`/apis/source.toolkit.fluxcd.io/v1/gitrepositories`), listed
//! across all namespaces, `--concurrency` (default 1) at a time, each page by page with
//! `limit=--page-size` (default 500, as flux-reporter's `--page-size`). The server is the
//! current kubeconfig context (`KUBECONFIG`). Prints `pages objects bytes` on stdout.
//!
//! Why this binary and not `curl` or `kubectl get --raw`: a floor is only a floor if it pays
//! what the product pays and nothing more. It uses the product's HTTP stack (a `kube::Client`
//! from the kubeconfig: hyper, rustls, the same connection pool), the same URLs (kube's
//! `Request::list`, as `report/src/source/live.rs` builds them), the same `Accept` header, the
//! same page size and the same kind-level concurrency (futures' `buffer_unordered`), on a
//! current-thread runtime as the one-shot commands use. What it leaves out is exactly the
//! report's own work: decoding objects and computing the report.

use std::process::ExitCode;

use futures::{StreamExt, stream};
use kube::api::ListParams;
use kube::client::Body;
use serde::Deserialize;
use serde::de::IgnoredAny;

struct Args {
    page_size: u32,
    concurrency: usize,
    collections: Vec<String>,
}

const USAGE: &str = "usage: list-floor [--page-size N] [--concurrency N] COLLECTION...";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        page_size: 500,
        concurrency: 1,
        collections: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{name} must be a whole number of at least 1"))
        };
        match a.as_str() {
            "--page-size" => {
                args.page_size = u32::try_from(number("--page-size")?)
                    .map_err(|_| "--page-size is too large".to_string())?
            }
            "--concurrency" => {
                args.concurrency = usize::try_from(number("--concurrency")?)
                    .map_err(|_| "--concurrency is too large".to_string())?
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other if other.starts_with("--") => {
                return Err(format!("unknown flag {other}\n{USAGE}"));
            }
            path => args.collections.push(path.to_string()),
        }
    }
    if args.collections.is_empty() {
        return Err(format!("no collection to list\n{USAGE}"));
    }
    Ok(args)
}

/// A list page with its items skipped over, not kept.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(default)]
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct PageMeta {
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

#[derive(Default)]
struct Totals {
    pages: u64,
    objects: u64,
    bytes: u64,
}

async fn list_all(
    client: &kube::Client,
    collection: &str,
    page_size: u32,
) -> Result<Totals, String> {
    let target = kube::core::Request::new(collection);
    let mut totals = Totals::default();
    let mut token: Option<String> = None;
    loop {
        let params = ListParams {
            limit: Some(page_size),
            continue_token: token.take(),
            ..ListParams::default()
        };
        let uri = target
            .list(&params)
            .map_err(|e| format!("{collection}: {e}"))?
            .uri()
            .to_string();
        let request = http::Request::get(&uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| format!("{uri}: {e}"))?;
        let response = client
            .send(request)
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {uri}: HTTP {status}"));
        }
        let page: Page = serde_json::from_slice(&body).map_err(|e| format!("GET {uri}: {e}"))?;
        totals.pages += 1;
        totals.objects += page.items.len() as u64;
        totals.bytes += body.len() as u64;
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(totals);
        }
    }
}

async fn run(args: Args) -> Result<Totals, String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("no kubeconfig: {e}"))?;
    let client = kube::Client::try_from(config).map_err(|e| format!("no client: {e}"))?;
    let mut lists = Vec::new();
    for collection in &args.collections {
        lists.push(list_all(&client, collection, args.page_size));
    }
    let results: Vec<Result<Totals, String>> = stream::iter(lists)
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let mut sum = Totals::default();
    for r in results {
        let t = r?;
        sum.pages += t.pages;
        sum.objects += t.objects;
        sum.bytes += t.bytes;
    }
    Ok(sum)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(t) => {
            println!("{} {} {}", t.pages, t.objects, t.bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("list-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
