//! The accept loops and per-connection bounds of the HTTP API: what one client can cost is
//! capped in time (header read, an idle or non-reading client, the request itself), in space
//! (header bytes, body bytes, one pending answer per connection) and in count (open
//! connections, requests per connection). A client that stops reading its answers is
//! disconnected after `server.idle_timeout_s`, so pipelining slow readers cannot hold the slots.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::config::ServerConfig;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Request line and headers (hyper's minimum buffer).
const MAX_HEADER_BYTES: usize = 8192;
/// How often a connection's watchdog looks at its progress.
const WATCH_PERIOD: Duration = Duration::from_millis(500);

/// The per-listener bounds, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub max_requests: u64,
}

impl From<&ServerConfig> for ConnLimits {
    fn from(s: &ServerConfig) -> ConnLimits {
        ConnLimits {
            max_connections: s.max_connections,
            idle_timeout: Duration::from_secs(s.idle_timeout_s),
            max_requests: s.max_requests_per_connection,
        }
    }
}

/// What one connection is doing, shared by its IO wrapper, its service and its watchdog.
struct Activity {
    started: Instant,
    /// Milliseconds since `started` of the last byte read or written.
    last_progress_ms: AtomicU64,
    /// 1 + milliseconds since `started` when a write last found the socket full and nothing
    /// has been written since; 0 while writes go through.
    write_blocked_at: AtomicU64,
    /// Requests being handled (a slow diagnosis is not idleness).
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            write_blocked_at: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
    fn progressed(&self) {
        self.last_progress_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }
    fn wrote(&self) {
        self.write_blocked_at.store(0, Ordering::Relaxed);
        self.progressed();
    }
    fn write_blocked(&self) {
        let _ = self.write_blocked_at.compare_exchange(
            0,
            self.now_ms() + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    /// Why the connection should be dropped now, if it should.
    fn expired(&self, idle: Duration) -> Option<&'static str> {
        let now = self.now_ms();
        let idle = idle.as_millis() as u64;
        let blocked = self.write_blocked_at.load(Ordering::Relaxed);
        if blocked != 0 && now.saturating_sub(blocked - 1) >= idle {
            return Some("the client stopped reading its answers");
        }
        let quiet = now.saturating_sub(self.last_progress_ms.load(Ordering::Relaxed));
        if self.in_flight.load(Ordering::Relaxed) == 0 && blocked == 0 && quiet >= idle {
            return Some("the client sent nothing");
        }
        None
    }
}

/// Counts a request as in flight until its handler returns.
struct InFlight(Arc<Activity>);
impl InFlight {
    fn begin(a: &Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(a.clone())
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.progressed();
    }
}

/// The connection's socket, noting each read, each write and each write the socket refused.
struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.progressed();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    fn note(&self, r: &Poll<std::io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.wrote(),
            Poll::Pending => self.activity.write_blocked(),
            _ => {}
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&r);
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&r);
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if r.is_pending() {
            self.activity.write_blocked();
        }
        r
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves one connection until it ends, its client stalls or idles past the limit, or
/// shutdown is signalled (then it finishes gracefully, for at most 5 s).
async fn serve_connection<S>(
    io: S,
    app: Router,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = Watched {
        io,
        activity: activity.clone(),
    };
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (app, activity) = (app.clone(), activity.clone());
            async move {
                let _in_flight = InFlight::begin(&activity);
                let last = activity.requests.load(Ordering::Relaxed) >= limits.max_requests;
                let mut resp = app.oneshot(req.map(axum::body::Body::new)).await?;
                // Bounds pipelining and keep-alive: hyper closes after this answer.
                if last {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let watchdog = async {
        let mut tick = tokio::time::interval(WATCH_PERIOD);
        loop {
            tick.tick().await;
            if let Some(why) = activity.expired(limits.idle_timeout) {
                return why;
            }
        }
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        why = watchdog => {
            // Dropping the connection closes the socket and frees its buffers.
            tracing::debug!("closing a connection: {why}");
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// Counts open connections; dropping the guard closes the slot.
struct Slot(Arc<AtomicUsize>);
impl Slot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if open.fetch_add(1, Ordering::SeqCst) >= max {
            open.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(open.clone()))
    }
}
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a burst of refusals is gathered before its line is written, and the least time
/// between two lines.
const REFUSALS_GATHERED: Duration = Duration::from_secs(1);
const REFUSALS_LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection limit of one listener: hands out slots, and counts every connection it turns
/// away. A task of its own writes one line per interval with the count since the last line
/// (never one per connection, never only the first), the first a second after a burst starts.
struct Admission {
    open: Arc<AtomicUsize>,
    max: usize,
    refused: Arc<std::sync::atomic::AtomicU64>,
    burst: Arc<tokio::sync::Notify>,
}
impl Admission {
    /// Must be called inside the runtime: it starts the logging task, which ends with
    /// `shutdown` after writing what is left.
    fn new(max: usize, listener: &'static str, mut shutdown: watch::Receiver<bool>) -> Admission {
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let burst = Arc::new(tokio::sync::Notify::new());
        let (count, wake) = (refused.clone(), burst.clone());
        tokio::spawn(async move {
            let line = |n: u64, secs: u64| {
                tracing::warn!(
                    "{listener}: {max} open connections (server.max_connections): closed {n} new connection(s) in the last {secs} s"
                )
            };
            let mut since = Instant::now();
            loop {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = shutdown.changed() => break,
                }
                tokio::time::sleep(REFUSALS_GATHERED).await;
                let n = count.swap(0, Ordering::SeqCst);
                if n > 0 {
                    line(n, since.elapsed().as_secs().max(1));
                }
                since = Instant::now();
                // A refusal in the meantime leaves a permit: the next line comes right after.
                tokio::select! {
                    _ = tokio::time::sleep(REFUSALS_LOG_EVERY - REFUSALS_GATHERED) => {}
                    _ = shutdown.changed() => break,
                }
            }
            let n = count.swap(0, Ordering::SeqCst);
            if n > 0 {
                line(n, since.elapsed().as_secs().max(1));
            }
        });
        Admission {
            open: Arc::new(AtomicUsize::new(0)),
            max,
            refused,
            burst,
        }
    }
    /// A slot for a new connection, or None (counted) at the limit.
    fn admit(&mut self) -> Option<Slot> {
        let slot = Slot::take(&self.open, self.max);
        if slot.is_none() && self.refused.fetch_add(1, Ordering::SeqCst) == 0 {
            self.burst.notify_one();
        }
        slot
    }
}

pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    app: Router,
    allow: Arc<Vec<IpNet>>,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut admission = Admission::new(limits.max_connections, "tcp", shutdown.clone());
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        if !super::client_allowed(peer.ip(), &allow) {
            tokio::spawn(refuse(stream));
            continue;
        }
        let Some(slot) = admission.admit() else {
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, app, limits, shutdown).await;
        });
    }
}

