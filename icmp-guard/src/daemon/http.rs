//! The metrics endpoint: a minimal HTTP/1.1 listener that answers `GET /metrics` with the
//! Prometheus exposition of the configured interfaces, rendered from the read model, and
//! `GET /ready` with whether the configuration is applied (a readiness probe).
//!
//! It is bounded whatever reaches it: at most [`MAX_CONNECTIONS`] at a time (more get a
//! `503` at once and are closed, after reading what they sent for up to [`DRAIN_TIME`], at
//! most [`MAX_DRAINING`] at a time), a request header of at most [`MAX_HEADER`] bytes read within
//! [`HEADER_TIME`], the whole exchange within [`CONNECTION_TIME`], and a failing `accept()`
//! (out of descriptors, say) waits as [`Backoff`] says instead of spinning. It has no TLS and
//! no authentication: the config file keeps it on loopback unless told otherwise.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};

use super::Served;
use crate::{Error, report::prometheus};

/// What the endpoint reads, updated on reload.
pub type Shared = Arc<Mutex<Served>>;

/// Connections served at once; more are answered `503` and closed.
pub const MAX_CONNECTIONS: usize = 8;
/// The most bytes of request header read.
pub const MAX_HEADER: usize = 16 * 1024;
/// How long a client has to send its request header.
pub const HEADER_TIME: Duration = Duration::from_secs(5);
/// How long a connection may last in all, answer included (a client that does not read its
/// answer must not hold a slot).
pub const CONNECTION_TIME: Duration = Duration::from_secs(10);

/// Connections beyond [`MAX_CONNECTIONS`] whose request is read (and thrown away) after their
/// `503`, at once; past these, one is closed at once.
pub const MAX_DRAINING: usize = 4 * MAX_CONNECTIONS;
/// How long a refused connection's request is read after its `503`.
pub const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The answer to a connection beyond [`MAX_CONNECTIONS`].
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections, try again\n";

/// How long to wait after a failed `accept()`: 10 ms after the first failure in a row,
/// doubling up to 1 s, back to the start after a success. Errors such as `EMFILE` repeat at
/// once, so without a wait the loop would spin at 100% CPU and flood the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Failures in a row.
    failures: u32,
}

/// What to do about one failed `accept()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// How long to sleep before accepting again.
    pub delay: Duration,
    /// Whether to log this failure: the 1st, 2nd, 4th, 8th, ... in a row (at 1 s apart once
    /// the wait is at its longest: after 64 s, 128 s, 256 s, ...), so a lasting failure is
    /// logged ever more rarely.
    pub log: bool,
    /// Failures in a row, this one included.
    pub failures: u32,
}

impl Backoff {
    /// The wait after the first failure.
    pub const FIRST: Duration = Duration::from_millis(10);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(1);

    /// One more failure in a row: how long to wait, and whether to log it.
    pub fn failed(&mut self) -> Wait {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        Wait {
            delay: Self::FIRST.saturating_mul(1 << doublings).min(Self::MAX),
            log: self.failures.is_power_of_two(),
            failures: self.failures,
        }
    }

    /// An accept succeeded: failures in a row before it (0 if none), and the next failure
    /// waits [`Self::FIRST`] again.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// Binds the metrics endpoint and serves it in the background.
pub async fn serve(addr: SocketAddr, shared: Shared) -> Result<JoinHandle<()>, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Metrics { addr, source })?;
    Ok(tokio::spawn(accept_loop(listener, addr, shared)))
}

/// Accepts connections for ever, each served in a task of its own while a slot is free.
async fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Shared) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let draining = Arc::new(Semaphore::new(MAX_DRAINING));
    let mut backoff = Backoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                let wait = backoff.failed();
                if wait.log {
                    log::warn!(
                        "metrics on {addr}: accept failed ({} in a row), retrying in {:?}: {e}",
                        wait.failures,
                        wait.delay
                    );
                }
                tokio::time::sleep(wait.delay).await;
                continue;
            }
        };
        let failed = backoff.succeeded();
        if failed > 0 {
            log::info!("metrics on {addr}: accepting again after {failed} failure(s)");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream, &draining);
            continue;
        };
        let shared = shared.clone();
        // The slot is held until the connection is done and any read of the maps it started
        // has ended: a read outlives the connection's time limit, which cannot stop it.
        let slot = Arc::new(slot);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIME, answer(stream, &shared, &slot)).await;
        });
    }
}

