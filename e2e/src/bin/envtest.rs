//! Starts and stops a real Kubernetes API server for the tests and for people
//! (`flux_reporter_e2e::envtest`): etcd and kube-apiserver from `KUBEBUILDER_ASSETS`.
//!
//! ```text
//! envtest start DIR    # start the pair with its state in DIR; prints the admin kubeconfig's path
//! envtest stop DIR     # stop the pair whose state is in DIR (by pid) and remove etcd's data
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
        _ => {
            eprintln!("usage: envtest start|stop DIR");
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
