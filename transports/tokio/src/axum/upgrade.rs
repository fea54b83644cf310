//! [`WebSocketUpgrade`]: the axum extractor of a WebSocket handshake, checked as axum's own
//! (`axum::extract::ws::WebSocketUpgrade`) checks it and refused with axum's rejections, whose
//! upgrade puts the transport's [`Wire`] under tokio-tungstenite: an idle connection then
//! holds no read buffer, the driver writes its frames itself, and its task holds the
//! connection alone (axum's upgrade builds the WebSocket itself, over the bare socket, in a
//! task of its own shape).
//!
//! WebSockets over HTTP/2 (RFC 8441) are not offered: a request of HTTP/2 or later is refused
//! as axum refuses it when it cannot upgrade it.

use crate::Wire;
use axum::extract::ws::rejection::{
    ConnectionNotUpgradable, InvalidConnectionHeader, InvalidUpgradeHeader,
    InvalidWebSocketVersionHeader, MethodNotConnect, MethodNotGet, WebSocketKeyHeaderMissing,
    WebSocketUpgradeRejection,
};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use std::future::Future;
use switchboard_transport::tungstenite::handshake::derive_accept_key;
use switchboard_transport::tungstenite::protocol::{Role, WebSocketConfig};
use switchboard_transport::{Adapter, SocketIo, Tungstenite};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket of an upgraded request, as the hub runs it.
pub(crate) type UpgradedSocket =
    Adapter<WebSocketStream<Wire<TokioIo<hyper::upgrade::Upgraded>>>, Tungstenite>;

/// An extractor for a WebSocket handshake (HTTP/1.1 `GET` with `Connection: upgrade`,
/// `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`): hand it to
/// [`upgrade`](super::upgrade), [`upgrade_framed`](super::upgrade_framed) or
/// [`refuse`](super::refuse). A request that is not one is refused as axum's
/// `WebSocketUpgrade` refuses it (with its [`WebSocketUpgradeRejection`]).
#[derive(Debug)]
#[must_use]
pub struct WebSocketUpgrade {
    /// The client's `Sec-WebSocket-Key`.
    key: HeaderValue,
    /// The subprotocols the client offered, in its order.
    offered: Vec<HeaderValue>,
    /// The subprotocol chosen for the answer.
    protocol: Option<HeaderValue>,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

impl WebSocketUpgrade {
    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`, each of a comma-separated
    /// list on its own), in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.offered.iter()
    }

    /// Answer with the first of `protocols` (in decreasing order of preference) that the client
    /// offered, if any, as the connection's subprotocol.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.protocol = protocols.into_iter().find_map(|protocol| {
            let protocol = HeaderValue::from_str(protocol.as_ref()).ok()?;
            self.offered.contains(&protocol).then_some(protocol)
        });
        self
    }

    /// The subprotocol chosen by [`WebSocketUpgrade::protocols`], if any.
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// Answer `101 Switching Protocols` and, once hyper hands over the connection, run
    /// `connection` with it as a WebSocket configured with `config`, in a task of its own. A
    /// connection hyper fails to hand over (the client went away) is dropped.
    pub(crate) fn on_upgrade<C, F>(self, config: WebSocketConfig, connection: C) -> Response
    where
        C: FnOnce(UpgradedSocket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let io = Wire(SocketIo::new(
                TokioIo::new(upgraded),
                config.max_write_buffer_size,
            ));
            let queue = io.0.queue();
            let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            connection(Adapter::with_write_queue(socket, queue)).await;
        });
        let accept = HeaderValue::try_from(derive_accept_key(self.key.as_bytes()))
            .expect("base64 is a valid header value");
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(axum::body::Body::empty())
            .expect("a valid response");
        if let Some(protocol) = self.protocol {
            let headers = response.headers_mut();
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.version > Version::HTTP_11 {
            return Err(if parts.method == Method::CONNECT {
                ConnectionNotUpgradable::default().into()
            } else {
                MethodNotConnect::default().into()
            });
        }
        if parts.method != Method::GET {
            return Err(MethodNotGet::default().into());
        }
        if !header_contains(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(InvalidConnectionHeader::default().into());
        }
        if !header_is(&parts.headers, header::UPGRADE, "websocket") {
            return Err(InvalidUpgradeHeader::default().into());
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(WebSocketKeyHeaderMissing::default)?
            .clone();
        if !header_is(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(InvalidWebSocketVersionHeader::default().into());
        }
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(ConnectionNotUpgradable::default)?;
        let offered = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|protocol| HeaderValue::from_bytes(protocol.trim_ascii()).ok())
            .collect();
        Ok(Self {
            key,
            offered,
            protocol: None,
            on_upgrade,
        })
    }
}

/// Whether header `name` is `value`, ignoring ASCII case.
fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|header| header.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether header `name` contains `value` (lower case), ignoring ASCII case.
fn header_contains(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .and_then(|header| header.to_str().ok())
        .is_some_and(|header| header.to_ascii_lowercase().contains(value))
}
