//! The load tool's Socket.IO client (`--protocol socketio`): the smallest Engine.IO v4 /
//! Socket.IO v5 client over the WebSocket transport alone
//! (`/socket.io/?EIO=4&transport=websocket`), enough to measure a Socket.IO hub on the same
//! load as Switchboard.
//!
//! A client reads the Engine.IO open packet (`0{"sid":..}`), connects to the default namespace
//! with its token as the auth (`40{"token":..}`) and waits for the namespace's answer (`40{..}`,
//! or `44{..}` when refused); it answers every engine ping (`2`) with a pong (`3`), sends events
//! as `42["name",data]` and reads the events the server sends, whose JSON array the worker then
//! reads (`["load",{"i":..,"t":..}]` carries the same index and send time as Switchboard's
//! `message` frames, so latency and losses are counted the same way).

use crate::link::{Read, WsStream};
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

/// An Engine.IO packet, as read from one WebSocket text message.
#[derive(Debug, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0{..}`: the session's parameters (JSON).
    Open(&'a str),
    /// `1`: the server closes the session.
    Close,
    /// `2<probe>`: answered by `3<probe>`.
    Ping(&'a str),
    /// `3`.
    Pong,
    /// `4<socket.io packet>`.
    Message(SocketPacket<'a>),
    /// `5` (upgrade) and `6` (noop): nothing to do over WebSocket.
    Other,
}

/// A Socket.IO packet of the default namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketPacket<'a> {
    /// `0{..}`: connected to the namespace.
    Connect(&'a str),
    /// `1`: disconnected from the namespace.
    Disconnect,
    /// `2[..]`: an event, as its JSON array `["name", data..]` (the optional acknowledgement
    /// id is skipped).
    Event(&'a str),
    /// `4{..}`: the connection was refused, and why.
    ConnectError(&'a str),
    /// Acknowledgements and binary packets: not used by the load.
    Other,
}

/// Why a text is not an Engine.IO packet this client reads.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Decode one Engine.IO packet.
pub fn decode(text: &str) -> Result<EnginePacket<'_>, DecodeError> {
    let mut chars = text.chars();
    let kind = chars
        .next()
        .ok_or_else(|| DecodeError("empty packet".into()))?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EnginePacket::Open(rest),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(rest),
        '3' => EnginePacket::Pong,
        '4' => EnginePacket::Message(decode_socket(rest)?),
        '5' | '6' => EnginePacket::Other,
        other => return Err(DecodeError(format!("unknown engine packet type {other:?}"))),
    })
}

/// Decode a Socket.IO packet (the payload of an Engine.IO message).
fn decode_socket(text: &str) -> Result<SocketPacket<'_>, DecodeError> {
    let mut chars = text.chars();
    let kind = chars
        .next()
        .ok_or_else(|| DecodeError("empty message".into()))?;
    let mut rest = chars.as_str();
    if rest.starts_with('/') {
        // Another namespace than the default one, `/name,`: the load only uses `/`.
        return Err(DecodeError(format!(
            "a packet of another namespace: {text:?}"
        )));
    }
    Ok(match kind {
        '0' => SocketPacket::Connect(rest),
        '1' => SocketPacket::Disconnect,
        '2' => {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            if !rest.starts_with('[') {
                return Err(DecodeError(format!("an event without its array: {text:?}")));
            }
            SocketPacket::Event(rest)
        }
        '4' => SocketPacket::ConnectError(rest),
        '3' | '5' | '6' => SocketPacket::Other,
        other => {
            return Err(DecodeError(format!(
                "unknown socket.io packet type {other:?}"
            )))
        }
    })
}

/// The connect packet of the default namespace, with `token` as the auth.
pub fn connect_packet(token: &str) -> String {
    #[derive(Serialize)]
    struct Auth<'a> {
        token: &'a str,
    }
    format!(
        "40{}",
        serde_json::to_string(&Auth { token }).expect("the auth serializes")
    )
}

/// An event packet: `42["name",data]`.
pub fn event_packet(name: &str, data: &impl Serialize) -> String {
    let array = serde_json::to_string(&(name, data)).expect("an event serializes");
    format!("42{array}")
}

