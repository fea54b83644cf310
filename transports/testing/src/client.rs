//! The WebSocket test client.

use crate::guard;
use async_net::TcpStream;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use async_tungstenite::tungstenite::protocol::frame::Frame;
use async_tungstenite::tungstenite::{Error, Message as WsMessage};
use async_tungstenite::WebSocketStream;
use futures_util::future::{self, Either};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};
use std::collections::VecDeque;
use std::fmt::Display;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

/// The socket buffers of [`small_socket`]: small, so that a peer that stops reading soon stops
/// the other side's writes.
pub const SMALL_BUFFER: usize = 4096;

/// A std TCP socket (IPv4) with small send and receive buffers ([`SMALL_BUFFER`]).
pub fn small_socket() -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket
        .set_send_buffer_size(SMALL_BUFFER)
        .expect("SO_SNDBUF");
    socket
        .set_recv_buffer_size(SMALL_BUFFER)
        .expect("SO_RCVBUF");
    socket
}

/// A listener on an ephemeral port of 127.0.0.1, non-blocking (for any runtime to adopt), whose
/// accepted connections inherit [`small_socket`]'s buffers: a server on it soon feels a peer
/// that stops reading (the kernel grows a default socket's send buffer past a megabyte on
/// loopback).
pub fn small_listener() -> std::net::TcpListener {
    let socket = small_socket();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    socket.bind(&any.into()).expect("bind");
    socket.listen(128).expect("listen");
    socket.set_nonblocking(true).expect("non-blocking");
    socket.into()
}

/// The payload of [`WsClient::flood_pings`]' pings: the most a control frame may carry.
const FLOOD_PAYLOAD: &[u8; 125] = &[b'p'; 125];

/// More than the kernel holds in the socket buffers of both ends of a connection on
/// 127.0.0.1 (Linux grows a send buffer to at most 4 MiB by default, `net.ipv4.tcp_wmem`): a
/// client that leaves this much more unread than a server buffers has filled the server's
/// own buffer.
pub const SOCKET_SLACK: usize = 8 << 20;

/// What a client reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A text frame, parsed.
    Frame(Value),
    /// The close: its code, if the server sent a close frame.
    Closed(Option<u16>),
}

/// A text frame (unparsed) or the close, as read from the socket.
#[derive(Debug)]
enum Next {
    Text(String),
    Closed(Option<u16>),
}

/// A real WebSocket client (async-tungstenite over async-net, so it runs under any runtime).
/// Pings are answered while it reads; every read is bounded by [`guard`].
#[derive(Debug)]
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    /// The `welcome` frame, if [`WsClient::welcomed`] read it.
    welcome: Value,
    /// What [`WsClient::idle`] read.
    pending: VecDeque<Next>,
    /// The close code, once closed.
    closed: Option<Option<u16>>,
    /// How many [`WsClient::fence`]s it sent: each pings with a `ref` of its own.
    fences: u64,
}

impl WsClient {
    /// Connect to `addr` and handshake with `request` (a URL, or a request with headers); the
    /// handshake's error if it is refused.
    pub async fn request<R>(addr: SocketAddr, request: R) -> Result<Self, Error>
    where
        R: IntoClientRequest + Unpin,
    {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::handshake(tcp, request).await
    }

    /// Handshake with `request` over `tcp`; the handshake's error if it is refused.
    async fn handshake<R>(tcp: TcpStream, request: R) -> Result<Self, Error>
    where
        R: IntoClientRequest + Unpin,
    {
        let handshake = async_tungstenite::client_async(request, tcp);
        let (ws, _) = guard("the handshake", handshake).await?;
        Ok(Self {
            ws,
            welcome: Value::Null,
            pending: VecDeque::new(),
            closed: None,
            fences: 0,
        })
    }

    /// Connect to `ws://{addr}/ws?{query}` (with [`small_socket`] buffers if
    /// `small_buffers`); the handshake's error if it is refused.
    pub async fn open(addr: SocketAddr, query: &str, small_buffers: bool) -> Result<Self, Error> {
        let tcp = if small_buffers {
            let socket = small_socket();
            socket.connect(&addr.into()).expect("connect");
            TcpStream::try_from(std::net::TcpStream::from(socket)).expect("an async socket")
        } else {
            TcpStream::connect(addr).await.expect("connect")
        };
        Self::handshake(tcp, format!("ws://{addr}/ws?{query}")).await
    }

