//! A local HTTP receiver for tests: records the body of every POST and answers 202 Accepted, as
//! notification-controller's event receiver does. It stands in for notification-controller (the
//! operator's `--events-addr`) and for an Alertmanager webhook. Built on axum so that keep-alive,
//! chunked bodies and malformed requests are handled by a real HTTP server, not by test code.
//!
//! Faults, for the reliability tests: another answer than 202 ([`Receiver::answer_with`], e.g.
//! 429 as notification-controller answers an event it already has), a slow answer
//! ([`Receiver::answer_after`]: the POST is recorded when it arrives, the answer comes later),
//! and down ([`Receiver::stop`]: connections refused until [`Receiver::start_again`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One recorded POST.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub content_type: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
    /// The status the receiver answered (or was about to answer, for a client that gave up).
    pub status: u16,
}

/// What the receiver records and how it answers.
#[derive(Default)]
struct Shared {
    posts: Mutex<Vec<Post>>,
    /// The answer; 0 for 202.
    status: AtomicU16,
    delay_ms: AtomicU64,
}

/// The serving task and how to stop it gracefully.
struct Serving {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The receiver; dropping it stops the server.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serving: Mutex<Option<Serving>>,
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared: Arc<Shared> = Arc::default();
        let serving = serve(listener, shared.clone());
        Ok(Receiver {
            addr,
            shared,
            serving: Mutex::new(Some(serving)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/`: the address to pass as `--events-addr` or a webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every POSTed body so far, in arrival order.
    pub fn posts(&self) -> Vec<Value> {
        self.requests().into_iter().map(|p| p.body).collect()
    }

    /// Every POST so far with its path and content type, in arrival order.
    pub fn requests(&self) -> Vec<Post> {
        lock(&self.shared.posts).clone()
    }

    /// Answer every POST from now on with this status (202 restores the normal answer).
    pub fn answer_with(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Record each POST when it arrives but answer only after `delay` (zero restores it).
    pub fn answer_after(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Stops listening and closes every connection (after answering a request in progress):
    /// POSTs are refused until [`Receiver::start_again`].
    pub async fn stop(&self) {
        let serving = lock(&self.serving).take();
        if let Some(Serving { stop, mut task }) = serving {
            let _ = stop.send(true);
            if tokio::time::timeout(Duration::from_secs(10), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Listens again on the same port after [`Receiver::stop`].
    pub async fn start_again(&self) -> std::io::Result<()> {
        if lock(&self.serving).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        *lock(&self.serving) = Some(serve(listener, self.shared.clone()));
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(serving) = lock(&self.serving).take() {
            serving.task.abort();
        }
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>) -> Serving {
    let addr = listener.local_addr().ok();
    // Any path: notification-controller listens on `/`, webhooks are configured with a path.
    let app = Router::new()
        .route("/", post(record))
        .route("/{*path}", post(record))
        .with_state(shared);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            eprintln!("test receiver on {addr:?} stopped: {e}");
        }
    });
    Serving { stop, task }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = match shared.status.load(Ordering::SeqCst) {
        0 => StatusCode::ACCEPTED,
        code => StatusCode::from_u16(code).unwrap_or(StatusCode::ACCEPTED),
    };
    lock(&shared.posts).push(Post {
        path: uri.path().to_string(),
        content_type,
        body,
        status: status.as_u16(),
    });
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn records_json_and_chunked_posts_and_refuses_other_methods() {
        let r = Receiver::start().await.unwrap();
        let a = exchange(
            r.addr(),
            b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"a\": 1}",
        )
        .await;
        assert!(a.starts_with("HTTP/1.1 202"), "{a}");
        let b = exchange(
            r.addr(),
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nnot\r\n5\r\n json\r\n0\r\n\r\n",
        )
        .await;
        assert!(b.starts_with("HTTP/1.1 202"), "{b}");
        let c = exchange(
            r.addr(),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(c.starts_with("HTTP/1.1 405"), "{c}");
        let posts = r.requests();
        assert_eq!(posts.len(), 2, "{posts:?}");
        assert_eq!(posts[0].path, "/hook");
        assert_eq!(posts[0].content_type.as_deref(), Some("application/json"));
        assert_eq!(posts[0].body, serde_json::json!({"a": 1}));
        assert_eq!(posts[1].body, Value::String("not json".into()));
    }

    #[tokio::test]
    async fn answers_another_status_slowly_or_refuses_while_stopped() {
        let r = Receiver::start().await.unwrap();
        let post =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        r.answer_with(429);
        assert!(exchange(r.addr(), post).await.starts_with("HTTP/1.1 429"));
        r.answer_with(202);
        r.answer_after(Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert!(exchange(r.addr(), post).await.starts_with("HTTP/1.1 202"));
        assert!(started.elapsed() >= Duration::from_millis(300));
        r.answer_after(Duration::ZERO);

        r.stop().await;
        let refused = tokio::net::TcpStream::connect(r.addr()).await;
        assert!(refused.is_err(), "connected to a stopped receiver");
        r.start_again().await.unwrap();
        assert!(exchange(r.addr(), post).await.starts_with("HTTP/1.1 202"));
        let statuses: Vec<u16> = r.requests().iter().map(|p| p.status).collect();
        assert_eq!(statuses, [429, 202, 202]);
    }
}
