//! The conformance suite (`transports/conformance`) over the production gateway: every case
//! runs against the server `switchboard serve` runs (`switchboard_server::start_on`, on a
//! listener with small socket buffers as every network transport of the suite has), with
//! settings resolved as the binary resolves them (the development preset, the test secret and
//! API key, two shards), and each client authenticates at `GET /ws` with a JWT minted for its user, as
//! an application's backend mints them. So a case passes through what a deployed client
//! passes through: the HTTP front and its admission, the origin and token checks, the
//! gateway's `thread` and `resume` parameters, axum's WebSocket, and the server's graceful
//! shutdown. The same server's Server-Sent Events routes run the cases an HTTP client can play
//! (`on_server_sse`).
//!
//! A case's hub configuration takes the place of the preset's, except for what the server's
//! own settings decide (token leeway and refresh, presence, application frame types, cluster):
//! cases tighten budgets and heartbeats the settings file does not reach at that grain.
//! The application's side (publish, agent events) goes through the server's switchboard handle,
//! as it does on every other transport of the suite.

mod support;

use std::sync::Mutex;
use std::time::Duration;
use support::TestServer;
use switchboard::{AgentUpdate, Audience, Config, Delivery, Message, PublishError};
use switchboard_conformance::{
    agent_update_through, publish_through, suite, Connect, OnTokio, Setup, SseConnection,
    Transport, WsClient,
};
use switchboard_server::settings::Settings;
use switchboard_server::Running;
use switchboard_testing::small_listener;
use switchboard_tokio::Handle;

/// The production server, as the suite drives it.
pub struct Gateway {
    /// Where clients connect, and their tokens.
    server: TestServer,
    /// The server's switchboard, the application's side of the cases.
    handle: Handle,
    /// The running server, until the case shuts it down.
    running: Mutex<Option<Running>>,
}

/// The server's settings for a case's hub `config`.
fn settings(config: Config) -> Settings {
    let mut settings = support::settings("");
    let resolved = settings.hub;
    settings.hub = Config {
        tokens: resolved.tokens,
        presence: resolved.presence,
        app_frame_types: resolved.app_frame_types,
        cluster: resolved.cluster,
        shared_streams: resolved.shared_streams,
        ..config
    };
    settings
}

impl Transport for Gateway {
    const NAME: &'static str = "server";
    type Client = WsClient;

    fn block_on<F: std::future::Future>(case: F) -> F::Output {
        OnTokio::block_on(case)
    }

    /// The server on a listener whose connections have small socket buffers, as every
    /// network transport of the suite has: a client that stops reading soon stops the
    /// server's writes, instead of after the megabytes the kernel would buffer.
    async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::from_std(small_listener()).expect("a listener");
        let running = switchboard_server::start_on(listener, settings(config))
            .await
            .expect("the server starts");
        Gateway {
            server: TestServer::at(running.addr),
            handle: running.handle.clone(),
            running: Mutex::new(Some(running)),
        }
    }

    /// `GET /ws?token=<a JWT for the user>`, with the case's `thread` and `resume`.
    async fn connect(&self, connect: Connect) -> WsClient {
        let token = self.server.token(&connect.user, None);
        let query = connect.query(&format!("token={token}"));
        WsClient::open(self.server.addr(), &query, connect.small_buffers)
            .await
            .expect("the handshake is accepted")
    }

    async fn publish(&self, to: Audience, message: Message) -> Result<Delivery, PublishError> {
        publish_through(&self.handle, to, message).await
    }

    async fn agent_update(
        &self,
        user: &str,
        update: AgentUpdate,
    ) -> Result<Delivery, PublishError> {
        agent_update_through(&self.handle, user, update).await
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    /// The server's own graceful shutdown (`Running::shutdown`), as on SIGTERM.
    async fn shutdown(&self) {
        let running = self.running.lock().expect("not poisoned").take();
        running
            .expect("shut down once")
            .shutdown()
            .await
            .expect("the server shuts down");
    }
}

suite!(on_server, Gateway);

/// The production gateway's Server-Sent Events routes (`GET /sse`, `POST /sse/{conn}`), each
/// client with a token of its user in the query of its stream and of its posts.
pub struct GatewaySse(Gateway);

impl Transport for GatewaySse {
    const NAME: &'static str = "server-sse";
    type Client = SseConnection;

    fn block_on<F: std::future::Future>(case: F) -> F::Output {
        Gateway::block_on(case)
    }

    async fn start(config: Config) -> Self {
        GatewaySse(Gateway::start(config).await)
    }

    async fn connect(&self, connect: Connect) -> SseConnection {
        let token = self.0.server.token(&connect.user, None);
        SseConnection::open(self.0.server.addr(), &format!("token={token}"), connect).await
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

// The cases an HTTP client cannot play, as for the Server-Sent Events transport on its own
// (`transports/conformance/tests/suite.rs` says why): binary frames, WebSocket ping and pong
// floods, and a client that stops answering pings (the server's HTTP layer answers for it).
suite!(on_server_sse, GatewaySse; except
    a_binary_frame_closes_with_1003,
    a_ping_flood_closes_with_4029,
    an_unsolicited_pong_flood_closes_with_4029,
    a_silent_client_is_closed_with_4000,
);