/// The Socket.IO endpoint of a server's base URL, WebSocket transport only.
pub fn url(server: &str) -> String {
    let ws = crate::link::ws_url(server);
    let base = ws.strip_suffix("/ws").unwrap_or(&ws);
    format!("{base}/socket.io/?EIO=4&transport=websocket")
}

/// What an event (its JSON array) means to a load client.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<T> {
    /// `["joined", room]`.
    Joined,
    /// `["load", data]`: a load message and its data.
    Load(T),
    /// Anything else.
    Other,
}

/// Read an event's array: a load message's data is parsed as `T`.
pub fn event<'a, T: Deserialize<'a>>(array: &'a str) -> Event<T> {
    if let Ok(("load", data)) = serde_json::from_str::<(&str, T)>(array) {
        return Event::Load(data);
    }
    match serde_json::from_str::<(&str, IgnoredAny)>(array) {
        Ok(("joined", _)) => Event::Joined,
        _ => Event::Other,
    }
}

/// Open a session on `socket` (just connected to [`url`]): read the open packet, connect to
/// the default namespace with `token`, wait for the answer.
pub async fn handshake(socket: &mut WsStream, token: &str) -> Result<(), String> {
    let mut opened = false;
    loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("socket.io handshake: {e}")),
            None => return Err("closed during the socket.io handshake".into()),
        };
        match decode(&text).map_err(|e| e.0)? {
            EnginePacket::Open(_) if !opened => {
                opened = true;
                socket
                    .send(Message::text(connect_packet(token)))
                    .await
                    .map_err(|e| format!("socket.io connect: {e}"))?;
            }
            EnginePacket::Message(SocketPacket::Connect(_)) if opened => return Ok(()),
            EnginePacket::Message(SocketPacket::ConnectError(why)) => {
                return Err(format!("socket.io connect refused: {why}"))
            }
            EnginePacket::Ping(probe) => pong(socket, probe).await?,
            EnginePacket::Close => return Err("closed during the socket.io handshake".into()),
            other => return Err(format!("unexpected packet in the handshake: {other:?}")),
        }
    }
}

async fn pong(socket: &mut WsStream, probe: &str) -> Result<(), String> {
    socket
        .send(Message::text(format!("3{probe}")))
        .await
        .map_err(|e| format!("pong: {e}"))
}

