//! The HTTP front: accepts sockets, admits each ([`crate::admission`]), and serves it with
//! hyper (HTTP/1.1 with upgrades, and cleartext HTTP/2 unless `http.http2 = false`) under
//! deadlines, so that no socket is held by a client that does not finish its requests.
//!
//! - From accept to a complete first request head: `handshake_timeout`, whatever the protocol
//!   (hyper's own HTTP/1 header timeout starts only once a first byte arrived, and HTTP/2 has
//!   none), or sooner if admission evicts the connection to make room for a newer one. On
//!   HTTP/1.1, each later request head on a kept-alive connection must also arrive within it
//!   (hyper's header read timeout, started when the previous response is done).
//! - A connection with no request in progress for `idle_timeout` is shut down gracefully
//!   (HTTP/2: `GOAWAY`). A request is in progress from its head to the end of its response's
//!   body: a Server-Sent Events stream is in progress for as long as it is open.
//! - HTTP/2: at most `http2_max_concurrent_streams` streams per connection, keep-alive pings
//!   every `http2_keep_alive` (a peer that does not answer one within as long is dropped).
//! - A failing `accept` (out of descriptors, usually) is counted, logged at most once per
//!   [`WARN_EVERY`](crate::admission::WARN_EVERY), and followed by a pause that doubles from
//!   5 ms up to 1 s while failures last, instead of a spin.
//!
//! On stop, the listener closes, connections still in their handshake are dropped, the others
//! finish the request in progress and close; `serve` returns once all are gone or after the
//! grace.

use crate::admission::{Admission, Stage, Ticket};
use crate::settings::HttpLimits;
use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::body::{Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

/// The first pause after a failing `accept`.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between two `accept`s while they fail.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One served connection, as hyper drives it: HTTP/1.1 or HTTP/2 (told apart by the
/// preface), or HTTP/1.1 only.
enum Connection {
    Auto(Pin<Box<auto::UpgradeableConnection<'static, TokioIo<Admitted>, Counted, TokioExecutor>>>),
    Http1(Pin<Box<http1::UpgradeableConnection<TokioIo<Admitted>, Counted>>>),
}

impl Connection {
    /// Finish the requests in progress, take no new one, then close (HTTP/2: `GOAWAY`).
    fn graceful_shutdown(&mut self) {
        match self {
            Connection::Auto(c) => c.as_mut().graceful_shutdown(),
            Connection::Http1(c) => c.as_mut().graceful_shutdown(),
        }
    }
}

impl Future for Connection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // How it ended (a peer that went away, a malformed request) changes nothing here.
        match self.get_mut() {
            Connection::Auto(c) => c.as_mut().poll(cx).map(drop),
            Connection::Http1(c) => c.as_mut().poll(cx).map(drop),
        }
    }
}

/// hyper's connection builders, configured with the limits' timers and HTTP/2 bounds.
enum Protocols {
    /// HTTP/1.1 and HTTP/2.
    Both(auto::Builder<TokioExecutor>),
    /// HTTP/1.1 only (hyper-util's `http1_only` does not apply to upgradable connections).
    Http1(http1::Builder),
}

impl Protocols {
    fn new(limits: &HttpLimits) -> Self {
        if !limits.http2 {
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.handshake_timeout);
            return Protocols::Http1(http);
        }
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.handshake_timeout);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .keep_alive_interval(limits.http2_keep_alive)
            .keep_alive_timeout(limits.http2_keep_alive);
        Protocols::Both(http)
    }

    fn serve(&self, io: TokioIo<Admitted>, service: Counted) -> Connection {
        match self {
            Protocols::Both(http) => Connection::Auto(Box::pin(
                http.serve_connection_with_upgrades(io, service)
                    .into_owned(),
            )),
            Protocols::Http1(http) => {
                Connection::Http1(Box::pin(http.serve_connection(io, service).with_upgrades()))
            }
        }
    }
}

