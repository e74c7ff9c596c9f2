//! A real Kubernetes API server for the tests, the envtest way: `etcd` and `kube-apiserver`
//! from the directory named by `KUBEBUILDER_ASSETS` (what controller-runtime's `setup-envtest`
//! fills), started on free loopback ports with certificates made here (rcgen), RBAC
//! authorization and service-account signing keys, so that TokenRequest, TokenReview and
//! SubjectAccessReview work. There is no controller-manager, scheduler or kubelet: see
//! `e2e/README.md` for what the tests do in their place.
//!
//! The processes outlive the program that starts them (`envtest start` returns once the server
//! is ready) and are stopped by pid (`envtest stop`), so one pair serves a whole test run.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// The environment variable of the envtest convention.
pub const ASSETS_VAR: &str = "KUBEBUILDER_ASSETS";
/// The service-account issuer and audience the server is started with.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{ASSETS_VAR} is not set: point it at a directory holding kube-apiserver, etcd and \
         kubectl (setup-envtest use 1.36.x -p path)"
    )]
    NoAssets,
    #[error(
        "{0} not found: {ASSETS_VAR} must hold kube-apiserver, etcd and kubectl \
         (setup-envtest use 1.36.x -p path)"
    )]
    Missing(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{0} did not become ready within {1:?}; its log: {2}")]
    NotReady(&'static str, Duration, PathBuf),
    #[error("{0} exited at start ({1}); its log: {2}")]
    Exited(&'static str, std::process::ExitStatus, PathBuf),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The binaries of `KUBEBUILDER_ASSETS` (or `dir`).
#[derive(Debug, Clone)]
pub struct Assets {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
}

impl Assets {
    pub fn from_env() -> Result<Assets, Error> {
        let dir = std::env::var_os(ASSETS_VAR)
            .filter(|v| !v.is_empty())
            .ok_or(Error::NoAssets)?;
        Assets::in_dir(Path::new(&dir))
    }

    pub fn in_dir(dir: &Path) -> Result<Assets, Error> {
        let find = |name: &str| {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(Error::Missing(p))
            }
        };
        Ok(Assets {
            kube_apiserver: find("kube-apiserver")?,
            etcd: find("etcd")?,
        })
    }
}

/// A running etcd and kube-apiserver pair, described by the files in its directory.
#[derive(Debug, Clone)]
pub struct Envtest {
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// An admin kubeconfig (a client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
}

const PIDS: &str = "pids";
const ETCD_DATA: &str = "etcd-data-dir";

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("bind a loopback port"))?;
    Ok(l.local_addr().map_err(io_err("local address"))?.port())
}

struct Pki {
    ca: String,
    serving: (String, String),
    admin: (String, String),
    sa_public: String,
    sa_private: String,
}

fn pki() -> Result<Pki, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "flux-reporter envtest CA");
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".into(),
        "kubernetes.default.svc".into(),
    ])?;
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_pem = serving.signed_by(&serving_key, &issuer)?.pem();

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "flux-reporter-envtest-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_pem = admin.signed_by(&admin_key, &issuer)?.pem();

    let sa = KeyPair::generate()?;
    Ok(Pki {
        ca: ca_pem,
        serving: (serving_pem, serving_key.serialize_pem()),
        admin: (admin_pem, admin_key.serialize_pem()),
        sa_public: sa.public_key_pem(),
        sa_private: sa.serialize_pem(),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Error> {
    let p = dir.join(name);
    fs::write(&p, text).map_err(io_err(format!("write {}", p.display())))?;
    Ok(p)
}

fn kubeconfig(url: &str, pki: &Pki) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: {url}\n    \
         certificate-authority-data: {}\nusers:\n- name: envtest-admin\n  user:\n    \
         client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: envtest\n  \
         context:\n    cluster: envtest\n    user: envtest-admin\ncurrent-context: envtest\n",
        b64(&pki.ca),
        b64(&pki.admin.0),
        b64(&pki.admin.1)
    )
}

/// Spawns `cmd` in its own process group (so a Ctrl-C or the end of the starting program does
/// not reach it), output to `log`.
fn spawn(mut cmd: Command, log: &Path) -> Result<std::process::Child, Error> {
    let out = fs::File::create(log).map_err(io_err(format!("create {}", log.display())))?;
    let err = out.try_clone().map_err(io_err("clone a log handle"))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    cmd.spawn()
        .map_err(io_err(format!("start {:?}", cmd.get_program())))
}

