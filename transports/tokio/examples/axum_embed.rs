//! Embedding Switchboard in an axum application.
//!
//! Run it with `cargo run -p switchboard-tokio --features axum --example axum_embed`, then
//! connect a WebSocket client to `ws://127.0.0.1:3000/ws?user=alice` and join a room with
//! `{"type":"join","room":"lobby"}`; `POST /announce` publishes to that room. Clients may send
//! `{"type":"ask","data":...,"ref":1}` frames, which the application answers with a `reply`
//! frame echoing the `ref`. Ctrl-C shuts down gracefully (clients get close 1001).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use switchboard::{Answer, Config, Message, Notice, Open, Target};
use switchboard_tokio::axum::{upgrade, WebSocketUpgrade};
use switchboard_tokio::{position_from_query, Builder, Handle};

/// The WebSocket route: authenticate (here, naively, from the query), then hand over.
async fn ws(
    State(hub): State<Handle>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let query = query.unwrap_or_default();
    let user = query.split('&').find_map(|pair| pair.strip_prefix("user="));
    let Some(user) = user else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let mut open = Open::new(user);
    open.resume = position_from_query(Some(&query));
    upgrade(&hub, ws, open)
}

/// An ordinary HTTP route that publishes to a room on every shard.
async fn announce(State(hub): State<Handle>, body: String) -> Response {
    let message = Message::new("announcement", body.into());
    match hub.publish(Target::Room("lobby".into()), message).await {
        Ok(delivery) => format!("reached {}\n", delivery.reached).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut config = Config::development();
    config.app_frame_types = vec!["ask".into()];
    let (hub, mut events) = Builder::new(config).start();

    // Answer the clients' application frames: a `reply` to the asking connection, with its
    // `ref` (here the question's data, echoed).
    let answers = hub.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Notice::App(app) = event.notice {
                let reply = Answer::Reply(app.data);
                let _ = answers.answer(app.conn, app.reference, reply).await;
            }
        }
    });

    let app = Router::new()
        .route("/ws", get(ws))
        .route("/announce", post(announce))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on ws://{}/ws?user=<id>", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            hub.shutdown().await;
        })
        .await
}
