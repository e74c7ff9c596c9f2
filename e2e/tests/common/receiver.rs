//! A local stand-in for notification-controller's event receiver: records the JSON body of every
//! POST and answers 202 Accepted, as notification-controller does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Receiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let posts = Arc::new(Mutex::new(Vec::new()));
        let recorded = posts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, recorded.clone()));
            }
        });
        Receiver { addr, posts, task }
    }

    /// The address to pass as `--events-addr`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every POSTed document so far, in arrival order.
    pub fn posts(&self) -> Vec<Value> {
        self.posts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: requests one after another (the sender may keep the connection alive).
async fn serve(mut stream: TcpStream, posts: Arc<Mutex<Vec<Value>>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let method = head
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let reply: &[u8] = if method == "POST" {
            let doc = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            posts.lock().unwrap_or_else(|e| e.into_inner()).push(doc);
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n"
        };
        if stream.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Reads one request: the head (request line and headers) and the body (Content-Length or
/// chunked). `None` when the peer closed the connection or sent garbage.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        fill(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                fill(stream, buf).await?;
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(stream, buf).await?;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            fill(stream, buf).await?;
        }
        buf.drain(..len).collect()
    };
    Some((head, body))
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
