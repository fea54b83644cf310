//! A connection's write queue ([`WriteQueue`]): the bytes waiting to be written to its socket,
//! in order, whoever produced them — the driver's text frames and pings, framed here, and
//! whatever the WebSocket layer writes itself (its handshake answer, pongs, close frames).
//!
//! A server frame is unmasked, so it is a short header and the payload as it is: the driver
//! puts each of a batch's frames in the queue as a header encoded here and the payload shared
//! with every other recipient (no copy), and the socket takes the whole batch in vectored
//! writes when it is flushed; a write of at most 2 KiB (a paced room's one frame) is copied
//! into one buffer on the stack instead and sent as one slice, a plain send being cheaper in
//! the kernel than a vectored write. Going through the WebSocket library instead cost, per
//! frame, a trip through its sink (a lock, a waker registration) and a copy into its own
//! buffer.
//!
//! The WebSocket layer still reads the socket, answers pings and closes, and writes through
//! the same queue (through [`SocketIo`](crate::SocketIo), each runtime's `Wire` under it,
//! which calls [`WriteQueue::poll_write`] and [`WriteQueue::poll_flush`]), so that its frames
//! and the driver's never interleave: what it writes while frames wait is queued after them,
//! whole, and what the socket takes in part is queued whole too. Once the peer closed, the
//! driver's frames are refused and the WebSocket layer's writes (its close answer) wait for the
//! queue to drain and go to the socket as it takes them: the layer does not flush after it.
//!
//! Bounded by [`write_buffer_limit`](crate::write_buffer_limit): a frame that does not fit is
//! refused with [`SocketError::write_buffer_full`] (the peer has left that much unread), and
//! the WebSocket layer's own writes wait for room.

use crate::frame::SocketError;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The longest frame header: two bytes and a 64-bit length (a server frame has no mask).
const MAX_HEADER: usize = 10;

/// The room for frames an empty queue keeps (48 bytes each): what a connection that gets a
/// frame or a few at a time needs, no more.
const KEPT_PIECES: usize = 4;

/// The most slices one vectored write is given (Linux's `IOV_MAX` is 1 024): two per frame.
const SLICES_PER_WRITE: usize = 256;

/// Bytes copied into one buffer on the stack for a write, when that is all there is to write.
const COPY_BYTES: usize = 2048;

/// Slices gathered on the stack, without an allocation: a write of up to 8 frames.
const FEW_SLICES: usize = 16;

/// The bytes waiting to be written to one connection's socket, shared by the driver (which
/// queues frames) and the socket's `Wire` (which writes them). Cloning shares the queue.
#[derive(Debug, Clone)]
pub struct WriteQueue(Arc<Mutex<Queued>>);

/// One piece of the queue: a frame's header (empty for the WebSocket layer's own bytes) and
/// its payload.
#[derive(Debug)]
struct Piece {
    header: [u8; MAX_HEADER],
    header_len: u8,
    payload: Bytes,
}

impl Piece {
    fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// The piece's bytes past the first `skip`, as at most two slices.
    fn slices(&self, skip: usize) -> [&[u8]; 2] {
        let header = &self.header[..usize::from(self.header_len)];
        if skip < header.len() {
            [&header[skip..], &self.payload]
        } else {
            [&[], &self.payload[skip - header.len()..]]
        }
    }
}

#[derive(Debug)]
struct Queued {
    pieces: VecDeque<Piece>,
    /// Bytes of the first piece already written.
    written: usize,
    /// Bytes queued and not written yet.
    bytes: usize,
    /// The most bytes queued at once.
    limit: usize,
    /// The peer closed: the driver's frames are refused (a close answer may be on its way).
    closed: bool,
}

