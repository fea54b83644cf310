//! [`ReadOnDemand`]: a tokio byte stream whose reads go through a chunk held only while it has
//! bytes the WebSocket layer has not taken (`switchboard_transport::ReadChunks`), so that an
//! idle connection holds no read buffer. Writes pass through unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use switchboard_transport::ReadChunks;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `IO` read a chunk of [`READ_CHUNK_BYTES`](switchboard_transport::READ_CHUNK_BYTES) at a
/// time into a buffer given back once its bytes are taken: the socket under every WebSocket
/// this transport upgrades (by [`Handle::serve`](crate::Handle::serve),
/// [`Handle::accept`](crate::Handle::accept) and the axum adapter).
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
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let chunks = &mut self.get_mut().0;
        let polled = chunks.poll_read(buf.initialize_unfilled(), |io, chunk| {
            let mut chunk = ReadBuf::new(chunk);
            Pin::new(io)
                .poll_read(cx, &mut chunk)
                .map_ok(|()| chunk.filled().len())
        });
        polled.map_ok(|read| buf.advance(read))
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

    fn is_write_vectored(&self) -> bool {
        self.0.get_ref().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.get_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.get_mut()).poll_shutdown(cx)
    }
}
