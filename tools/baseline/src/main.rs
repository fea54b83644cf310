//! `switchboard-baseline`: the broadcast hub a developer writes by hand with tokio and a
//! WebSocket library, the reference Switchboard's benchmarks are measured against.
//!
//! It is deliberately the straightforward design: one mutex-protected map from connection id
//! to that client's unbounded channel, one mutex-protected map from room to member ids, each
//! message serialized again for every recipient, and one writer task per client that sends
//! (writes and flushes) each message on its own. It speaks just enough of Switchboard's
//! protocol for the same load tool to drive both: the client token (HS256, `sub` = user) in
//! the `token` query parameter of `GET /ws`, a `welcome` frame, `{"type":"join","room":..}`
//! answered by `joined`, `message` frames, and `POST /api/publish` with
//! `{"to":{"room":..},"event":..,"data":..}` answered by `{"reached":n}`. There is no
//! heartbeat, history, backpressure or resume.
//!
//! It serves HTTP and WebSockets with axum (tokio-tungstenite underneath), with `TCP_NODELAY`
//! set on every connection, as the Switchboard server does, so that a comparison measures the
//! hubs and not the HTTP stacks.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_peer::{AuthorizedPublish, Cli, ClientUser, HasKeys, Keys};
use tokio::sync::mpsc;

/// The hand-written broadcast hub Switchboard is benchmarked against.
#[derive(Debug, Parser)]
#[command(name = "switchboard-baseline", version)]
#[command(mut_arg("listen", |a| a.required(false).default_value("127.0.0.1:8090")))]
struct Command {
    #[command(flatten)]
    cli: Cli,
}

/// Every client's channel and every room's members.
struct Hub {
    clients: Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>,
    rooms: Mutex<HashMap<String, HashSet<u64>>>,
    next_id: AtomicU64,
    keys: Keys,
}

impl HasKeys for Hub {
    fn keys(&self) -> &Keys {
        &self.keys
    }
}

/// A client frame: only `join` is understood.
#[derive(Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: String,
    room: Option<String>,
}

async fn connect(
    State(hub): State<Arc<Hub>>,
    ClientUser(user): ClientUser,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |socket| client(hub, user, socket))
}

/// One client: register its channel, write what arrives on it, handle `join`, clean up.
async fn client(hub: Arc<Hub>, user: String, socket: WebSocket) {
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    hub.clients.lock().unwrap().insert(id, tx.clone());
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let welcome = json!({"type": "welcome", "conn": id.to_string(), "user": user});
    let _ = tx.send(Message::Text(welcome.to_string().into()));
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => {
                let Ok(frame) = serde_json::from_str::<ClientFrame>(&text) else {
                    continue;
                };
                if let ("join", Some(room)) = (frame.kind.as_str(), frame.room) {
                    hub.rooms
                        .lock()
                        .unwrap()
                        .entry(room.clone())
                        .or_default()
                        .insert(id);
                    let reply = json!({"type": "joined", "room": room});
                    let _ = tx.send(Message::Text(reply.to_string().into()));
                    joined.push(room);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    hub.clients.lock().unwrap().remove(&id);
    let mut rooms = hub.rooms.lock().unwrap();
    for room in joined {
        if let Some(members) = rooms.get_mut(&room) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(&room);
            }
        }
    }
    drop(rooms);
    writer.abort();
}

async fn publish(
    State(hub): State<Arc<Hub>>,
    AuthorizedPublish(publish): AuthorizedPublish,
) -> Response {
    let members: Vec<u64> = hub
        .rooms
        .lock()
        .unwrap()
        .get(&publish.to.room)
        .map(|m| m.iter().copied().collect())
        .unwrap_or_default();
    let clients = hub.clients.lock().unwrap();
    let mut reached = 0;
    for id in members {
        if let Some(tx) = clients.get(&id) {
            // Serialized again for every recipient, as the straightforward design does.
            let text = publish.frame();
            if tx.send(Message::Text(text.into())).is_ok() {
                reached += 1;
            }
        }
    }
    Json(json!({"reached": reached})).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Command { cli } = Command::parse();
    let hub = Arc::new(Hub {
        clients: Mutex::new(HashMap::new()),
        rooms: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        keys: Keys::new(&cli.secrets),
    });
    let app = Router::new()
        .route("/ws", get(connect))
        .route("/api/publish", post(publish))
        .with_state(hub);
    let listener = switchboard_peer::bind("switchboard-baseline", cli.listen).await?;
    switchboard_peer::serve(listener, app, switchboard_peer::interrupted()).await
}