    /// Connect to `ws://{addr}/ws?{query}` without reading anything; panics if refused.
    pub async fn connect(addr: SocketAddr, query: &str) -> Self {
        Self::open(addr, query, false)
            .await
            .expect("the handshake is accepted")
    }

    /// Connect and read the `welcome`, which must be the first frame (see
    /// [`WsClient::welcome`]).
    pub async fn welcomed(addr: SocketAddr, query: &str) -> Self {
        let mut client = Self::connect(addr, query).await;
        let welcome = client.json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client.welcome = welcome;
        client
    }

    /// The `welcome` frame [`WsClient::welcomed`] read (null otherwise).
    pub fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// The connection id the server gave in the `welcome`.
    pub fn id(&self) -> String {
        self.welcome["conn"]
            .as_str()
            .expect("a connection id")
            .to_owned()
    }

    async fn write(&mut self, message: WsMessage) {
        // A send to a connection the server already closed fails; the next read tells.
        let _ = self.ws.send(message).await;
    }

    /// Send a text frame: `frame` as it displays (a JSON value, or text as it is).
    pub async fn send(&mut self, frame: impl Display) {
        self.write(WsMessage::text(frame.to_string())).await;
    }

    /// Send a text frame whose payload is `bytes`, UTF-8 or not.
    pub async fn send_raw_text(&mut self, bytes: &[u8]) {
        let frame = Frame::message(bytes.to_vec(), OpCode::Data(Data::Text), true);
        self.write(WsMessage::Frame(frame)).await;
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.write(WsMessage::binary(bytes.to_vec())).await;
    }

    /// Send a ping control frame with `payload` (at most 125 bytes).
    pub async fn send_ping(&mut self, payload: &[u8]) {
        self.write(WsMessage::Ping(payload.to_vec().into())).await;
    }

    /// Send a pong control frame with `payload` (at most 125 bytes): unsolicited, unless it
    /// echoes the payload of the server's last ping.
    pub async fn send_pong(&mut self, payload: &[u8]) {
        self.write(WsMessage::Pong(payload.to_vec().into())).await;
    }

    /// Send pings as fast as the socket takes them, reading nothing, until their pongs amount
    /// to more than `bytes`: once the server has read them, that much waits for this client in
    /// the server's buffers. Each ping carries the largest payload a control frame may (125
    /// bytes), so its pong is 127 bytes on the wire. Stops early if the server drops the
    /// socket.
    pub async fn flood_pings(&mut self, bytes: usize) {
        const PONG: usize = 2 + FLOOD_PAYLOAD.len();
        let ping = WsMessage::Ping(FLOOD_PAYLOAD.to_vec().into());
        for _ in 0..bytes.div_ceil(PONG) {
            if self.ws.feed(ping.clone()).await.is_err() {
                return;
            }
        }
        let _ = self.ws.flush().await;
    }

    /// Play a peer that pings and never reads the pongs: flood pings until more than
    /// `bytes + SOCKET_SLACK` of pongs are owed to this client, then send a `ping` frame whose
    /// reply (a `pong` echoing a `ref` as long as the protocol allows, 256 bytes of JSON) is
    /// larger than any pong. Reads nothing. The server handles that frame after every ping
    /// before it, when at least `bytes` of pongs wait in its own buffers, unless its write
    /// buffer holds less: then that buffer is full and the reply cannot be written.
    pub async fn leave_pongs_unread(&mut self, bytes: usize) {
        self.flood_pings(bytes + SOCKET_SLACK).await;
        // The longest `ref` the protocol allows (256 bytes of JSON): 254 characters and quotes.
        let reference = "r".repeat(254);
        self.send(serde_json::json!({"type": "ping", "ref": reference}))
            .await;
    }

