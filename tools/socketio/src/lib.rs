//! `switchboard-socketio-peer`: the Socket.IO hub Switchboard's fan-out benchmarks compare
//! with, on socketioxide (Engine.IO v4 / Socket.IO v5 over WebSocket) with axum and tokio, set
//! up as a fair user of the crate would for a room broadcast:
//!
//! - the client's token (HS256, `sub` = user, the same tokens as Switchboard's) comes in the
//!   Socket.IO connect packet's auth, `{"token": ..}`, and is checked by a connect middleware
//!   (a bad one is refused with a connect error);
//! - `join` (`42["join","<room>"]`) puts the socket in the room and is answered by
//!   `42["joined","<room>"]`;
//! - a publish is one room broadcast (`io.to(room).emit(event, data)`: the packet is
//!   serialized once and its shared bytes queued on every member's socket), made either by
//!   `POST /api/publish` with the body the load tool sends to every hub
//!   (`{"to":{"room":..},"event":..,"data":..}`, bearer API key), or by a client's
//!   `42["publish",{same body}]`;
//! - **`max_buffer_size`** (engineioxide's per-socket queue of packets waiting for the
//!   WebSocket writer, default 128) is raised to [`MAX_BUFFER_PACKETS`]: with the default, a
//!   burst of more than 128 messages to a socket whose writer is behind fails the emit for
//!   that socket (`InternalChannelFull`) and the message is dropped, which would measure
//!   dropping rather than delivering. tokio's bounded channel allocates its slots in blocks as
//!   they fill, so the raised bound costs no idle memory. Every other setting is
//!   socketioxide's default (4 KiB WebSocket read buffer, ping every 25 s, both transports
//!   offered; the load tool uses WebSocket only).
//!
//! The answer to `POST /api/publish` is `{"failed": n}`: the sockets the broadcast could not
//! queue on (socketioxide does not count the ones it reached).

#![forbid(unsafe_code)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{Data, SocketRef, State as IoState};
use socketioxide::handler::ConnectHandler;
use socketioxide::{BroadcastError, SocketIo};
use std::future::Future;
use std::sync::Arc;
use switchboard_peer::{AuthorizedPublish, HasKeys, Keys, Publish, Secrets};
use tokio::net::TcpListener;

/// engineioxide's per-socket packet queue, raised from its default of 128 so that a socket
/// whose writer is behind queues a burst instead of dropping it: far more than any benchmark
/// run publishes (400 messages at most).
pub const MAX_BUFFER_PACKETS: usize = 65_536;

/// The auth payload of the Socket.IO connect packet.
#[derive(Deserialize)]
struct Auth {
    token: String,
}

/// Why a connection is refused.
#[derive(Debug)]
struct BadToken;

impl std::fmt::Display for BadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a valid token is required")
    }
}

/// Connect middleware: the auth's token must be valid; then the socket's event handlers are
/// set (`join` and `publish`).
///
/// They are set here, not in the connect handler, because socketioxide sends the namespace's
/// connect answer (`40{..}`) before it starts the connect handler: a client that emits `join`
/// as soon as it is connected would otherwise race the handler's `socket.on(..)`, and an event
/// with no handler yet is dropped (seen as a client never joined, about one in a hundred under
/// load). The middleware runs before the answer is sent.
async fn authenticate(
    socket: SocketRef,
    Data(auth): Data<Auth>,
    IoState(keys): IoState<Arc<Keys>>,
) -> Result<(), BadToken> {
    keys.user(&auth.token).ok_or(BadToken)?;
    socket.on(
        "join",
        async |socket: SocketRef, Data(room): Data<String>| {
            socket.join(room.clone());
            let _ = socket.emit("joined", &room);
        },
    );
    socket.on(
        "publish",
        async |io: SocketIo, Data(publish): Data<Publish>| {
            let _ = broadcast(&io, &publish).await;
        },
    );
    Ok(())
}

/// The connect handler: everything was set up by [`authenticate`].
async fn connected() {}

/// One room broadcast; the sockets it could not queue on.
async fn broadcast(io: &SocketIo, publish: &Publish) -> usize {
    match io
        .to(publish.to.room.clone())
        .emit(&publish.event, &publish.data)
        .await
    {
        Ok(()) => 0,
        Err(BroadcastError::Socket(failed)) => failed.len(),
        Err(_) => usize::MAX,
    }
}

/// What `POST /api/publish` uses: the Socket.IO server and the peer's keys.
#[derive(Clone)]
struct Api {
    io: SocketIo,
    keys: Arc<Keys>,
}

impl HasKeys for Api {
    fn keys(&self) -> &Keys {
        &self.keys
    }
}

/// `POST /api/publish`.
async fn publish(
    State(Api { io, .. }): State<Api>,
    AuthorizedPublish(publish): AuthorizedPublish,
) -> Response {
    match broadcast(&io, &publish).await {
        usize::MAX => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        failed => Json(json!({ "failed": failed })).into_response(),
    }
}

/// Serve the peer on `listener`, checking `secrets`, until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    secrets: Secrets,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let keys = Arc::new(Keys::new(&secrets));
    let (layer, io) = SocketIo::<LocalAdapter>::builder()
        .max_buffer_size(MAX_BUFFER_PACKETS)
        .with_state(keys.clone())
        .build_layer();
    io.ns("/", connected.with(authenticate));
    let app = Router::new()
        .route("/api/publish", post(publish))
        .with_state(Api { io, keys })
        .layer(layer);
    switchboard_peer::serve(listener, app, shutdown).await
}
