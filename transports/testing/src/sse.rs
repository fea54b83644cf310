//! The Server-Sent Events test client (feature `sse`, on tokio): a real HTTP/1.1 client
//! (hyper) reading `GET /sse` as an `EventSource` does, and posting client frames to
//! `POST /sse/{conn}`.

use crate::{guard, small_socket, Received};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// One event of the stream, as an `EventSource` dispatches it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `id` field, if the event had one.
    pub id: Option<String>,
    /// The `event` field (`None` for the default type, `message`).
    pub event: Option<String>,
    /// The `data` lines, joined with newlines.
    pub data: String,
}

/// A client of one Server-Sent Events connection. Every read is bounded by [`guard`].
pub struct SseClient {
    addr: SocketAddr,
    /// The query string that authenticates it (for the stream and for its posts).
    auth: String,
    body: Option<Incoming>,
    buffer: Vec<u8>,
    /// Comment lines read (keep-alives).
    comments: usize,
    /// The id of the last event that had one, as `EventSource` keeps it.
    last_id: Option<String>,
    /// The event being read: its fields so far, and whether it has data.
    partial: (SseEvent, bool),
    /// Events read while idle, for the next reads.
    pending: VecDeque<SseEvent>,
    welcome: Value,
}

/// A response whose status and body were read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The body, as text (lossy).
    pub body: String,
}

async fn send(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    small_buffers: bool,
) -> Response<Incoming> {
    let tcp = if small_buffers {
        let socket = small_socket();
        socket.connect(&addr.into()).expect("connect");
        socket.set_nonblocking(true).expect("non-blocking");
        TcpStream::from_std(std::net::TcpStream::from(socket)).expect("a tokio socket")
    } else {
        TcpStream::connect(addr).await.expect("connect")
    };
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    guard("a response", sender.send_request(request))
        .await
        .expect("a response")
}

impl SseClient {
    /// `GET /sse?{auth}` with `headers` (a `Last-Event-ID`, say), with small socket buffers if
    /// `small_buffers`: the client if the server answers with an event stream, else its
    /// answer.
    pub async fn open(
        addr: SocketAddr,
        auth: &str,
        headers: &[(&str, &str)],
        small_buffers: bool,
    ) -> Result<Self, Answer> {
        let mut request = Request::get(format!("/sse?{auth}"))
            .header("host", addr.to_string())
            .header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::default()).expect("a request");
        let response = send(addr, request, small_buffers).await;
        let event_stream = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "text/event-stream");
        if response.status() != StatusCode::OK || !event_stream {
            return Err(answer(response).await);
        }
        Ok(Self {
            addr,
            auth: auth.to_owned(),
            body: Some(response.into_body()),
            buffer: Vec::new(),
            comments: 0,
            last_id: None,
            partial: (SseEvent::default(), false),
            pending: VecDeque::new(),
            welcome: Value::Null,
        })
    }

    /// Open and read the `welcome`, which must be the first event.
    pub async fn welcomed(addr: SocketAddr, auth: &str, headers: &[(&str, &str)]) -> Self {
        let mut client = Self::open(addr, auth, headers, false)
            .await
            .unwrap_or_else(|answer| panic!("the stream was refused: {answer:?}"));
        let welcome = client.json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client.welcome = welcome;
        client
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `welcome` [`SseClient::welcomed`] read (null otherwise).
    pub fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// The connection's id (`welcome.conn`).
    pub fn conn(&self) -> String {
        self.welcome["conn"].as_str().expect("a welcome").to_owned()
    }

    /// The id of the last event that had one: what `EventSource` sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The comment lines (keep-alives) read so far.
    pub fn comments(&self) -> usize {
        self.comments
    }

    /// The next event, or `None` once the stream ended.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        match self.pending.pop_front() {
            Some(event) => Some(event),
            None => guard("an event", self.next_unguarded()).await,
        }
    }

    /// The next event, read from the stream. Cancel-safe: the fields of an event read so far
    /// are kept in `partial`.
    async fn next_unguarded(&mut self) -> Option<SseEvent> {
        loop {
            let line = self.line().await?;
            let (event, has_data) = &mut self.partial;
            if line.is_empty() {
                if std::mem::take(has_data) {
                    let event = std::mem::take(event);
                    if event.id.is_some() {
                        self.last_id.clone_from(&event.id);
                    }
                    return Some(event);
                }
                *event = SseEvent::default();
                continue;
            }
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => {
                    if *has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    *has_data = true;
                }
                _ => {}
            }
        }
    }

    /// The next line (without its end), or `None` at the end of the stream.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = &line[..line.len() - 1];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Some(String::from_utf8(line.to_vec()).expect("UTF-8 events"));
            }
            let body = self.body.as_mut()?;
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => {
                    self.body = None;
                    return None;
                }
            }
        }
    }

    /// The next frame or the close: a data event is a frame, the `close` event the close
    /// with its code, the end of the stream without one a close without a code.
    pub async fn read(&mut self) -> Received {
        match self.next_event().await {
            Some(event) if event.event.as_deref() == Some("close") => {
                let close: Value = serde_json::from_str(&event.data).expect("JSON");
                let code = close["code"].as_u64().expect("a close code");
                Received::Closed(Some(u16::try_from(code).expect("a close code")))
            }
            Some(event) => Received::Frame(serde_json::from_str(&event.data).expect("JSON")),
            None => Received::Closed(None),
        }
    }

    /// The next frame, which must not be the close.
    pub async fn json(&mut self) -> Value {
        match self.read().await {
            Received::Frame(frame) => frame,
            Received::Closed(code) => panic!("closed with {code:?} while expecting a frame"),
        }
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

    /// Read past any frames until the close: its code, if the stream ended with the `close`
    /// event.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.read().await {
                return code;
            }
        }
    }

    /// `POST` `body` to this connection, authenticated as the stream was.
    pub async fn post(&self, body: impl Into<Bytes>) -> Answer {
        post(self.addr, &self.conn(), &self.auth, body.into()).await
    }

    /// `POST` one frame and assert it was accepted.
    pub async fn send(&self, frame: impl std::fmt::Display) {
        let answer = self.post(frame.to_string()).await;
        assert_eq!(answer.status, 202, "{answer:?}");
    }

    /// Keep reading for `duration` (the stream stays healthy), keeping what arrives for the
    /// next reads.
    pub async fn idle(&mut self, duration: Duration) {
        let _ = tokio::time::timeout(duration, async {
            while let Some(event) = self.next_unguarded().await {
                self.pending.push_back(event);
            }
            // Ended: the next read sees the end.
            std::future::pending::<()>().await;
        })
        .await;
    }

    /// Drop the stream (the client goes away).
    pub fn drop_stream(&mut self) {
        self.body = None;
    }
}

/// `POST /sse/{conn}?{auth}` with `body`: the answer.
pub async fn post(addr: SocketAddr, conn: &str, auth: &str, body: Bytes) -> Answer {
    let request = Request::post(format!("/sse/{conn}?{auth}"))
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("a request");
    answer(send(addr, request, false).await).await
}

async fn answer(response: Response<Incoming>) -> Answer {
    let status = response.status().as_u16();
    let body = guard("a response body", response.into_body().collect())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