/// Answers a connection past the slots `503` and closes it. The request it sent is read first
/// (thrown away, bounded in size and time) while a draining slot is free: a socket closed with
/// unread bytes sends a reset, which may reach the client before it has read its `503`.
fn refuse(stream: TcpStream, draining: &Arc<Semaphore>) {
    // Never waits: a fresh socket's send buffer takes the whole answer.
    let _ = stream.try_write(BUSY);
    let Ok(drain) = draining.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _drain = drain;
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut chunk = [0u8; 1024];
        let mut read = 0;
        let deadline = tokio::time::Instant::now() + DRAIN_TIME;
        while read < MAX_HEADER {
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => read += n,
                _ => break,
            }
        }
    });
}

/// Reads one request header (bounded in size and time) and answers it.
async fn answer(mut stream: TcpStream, shared: &Shared, slot: &Arc<OwnedSemaphorePermit>) {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + HEADER_TIME;
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_HEADER {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => request.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let get = head.starts_with("GET ");
    let (status, body) = if get && (path == "/ready" || path.starts_with("/ready?")) {
        let unready = shared.lock().map_or_else(
            |_| Some("the service's state is unreadable".to_owned()),
            |s| s.unready.clone(),
        );
        readiness(unready.as_deref())
    } else if get && (path == "/metrics" || path.starts_with("/metrics?")) {
        let served = shared.lock().map(|s| s.clone()).unwrap_or_default();
        // Reading the maps (a whole source table) blocks: off the endpoint's worker
        // thread, so other connections are still accepted (and refused past the slots).
        let slot = slot.clone();
        let body = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let scrape = prometheus::read(&served.bpffs, &served.interfaces);
            let mut body = prometheus::render(&served.interfaces, &scrape, served.source_labels);
            body.push_str(&prometheus::render_service(&served));
            body
        })
        .await;
        match body {
            Ok(body) => ("200 OK", body),
            Err(_) => (
                "500 Internal Server Error",
                "the scrape failed\n".to_owned(),
            ),
        }
    } else {
        ("404 Not Found", "see /metrics (and /ready)\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The answer to `GET /ready`, from why the service is not ready (`None`: it is): a
/// readiness probe, so a rollout waits for a node's guards and stops at a node where the new
/// version does not guard.
fn readiness(unready: Option<&str>) -> (&'static str, String) {
    match unready {
        None => ("200 OK", "ready\n".to_owned()),
        Some(why) => ("503 Service Unavailable", format!("not ready: {why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures in a row double the wait from 10 ms up to 1 s, are logged ever more rarely,
    /// and a success starts over.
    #[test]
    fn accept_failures_back_off_and_a_success_starts_over() {
        let ms = Duration::from_millis;
        // (failure in a row, wait, logged)
        let cases = [
            (1, ms(10), true),
            (2, ms(20), true),
            (3, ms(40), false),
            (4, ms(80), true),
            (5, ms(160), false),
            (6, ms(320), false),
            (7, ms(640), false),
            (8, ms(1000), true),
            (9, ms(1000), false),
            (16, ms(1000), true),
            (17, ms(1000), false),
            (64, ms(1000), true),
            (1000, ms(1000), false),
            (1024, ms(1000), true),
        ];
        let mut backoff = Backoff::default();
        let mut seen = 0;
        for (failures, delay, log) in cases {
            let mut wait = backoff.failed();
            seen += 1;
            while seen < failures {
                wait = backoff.failed();
                seen += 1;
            }
            assert_eq!(
                wait,
                Wait {
                    delay,
                    log,
                    failures
                },
                "failure {failures}"
            );
        }
        assert_eq!(backoff.succeeded(), 1024);
        assert_eq!(backoff.succeeded(), 0);
        assert_eq!(backoff.failed().delay, Backoff::FIRST);
    }

    /// The busy answer's length is what it says.
    #[test]
    fn the_busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{head}"
        );
    }
}
