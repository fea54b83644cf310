//! A real producer channel client: a WebSocket to `/api/producer` with the API key, sending
//! run events and reading their answers; optionally with small socket buffers, so that a
//! producer that stops reading soon fills them.

use super::{TestServer, API_KEY, PATIENCE};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// The writing half of a producer channel.
pub struct ProducerSink(SplitSink<Ws, Message>);

/// A producer channel: its two halves, usable apart.
pub struct Producer {
    pub sink: ProducerSink,
    pub answers: SplitStream<Ws>,
}

/// The handshake to `/api/producer` with `key` (none: no `Authorization`) over `tcp`.
async fn handshake(
    addr: SocketAddr,
    tcp: TcpStream,
    key: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/api/producer")
        .into_client_request()
        .unwrap();
    if let Some(key) = key {
        let value = format!("Bearer {key}").parse().unwrap();
        request.headers_mut().insert("authorization", value);
    }
    let handshake = tokio_tungstenite::client_async(request, tcp);
    let (ws, _) = tokio::time::timeout(PATIENCE, handshake)
        .await
        .expect("the handshake ends")?;
    Ok(ws)
}

impl Producer {
    /// Open a channel to `server` with the test API key.
    pub async fn open(server: &TestServer) -> Self {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        Self::over(server.addr(), tcp).await
    }

    /// Open a channel whose socket buffers are small (4 KiB asked of the kernel).
    pub async fn open_small(server: &TestServer) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let tcp = socket.connect(server.addr()).await.unwrap();
        Self::over(server.addr(), tcp).await
    }

    async fn over(addr: SocketAddr, tcp: TcpStream) -> Self {
        let ws = handshake(addr, tcp, Some(API_KEY)).await.expect("accepted");
        let (sink, answers) = ws.split();
        Producer {
            sink: ProducerSink(sink),
            answers,
        }
    }

    /// The HTTP status refusing a channel opened with `key` (none: no `Authorization`).
    pub async fn refused(server: &TestServer, key: Option<&str>) -> u16 {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        match handshake(server.addr(), tcp, key).await {
            Ok(_) => panic!("the channel was opened"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(e) => panic!("unexpected handshake error: {e}"),
        }
    }

    /// Send `frame` as a text frame.
    pub async fn send(&mut self, frame: Value) {
        self.sink.send(frame).await;
    }

    /// The next text frame from the server (pings are answered meanwhile); `None` once the
    /// channel closed, with its close code.
    pub async fn next(&mut self) -> Result<Value, Option<u16>> {
        loop {
            let read = tokio::time::timeout(PATIENCE, self.answers.next()).await;
            match read.expect("a frame or the close within the patience") {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("JSON"))
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code.into())),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// The next text frame, which must come before the close.
    pub async fn answer(&mut self) -> Value {
        self.next().await.expect("an answer before the close")
    }

    /// Read until the close: its code, if a close frame came.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Err(code) = self.next().await {
                return code;
            }
        }
    }

    /// Send one event of `user`'s `run` with `ref` and read its answer.
    pub async fn event(&mut self, user: &str, run: &str, reference: u64, event: Value) -> Value {
        self.send(frame(user, run, reference, event)).await;
        self.answer().await
    }
}

impl ProducerSink {
    /// Send `frame` as a text frame.
    pub async fn send(&mut self, frame: Value) {
        self.0
            .send(Message::text(frame.to_string()))
            .await
            .expect("the channel is open");
    }

    /// Send raw bytes as a text frame (they may not be UTF-8) or as a binary frame.
    pub async fn send_raw(&mut self, bytes: &[u8], binary: bool) {
        let message = if binary {
            Message::binary(bytes.to_vec())
        } else {
            // Built unchecked on purpose: the server must refuse text that is not UTF-8.
            let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                bytes.to_vec(),
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
                ),
                true,
            );
            Message::Frame(frame)
        };
        self.0.send(message).await.expect("the channel is open");
    }
}

/// One producer frame: `event` (an object with `event`) of `user`'s `run` with `ref`.
pub fn frame(user: &str, run: &str, reference: u64, event: Value) -> Value {
    let mut frame = event;
    frame["user"] = json!(user);
    frame["run"] = json!(run);
    frame["ref"] = json!(reference);
    frame
}

/// `agent_started` on `thread` (none: every connection of the user).
pub fn started(thread: Option<&str>) -> Value {
    match thread {
        Some(t) => json!({"event": "agent_started", "agent": "planner", "thread": t}),
        None => json!({"event": "agent_started", "agent": "planner"}),
    }
}

/// A delta of message `m` at `offset`.
pub fn delta(offset: u64, text: &str) -> Value {
    json!({"event": "agent_message_delta", "message": "m", "offset": offset, "text": text})
}