    /// The next text frame (unparsed) or close from the socket, unguarded.
    async fn next(&mut self) -> Next {
        if let Some(code) = self.closed {
            return Next::Closed(code);
        }
        loop {
            let code = match self.ws.next().await {
                Some(Ok(WsMessage::Text(text))) => return Next::Text(text.to_string()),
                Some(Ok(WsMessage::Close(close))) => close.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => None,
            };
            self.closed = Some(code);
            // Read on to the end: that answers the server's close frame.
            while let Some(Ok(_)) = self.ws.next().await {}
            return Next::Closed(code);
        }
    }

    /// The next text frame (unparsed) or the close, kept or read.
    async fn next_kept(&mut self) -> Next {
        match self.pending.pop_front() {
            Some(next) => next,
            None => guard("a frame", self.next()).await,
        }
    }

    /// The next text frame (parsed) or the close.
    pub async fn read(&mut self) -> Received {
        match self.next_kept().await {
            Next::Text(text) => {
                Received::Frame(serde_json::from_str(&text).expect("the server sends JSON"))
            }
            Next::Closed(code) => Received::Closed(code),
        }
    }

    /// The next text frame as it came (not parsed), which must not be the close.
    pub async fn text(&mut self) -> String {
        match self.next_kept().await {
            Next::Text(text) => text,
            Next::Closed(code) => panic!("closed with {code:?} while expecting a frame"),
        }
    }

    /// The next text frame, which must not be the close.
    pub async fn json(&mut self) -> Value {
        match self.read().await {
            Received::Frame(frame) => frame,
            Received::Closed(code) => panic!("closed with {code:?} while expecting a frame"),
        }
    }

    /// The next frame, which must be a `message`: its `event`.
    pub async fn event(&mut self) -> String {
        let frame = self.json().await;
        assert_eq!(frame["type"], "message", "unexpected frame {frame}");
        frame["event"].as_str().expect("event").to_owned()
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Read past any frames until the close: its code, if the server sent a close frame.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.read().await {
                return code;
            }
        }
    }

    /// Read past any frames until the close, which must come with a close frame: its code.
    pub async fn closed(&mut self) -> u16 {
        self.close_code()
            .await
            .expect("the server sends a close frame")
    }

    /// Join `room`: the next frame must be its `joined`.
    pub async fn join(&mut self, room: &str) {
        self.send(json!({"type": "join", "room": room})).await;
        let joined = self.json().await;
        assert_eq!(joined["type"], "joined", "unexpected frame {joined}");
        assert_eq!(joined["room"], room, "{joined}");
    }

    /// Stay connected and healthy for `duration` (answering pings), keeping what arrives for
    /// the next reads.
    pub async fn idle(&mut self, duration: Duration) {
        let mut timer = pin!(async_io::Timer::after(duration));
        loop {
            let received = match future::select(pin!(self.next()), timer.as_mut()).await {
                Either::Left((received, _)) => received,
                Either::Right(_) => return,
            };
            let closed = matches!(received, Next::Closed(_));
            self.pending.push_back(received);
            if closed {
                return;
            }
        }
    }

    /// Whether nothing (no frame, no close) arrives for `duration`; what does is kept for the
    /// next reads.
    pub async fn silent_for(&mut self, duration: Duration) -> bool {
        self.idle(duration).await;
        self.pending.is_empty()
    }

    /// The frames that arrive before the answer to a `ping` sent now, the answer read too.
    ///
    /// The hub answers a `ping` after every frame it queued for this connection before it,
    /// in order: once an action has returned (an HTTP API call answered, another client's
    /// frame answered), an empty fence proves the action sent this connection nothing —
    /// unlike waiting for silence, which a slow machine passes however wrong the server is.
    pub async fn fence(&mut self) -> Vec<Value> {
        self.fences += 1;
        let reference = format!("fence-{}", self.fences);
        self.send(json!({"type": "ping", "ref": reference})).await;
        let mut before = Vec::new();
        loop {
            let frame = self.json().await;
            if frame["type"] == "pong" && frame["ref"] == reference.as_str() {
                return before;
            }
            before.push(frame);
        }
    }

    /// Close the connection from the client's side, returning once the server has taken note.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        guard("the end of the connection", async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}
