//! tokio as a [`Runtime`], a [`Listen`]er (tokio's `TcpListener`) and an [`Upgrade`]
//! (tokio-tungstenite's server handshake).

use crate::Wire;
use std::future::Future;
use std::io;
use std::time::Instant;
use switchboard_transport::{
    tungstenite, Adapter, HandshakeCallback, Listen, Runtime, SocketIo, Tungstenite, Upgrade,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;

/// The tokio runtime the calling task runs on: tasks go to `tokio::spawn`, sleeps to
/// `tokio::time`. Starting a [`Builder`](crate::Builder) and serving must happen within a tokio
/// runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokio;

impl Runtime for Tokio {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(task);
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep_until(deadline.into())
    }
}

impl Listen for Tokio {
    type Listener = TcpListener;
    type Stream = TcpStream;

    async fn accept(&self, listener: &TcpListener) -> io::Result<TcpStream> {
        let (tcp, _peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

impl<IO> Upgrade<IO> for Tokio
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
        tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(config))
            .await
            .map(|socket| Adapter::with_write_queue(socket, queue))
    }
}
