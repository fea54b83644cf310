//! Reads of a connection's socket into a chunk held only while it has bytes the WebSocket layer
//! has not taken yet ([`ReadChunks`]), so that an idle connection holds no read buffer: the read
//! half of [`SocketIo`](crate::SocketIo), under each transport's `Wire` (its write half is
//! `write_queue.rs`).
//!
//! The WebSocket layer is given a small read buffer ([`READ_BUFFER_BYTES`]) and reads it full
//! from the chunk; the socket itself is read [`READ_CHUNK_BYTES`] at a time, as it was when the
//! WebSocket layer's own buffer was that large, so a flooding peer leaves as few unread bytes in
//! the kernel when its socket is dropped after the close (see [`READ_CHUNK_BYTES`]).

use std::cell::RefCell;
use std::io;
use std::task::Poll;

/// How much of the socket is read at once, into a chunk taken for the read and given back as
/// soon as the WebSocket layer has taken every byte of it. Not smaller: a flooding peer's
/// frames must mostly be read out of the kernel by the time its socket is dropped after the
/// close, or the kernel resets the connection and the peer may never read its close code (1 KiB
/// reads lost the 4029 of a ping flood).
pub const READ_CHUNK_BYTES: usize = 4 * 1024;

/// The WebSocket layer's own read buffer of each connection (tungstenite's `read_buffer_size`),
/// held for the socket's life: large enough for a typical client frame (a `join`, a short
/// `publish`) in one piece, small enough that idle connections do not pay for it. A larger
/// frame grows it to the frame's size (the library keeps that capacity afterwards). The socket
/// is read in [`READ_CHUNK_BYTES`] under it.
pub const READ_BUFFER_BYTES: usize = 256;

/// Chunks kept per thread for the next read, so that a read finding nothing (`Pending`) and a
/// connection taking a chunk right after another gave one back allocate nothing: at most
/// 4 × 4 KiB per runtime thread.
const POOLED_CHUNKS: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A chunk from this thread's pool, or a new one.
fn take_chunk() -> Box<[u8]> {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; READ_CHUNK_BYTES].into_boxed_slice())
}

/// Give `chunk` back to this thread's pool, or free it if the pool is full.
fn give_back(chunk: Box<[u8]>) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED_CHUNKS {
            pool.push(chunk);
        }
    });
}

/// One connection's socket `IO` and the bytes of its last read that the WebSocket layer has
/// not taken yet, in a chunk held only until it has taken them all: the read half of
/// [`SocketIo`](crate::SocketIo), whose runtime's `poll_read` (each transport's `Wire`) calls
/// [`ReadChunks::poll_read`].
#[derive(Debug)]
pub struct ReadChunks<IO> {
    io: IO,
    /// The chunk with unread bytes, if any.
    chunk: Option<Box<[u8]>>,
    /// Where the bytes not taken yet start in `chunk`.
    start: usize,
    /// Where they end.
    end: usize,
}

impl<IO> ReadChunks<IO> {
    /// `io`, nothing read yet.
    pub fn new(io: IO) -> Self {
        Self {
            io,
            chunk: None,
            start: 0,
            end: 0,
        }
    }

    /// The socket, to write to.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The socket.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Fill `out` with bytes read before, or, if none are left, with a new read of at most
    /// [`READ_CHUNK_BYTES`] that `read` makes from the socket into the slice it is given (the
    /// socket's own `poll_read`). A read that finds nothing or fails holds no chunk afterwards.
    pub fn poll_read(
        &mut self,
        out: &mut [u8],
        read: impl FnOnce(&mut IO, &mut [u8]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let chunk = match self.chunk.take() {
            Some(chunk) => chunk,
            None => {
                let mut chunk = take_chunk();
                match read(&mut self.io, &mut chunk) {
                    Poll::Ready(Ok(read)) if read > 0 => {
                        (self.start, self.end) = (0, read);
                        chunk
                    }
                    // Nothing to read, the end of the stream or an error: keep no chunk.
                    polled => {
                        give_back(chunk);
                        return polled;
                    }
                }
            }
        };
        let taken = out.len().min(self.end - self.start);
        out[..taken].copy_from_slice(&chunk[self.start..self.start + taken]);
        self.start += taken;
        if self.start < self.end {
            self.chunk = Some(chunk);
        } else {
            give_back(chunk);
        }
        Poll::Ready(Ok(taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket's read: from `bytes` past `at`, then nothing (`Pending`).
    fn read(bytes: &[u8], at: &mut usize, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if *at == bytes.len() {
            return Poll::Pending;
        }
        let n = out.len().min(bytes.len() - *at);
        out[..n].copy_from_slice(&bytes[*at..*at + n]);
        *at += n;
        Poll::Ready(Ok(n))
    }

    #[test]
    fn a_chunk_is_read_whole_handed_out_in_pieces_and_released_once_taken() {
        let bytes: Vec<u8> = (0..READ_CHUNK_BYTES + 100).map(|i| i as u8).collect();
        let mut chunks = ReadChunks::new(0);
        let mut got = Vec::new();
        let mut out = [0; 300];
        while let Poll::Ready(n) = chunks.poll_read(&mut out, |at, out| read(&bytes, at, out)) {
            let n = n.expect("read");
            got.extend_from_slice(&out[..n]);
            if got.len() == READ_CHUNK_BYTES || got.len() == bytes.len() {
                // Each read of the socket filled what it was given, and all of it was handed out.
                assert!(chunks.chunk.is_none());
            } else {
                assert!(chunks.chunk.is_some(), "bytes left after {}", got.len());
            }
        }
        assert_eq!(got, bytes);
        assert!(chunks.chunk.is_none(), "a pending read holds no chunk");
    }

    #[test]
    fn the_end_of_the_stream_and_errors_hold_no_chunk() {
        let mut chunks = ReadChunks::new(());
        let ended = chunks.poll_read(&mut [0; 8], |_, _| Poll::Ready(Ok(0)));
        assert!(matches!(ended, Poll::Ready(Ok(0))));
        assert!(chunks.chunk.is_none());
        let failed = chunks.poll_read(&mut [0; 8], |_, _| {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        });
        assert!(matches!(failed, Poll::Ready(Err(_))));
        assert!(chunks.chunk.is_none());
    }
}
