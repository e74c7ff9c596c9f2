//! A TCP proxy in front of a Kubernetes API server (a real one, or the fault proxy) that can go mute:
//! it keeps accepting connections but forwards nothing more in either direction, as an
//! overloaded control plane, a half-dead load balancer or a partitioned node does. TLS passes
//! through untouched, so the same scenario runs against a real cluster. Unmuted, it forwards
//! again (held bytes included).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct MuteProxy {
    addr: SocketAddr,
    muted: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MuteProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> io::Result<MuteProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (muted, rx) = watch::channel(false);
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream.clone(), rx.clone()));
            }
        });
        Ok(MuteProxy { addr, muted, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop (or resume) forwarding, on open connections and new ones alike.
    pub fn set_muted(&self, on: bool) {
        self.muted.send_replace(on);
    }
}

impl Drop for MuteProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits while muted; false once the proxy is gone.
async fn wait_unmuted(muted: &mut watch::Receiver<bool>) -> bool {
    muted.wait_for(|m| !*m).await.is_ok()
}

async fn serve(mut client: TcpStream, upstream: String, mut muted: watch::Receiver<bool>) {
    // A connection made while mute is accepted and then left without an answer: read and drop
    // what the client sends (a TLS ClientHello, a request) until it gives up.
    if *muted.borrow() {
        let mut sink = [0u8; 4096];
        loop {
            tokio::select! {
                n = client.read(&mut sink) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                changed = muted.wait_for(|m| !*m) => {
                    if changed.is_err() {
                        return;
                    }
                    // Unmuted: the client has most likely given up; close so it reconnects.
                    return;
                }
            }
        }
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, muted.clone());
    let down = pump(server_read, client_write, muted);
    let _ = tokio::join!(up, down);
}

/// Copies `from` to `to`, holding each chunk while muted.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut muted: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !wait_unmuted(&mut muted).await {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn echo(s: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    }

    #[tokio::test]
    async fn forwards_goes_silent_when_muted_and_resumes() {
        let proxy = MuteProxy::start(&echo_server().await.to_string())
            .await
            .unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            echo(&mut open, b"ping").await.as_deref(),
            Some(&b"ping"[..])
        );

        proxy.set_muted(true);
        // An open connection gets no answer, and a new one is accepted but gets none either.
        assert_eq!(echo(&mut open, b"one").await, None);
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(echo(&mut fresh, b"two").await, None);

        proxy.set_muted(false);
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            echo(&mut again, b"back").await.as_deref(),
            Some(&b"back"[..])
        );
    }
}
