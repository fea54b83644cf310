//! The bytes on the wire, read by a raw client that parses every frame itself: however slowly it
//! reads (small socket buffers on both sides, so that the server's writes are taken in parts),
//! each server frame arrives whole, unmasked and in order, of every length encoding, with the
//! hub's pings among them and never inside one; and once the client closes, the server's close
//! answer is the last frame, even while messages for it are still being published. Real
//! sockets; timeouts only guard against hangs.

use bytes::{Buf, BytesMut};
use serde_json::{json, Value};
use std::io::Cursor;
use std::time::Duration;
use switchboard::{Config, Message, Target};
use switchboard_testing::{authenticate, guard, small_listener, small_socket};
use switchboard_tokio::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Budgets large enough that the hub never holds a frame back for this reader, and pings often
/// enough to land between the frames; a heartbeat timeout longer than the test, as the client
/// answers no ping.
fn config() -> Config {
    let mut config = Config::development();
    config.backpressure.inflight_bytes = 8 << 20;
    config.backpressure.queue_bytes = 16 << 20;
    config.heartbeat.interval = Duration::from_millis(20);
    config.heartbeat.timeout = Duration::from_secs(600);
    config
}

/// Data sizes around each of the header's length encodings (7 bits, 16 bits, 64 bits).
const SIZES: [usize; 6] = [3, 100, 126, 60_000, 65_536, 100_000];

/// A frame as the client read it.
#[derive(Debug)]
enum Read {
    Text(Value),
    Ping,
    Close(u16),
}

/// A raw WebSocket client over a socket with small buffers.
struct RawClient {
    stream: TcpStream,
    buffer: BytesMut,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr, user: &str) -> Self {
        let socket = small_socket();
        socket.connect(&addr.into()).expect("connect");
        socket.set_nonblocking(true).expect("non-blocking");
        let mut stream = TcpStream::from_std(socket.into()).expect("a tokio stream");
        let request = format!(
            "GET /?user={user} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut client = Self {
            stream,
            buffer: BytesMut::new(),
        };
        let end = loop {
            if let Some(end) = client.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(
                client.fill().await > 0,
                "the server hung up in the handshake"
            );
        };
        let answer = client.buffer.split_to(end);
        assert!(answer.starts_with(b"HTTP/1.1 101 "), "{answer:?}");
        client
    }

    /// Read a little more (at most 1 000 bytes, so the server's writes are taken in parts).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0; 1000];
        let read = guard("bytes", self.stream.read(&mut chunk))
            .await
            .expect("read");
        self.buffer.extend_from_slice(&chunk[..read]);
        read
    }

    /// The next frame; `None` at the end of the stream with no byte left over.
    async fn frame(&mut self) -> Option<Read> {
        loop {
            let mut cursor = Cursor::new(&self.buffer[..]);
            if let Some((header, length)) = FrameHeader::parse(&mut cursor).expect("a header") {
                let start = cursor.position() as usize;
                let end = start + length as usize;
                if self.buffer.len() >= end {
                    assert!(header.is_final, "a server message is one frame");
                    assert_eq!(header.mask, None, "a server frame is unmasked");
                    self.buffer.advance(start);
                    let payload = self.buffer.split_to(length as usize);
                    return Some(match header.opcode {
                        OpCode::Data(Data::Text) => {
                            Read::Text(serde_json::from_slice(&payload).expect("whole JSON"))
                        }
                        OpCode::Control(Control::Ping) => Read::Ping,
                        OpCode::Control(Control::Close) => {
                            Read::Close(u16::from_be_bytes([payload[0], payload[1]]))
                        }
                        other => panic!("unexpected {other:?}"),
                    });
                }
            }
            if self.fill().await == 0 {
                assert!(self.buffer.is_empty(), "a frame cut off: {:?}", self.buffer);
                return None;
            }
        }
    }

    /// The next message's data, past pings; the pings seen on the way are counted in `pings`.
    async fn message(&mut self, pings: &mut usize) -> Value {
        loop {
            match self.frame().await {
                Some(Read::Text(frame)) => return frame,
                Some(Read::Ping) => *pings += 1,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Send a masked close frame with `code`.
    async fn close(&mut self, code: u16) {
        let mask = [1, 2, 3, 4];
        let mut frame = vec![0x88, 0x80 | 2];
        frame.extend_from_slice(&mask);
        frame.extend(code.to_be_bytes().iter().zip(mask).map(|(b, m)| b ^ m));
        self.stream.write_all(&frame).await.expect("close");
    }
}

#[tokio::test]
async fn frames_arrive_whole_in_order_with_pings_between_and_the_close_answer_last() {
    let listener = TcpListener::from_std(small_listener()).expect("listener");
    let addr = listener.local_addr().expect("bound");
    let (handle, _events) = Builder::new(config()).shards(1).start();
    let serving = tokio::spawn(handle.clone().serve(listener, authenticate));

    let mut client = RawClient::connect(addr, "reader").await;
    let mut pings = 0;
    assert_eq!(client.message(&mut pings).await["type"], "welcome");

    // Published a few milliseconds apart, so that the pings fall among them.
    let sizes: Vec<usize> = SIZES.iter().cycle().take(60).copied().collect();
    let publisher = {
        let (handle, sizes) = (handle.clone(), sizes.clone());
        tokio::spawn(async move {
            for (n, size) in sizes.into_iter().enumerate() {
                let data = json!({ "n": n, "pad": "x".repeat(size) });
                let to = Target::User("reader".into());
                handle
                    .publish(to, Message::new("m", data))
                    .await
                    .expect("published");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    for (n, size) in sizes.iter().enumerate() {
        let frame = client.message(&mut pings).await;
        assert_eq!(frame["data"]["n"], n, "in order");
        assert_eq!(frame["data"]["pad"].as_str().map(str::len), Some(*size));
    }
    assert!(pings > 0, "the hub's pings came among the frames");
    publisher.await.expect("published");

    // Messages keep coming while the client closes: whatever was sent before the close answer
    // arrives whole, and nothing after it.
    let publisher = {
        let handle = handle.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let to = Target::User("reader".into());
                let data = json!({ "after": n, "pad": "y".repeat(SIZES[n % SIZES.len()]) });
                if handle.publish(to, Message::new("m", data)).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    for _ in 0..5 {
        client.message(&mut pings).await;
    }
    client.close(1000).await;
    let code = loop {
        match client.frame().await {
            Some(Read::Close(code)) => break code,
            Some(Read::Text(_) | Read::Ping) => {}
            None => panic!("the stream ended without a close answer"),
        }
    };
    assert_eq!(code, 1000);
    assert!(client.frame().await.is_none(), "nothing after the close");

    publisher.abort();
    serving.abort();
    handle.shutdown().await;
}
