//! The network transports as [`Transport`]s: a switchboard (two shards) serving a listener on
//! 127.0.0.1, and real WebSocket clients ([`WsClient`], async-tungstenite over async-net,
//! which run under any runtime) connecting to it. One generic adapter, [`Network`], serves
//! every runtime; a [`Setup`] says how to run one ([`OnTokioRouter`] for a router on tokio).

use crate::{authenticate, Client, Connect, Received, Transport, WsClient};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;
use switchboard::{
    AgentUpdate, Audience, Config, Delivery, Message, PublishError, UnknownConnection,
};
use switchboard_async_std::AsyncIo;
use switchboard_testing::small_listener;
use switchboard_tokio::Tokio;
use switchboard_transport::{Builder, Error, Handle, Listen, Runtime, Upgrade};

/// How to run the suite on one runtime.
pub trait Setup: 'static {
    /// The name printed with a failing case.
    const NAME: &'static str;
    /// The transport's runtime.
    type Runtime: Listen + Upgrade<<Self::Runtime as Listen>::Stream>;

    /// The runtime value the switchboard starts on.
    fn runtime() -> Self::Runtime;

    /// Run a case to completion under this runtime.
    fn block_on<F: Future>(case: F) -> F::Output;

    /// The runtime's listener over a bound, listening, non-blocking std listener.
    fn listener(listener: std::net::TcpListener) -> <Self::Runtime as Listen>::Listener;

    /// Serve WebSocket upgrades on `listener` with `handle`'s switchboard, authenticating as
    /// the suite does (`?user=<id>`, optionally `&thread=<id>`): the transport's own server,
    /// unless the setup embeds the switchboard in another one.
    fn serve(
        runtime: &Self::Runtime,
        handle: Handle<Self::Runtime>,
        listener: std::net::TcpListener,
    ) {
        runtime.spawn(handle.serve(Self::listener(listener), authenticate));
    }
}

/// How long a failed case's tokio runtime may take to stop its tasks before they are left
/// behind.
const FAILED_CASE_SHUTDOWN: Duration = Duration::from_secs(5);

/// The tokio transport, on a two-thread tokio runtime per case.
#[derive(Debug)]
pub enum OnTokio {}

impl Setup for OnTokio {
    const NAME: &'static str = "tokio";
    type Runtime = Tokio;

    fn runtime() -> Tokio {
        Tokio
    }

    fn block_on<F: Future>(case: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(case)));
        if outcome.is_err() {
            // A failed case may leave a server task that never yields (a writer looping on a
            // broken condition): dropping the runtime waits for it forever, turning the
            // failure into a hang. Leave such a task behind and report the failure.
            runtime.shutdown_timeout(FAILED_CASE_SHUTDOWN);
        }
        outcome.unwrap_or_else(|failure| panic::resume_unwind(failure))
    }

    fn listener(listener: std::net::TcpListener) -> tokio::net::TcpListener {
        tokio::net::TcpListener::from_std(listener).expect("a tokio listener")
    }
}

/// A setup that embeds the switchboard in a router of its own on the tokio transport (as the
/// server does): everything but serving is [`OnTokio`]'s.
pub trait OnTokioRouter: 'static {
    /// The name printed with a failing case.
    const NAME: &'static str;

    /// Spawn the router serving `handle`'s switchboard on `listener`, authenticating as the
    /// suite does.
    fn serve(handle: switchboard_tokio::Handle, listener: tokio::net::TcpListener);
}

impl<R: OnTokioRouter> Setup for R {
    const NAME: &'static str = R::NAME;
    type Runtime = Tokio;

    fn runtime() -> Tokio {
        OnTokio::runtime()
    }

    fn block_on<F: Future>(case: F) -> F::Output {
        OnTokio::block_on(case)
    }

    fn listener(listener: std::net::TcpListener) -> tokio::net::TcpListener {
        OnTokio::listener(listener)
    }

    fn serve(_: &Tokio, handle: Handle<Tokio>, listener: std::net::TcpListener) {
        R::serve(handle, Self::listener(listener));
    }
}

/// The async-std transport under async-std.
#[derive(Debug)]
pub enum OnAsyncStd {}

impl Setup for OnAsyncStd {
    const NAME: &'static str = "async-std";
    type Runtime = AsyncIo;

    fn runtime() -> AsyncIo {
        AsyncIo::async_std()
    }

