//! [`Wire`]: the `futures-io` byte stream under every WebSocket this transport upgrades. Its
//! reads go through a chunk held only while it has bytes the WebSocket layer has not taken, so
//! that an idle connection holds no read buffer; its writes go through the connection's
//! `WriteQueue`, where the driver puts its frames itself (`switchboard_transport::SocketIo`
//! holds both; this is futures-io's read and write traits over it).

use futures_io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use switchboard_transport::SocketIo;

/// `IO` read a chunk of [`READ_CHUNK_BYTES`](switchboard_transport::READ_CHUNK_BYTES) at a
/// time into a buffer given back once its bytes are taken, and written through a
/// [`WriteQueue`](switchboard_transport::WriteQueue) ([`SocketIo`] has both): the socket
/// under every WebSocket this transport upgrades ([`Handle::serve`](crate::Handle::serve),
/// [`Handle::accept`](crate::Handle::accept)).
#[derive(Debug)]
pub struct Wire<IO>(pub SocketIo<IO>);

impl<IO: AsyncRead + Unpin> AsyncRead for Wire<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        (self.get_mut().0).poll_read(buf, |io, chunk| Pin::new(io).poll_read(cx, chunk))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Wire<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        (self.get_mut().0).poll_write(buf, |io, slices| write(io, cx, slices))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = &mut self.get_mut().0;
        ready!(wire.poll_write_queued(|io, slices| write(io, cx, slices)))?;
        Pin::new(wire.get_mut()).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(self.get_mut().0.get_mut()).poll_close(cx)
    }
}

/// One write of `slices` to `io`: a plain write for one slice (a `send`, cheaper in the kernel
/// than a vectored write), else a vectored one.
fn write<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    cx: &mut Context<'_>,
    slices: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    match slices {
        [one] => Pin::new(io).poll_write(cx, one),
        _ => Pin::new(io).poll_write_vectored(cx, slices),
    }
}
