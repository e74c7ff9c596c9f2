//! A local HTTP receiver for tests: records the body of every POST and answers 202 Accepted, as
//! notification-controller's event receiver does. It stands in for notification-controller (the
//! operator's `--events-addr`) and for an Alertmanager webhook. Built on axum so that keep-alive,
//! chunked bodies and malformed requests are handled by a real HTTP server, not by test code.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One recorded POST.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub content_type: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

type Posts = Arc<Mutex<Vec<Post>>>;

/// The receiver; dropping it stops the server.
pub struct Receiver {
    addr: SocketAddr,
    posts: Posts,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let posts: Posts = Arc::default();
        // Any path: notification-controller listens on `/`, webhooks are configured with a path.
        let app = Router::new()
            .route("/", post(record))
            .route("/{*path}", post(record))
            .with_state(posts.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("test receiver on {addr} stopped: {e}");
            }
        });
        Ok(Receiver { addr, posts, task })
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
        self.posts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(posts): State<Posts>,
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
    posts.lock().unwrap_or_else(|e| e.into_inner()).push(Post {
        path: uri.path().to_string(),
        content_type,
        body,
    });
    StatusCode::ACCEPTED
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
}
