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
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The development secret and API key of `switchboard serve`, so that the same tokens work.
const DEVELOPMENT_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";
const DEVELOPMENT_API_KEY: &str = "switchboard-development-api-key";

/// The hand-written broadcast hub Switchboard is benchmarked against.
#[derive(Debug, Parser)]
#[command(name = "switchboard-baseline", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// HS256 secret of client tokens.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", default_value = DEVELOPMENT_SECRET, hide_default_value = true, hide_env_values = true)]
    secret: String,
    /// Bearer key of `POST /api/publish`.
    #[arg(long, env = "SWITCHBOARD_API_KEY", default_value = DEVELOPMENT_API_KEY, hide_default_value = true, hide_env_values = true)]
    api_key: String,
}

/// Every client's channel and every room's members.
struct Hub {
    clients: Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>,
    rooms: Mutex<HashMap<String, HashSet<u64>>>,
    next_id: AtomicU64,
    keys: DecodingKey,
    validation: Validation,
    api_key: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

#[derive(Deserialize)]
struct Handshake {
    token: Option<String>,
}

/// A client frame: only `join` is understood.
#[derive(Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: String,
    room: Option<String>,
}

/// A message as every recipient receives it.
#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    event: &'a str,
    data: &'a Value,
}

#[derive(Deserialize)]
struct PublishTo {
    room: String,
}

#[derive(Deserialize)]
struct Publish {
    to: PublishTo,
    event: String,
    #[serde(default)]
    data: Value,
}

async fn connect(
    State(hub): State<Arc<Hub>>,
    Query(handshake): Query<Handshake>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(token) = handshake.token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let user = match jsonwebtoken::decode::<Claims>(&token, &hub.keys, &hub.validation) {
        Ok(data) => data.claims.sub,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
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
    headers: HeaderMap,
    Json(publish): Json<Publish>,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(hub.api_key.as_str());
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
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
            let frame = MessageFrame {
                kind: "message",
                room: &publish.to.room,
                event: &publish.event,
                data: &publish.data,
            };
            let text = serde_json::to_string(&frame).expect("a message serializes");
            if tx.send(Message::Text(text.into())).is_ok() {
                reached += 1;
            }
        }
    }
    Json(json!({"reached": reached})).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let hub = Arc::new(Hub {
        clients: Mutex::new(HashMap::new()),
        rooms: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        keys: DecodingKey::from_secret(cli.secret.as_bytes()),
        validation,
        api_key: cli.api_key,
    });
    let app = Router::new()
        .route("/ws", get(connect))
        .route("/api/publish", post(publish))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    eprintln!(
        "switchboard-baseline listening on http://{}",
        listener.local_addr()?
    );
    // As the Switchboard server does: small frames go out at once, not after Nagle's delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
