//! The raw peer over real sockets: its handshake checks the token, a join then a publish
//! reaches the member as one text frame (published in the handler or in the hub task), and a
//! client breaking the framing rules is closed with the matching code.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_raw_peer::Publishing;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::MaybeTlsStream;

const SECRET: &str = "a test secret";
const API_KEY: &str = "a test key";

type Socket = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The peer on a port the system picks; its address.
async fn peer() -> String {
    peer_publishing(Publishing::Inline).await
}

/// The peer on a port the system picks, publishing as `publishing` says; its address.
async fn peer_publishing(publishing: Publishing) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = switchboard_peer::Secrets {
        secret: SECRET.into(),
        api_key: API_KEY.into(),
    };
    tokio::spawn(switchboard_raw_peer::serve(
        listener,
        config,
        publishing,
        std::future::pending(),
    ));
    addr
}

fn token(user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user, "exp": exp}),
        &key,
    )
    .unwrap()
}

/// The next message, within 10 s.
async fn next(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10 s")
        .expect("the socket is open")
        .expect("a well-formed message")
}

async fn next_json(socket: &mut Socket) -> Value {
    match next(socket).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn connect(addr: &str, user: &str) -> Socket {
    let url = format!("ws://{addr}/ws?token={}", token(user));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "welcome");
    socket
}

#[tokio::test]
async fn a_bad_token_is_refused_before_the_upgrade() {
    let addr = peer().await;
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=forged")).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn a_publish_reaches_every_member_of_the_room_once() {
    a_publish_reaches_every_member_once(Publishing::Inline).await;
}

#[tokio::test]
async fn a_publish_handed_to_the_hub_task_reaches_every_member_of_the_room_once() {
    a_publish_reaches_every_member_once(Publishing::HubTask).await;
}

/// Two members of a room and a bystander: a publish answers `reached: 2`, each member gets
/// the message once, the bystander nothing.
async fn a_publish_reaches_every_member_once(publishing: Publishing) {
    let addr = peer_publishing(publishing).await;
    let mut members = Vec::new();
    for user in ["a", "b"] {
        let mut socket = connect(&addr, user).await;
        socket
            .send(Message::text(r#"{"type":"join","room":"r"}"#))
            .await
            .unwrap();
        assert_eq!(
            next_json(&mut socket).await,
            json!({"type": "joined", "room": "r"})
        );
        members.push(socket);
    }
    let mut bystander = connect(&addr, "c").await;
    let answer: Value = publish(&addr, r#"{"to":{"room":"r"},"event":"e","data":{"n":1}}"#).await;
    assert_eq!(answer, json!({"reached": 2}));
    for socket in &mut members {
        assert_eq!(
            next_json(socket).await,
            json!({"type": "message", "room": "r", "event": "e", "data": {"n": 1}})
        );
    }
    // The bystander, in no room, gets nothing: its next frame is the answer to its ping.
    bystander
        .send(Message::Ping(b"p".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut bystander).await,
        Message::Pong(b"p".to_vec().into())
    );
}

#[tokio::test]
async fn an_unmasked_client_frame_is_closed_with_1002() {
    let addr = peer().await;
    let mut socket = connect(&addr, "a").await;
    let MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
        panic!("a plain TCP socket")
    };
    // A text frame as a server would send it: clients must mask theirs (RFC 6455 §5.1).
    tcp.write_all(b"\x81\x02hi").await.unwrap();
    match next(&mut socket).await {
        Message::Close(Some(close)) => assert_eq!(u16::from(close.code), 1002),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// `POST /api/publish` with `key` as its bearer over a plain TCP connection: the answer's
/// status code and body.
async fn post_publish(addr: &str, key: &str, body: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {response}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, body.to_owned())
}

/// `POST /api/publish` with the API key: its JSON answer, which must be a 200.
async fn publish(addr: &str, body: &str) -> Value {
    let (status, answer) = post_publish(addr, API_KEY, body).await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

/// A publish without the API key is refused before its body is read, and one whose body is
/// not a publish is refused too: neither reaches a member, whose next message is the next
/// publish that was right.
#[tokio::test]
async fn a_publish_without_the_key_or_with_a_bad_body_is_refused_and_reaches_nobody() {
    let addr = peer().await;
    let mut member = connect(&addr, "a").await;
    member
        .send(Message::text(r#"{"type":"join","room":"r"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut member).await["type"], "joined");

    let right = r#"{"to":{"room":"r"},"event":"e","data":1}"#;
    let (status, _) = post_publish(&addr, "a wrong key", right).await;
    assert_eq!(status, 401);
    let (status, _) = post_publish(&addr, API_KEY, r#"{"to":"r","event":"e"}"#).await;
    assert_eq!(status, 422);
    let (status, _) = post_publish(&addr, API_KEY, "not json").await;
    assert_eq!(status, 400);

    let last = r#"{"to":{"room":"r"},"event":"last","data":2}"#;
    assert_eq!(publish(&addr, last).await, json!({"reached": 1}));
    assert_eq!(next_json(&mut member).await["event"], "last");
}