/// Answers 403 to a client outside `server.allow`. The request is read first (bounded), so
/// closing does not reset the connection before the client has read the answer.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buf = [0u8; 1024];
        let mut seen = Vec::new();
        while seen.len() < MAX_HEADER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Only the new bytes (and the 3 before them) can complete the blank line:
                    // scanning everything again on each read would be quadratic.
                    let from = seen.len().saturating_sub(3);
                    seen.extend_from_slice(&buf[..n]);
                    if seen[from..].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        let body = r#"{"error":"this client address is not in server.allow"}"#;
        let msg = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(msg.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Listens on `addr` with a deep accept queue. The platform default (128) overflows when a
/// flood keeps the accept loop busy for a moment: the kernel then drops a legitimate client's
/// SYN and its connect waits a full second for the retransmission (seen in the slow-reader
/// flood test). The kernel caps the depth at `net.core.somaxconn`.
pub fn listen_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Binds a unix socket readable by owner and group. A stale socket left by an earlier run is
/// replaced; anything else at the path (a file, a directory, a symlink, a socket something is
/// still listening on) is refused, never deleted.
pub fn bind_unix(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{} is a socket another process is listening on",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(m) => {
            let kind = if m.is_dir() {
                "a directory"
            } else if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "not a socket"
            };
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is {kind}: refusing to replace it (server.unix_socket must name a socket path)",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    app: Router,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut admission = Admission::new(limits.max_connections, "unix", shutdown.clone());
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accept (unix): {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Some(slot) = admission.admit() else {
            continue;
        };
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, app, limits, shutdown).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_reading_client_expires_but_a_slow_answer_does_not() {
        let a = Arc::new(Activity::new());
        let idle = Duration::from_millis(0);
        // A request being handled (a slow diagnosis) is not idleness.
        let g = InFlight::begin(&a);
        assert_eq!(a.expired(idle), None, "in flight");
        drop(g);
        assert_eq!(a.requests.load(Ordering::Relaxed), 1);
        assert_eq!(a.expired(idle), Some("the client sent nothing"));
        a.write_blocked();
        assert_eq!(
            a.expired(idle),
            Some("the client stopped reading its answers")
        );
        a.wrote();
        assert!(a.expired(Duration::from_secs(3600)).is_none());
    }

    #[test]
    fn unix_socket_path_that_is_not_a_socket_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("precious.txt");
        std::fs::write(&file, "keep me").unwrap();
        let e = rt.block_on(async { bind_unix(&file) }).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let e = rt.block_on(async { bind_unix(dir.path()) }).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        // A stale socket (nobody listening) is replaced; a live one is refused.
        let sock = dir.path().join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let live = rt.block_on(async { bind_unix(&sock) }).unwrap();
        let e = rt.block_on(async { bind_unix(&sock) }).unwrap_err();
        assert!(e.to_string().contains("listening"), "{e}");
        drop(live);
    }
}
