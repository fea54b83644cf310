//! [`SocketIo`]: a connection's byte stream as the WebSocket layer sees it — read through
//! [`ReadChunks`] (a chunk held only while it has unread bytes), written through the
//! connection's [`WriteQueue`] — with everything but the runtime's read and write traits, which
//! each transport's `Wire` implements over it in a line per method.

use crate::read_chunks::ReadChunks;
use crate::write_queue::WriteQueue;
use std::io::{self, IoSlice};
use std::task::Poll;

/// A connection's socket `IO`, read in chunks on demand and written through a [`WriteQueue`].
#[derive(Debug)]
pub struct SocketIo<IO> {
    chunks: ReadChunks<IO>,
    queue: WriteQueue,
}

impl<IO> SocketIo<IO> {
    /// `io`, nothing read yet, written through a queue of at most `write_limit` bytes.
    pub fn new(io: IO, write_limit: usize) -> Self {
        Self {
            chunks: ReadChunks::new(io),
            queue: WriteQueue::new(write_limit),
        }
    }

    /// The queue its bytes are written through, for the driver to put its frames in.
    pub fn queue(&self) -> WriteQueue {
        self.queue.clone()
    }

    /// The socket, for the runtime's flush and shutdown.
    pub fn get_mut(&mut self) -> &mut IO {
        self.chunks.get_mut()
    }

    /// Read into `out` as [`ReadChunks::poll_read`] does, `read` being the socket's own read.
    pub fn poll_read(
        &mut self,
        out: &mut [u8],
        read: impl FnOnce(&mut IO, &mut [u8]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        self.chunks.poll_read(out, read)
    }

    /// The WebSocket layer writes `buf` ([`WriteQueue::poll_write`]), `write` being the socket's
    /// own vectored write.
    pub fn poll_write(
        &mut self,
        buf: &[u8],
        mut write: impl FnMut(&mut IO, &[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let Self { chunks, queue } = self;
        queue.poll_write(buf, |slices| write(chunks.get_mut(), slices))
    }

    /// Write everything queued ([`WriteQueue::poll_flush`]) with `write`, the socket's own
    /// vectored write; the runtime's flush then flushes the socket itself.
    pub fn poll_write_queued(
        &mut self,
        mut write: impl FnMut(&mut IO, &[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        let Self { chunks, queue } = self;
        queue.poll_flush(|slices| write(chunks.get_mut(), slices))
    }
}
