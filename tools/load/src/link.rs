//! A load client's connection, over either transport (`--transport`): a WebSocket, or
//! Server-Sent Events (a `GET /sse` stream read as events, client frames posted to
//! `POST /sse/{conn}`). The worker reads frames' texts from it without caring which.

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

/// What a read gave.
pub enum Read {
    /// A frame's JSON text.
    Text(String),
    /// The end, with the close code (1006 without one).
    Closed(u16),
    /// Something else (a WebSocket control frame).
    Other,
}

/// One client's connection.
pub enum Link {
    /// A WebSocket.
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
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
    /// Connect to `server` (its base URL) with `token` over `transport`. A Server-Sent Events
    /// link has read the `welcome` (for its connection id); a WebSocket reads it next.
    pub async fn open(
        transport: Transport,
        http: &reqwest::Client,
        server: &str,
        token: &str,
    ) -> Result<Self, String> {
        match transport {
            Transport::Websocket => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(16 * 1024)
                    .write_buffer_size(0);
                let url = format!("{}?token={token}", ws_url(server));
                let (socket, _) =
                    tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                Ok(Link::Ws(Box::new(socket)))
            }
            Transport::Sse => {
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

    /// Send one client frame.
    pub async fn send(&mut self, frame: String) -> Result<(), String> {
        match self {
            Link::Ws(socket) => socket
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
            Link::Sse(link) => link.read().await,
        }
    }

    /// Close it (at most 2 s for a WebSocket's closing handshake).
    pub async fn close(self) {
        if let Link::Ws(mut socket) = self {
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