/// Accept connections on `listener` and serve `app` on each until `stopped`, then let
/// requests in progress finish for at most `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    admission: Arc<Admission>,
    limits: HttpLimits,
    stopped: oneshot::Receiver<()>,
    grace: Duration,
) -> io::Result<()> {
    let http = Protocols::new(&limits);
    let (stop, stopping) = watch::channel(());
    let mut backoff = BACKOFF_MIN;
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = BACKOFF_MIN;
                accepted
            }
            // The peer gave up before we took it: nothing wrong with the listener.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                admission.accept_failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut stopped => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        // Refused: dropping the stream closes it at once.
        let Ok(ticket) = admission.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ticket = Arc::new(ticket);
        let activity = Arc::new(Activity::new(ticket.clone()));
        let service = Counted {
            app: app.clone(),
            activity: activity.clone(),
        };
        let io = TokioIo::new(Admitted {
            stream,
            _ticket: ticket,
        });
        let connection = http.serve(io, service);
        tokio::spawn(drive(
            connection,
            activity,
            limits.clone(),
            admission.clone(),
            stopping.clone(),
        ));
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(());
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        tracing::warn!("HTTP requests still in flight after the grace period");
    }
    Ok(())
}

/// Errors of one connection that `accept` reports, rather than of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Serve one connection under the deadlines.
async fn drive(
    mut connection: Connection,
    activity: Arc<Activity>,
    limits: HttpLimits,
    admission: Arc<Admission>,
    mut stopping: watch::Receiver<()>,
) {
    // Until the first complete request head. Dropping the connection closes the socket.
    let established = tokio::select! {
        _ = &mut connection => return,
        _ = activity.first_request() => true,
        // Made room for a newer connection, unless its request arrived meanwhile.
        _ = activity.ticket.evicted() => activity.requested.load(Ordering::Acquire),
        _ = tokio::time::sleep(limits.handshake_timeout) => {
            admission.timed_out(Stage::Handshake);
            return;
        }
        _ = stopping.changed() => return,
    };
    if !established {
        return;
    }
    // While requests keep coming.
    tokio::select! {
        _ = &mut connection => return,
        _ = activity.idle_for(limits.idle_timeout) => admission.timed_out(Stage::Idle),
        _ = stopping.changed() => {}
    }
    connection.graceful_shutdown();
    // What is in progress is bounded by the API's request timeout.
    let _ = tokio::time::timeout(limits.request_timeout, connection).await;
}

/// A client socket with its place in the admission budgets, given back when it is closed
/// (after an upgrade, when the WebSocket is).
#[derive(Debug)]
pub(crate) struct Admitted {
    stream: TcpStream,
    _ticket: Arc<Ticket>,
}

impl AsyncRead for Admitted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The requests of one connection: whether one came, how many are in progress, since when
/// none is.
#[derive(Debug)]
struct Activity {
    ticket: Arc<Ticket>,
    requested: AtomicBool,
    /// Requests in progress, and when the last one ended.
    busy: Mutex<(usize, Instant)>,
    changed: Notify,
}

impl Activity {
    fn new(ticket: Arc<Ticket>) -> Self {
        Activity {
            ticket,
            requested: AtomicBool::new(false),
            busy: Mutex::new((0, Instant::now())),
            changed: Notify::new(),
        }
    }

    /// A request head arrived: the connection is past its handshake, and busy until the
    /// returned guard is dropped.
    fn begin(self: &Arc<Self>) -> Busy {
        self.ticket.established();
        self.requested.store(true, Ordering::Release);
        self.busy.lock().expect("not poisoned").0 += 1;
        self.changed.notify_one();
        Busy(self.clone())
    }

    /// Resolves once a request head arrived.
    async fn first_request(&self) {
        while !self.requested.load(Ordering::Acquire) {
            self.changed.notified().await;
        }
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let (in_progress, since) = *self.busy.lock().expect("not poisoned");
            if in_progress > 0 {
                self.changed.notified().await;
                continue;
            }
            let deadline = since + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.changed.notified() => {}
            }
        }
    }
}

/// A request in progress; its end is noted when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().expect("not poisoned");
        busy.0 -= 1;
        busy.1 = Instant::now();
        drop(busy);
        self.0.changed.notify_one();
    }
}

/// The application, noting each request of the connection in its [`Activity`].
#[derive(Clone)]
pub(crate) struct Counted {
    app: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Counted {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await;
            Ok(response?.map(|body| Body::new(InProgress { body, _busy: busy })))
        })
    }
}

/// A response body that keeps its request in progress until it is written (or dropped): a
/// Server-Sent Events stream is a request in progress for as long as it is open, never an idle
/// connection.
struct InProgress {
    body: Body,
    _busy: Busy,
}

impl HttpBody for InProgress {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
