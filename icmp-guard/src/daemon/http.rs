//! The metrics endpoint: a minimal HTTP/1.1 listener that answers `GET /metrics` with the
//! Prometheus exposition of the configured interfaces, rendered from the read model.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    task::JoinHandle,
};

use super::Served;
use crate::{Error, report::prometheus};

/// What the endpoint reads, updated on reload.
pub type Shared = Arc<Mutex<Served>>;

/// Binds the metrics endpoint and serves it in the background.
pub async fn serve(addr: SocketAddr, shared: Shared) -> Result<JoinHandle<()>, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Metrics { addr, source })?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                // Up to the end of the header (bounded in size and time).
                let mut request = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => request.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                let n = request.len();
                let head = String::from_utf8_lossy(&request[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = if head.starts_with("GET ")
                    && (path == "/metrics" || path.starts_with("/metrics?"))
                {
                    let served = shared.lock().map(|s| s.clone()).unwrap_or_default();
                    let snapshots = prometheus::read(&served.bpffs, &served.interfaces);
                    let mut body = prometheus::render(&served.interfaces, &snapshots);
                    body.push_str(&prometheus::render_service(&served));
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "see /metrics\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }))
}
