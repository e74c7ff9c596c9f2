//! Starts and stops a real Kubernetes API server for the tests and for people
//! (`flux_reporter_e2e::envtest`): etcd and kube-apiserver from `KUBEBUILDER_ASSETS`.
//!
//! ```text
//! envtest start DIR    # start the pair with its state in DIR; prints the admin kubeconfig's path
//! envtest stop DIR     # stop the pair whose state is in DIR (by pid) and remove etcd's data
//! envtest seed FILE... # put the objects of dumps into the cluster of KUBECONFIG, statuses
//!                      # included (flux_reporter_e2e::seed)
//! ```
//!
//! `hack/envtest.sh` wraps it (`eval "$(hack/envtest.sh start)"`).

use std::path::PathBuf;
use std::process::ExitCode;

use flux_reporter_e2e::envtest::{Assets, Envtest};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, dir] if cmd == "start" => Assets::from_env()
            .and_then(|assets| Envtest::start(&assets, &PathBuf::from(dir)))
            .map(|env| {
                println!("{}", env.kubeconfig.display());
                eprintln!("envtest: kube-apiserver ready at {}", env.url);
            }),
        [cmd, dir] if cmd == "stop" => Envtest::stop(&PathBuf::from(dir)),
        [cmd, files @ ..] if cmd == "seed" && !files.is_empty() => {
            return match seed(files) {
                Ok(n) => {
                    eprintln!("envtest: {n} objects written");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("envtest: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {
            eprintln!("usage: envtest start|stop DIR | envtest seed FILE...");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("envtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn seed(files: &[String]) -> Result<usize, String> {
    let mut objects = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        objects.extend(
            flux_reporter_e2e::fixtures::dump_objects(&text).map_err(|e| format!("{f}: {e}"))?,
        );
    }
    objects.sort_by_key(|o| o["kind"] != "CustomResourceDefinition");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("KUBECONFIG: {e}"))?;
        flux_reporter_e2e::seed::apply_all(&client, &objects, "flux-reporter-envtest")
            .await
            .map_err(|e| e.to_string())
    })
}