    fn block_on<F: Future>(case: F) -> F::Output {
        async_std::task::block_on(case)
    }

    fn listener(listener: std::net::TcpListener) -> async_net::TcpListener {
        async_net::TcpListener::try_from(listener).expect("an async-net listener")
    }
}

/// The async-std transport under smol.
#[derive(Debug)]
pub enum OnSmol {}

impl Setup for OnSmol {
    const NAME: &'static str = "smol";
    type Runtime = AsyncIo;

    fn runtime() -> AsyncIo {
        AsyncIo::smol()
    }

    fn block_on<F: Future>(case: F) -> F::Output {
        smol::block_on(case)
    }

    fn listener(listener: std::net::TcpListener) -> async_net::TcpListener {
        OnAsyncStd::listener(listener)
    }
}

/// A network transport serving on 127.0.0.1, as the suite drives it.
#[derive(Debug)]
pub struct Network<S: Setup> {
    handle: Handle<S::Runtime>,
    pub(crate) addr: SocketAddr,
}

/// A publish through a transport's [`Handle`], answered as a case expects: the delivery, or
/// the hub's refusal (an unknown connection among them); any other error fails the case. For
/// every transport of the suite that publishes through a [`Handle`], in this crate or outside.
pub async fn publish_through<R: Runtime>(
    handle: &Handle<R>,
    to: Audience,
    message: Message,
) -> Result<Delivery, PublishError> {
    (handle.publish_except(to.target, to.except, message).await).map_err(publish_error)
}

/// An agent-run event through a transport's [`Handle`], answered as [`publish_through`].
pub async fn agent_update_through<R: Runtime>(
    handle: &Handle<R>,
    user: &str,
    update: AgentUpdate,
) -> Result<Delivery, PublishError> {
    (handle.send_agent_update(user, update).await).map_err(publish_error)
}

fn publish_error(e: Error) -> PublishError {
    match e {
        Error::Publish(e) => e,
        Error::UnknownConnection(conn) => PublishError::UnknownConnection(UnknownConnection(conn)),
        e => panic!("the switchboard failed a publish: {e}"),
    }
}

impl<S: Setup> Transport for Network<S> {
    const NAME: &'static str = S::NAME;
    type Client = WsClient;

    fn block_on<F: Future>(case: F) -> F::Output {
        S::block_on(case)
    }

    async fn start(config: Config) -> Self {
        let listener = small_listener();
        let addr = listener.local_addr().expect("bound");
        let runtime = S::runtime();
        // The default `close_timeout` (5 s): a client the hub closed while it was not reading
        // finds the close frame when it reads again, as long as the server waits for its
        // answer (after that the socket is dropped and unread data may be lost with it).
        let (handle, _events) = Builder::on(runtime.clone(), config)
            .shards(2)
            .shutdown_grace(Duration::from_secs(5))
            .start();
        S::serve(&runtime, handle.clone(), listener);
        Self { handle, addr }
    }

    async fn connect(&self, connect: Connect) -> WsClient {
        let query = connect.query(&format!("user={}", connect.user));
        WsClient::open(self.addr, &query, connect.small_buffers)
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
        async_io::Timer::after(by).await;
    }

    async fn shutdown(&self) {
        self.handle.shutdown().await;
    }
}

impl Client for WsClient {
    async fn send(&mut self, text: &str) {
        WsClient::send(self, text).await;
    }

    async fn send_raw_text(&mut self, bytes: &[u8]) {
        WsClient::send_raw_text(self, bytes).await;
    }

    async fn send_binary(&mut self, bytes: &[u8]) {
        WsClient::send_binary(self, bytes).await;
    }

    async fn send_ping(&mut self, payload: &[u8]) {
        WsClient::send_ping(self, payload).await;
    }

    /// The server's pings carry 8 bytes: any other payload answers none of them.
    async fn send_unsolicited_pong(&mut self, payload: &[u8]) {
        assert_ne!(payload.len(), 8, "a payload that cannot echo a server ping");
        WsClient::send_pong(self, payload).await;
    }

    async fn recv(&mut self) -> Received {
        self.read().await
    }

    /// Not reading is all it takes; the small buffers make it felt.
    fn pause(&mut self) {}

    /// Not reading is all it takes: pings are answered while reading.
    fn silence(&mut self) {}

    async fn idle(&mut self, duration: Duration) {
        WsClient::idle(self, duration).await;
    }

    async fn close(self) {
        WsClient::close(self).await;
    }
}
