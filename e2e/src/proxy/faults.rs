//! Fault injection, driven from test code while the proxy runs: error answers, latency,
//! expired continue tokens, dropped watches, refused connections, mute requests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use super::Shared;

/// Which request paths a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    Contains(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p.as_str(),
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Contains(s) => path.contains(s.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Status {
        code: u16,
        message: Option<String>,
        retry_after: Option<u64>,
    },
    Latency(Duration),
    Mute,
    /// A list request that carries a `continue` token answers 410 `Expired`.
    ExpireContinue,
}

/// A fault to inject: build it with [`Fault::status`] or [`Fault::latency`], narrow it with the
/// builder methods, then pass it to [`Faults::inject`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    action: Action,
    method: Option<String>,
    path: PathMatch,
    times: Option<u64>,
    watches: Option<bool>,
    duration: Option<Duration>,
}

impl Fault {
    /// Answer matching requests with this HTTP status and a `Status` body with the usual reason
    /// (403 `Forbidden`, 404 `NotFound`, 409 `Conflict`, 429 `TooManyRequests` with `Retry-After`,
    /// 500 `InternalError`, 503 `ServiceUnavailable`, ...).
    pub fn status(code: u16) -> Fault {
        Fault {
            action: Action::Status {
                code,
                message: None,
                retry_after: if code == 429 { Some(1) } else { None },
            },
            method: None,
            path: PathMatch::Any,
            times: None,
            watches: None,
            duration: None,
        }
    }

    /// Delay matching requests (then answer them normally).
    pub fn latency(delay: Duration) -> Fault {
        Fault {
            action: Action::Latency(delay),
            method: None,
            path: PathMatch::Any,
            times: None,
            watches: None,
            duration: None,
        }
    }

    /// Accept matching requests and never answer them, as an overloaded control plane or a
    /// half-dead load balancer does: the connection stays open and silent until the client gives
    /// up. With no narrowing, the whole server is mute (it still accepts connections).
    pub fn mute() -> Fault {
        Fault {
            action: Action::Mute,
            method: None,
            path: PathMatch::Any,
            times: None,
            watches: None,
            duration: None,
        }
    }

    /// Expire the `continue` token of matching list requests: they answer 410 `Expired`, as
    /// the real server does once etcd has compacted past the token's resourceVersion. Requests
    /// without a token are not matched (nor counted against `times`); narrow it to one
    /// collection with [`Fault::path_prefix`].
    pub fn expire_continue() -> Fault {
        Fault {
            action: Action::ExpireContinue,
            method: None,
            path: PathMatch::Any,
            times: None,
            watches: None,
            duration: None,
        }
    }

    /// Only requests with this HTTP method (`GET`, `PATCH`, ...).
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests for exactly this path (e.g. one namespace, not the objects in it).
    pub fn path(mut self, path: &str) -> Fault {
        self.path = PathMatch::Exact(path.to_string());
        self
    }

    /// Only requests whose path starts with this.
    pub fn path_prefix(mut self, prefix: &str) -> Fault {
        self.path = PathMatch::Prefix(prefix.to_string());
        self
    }

    /// Only requests whose path contains this.
    pub fn path_contains(mut self, needle: &str) -> Fault {
        self.path = PathMatch::Contains(needle.to_string());
        self
    }

    /// Only the first `n` matching requests.
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }

    /// Only watch requests.
    pub fn watches_only(mut self) -> Fault {
        self.watches = Some(true);
        self
    }

    /// Only requests that are not watches.
    pub fn no_watches(mut self) -> Fault {
        self.watches = Some(false);
        self
    }

    /// Stop applying the fault after this long.
    pub fn for_duration(mut self, d: Duration) -> Fault {
        self.duration = Some(d);
        self
    }

    /// The `Status` message (defaults to the real server's generic one for the code).
    pub fn message(mut self, message: &str) -> Fault {
        if let Action::Status { message: m, .. } = &mut self.action {
            *m = Some(message.to_string());
        }
        self
    }

    /// The `Retry-After` header, in seconds (429 and 503 honour it in client-go and kube).
    pub fn retry_after(mut self, seconds: u64) -> Fault {
        if let Action::Status { retry_after, .. } = &mut self.action {
            *retry_after = Some(seconds);
        }
        self
    }
}

/// The id of an injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

struct Rule {
    id: FaultId,
    fault: Fault,
    until: Option<Instant>,
    hits: u64,
}

/// What the request handler must do for a request.
pub(crate) struct Decision {
    pub delay: Duration,
    /// Never answer.
    pub mute: bool,
    pub status: Option<(u16, Option<String>, Option<u64>)>,
}