/// Waits until `ready` answers true, failing early when the process has exited.
fn wait(
    name: &'static str,
    child: &mut std::process::Child,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Exited(name, status, log.to_path_buf()));
        }
        if ready() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::NotReady(name, timeout, log.to_path_buf()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An HTTP GET over plain TCP (etcd's `/health`), true on a 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

impl Envtest {
    /// Starts etcd (data on tmpfs when `/dev/shm` exists) and kube-apiserver with their state,
    /// certificates, logs and the admin kubeconfig in `dir`, and waits for `/readyz`.
    pub fn start(assets: &Assets, dir: &Path) -> Result<Envtest, Error> {
        fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io_err(format!("resolve {}", dir.display())))?;
        let pki = pki()?;
        let ca = write(&dir, "ca.crt", &pki.ca)?;
        let serving_crt = write(&dir, "serving.crt", &pki.serving.0)?;
        let serving_key = write(&dir, "serving.key", &pki.serving.1)?;
        let sa_pub = write(&dir, "sa.pub", &pki.sa_public)?;
        let sa_key = write(&dir, "sa.key", &pki.sa_private)?;

        let shm = Path::new("/dev/shm");
        let data_root = if shm.is_dir() { shm } else { dir.as_path() };
        let data = data_root.join(format!(
            "flux-reporter-envtest-etcd-{}-{}",
            std::process::id(),
            free_port()?
        ));
        write(&dir, ETCD_DATA, &data.display().to_string())?;

        let (client, peer, secure) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut etcd = Command::new(&assets.etcd);
        etcd.arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            // 100,000 Flux objects and their history fit with room to spare.
            .arg("--quota-backend-bytes=8589934592");
        let etcd_log = dir.join("etcd.log");
        let mut etcd = spawn(etcd, &etcd_log)?;
        let mut pids = vec![etcd.id()];
        write(&dir, PIDS, &format!("{}\n", etcd.id()))?;
        wait(
            "etcd",
            &mut etcd,
            &etcd_log,
            Duration::from_secs(30),
            || http_ok(client, "/health"),
        )?;

        let url = format!("https://127.0.0.1:{secure}");
        let mut api = Command::new(&assets.kube_apiserver);
        api.arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={secure}"))
            .arg(format!("--tls-cert-file={}", serving_crt.display()))
            .arg(format!("--tls-private-key-file={}", serving_key.display()))
            .arg(format!("--client-ca-file={}", ca.display()))
            .arg("--authorization-mode=RBAC")
            .arg(format!("--service-account-key-file={}", sa_pub.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key.display()
            ))
            .arg(format!("--service-account-issuer={ISSUER}"))
            .arg(format!("--api-audiences={ISSUER}"))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--endpoint-reconciler-type=none")
            .arg("--allow-privileged=true")
            .arg(format!("--cert-dir={}", dir.display()));
        let api_log = dir.join("kube-apiserver.log");
        let mut api = spawn(api, &api_log)?;
        pids.push(api.id());
        write(
            &dir,
            PIDS,
            &pids.iter().map(|p| format!("{p}\n")).collect::<String>(),
        )?;
        let kubeconfig = write(&dir, "kubeconfig", &kubeconfig(&url, &pki))?;
        let readyz = readyz_probe(&dir)?;
        wait(
            "kube-apiserver",
            &mut api,
            &api_log,
            Duration::from_secs(120),
            readyz,
        )?;
        Ok(Envtest {
            dir,
            url,
            kubeconfig,
        })
    }

    /// Stops the pair whose state is in `dir` (SIGTERM, then SIGKILL after 10 s) and removes
    /// etcd's data. Stopping a pair that is not running is not an error.
    pub fn stop(dir: &Path) -> Result<(), Error> {
        let pids = fs::read_to_string(dir.join(PIDS)).unwrap_or_default();
        // The API server first, then etcd.
        for pid in pids
            .lines()
            .rev()
            .filter_map(|l| l.trim().parse::<i32>().ok())
        {
            terminate(pid);
        }
        let _ = fs::remove_file(dir.join(PIDS));
        if let Ok(data) = fs::read_to_string(dir.join(ETCD_DATA)) {
            let data = PathBuf::from(data.trim());
            if data.exists() {
                fs::remove_dir_all(&data).map_err(io_err(format!("remove {}", data.display())))?;
            }
            let _ = fs::remove_file(dir.join(ETCD_DATA));
        }
        Ok(())
    }
}

/// `/readyz` with the admin kubeconfig, through the kube client.
fn readyz_probe(dir: &Path) -> Result<impl FnMut() -> bool, Error> {
    let kubeconfig = dir.join("kubeconfig");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("a runtime"))?;
    Ok(move || {
        runtime.block_on(async {
            let Ok(kc) = kube::config::Kubeconfig::read_from(&kubeconfig) else {
                return false;
            };
            let Ok(config) = kube::Config::from_custom_kubeconfig(
                kc,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            else {
                return false;
            };
            let Ok(client) = kube::Client::try_from(config) else {
                return false;
            };
            let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else {
                return false;
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await,
                Ok(Ok(body)) if body.trim() == "ok"
            )
        })
    })
}

fn terminate(pid: i32) {
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid);
    if !alive(pid) {
        return;
    }
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

fn zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