impl WriteQueue {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Mutex::new(Queued {
            pieces: VecDeque::new(),
            written: 0,
            bytes: 0,
            limit,
            closed: false,
        })))
    }

    /// The queue; a panic elsewhere while it was held leaves it consistent (every change is a
    /// push or a pop), so a poisoned lock is taken as it is.
    fn queued(&self) -> MutexGuard<'_, Queued> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue, for the frames of one batch, about `frames` of them, to be put in it (one
    /// lock, and room made once, for the batch).
    pub(crate) fn batch(&self, frames: usize) -> Batch<'_> {
        let mut queued = self.queued();
        queued.pieces.reserve(frames);
        Batch(queued)
    }

    /// The peer closed its side: the driver's frames are refused from now on, so that none
    /// follows the close frame the WebSocket layer answers with.
    pub(crate) fn close(&self) {
        self.queued().closed = true;
    }

    /// The WebSocket layer writes `buf`, through `write` (the socket's `poll_write_vectored`).
    /// With nothing queued it goes to the socket, and what the socket does not take is queued;
    /// behind queued bytes it is queued whole, once it fits (else `Pending` until the socket
    /// took enough). Either way all of `buf` is taken or none.
    ///
    /// Once the peer closed, nothing is queued: what waits is written first, then `buf` as the
    /// socket takes it, `Pending` meanwhile. The WebSocket layer's last write is its close
    /// answer, after which it reports the connection closed without flushing, and the socket
    /// is dropped: bytes it counted as written must be in the socket by then.
    pub fn poll_write(
        &self,
        buf: &[u8],
        mut write: impl FnMut(&[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let mut queued = self.queued();
        loop {
            if queued.pieces.is_empty() {
                let taken = match write(&[IoSlice::new(buf)]) {
                    Poll::Ready(Ok(taken)) => taken,
                    other => return other,
                };
                if queued.closed {
                    return Poll::Ready(Ok(taken));
                }
                if taken < buf.len() {
                    queued.push_bytes(Bytes::copy_from_slice(&buf[taken..]));
                }
                return Poll::Ready(Ok(buf.len()));
            }
            if !queued.closed && queued.bytes + buf.len() <= queued.limit {
                queued.push_bytes(Bytes::copy_from_slice(buf));
                return Poll::Ready(Ok(buf.len()));
            }
            if let Err(e) = std::task::ready!(queued.poll_write_some(&mut write)) {
                return Poll::Ready(Err(e));
            }
        }
    }

    /// Write everything queued through `write` (the socket's `poll_write_vectored`), in as few
    /// writes as the socket takes; `Pending` while it takes no more.
    pub fn poll_flush(
        &self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        let mut queued = self.queued();
        while !queued.pieces.is_empty() {
            if let Err(e) = std::task::ready!(queued.poll_write_some(&mut write)) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The queue, held while a batch's frames are put in it ([`WriteQueue::batch`]).
pub(crate) struct Batch<'a>(MutexGuard<'a, Queued>);

impl Batch<'_> {
    /// Queue a text frame of `payload`, or refuse it if it does not fit (or the peer closed).
    pub(crate) fn push_text(&mut self, payload: Bytes) -> Result<(), SocketError> {
        self.0.push(OpCode::Data(Data::Text), payload)
    }

    /// Queue a ping of `payload`, as [`Batch::push_text`].
    pub(crate) fn push_ping(&mut self, payload: Bytes) -> Result<(), SocketError> {
        self.0.push(OpCode::Control(Control::Ping), payload)
    }
}

impl Queued {
    fn push(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SocketError> {
        if self.closed {
            return Err(SocketError::peer_closed());
        }
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let length = payload.len() as u64;
        let mut encoded = [0; MAX_HEADER];
        let header_len = header.len(length);
        if self.bytes + header_len + payload.len() > self.limit {
            return Err(SocketError::write_buffer_full(format!(
                "a frame of {} bytes does not fit beside the {} unwritten (limit {})",
                header_len + payload.len(),
                self.bytes,
                self.limit
            )));
        }
        header
            .format(length, &mut &mut encoded[..])
            .map_err(SocketError::new)?;
        self.add(Piece {
            header: encoded,
            header_len: header_len as u8,
            payload,
        });
        Ok(())
    }

    fn push_bytes(&mut self, bytes: Bytes) {
        self.add(Piece {
            header: [0; MAX_HEADER],
            header_len: 0,
            payload: bytes,
        });
    }

    fn add(&mut self, piece: Piece) {
        self.bytes += piece.len();
        self.pieces.push_back(piece);
    }

    /// One vectored write of the queue's front; `Ready(Ok)` once the socket took some.
    fn poll_write_some(
        &mut self,
        write: &mut impl FnMut(&[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        // Small writes (a paced room's frame, a burst of short ones) are copied into one buffer
        // on the stack: a write of one slice goes to the socket as a plain send, cheaper in the
        // kernel than a vectored write of the pieces.
        if self.bytes <= COPY_BYTES {
            let mut buffer = [0; COPY_BYTES];
            let mut filled = 0;
            let mut skip = self.written;
            for piece in &self.pieces {
                for slice in piece.slices(skip) {
                    buffer[filled..filled + slice.len()].copy_from_slice(slice);
                    filled += slice.len();
                }
                skip = 0;
            }
            return self.wrote(write(&[IoSlice::new(&buffer[..filled])]));
        }
        // A few frames are gathered on the stack, more in a vector.
        let wanted = (2 * self.pieces.len()).min(SLICES_PER_WRITE);
        let mut few = [IoSlice::new(&[]); FEW_SLICES];
        let mut many;
        let slices: &mut [IoSlice<'_>] = if wanted <= FEW_SLICES {
            &mut few
        } else {
            many = vec![IoSlice::new(&[]); wanted];
            &mut many
        };
        let count = gather(&self.pieces, self.written, slices);
        let written = write(&slices[..count]);
        self.wrote(written)
    }

    /// Account for what one write of the queue's front took.
    fn wrote(&mut self, written: Poll<io::Result<usize>>) -> Poll<io::Result<()>> {
        let mut taken = match written {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(taken)) => taken,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        self.bytes -= taken;
        while taken > 0 {
            let left = self.pieces[0].len() - self.written;
            if taken < left {
                self.written += taken;
                break;
            }
            taken -= left;
            self.written = 0;
            self.pieces.pop_front();
        }
        if self.pieces.is_empty() && self.pieces.capacity() > KEPT_PIECES {
            // Room for a few frames is kept: a connection that gets one at a time allocates
            // nothing per write. A burst's larger room is given back.
            self.pieces = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// Fill `slices` with the bytes of `pieces`, the first `written` of the first piece left out,
/// two slices per piece at most, as many pieces as fit whole; the slices filled.
fn gather<'a>(pieces: &'a VecDeque<Piece>, written: usize, slices: &mut [IoSlice<'a>]) -> usize {
    let mut count = 0;
    let mut skip = written;
    for piece in pieces {
        if count + 2 > slices.len() {
            break;
        }
        for slice in piece.slices(skip) {
            if !slice.is_empty() {
                slices[count] = IoSlice::new(slice);
                count += 1;
            }
        }
        skip = 0;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes per write (`Pending` at 0), recording them.
    struct Socket {
        room: usize,
        got: Vec<u8>,
        writes: usize,
        /// The slices of each write.
        slices: Vec<usize>,
    }

    impl Socket {
        fn new(room: usize) -> Self {
            Self {
                room,
                got: Vec::new(),
                writes: 0,
                slices: Vec::new(),
            }
        }

        fn write(&mut self, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
            if self.room == 0 {
                return Poll::Pending;
            }
            self.writes += 1;
            self.slices.push(slices.len());
            let mut taken = 0;
            for slice in slices {
                let n = slice.len().min(self.room - taken);
                self.got.extend_from_slice(&slice[..n]);
                taken += n;
            }
            Poll::Ready(Ok(taken))
        }
    }

    /// The bytes queued and not written yet.
    fn unwritten(queue: &WriteQueue) -> usize {
        queue.queued().bytes
    }

    /// `payload` as tungstenite frames a server text frame.
    fn text_frame(payload: &[u8]) -> Vec<u8> {
        let frame = tungstenite::protocol::frame::Frame::message(
            payload.to_vec(),
            OpCode::Data(Data::Text),
            true,
        );
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    #[test]
    fn frames_are_written_as_the_websocket_library_frames_them_in_one_write() {
        let queue = WriteQueue::new(1 << 20);
        let payloads = [vec![b'a'; 3], vec![b'b'; 200], vec![b'c'; 70_000]];
        for payload in &payloads {
            queue
                .batch(1)
                .push_text(Bytes::from(payload.clone()))
                .unwrap();
        }
        let mut socket = Socket::new(usize::MAX);
        assert!(matches!(
            queue.poll_flush(|s| socket.write(s)),
            Poll::Ready(Ok(()))
        ));
        let expected: Vec<u8> = payloads.iter().flat_map(|p| text_frame(p)).collect();
        assert_eq!(socket.got, expected);
        assert_eq!(socket.writes, 1);
        assert_eq!(unwritten(&queue), 0);
    }

    #[test]
    fn a_socket_taking_a_few_bytes_at_a_time_gets_every_byte_in_order() {
        let queue = WriteQueue::new(1 << 20);
        for n in 0..20u8 {
            queue
                .batch(1)
                .push_text(Bytes::from(vec![n; usize::from(n) * 13]))
                .unwrap();
        }
        let expected: Vec<u8> = (0..20u8)
            .flat_map(|n| text_frame(&vec![n; usize::from(n) * 13]))
            .collect();
        let mut socket = Socket::new(7);
        assert!(queue.poll_flush(|s| socket.write(s)).is_ready());
        assert_eq!(socket.got, expected);
    }

    #[test]
    fn a_long_batch_goes_in_writes_of_at_most_the_slice_limit_each() {
        let queue = WriteQueue::new(1 << 20);
        let frames = SLICES_PER_WRITE + 44;
        for n in 0..frames {
            queue
                .batch(1)
                .push_text(Bytes::from(format!("{n:020}")))
                .unwrap();
        }
        let mut socket = Socket::new(usize::MAX);
        assert!(queue.poll_flush(|s| socket.write(s)).is_ready());
        let expected: Vec<u8> = (0..frames)
            .flat_map(|n| text_frame(format!("{n:020}").as_bytes()))
            .collect();
        assert_eq!(socket.got, expected);
        // Two slices per frame, header and payload; the last 968 bytes copied into one.
        assert_eq!(socket.writes, frames.div_ceil(SLICES_PER_WRITE / 2));
        assert_eq!(socket.slices, [SLICES_PER_WRITE, SLICES_PER_WRITE, 1]);
        assert_eq!(
            queue.queued().pieces.capacity(),
            0,
            "a burst's room given back"
        );
    }

    #[test]
    fn the_librarys_bytes_never_split_a_frame_and_follow_what_waits() {
        let queue = WriteQueue::new(1 << 20);
        // Nothing queued: straight to the socket, which takes part; the rest waits, whole.
        let mut socket = Socket::new(3);
        let pong = [0x8a, 2, b'h', b'i'];
        assert!(matches!(
            queue.poll_write(&pong, |s| socket.write(s)),
            Poll::Ready(Ok(4))
        ));
        assert_eq!(socket.got, &pong[..3]);
        queue
            .batch(1)
            .push_text(Bytes::from_static(b"data"))
            .unwrap();
        // Something queued: the library's close frame goes after it.
        let close = [0x88, 0];
        assert!(matches!(
            queue.poll_write(&close, |s| socket.write(s)),
            Poll::Ready(Ok(2))
        ));
        socket.room = usize::MAX;
        assert!(queue.poll_flush(|s| socket.write(s)).is_ready());
        let mut expected = pong.to_vec();
        expected.extend(text_frame(b"data"));
        expected.extend(close);
        assert_eq!(socket.got, expected);
    }

    #[test]
    fn a_full_queue_refuses_frames_and_holds_the_librarys_writes_back() {
        let queue = WriteQueue::new(100);
        queue
            .batch(1)
            .push_text(Bytes::from(vec![b'x'; 90]))
            .unwrap();
        let refused = queue
            .batch(1)
            .push_text(Bytes::from(vec![b'y'; 10]))
            .unwrap_err();
        assert!(refused.is_write_buffer_full());
        assert_eq!(unwritten(&queue), 92);
        // A pong of 10 bytes does not fit beside the 92 either: held back while the socket
        // takes nothing, queued once it took the frame.
        let pong = [0x8a, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut stuck = Socket::new(0);
        assert!(queue.poll_write(&pong, |s| stuck.write(s)).is_pending());
        assert!(queue.poll_flush(|s| stuck.write(s)).is_pending());
        let mut socket = Socket::new(50);
        assert!(matches!(
            queue.poll_write(&pong, |s| socket.write(s)),
            Poll::Ready(Ok(10))
        ));
        assert_eq!(socket.got.len(), 50, "written until the pong fit");
        assert_eq!(unwritten(&queue), 52);
        assert!(queue.poll_flush(|s| socket.write(s)).is_ready());
        assert_eq!(&socket.got[92..], &pong);
    }

    #[test]
    fn after_the_peer_closed_the_websocket_layers_writes_reach_the_socket_before_they_count() {
        let queue = WriteQueue::new(1 << 20);
        queue
            .batch(1)
            .push_text(Bytes::from(vec![b'x'; 100]))
            .unwrap();
        queue.close();
        let answer = [0x88, 2, 3, 232];
        let mut stuck = Socket::new(0);
        assert!(
            queue.poll_write(&answer, |s| stuck.write(s)).is_pending(),
            "not queued behind the frame: written after it, once the socket takes it"
        );
        let mut socket = Socket::new(usize::MAX);
        assert!(matches!(
            queue.poll_write(&answer, |s| socket.write(s)),
            Poll::Ready(Ok(4))
        ));
        assert_eq!(unwritten(&queue), 0);
        assert_eq!(socket.got.len(), 102 + 4, "the frame, then the answer");
        assert_eq!(&socket.got[socket.got.len() - 4..], &answer);
    }

    #[test]
    fn after_the_peer_closed_no_frame_is_queued_and_a_drained_queue_keeps_little() {
        let queue = WriteQueue::new(1 << 20);
        queue
            .batch(1)
            .push_ping(Bytes::from_static(b"12345678"))
            .unwrap();
        queue.close();
        assert!(queue
            .batch(1)
            .push_text(Bytes::from_static(b"late"))
            .is_err());
        let mut socket = Socket::new(usize::MAX);
        assert!(queue.poll_flush(|s| socket.write(s)).is_ready());
        assert_eq!(&socket.got[..2], &[0x89, 8]);
        assert!(queue.queued().pieces.capacity() <= KEPT_PIECES);
    }
}