/// The next event's array, answering pings on the way.
pub async fn read(socket: &mut WsStream) -> Read {
    loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                return Read::Closed(close.map_or(1005, |c| u16::from(c.code)))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Read::Closed(1006),
        };
        match decode(&text) {
            Ok(EnginePacket::Message(SocketPacket::Event(array))) => {
                return Read::Text(array.to_owned())
            }
            Ok(EnginePacket::Ping(probe)) => {
                if pong(socket, probe).await.is_err() {
                    return Read::Closed(1006);
                }
            }
            Ok(EnginePacket::Close | EnginePacket::Message(SocketPacket::Disconnect)) => {
                return Read::Closed(1000)
            }
            Ok(_) => {}
            Err(_) => return Read::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Link, Protocol, Transport};

    #[test]
    fn engine_packets_are_told_apart_by_their_first_character() {
        assert_eq!(
            decode(r#"0{"sid":"a","pingInterval":25000}"#),
            Ok(EnginePacket::Open(r#"{"sid":"a","pingInterval":25000}"#))
        );
        assert_eq!(decode("1"), Ok(EnginePacket::Close));
        assert_eq!(decode("2"), Ok(EnginePacket::Ping("")));
        assert_eq!(decode("2probe"), Ok(EnginePacket::Ping("probe")));
        assert_eq!(decode("3"), Ok(EnginePacket::Pong));
        assert_eq!(decode("6"), Ok(EnginePacket::Other));
    }

    #[test]
    fn socket_packets_of_the_default_namespace_are_decoded() {
        assert_eq!(
            decode(r#"40{"sid":"x"}"#),
            Ok(EnginePacket::Message(SocketPacket::Connect(
                r#"{"sid":"x"}"#
            )))
        );
        assert_eq!(
            decode(r#"44{"message":"no"}"#),
            Ok(EnginePacket::Message(SocketPacket::ConnectError(
                r#"{"message":"no"}"#
            )))
        );
        assert_eq!(
            decode(r#"42["load",{"i":1}]"#),
            Ok(EnginePacket::Message(SocketPacket::Event(
                r#"["load",{"i":1}]"#
            )))
        );
        // An acknowledgement id before the array is skipped.
        assert_eq!(
            decode(r#"4212["a"]"#),
            Ok(EnginePacket::Message(SocketPacket::Event(r#"["a"]"#)))
        );
        assert_eq!(
            decode("41"),
            Ok(EnginePacket::Message(SocketPacket::Disconnect))
        );
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        for bad in ["", "4", "9", "47", "42", "42{}", "42/admin,[\"a\"]", "é"] {
            assert!(decode(bad).is_err(), "{bad:?} decoded");
        }
    }

    #[test]
    fn packets_are_encoded_as_a_socket_io_server_reads_them() {
        assert_eq!(connect_packet("t.k.n"), r#"40{"token":"t.k.n"}"#);
        assert_eq!(event_packet("join", &"load"), r#"42["join","load"]"#);
        assert_eq!(
            event_packet("publish", &serde_json::json!({"i": 1})),
            r#"42["publish",{"i":1}]"#
        );
    }

    #[test]
    fn events_are_read_as_joins_and_load_messages() {
        #[derive(Debug, PartialEq, Eq, Deserialize)]
        struct Stamp {
            i: usize,
        }
        assert_eq!(
            event::<Stamp>(r#"["load",{"i":3,"pad":"x"}]"#),
            Event::Load(Stamp { i: 3 })
        );
        assert_eq!(event::<Stamp>(r#"["joined","load"]"#), Event::Joined);
        assert_eq!(event::<Stamp>(r#"["load","not a stamp"]"#), Event::Other);
        assert_eq!(event::<Stamp>(r#"["other",{"i":3}]"#), Event::Other);
        assert_eq!(event::<Stamp>("not json"), Event::Other);
    }

    /// A token of the development secret the peer checks.
    fn token(user: &str) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(crate::DEVELOPMENT_SECRET.as_bytes());
        crate::token::sign(&key, user, 600).unwrap()
    }

    /// The socketioxide peer on a port the system picks; its base URL.
    async fn peer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = switchboard_peer::Secrets::default();
        tokio::spawn(switchboard_socketio_peer::serve(
            listener,
            config,
            std::future::pending(),
        ));
        url
    }

    async fn open(server: &str, token: &str) -> Result<Link, String> {
        let http = reqwest::Client::new();
        Link::open(
            Transport::Websocket,
            Protocol::Socketio,
            &http,
            server,
            token,
        )
        .await
    }

    /// The next event that is not `Other`, within 10 s.
    async fn next_event(link: &mut Link) -> Event<serde_json::Value> {
        let wait = async {
            loop {
                match link.read().await {
                    Read::Text(array) => match event(&array) {
                        Event::Other => continue,
                        known => return known,
                    },
                    Read::Closed(code) => panic!("closed with {code}"),
                    Read::Other => continue,
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .expect("an event within 10 s")
    }

    #[tokio::test]
    async fn a_clients_publish_event_reaches_another_client_of_the_room_over_real_sockets() {
        let server = peer().await;
        let mut reader = open(&server, &token("reader")).await.unwrap();
        reader.send(event_packet("join", &"room")).await.unwrap();
        assert_eq!(next_event(&mut reader).await, Event::Joined);
        let mut writer = open(&server, &token("writer")).await.unwrap();
        let publish = serde_json::json!({
            "to": {"room": "room"}, "event": "load", "data": {"i": 7, "t": 1}
        });
        writer
            .send(event_packet("publish", &publish))
            .await
            .unwrap();
        assert_eq!(
            next_event(&mut reader).await,
            Event::Load(serde_json::json!({"i": 7, "t": 1}))
        );
    }

    #[tokio::test]
    async fn a_bad_token_is_refused_at_the_socket_io_connect() {
        let server = peer().await;
        let refused = open(&server, "not-a-token").await.err().expect("refused");
        assert!(refused.contains("socket.io connect refused"), "{refused}");
    }

    #[test]
    fn the_endpoint_is_the_websocket_transport_of_engine_io_v4() {
        assert_eq!(
            url("http://h:1/"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
    }
}
