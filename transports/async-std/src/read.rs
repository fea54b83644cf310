//! [`ReadOnDemand`]: a `futures-io` byte stream whose reads go through a chunk held only while
//! it has bytes the WebSocket layer has not taken (`switchboard_transport::ReadChunks`), so
//! that an idle connection holds no read buffer. Writes pass through unchanged.

use futures_io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use switchboard_transport::ReadChunks;

/// `IO` read a chunk of [`READ_CHUNK_BYTES`](switchboard_transport::READ_CHUNK_BYTES) at a
/// time into a buffer given back once its bytes are taken: the socket under every WebSocket
/// this transport upgrades ([`Handle::serve`](crate::Handle::serve),
/// [`Handle::accept`](crate::Handle::accept)).
#[derive(Debug)]
pub struct ReadOnDemand<IO>(ReadChunks<IO>);

impl<IO> ReadOnDemand<IO> {
    /// Read `io` through chunks held only while they have unread bytes.
    pub fn new(io: IO) -> Self {
        Self(ReadChunks::new(io))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ReadOnDemand<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let chunks = &mut self.get_mut().0;
        chunks.poll_read(buf, |io, chunk| Pin::new(io).poll_read(cx, chunk))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ReadOnDemand<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().0.get_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().0.get_mut()).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.get_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.get_mut()).poll_close(cx)
    }
}
