//! async-io as a [`Runtime`] (with the executor of your choice), a [`Listen`]er (async-net's
//! `TcpListener`) and an [`Upgrade`] (async-tungstenite's server handshake). None of it
//! depends on one executor: timers and sockets are async-io's, which async-std and smol share.

use crate::Wire;
use async_net::{TcpListener, TcpStream};
use async_tungstenite::WebSocketStream;
use futures_io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Instant;
use switchboard_transport::{
    tungstenite, Adapter, HandshakeCallback, Listen, Runtime, SocketIo, Tungstenite, Upgrade,
};

/// A task handed to an executor.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// async-io timers and sockets, with tasks spawned by `spawn` on an executor: async-std's
/// ([`AsyncIo::async_std`]), smol's ([`AsyncIo::smol`]) or any other ([`AsyncIo::new`]).
///
/// The default is async-std's executor when the `async-std` feature is on, else smol's.
#[derive(Debug, Clone, Copy)]
pub struct AsyncIo {
    spawn: fn(Task),
}

impl AsyncIo {
    /// Spawn tasks with `spawn`, which must run them to completion in the background.
    pub fn new(spawn: fn(Task)) -> Self {
        Self { spawn }
    }

    /// Spawn on async-std's executor (`async_std::task::spawn`).
    #[cfg(feature = "async-std")]
    pub fn async_std() -> Self {
        Self::new(|task| drop(async_std::task::spawn(task)))
    }

    /// Spawn on smol's global executor (`smol::spawn`).
    #[cfg(feature = "smol")]
    pub fn smol() -> Self {
        Self::new(|task| smol::spawn(task).detach())
    }
}

#[cfg(any(feature = "async-std", feature = "smol"))]
impl Default for AsyncIo {
    fn default() -> Self {
        #[cfg(feature = "async-std")]
        let runtime = Self::async_std();
        #[cfg(not(feature = "async-std"))]
        let runtime = Self::smol();
        runtime
    }
}

impl Runtime for AsyncIo {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        (self.spawn)(Box::pin(task));
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        let timer = async_io::Timer::at(deadline);
        async move {
            timer.await;
        }
    }
}

impl Listen for AsyncIo {
    type Listener = TcpListener;
    type Stream = TcpStream;

    async fn accept(&self, listener: &TcpListener) -> io::Result<TcpStream> {
        let (tcp, _peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

impl<IO> Upgrade<IO> for AsyncIo
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Socket = Adapter<WebSocketStream<Wire<IO>>, Tungstenite>;

    async fn upgrade(
        &self,
        io: IO,
        callback: HandshakeCallback<'_>,
    ) -> Result<Self::Socket, tungstenite::Error> {
        let config = callback.config();
        let io = Wire(SocketIo::new(io, config.max_write_buffer_size));
        let queue = io.0.queue();
        async_tungstenite::accept_hdr_async_with_config(io, callback, Some(config))
            .await
            .map(|socket| Adapter::with_write_queue(socket, queue))
    }
}
