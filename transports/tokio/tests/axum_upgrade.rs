//! The axum adapter's own upgrade extractor (`switchboard_tokio::axum::WebSocketUpgrade`):
//! requests that are not WebSocket handshakes are refused exactly as axum's extractor refuses
//! them (status and body), and a subprotocol the route chooses among those offered is answered.
#![cfg(feature = "axum")]

use axum::response::Response;
use std::net::SocketAddr;
use switchboard::{Config, Open};
use switchboard_testing::{guard, serve_ws_route};
use switchboard_tokio::axum::{upgrade, WebSocketUpgrade};
use switchboard_tokio::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The status line and body of the answer to `request` (sent as is; the body is read as long
/// as its `content-length` says).
async fn answer(addr: SocketAddr, request: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, value)| value.trim().parse().expect("a length"));
            if body.len() >= length {
                let status = head.lines().next().expect("a status line");
                return (status.to_owned(), body.to_owned());
            }
        }
        let mut chunk = [0; 1024];
        let read = guard("the answer", tcp.read(&mut chunk)).await;
        let read = read.expect("read");
        assert!(read > 0, "the answer ended early: {text}");
        answer.extend_from_slice(&chunk[..read]);
    }
}

/// A request to `/ws?user=a` with `method` and `headers` (besides `Host`).
fn request(method: &str, headers: &[&str]) -> String {
    let mut request = format!("{method} /ws?user=a HTTP/1.1\r\nHost: x\r\n");
    for header in headers {
        request += header;
        request += "\r\n";
    }
    request + "\r\n"
}

#[tokio::test]
async fn what_is_not_a_handshake_is_refused_as_axum_refuses_it() {
    let (handle, _events) = Builder::new(Config::development()).start();
    let hub = handle.clone();
    let (ours, serving_ours) =
        serve_ws_route(move |ws: WebSocketUpgrade, user, _| upgrade(&hub, ws, Open::new(user)))
            .await;
    let (axums, serving_axums) = serve_ws_route(
        |ws: axum::extract::ws::WebSocketUpgrade, _, _| -> Response { ws.on_upgrade(|_| async {}) },
    )
    .await;

    let connection = "Connection: upgrade";
    let upgrade_header = "Upgrade: websocket";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    let version = "Sec-WebSocket-Version: 13";
    let close = "Connection: close";
    let refused = [
        request("POST", &[connection, upgrade_header, key, version]),
        request("GET", &[close, upgrade_header, key, version]),
        request("GET", &[connection, "Upgrade: h2c", key, version]),
        request("GET", &[connection, upgrade_header, version]),
        request(
            "GET",
            &[connection, upgrade_header, key, "Sec-WebSocket-Version: 8"],
        ),
    ];
    for request in refused {
        let (status, body) = answer(ours, &request).await;
        assert!(!status.contains(" 101 "), "{request}: {status}");
        assert_eq!((status, body), answer(axums, &request).await, "{request}");
    }

    serving_ours.abort();
    serving_axums.abort();
    handle.shutdown().await;
}

#[tokio::test]
async fn the_chosen_subprotocol_among_those_offered_is_answered() {
    let (handle, _events) = Builder::new(Config::development()).start();
    let hub = handle.clone();
    let (addr, serving) = serve_ws_route(move |ws: WebSocketUpgrade, user, _| {
        let offered: Vec<_> = ws.requested_protocols().cloned().collect();
        assert_eq!(offered, ["a", "b", "c"]);
        let ws = ws.protocols(["x", "c", "b"]);
        assert_eq!(ws.selected_protocol().expect("chosen"), "c");
        upgrade(&hub, ws, Open::new(user))
    })
    .await;

    let mut request = format!("ws://{addr}/ws?user=alice")
        .into_client_request()
        .expect("a request");
    let offered = "a, b,c".parse().expect("a header value");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offered);
    let connected = guard("the handshake", tokio_tungstenite::connect_async(request)).await;
    let (_socket, response) = connected.expect("upgraded");
    assert_eq!(response.headers()["sec-websocket-protocol"], "c");

    serving.abort();
    handle.shutdown().await;
}
