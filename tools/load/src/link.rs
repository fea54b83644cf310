//! A load client's connection, over either transport (`--transport`): a WebSocket, or
//! Server-Sent Events (a `GET /sse` stream read as events, client frames posted to
//! `POST /sse/{conn}`); and speaking either protocol (`--protocol`): Switchboard's, or
//! Socket.IO's over a WebSocket ([`crate::socketio`]). The worker reads frames' texts from it
//! without caring which transport carried them.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The transport the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// `GET /ws`.
    Websocket,
    /// `GET /sse` and `POST /sse/{conn}`.
    Sse,
}

/// The protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Switchboard's frames (and the baseline's and the raw peer's subset of them).
    Switchboard,
    /// Socket.IO v5 over Engine.IO v4, WebSocket transport only.
    Socketio,
}

/// A client WebSocket.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a read gave.
pub enum Read {
    /// A frame's JSON text (with Socket.IO: an event's JSON array).
    Text(String),
    /// The end, with the close code (1006 without one).
    Closed(u16),
    /// Something else (a WebSocket control frame).
    Other,
}

/// One client's connection.
pub enum Link {
    /// A WebSocket.
    Ws(Box<WsStream>),
    /// A Socket.IO session over a WebSocket.
    SocketIo(Box<WsStream>),
    /// A Server-Sent Events stream and where to post.
    Sse(Box<SseLink>),
}

/// A Server-Sent Events connection.
pub struct SseLink {
    http: reqwest::Client,
    /// `<server>/sse/<conn>?token=<token>`: where its frames are posted.
    post_url: String,
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// The `data` of the event being read, and whether it is the `close` event.
    data: String,
    close: bool,
}

impl Link {
    /// Connect to `server` (its base URL) with `token` over `transport`, speaking `protocol`.
    /// A Server-Sent Events link has read the `welcome` (for its connection id); a WebSocket
    /// reads it next; a Socket.IO link has connected to the default namespace.
    pub async fn open(
        transport: Transport,
        protocol: Protocol,
        http: &reqwest::Client,
        server: &str,
        token: &str,
    ) -> Result<Self, String> {
        match (transport, protocol) {
            (Transport::Websocket, Protocol::Switchboard) => {
                let url = format!("{}?token={token}", ws_url(server));
                Ok(Link::Ws(Box::new(connect_ws(url).await?)))
            }
            (Transport::Websocket, Protocol::Socketio) => {
                let mut socket = connect_ws(crate::socketio::url(server)).await?;
                crate::socketio::handshake(&mut socket, token).await?;
                Ok(Link::SocketIo(Box::new(socket)))
            }
            (Transport::Sse, Protocol::Socketio) => {
                Err("socket.io is measured over WebSocket only".to_owned())
            }
            (Transport::Sse, Protocol::Switchboard) => {
                let response = http
                    .get(format!("{server}/sse?token={token}"))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| format!("connect: {e}"))?;
                let mut link = SseLink {
                    http: http.clone(),
                    post_url: String::new(),
                    response,
                    buffer: Vec::new(),
                    data: String::new(),
                    close: false,
                };
                let Read::Text(welcome) = link.read().await else {
                    return Err("closed before welcome".to_owned());
                };
                let welcome: serde_json::Value =
                    serde_json::from_str(&welcome).map_err(|e| format!("welcome: {e}"))?;
                let conn = welcome["conn"].as_str().ok_or("a welcome without conn")?;
                link.post_url = format!("{server}/sse/{conn}?token={token}");
                Ok(Link::Sse(Box::new(link)))
            }
        }
    }

    /// Send one client frame (with Socket.IO: one packet).
    pub async fn send(&mut self, frame: String) -> Result<(), String> {
        match self {
            Link::Ws(socket) | Link::SocketIo(socket) => socket
                .send(Message::text(frame))
                .await
                .map_err(|e| e.to_string()),
            Link::Sse(link) => link
                .http
                .post(&link.post_url)
                .body(frame)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    /// The next read.
    pub async fn read(&mut self) -> Read {
        match self {
            Link::Ws(socket) => match socket.next().await {
                Some(Ok(Message::Text(text))) => Read::Text(text.as_str().to_owned()),
                Some(Ok(Message::Close(close))) => {
                    Read::Closed(close.map_or(1005, |c| u16::from(c.code)))
                }
                Some(Ok(_)) => Read::Other,
                Some(Err(_)) | None => Read::Closed(1006),
            },
            Link::SocketIo(socket) => crate::socketio::read(socket).await,
            Link::Sse(link) => link.read().await,
        }
    }

    /// Close it (at most 2 s for a WebSocket's closing handshake).
    pub async fn close(self) {
        if let Link::Ws(mut socket) | Link::SocketIo(mut socket) = self {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), SinkExt::close(&mut *socket)).await;
        }
    }
}

impl SseLink {
    /// The next event's data (or the close event's code, or the end of the stream).
    async fn read(&mut self) -> Read {
        loop {
            while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if let Some(data) = line.strip_prefix("data: ") {
                    self.data.push_str(data);
                } else if line == "event: close" {
                    self.close = true;
                } else if line.is_empty() && !self.data.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    if std::mem::take(&mut self.close) {
                        let close: serde_json::Value =
                            serde_json::from_str(&data).unwrap_or_default();
                        let code = close["code"].as_u64().unwrap_or(1005);
                        return Read::Closed(u16::try_from(code).unwrap_or(1005));
                    }
                    return Read::Text(data);
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) | Err(_) => return Read::Closed(1006),
            }
        }
    }
}

/// A client WebSocket to `url`, with the load clients' buffer sizes.
async fn connect_ws(url: String) -> Result<WsStream, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(socket)
}

/// The WebSocket endpoint of a server's base URL.
pub fn ws_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let base = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{base}/ws")
}