/// The fault injection handle of a running [`Proxy`](super::Proxy). Thread-safe.
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    next_id: AtomicU64,
    expire_next_continue: AtomicBool,
    expire_all_continues: AtomicBool,
    watch_generation: tokio::sync::watch::Sender<u64>,
    pub(crate) shared: Mutex<Weak<Shared>>,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults {
            rules: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            expire_next_continue: AtomicBool::new(false),
            expire_all_continues: AtomicBool::new(false),
            watch_generation: tokio::sync::watch::Sender::new(0),
            shared: Mutex::new(Weak::new()),
        }
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a fault; it applies until removed, used up (`times`) or expired (`for_duration`).
    pub fn inject(&self, fault: Fault) -> FaultId {
        let id = FaultId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let until = fault.duration.map(|d| Instant::now() + d);
        self.rules().push(Rule {
            id,
            fault,
            until,
            hits: 0,
        });
        id
    }

    /// Removes one fault.
    pub fn remove(&self, id: FaultId) {
        self.rules().retain(|r| r.id != id);
    }

    /// How many requests a fault has hit so far (0 once it is removed or expired).
    pub fn hits(&self, id: FaultId) -> u64 {
        self.rules()
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.hits)
            .unwrap_or(0)
    }

    /// Removes every injected fault and continue-token expiry. Does not restart a stopped server.
    pub fn clear(&self) {
        self.rules().clear();
        self.expire_next_continue.store(false, Ordering::SeqCst);
        self.expire_all_continues.store(false, Ordering::SeqCst);
    }

    /// The next list request that carries a `continue` token answers 410 `Expired`.
    pub fn expire_next_continue(&self) {
        self.expire_next_continue.store(true, Ordering::SeqCst);
    }

    /// While on, every list request with a `continue` token answers 410 `Expired`.
    pub fn expire_continues(&self, on: bool) {
        self.expire_all_continues.store(on, Ordering::SeqCst);
    }

    /// Whether the list request for `path`, which carries a continue token, must answer 410.
    pub(crate) fn take_continue_expiry(&self, path: &str) -> bool {
        if self.expire_all_continues.load(Ordering::SeqCst)
            || self.expire_next_continue.swap(false, Ordering::SeqCst)
        {
            return true;
        }
        let now = Instant::now();
        let mut rules = self.rules();
        rules.retain(|r| r.until.is_none_or(|u| u > now));
        let rule = rules.iter_mut().find(|r| {
            r.fault.action == Action::ExpireContinue
                && r.fault.times.is_none_or(|t| r.hits < t)
                && r.fault.path.matches(path)
        });
        match rule {
            Some(r) => {
                r.hits += 1;
                true
            }
            None => false,
        }
    }

    /// Ends every open watch stream now (clients see a normal end of stream and re-watch).
    pub fn drop_watches(&self) {
        self.watch_generation.send_modify(|g| *g += 1);
    }

    /// Ends every open watch and answers new watch requests 503 for `d`.
    pub fn drop_watches_and_refuse_for(&self, d: Duration) -> FaultId {
        let id = self.inject(Fault::status(503).watches_only().for_duration(d));
        self.drop_watches();
        id
    }

    pub(crate) fn watch_generation(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch_generation.subscribe()
    }

    /// Closes the listening socket and every open connection: clients get "connection refused"
    /// until [`Faults::start_serving`].
    pub async fn stop_serving(&self) {
        let shared = self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade();
        if let Some(shared) = shared {
            shared.faults.drop_watches();
            if let Some(mut tasks) = shared.stop_listening() {
                // Aborted tasks drop the listening socket when they end: wait for that.
                tasks.shutdown().await;
            }
        }
    }

    /// Listens again on the same port after [`Faults::stop_serving`].
    pub fn start_serving(&self) -> std::io::Result<()> {
        match self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
        {
            Some(shared) => shared.start_listening(),
            None => Err(std::io::Error::other("the server is gone")),
        }
    }

    /// Whether the proxy currently accepts connections.
    pub fn is_serving(&self) -> bool {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .is_some_and(|s| s.is_listening())
    }

    /// The faults that apply to a request (counting it against `times`).
    pub(crate) fn decide(&self, method: &str, path: &str, watch: bool) -> Decision {
        let now = Instant::now();
        let mut rules = self.rules();
        rules.retain(|r| r.until.is_none_or(|u| u > now));
        let mut decision = Decision {
            delay: Duration::ZERO,
            mute: false,
            status: None,
        };
        for r in rules.iter_mut() {
            let f = &r.fault;
            if f.times.is_some_and(|t| r.hits >= t) {
                continue;
            }
            if f.method.as_deref().is_some_and(|m| m != method) {
                continue;
            }
            if f.watches.is_some_and(|w| w != watch) {
                continue;
            }
            if !f.path.matches(path) {
                continue;
            }
            match &f.action {
                // Decided by the list handler, which knows whether there is a token.
                Action::ExpireContinue => {}
                Action::Latency(d) => {
                    r.hits += 1;
                    decision.delay += *d;
                }
                Action::Mute => {
                    r.hits += 1;
                    decision.mute = true;
                }
                Action::Status {
                    code,
                    message,
                    retry_after,
                } => {
                    if decision.status.is_none() {
                        r.hits += 1;
                        decision.status = Some((*code, message.clone(), *retry_after));
                    }
                }
            }
        }
        decision
    }
}
