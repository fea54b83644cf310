//! The Server-Sent Events transport as the server runs it: an axum router serving `GET /sse`
//! and `POST /sse/{conn}` with [`switchboard_tokio::axum::sse`] and
//! [`switchboard_tokio::axum::sse_post`], driven by a real HTTP client ([`SseClient`]) that
//! reads the event stream and posts its frames. A resuming client passes its position as
//! `Last-Event-ID`, as a reconnecting `EventSource` does.
//!
//! The cases it skips are named in `tests/suite.rs`, with why they do not apply: they
//! send WebSocket control or binary frames, which HTTP has no place for, or rely on a client
//! that stops answering pings, which an event stream's client never answers itself.

use crate::authenticate;
use crate::network::{Network, OnTokioRouter, Setup};
use crate::{Client, Connect, Received, Transport};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::future::Future;
use std::time::Duration;
use switchboard::{AgentUpdate, Audience, Config, Delivery, Message, PublishError};
use switchboard_testing::{guard, post, SseClient};
use switchboard_tokio::axum::{last_event_position, sse, sse_post};
use switchboard_tokio::{Handle, Request, SseConnections};

/// The Server-Sent Events routes, on the tokio transport behind an axum router.
#[derive(Debug)]
pub enum OnSseRoutes {}

impl OnTokioRouter for OnSseRoutes {
    const NAME: &'static str = "sse";

    fn serve(handle: Handle, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/sse", axum::routing::get(events))
            .route("/sse/{conn}", axum::routing::post(frames))
            .with_state((handle, SseConnections::new()));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
}

/// The user the suite's authentication finds in `uri`'s query, if any.
fn authenticated(uri: Uri) -> Option<switchboard::Open> {
    let request = Request::builder().uri(uri).body(()).ok()?;
    authenticate(&request).ok()
}

/// `GET /sse`: the suite's authentication, the position of `Last-Event-ID`, the stream.
async fn events(
    State((handle, connections)): State<(Handle, SseConnections)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(mut open) = authenticated(uri) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match last_event_position(&headers) {
        Ok(position) => open.resume = position,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    sse(&handle, &connections, open)
}

/// `POST /sse/{conn}`: the suite's authentication, then the frames.
async fn frames(
    State((handle, connections)): State<(Handle, SseConnections)>,
    Path(conn): Path<String>,
    uri: Uri,
    body: Body,
) -> Response {
    let Some(open) = authenticated(uri) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    sse_post(&handle, &connections, open.user.as_str(), &conn, body).await
}

/// The switchboard behind the Server-Sent Events routes, with real HTTP clients.
#[derive(Debug)]
pub struct Sse(Network<OnSseRoutes>);

impl Transport for Sse {
    const NAME: &'static str = "sse";
    type Client = SseConnection;

    fn block_on<F: Future>(case: F) -> F::Output {
        OnSseRoutes::block_on(case)
    }

    async fn start(config: Config) -> Self {
        Sse(Network::start(config).await)
    }

    async fn connect(&self, connect: Connect) -> SseConnection {
        let credential = format!("user={}", connect.user);
        SseConnection::open(self.0.addr, &credential, connect).await
    }

    async fn publish(&self, to: Audience, message: Message) -> Result<Delivery, PublishError> {
        self.0.publish(to, message).await
    }

    async fn agent_update(
        &self,
        user: &str,
        update: AgentUpdate,
    ) -> Result<Delivery, PublishError> {
        self.0.agent_update(user, update).await
    }

    async fn advance(&self, by: Duration) {
        self.0.advance(by).await;
    }

    async fn shutdown(&self) {
        self.0.shutdown().await;
    }
}

/// One Server-Sent Events connection of the suite: its stream, and where it posts.
pub struct SseConnection {
    client: SseClient,
    auth: String,
    /// `welcome.conn`, once read.
    conn: Option<String>,
}

impl SseConnection {
    /// Open the stream at `GET /sse` of the server at `addr` as `connect` says, identified by
    /// `credential` (see [`Connect::query`]), which its posts carry as well; the position to
    /// resume from goes in `Last-Event-ID`, as a reconnecting `EventSource` sends it.
    pub async fn open(addr: std::net::SocketAddr, credential: &str, connect: Connect) -> Self {
        let position = connect.resume.map(|p| p.to_string());
        let headers: Vec<(&str, &str)> = match &position {
            Some(position) => vec![("last-event-id", position)],
            None => Vec::new(),
        };
        let small_buffers = connect.small_buffers;
        let auth = Connect {
            resume: None,
            ..connect
        }
        .query(credential);
        let client = SseClient::open(addr, &auth, &headers, small_buffers)
            .await
            .expect("the stream is answered");
        SseConnection {
            client,
            auth,
            conn: None,
        }
    }

    async fn post(&mut self, body: Vec<u8>) {
        let conn = self.conn.as_deref().expect("a frame sent after welcome");
        // Refused posts (to a connection closed meanwhile, say) are what the case checks on
        // the stream, as a WebSocket client's writes to a closing socket.
        let _ = post(self.client_addr(), conn, &self.auth, body.into()).await;
    }

    fn client_addr(&self) -> std::net::SocketAddr {
        self.client.addr()
    }
}

/// Panics for what an HTTP client cannot send (the cases doing it are not listed for SSE).
fn not_over_http(what: &str) -> ! {
    panic!("{what} cannot be sent over HTTP: this case does not apply to Server-Sent Events")
}

impl Client for SseConnection {
    async fn send(&mut self, text: &str) {
        self.post(text.as_bytes().to_vec()).await;
    }

    async fn send_raw_text(&mut self, bytes: &[u8]) {
        self.post(bytes.to_vec()).await;
    }

    async fn send_binary(&mut self, _: &[u8]) {
        not_over_http("a binary frame")
    }

    async fn send_ping(&mut self, _: &[u8]) {
        not_over_http("a WebSocket ping")
    }

    async fn send_unsolicited_pong(&mut self, _: &[u8]) {
        not_over_http("a WebSocket pong")
    }

    async fn recv(&mut self) -> Received {
        let received = self.client.read().await;
        if let Received::Frame(frame) = &received {
            if frame["type"] == "welcome" {
                self.conn = frame["conn"].as_str().map(str::to_owned);
            }
        }
        received
    }

    /// Not reading is all it takes; the small buffers make it felt.
    fn pause(&mut self) {}

    fn silence(&mut self) {
        not_over_http("silence (the keep-alives are answered by the server's HTTP layer)")
    }

    async fn idle(&mut self, duration: Duration) {
        self.client.idle(duration).await;
    }

    /// Drop the stream, then wait until the server has forgotten the connection: its posts
    /// are answered 404 once the connection is closed in the hub.
    async fn close(mut self) {
        self.client.drop_stream();
        let conn = self.conn.clone().expect("a connection that was welcomed");
        let addr = self.client_addr();
        guard("the server to forget the connection", async {
            loop {
                let probe = post(addr, &conn, &self.auth, "{\"type\":\"ping\"}".into()).await;
                if probe.status == 404 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}
