//! `switchboard-raw-peer`: the reference fan-out Switchboard's benchmarks compare with: what a
//! hub costs when it does nothing but deliver, as directly as tokio allows.
//!
//! Each publish is serialized once and framed once, as a complete unmasked server WebSocket
//! frame (header and payload) in one shared [`Bytes`]; every member of the room gets a clone of
//! that handle in its queue, and each connection's writer sends whatever is queued with one
//! vectored write per wake-up (`write_vectored` on the raw `TcpStream`, continued only if the
//! kernel took part of it). The HTTP side (the handshake, `POST /api/publish`) is axum's;
//! after the `101` the connection is taken back from hyper as the bare `TcpStream`, so no
//! WebSocket library sits on the delivery path.
//!
//! It speaks the subset of Switchboard's protocol the load tool uses, as the baseline does:
//! the client token (HS256, `sub` = user) in the `token` query parameter of `GET /ws`, a
//! `welcome` frame, `{"type":"join","room":..}` answered by `joined`, `message` frames, and
//! `POST /api/publish` with `{"to":{"room":..},"event":..,"data":..}` answered by
//! `{"reached":n}`. There is no heartbeat, history or resume. Each connection's queue holds at
//! most [`QUEUE_FRAMES`] frames: a client that falls that far behind is disconnected (its
//! queue's end closes the socket), never silently skipped.
//!
//! [`Publishing`] says where a publish is queued for the members: in the HTTP handler that
//! received it (the reference), or in a task of its own that the handler hands it to and
//! waits for, as a hub that owns its state in a task (Switchboard's shards) must: the same
//! work with one hand-off each way between tasks, so that its cost can be measured alone.

#![forbid(unsafe_code)]

mod connection;
pub mod wire;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use switchboard_peer::{AuthorizedPublish, ClientUser, HasKeys, Keys, Secrets};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Frames a connection's queue holds before the connection is dropped as too slow: far more
/// than any benchmark run publishes, so only a stuck client reaches it. tokio's bounded
/// channel allocates its slots in blocks as they fill, so the bound costs no idle memory.
pub const QUEUE_FRAMES: usize = 65_536;

/// Where a publish is queued for the room's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Publishing {
    /// In the HTTP handler that received it.
    #[default]
    Inline,
    /// In one task that owns the publishing, handed each publish over a bounded channel and
    /// answering on a oneshot, as a hub task is (the handler waits for the answer).
    HubTask,
}

/// Publishes the hub task holds before a handler waits to hand it another.
const HUB_TASK_QUEUE: usize = 64;

/// A publish handed to the hub task: the room, the framed message, where to answer with the
/// members reached.
type Job = (String, Bytes, oneshot::Sender<usize>);

/// Every room's members, each by its queue.
struct Hub {
    rooms: Mutex<HashMap<String, HashMap<u64, mpsc::Sender<Bytes>>>>,
    next_id: AtomicU64,
    keys: Keys,
    /// The hub task's queue, with [`Publishing::HubTask`].
    hub_task: Option<mpsc::Sender<Job>>,
}

impl HasKeys for Hub {
    fn keys(&self) -> &Keys {
        &self.keys
    }
}

impl Hub {
    /// Add connection `id` to `room`.
    fn join(&self, room: &str, id: u64, queue: &mpsc::Sender<Bytes>) {
        let mut rooms = self.rooms.lock().unwrap();
        rooms
            .entry(room.to_owned())
            .or_default()
            .insert(id, queue.clone());
    }

    /// Queue `frame` for every member of `room`; the members reached.
    fn publish(&self, room: &str, frame: &Bytes) -> usize {
        let mut reached = 0;
        let mut rooms = self.rooms.lock().unwrap();
        if let Some(members) = rooms.get_mut(room) {
            // A member whose queue is full is dropped from the room; its writer closes it.
            members.retain(|_, queue| match queue.try_send(frame.clone()) {
                Ok(()) => {
                    reached += 1;
                    true
                }
                Err(_) => false,
            });
        }
        reached
    }

    /// Remove connection `id` from `rooms`.
    fn leave(&self, rooms: &[String], id: u64) {
        let mut all = self.rooms.lock().unwrap();
        for room in rooms {
            if let Some(members) = all.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    all.remove(room);
                }
            }
        }
    }
}

/// `GET /ws`: check the token and the upgrade headers, answer `101` and hand the bare socket
/// to [`connection::run`].
async fn connect(
    State(hub): State<Arc<Hub>>,
    ClientUser(user): ClientUser,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let is_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_13 = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let (true, true, Some(key)) = (
        is_websocket,
        version_13,
        headers.get(header::SEC_WEBSOCKET_KEY),
    ) else {
        return (StatusCode::BAD_REQUEST, "a WebSocket upgrade is expected").into_response();
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let Ok(parts) = hyper_util::server::conn::auto::upgrade::downcast::<
            hyper_util::rt::TokioIo<tokio::net::TcpStream>,
        >(upgraded) else {
            return;
        };
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        connection::run(hub, id, user, parts.io.into_inner(), parts.read_buf).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response
}

/// `POST /api/publish`: serialize and frame the message once, queue the same bytes for every
/// member of the room, here or in the hub task.
async fn publish(
    State(hub): State<Arc<Hub>>,
    AuthorizedPublish(publish): AuthorizedPublish,
) -> Response {
    let text = publish.frame();
    let frame = wire::text_frame(&text);
    let reached = match &hub.hub_task {
        None => hub.publish(&publish.to.room, &frame),
        Some(queue) => {
            let (answer, reached) = oneshot::channel();
            // A job the hub task is gone for is dropped with its answer: one refusal for both.
            let _ = queue.send((publish.to.room, frame, answer)).await;
            match reached.await {
                Ok(reached) => reached,
                Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
    };
    Json(json!({"reached": reached})).into_response()
}

/// The hub task: publish what the handlers hand over, in order, until the hub is gone.
async fn hub_task(hub: Weak<Hub>, mut jobs: mpsc::Receiver<Job>) {
    while let Some((room, frame, answer)) = jobs.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        let _ = answer.send(hub.publish(&room, &frame));
    }
}

/// Serve the peer on `listener`, checking `secrets` and publishing as `publishing` says, until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    secrets: Secrets,
    publishing: Publishing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (queue, jobs) = (publishing == Publishing::HubTask)
        .then(|| mpsc::channel(HUB_TASK_QUEUE))
        .unzip();
    let hub = Arc::new(Hub {
        rooms: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        keys: Keys::new(&secrets),
        hub_task: queue,
    });
    if let Some(jobs) = jobs {
        tokio::spawn(hub_task(Arc::downgrade(&hub), jobs));
    }
    let app = Router::new()
        .route("/ws", get(connect))
        .route("/api/publish", post(publish))
        .with_state(hub);
    switchboard_peer::serve(listener, app, shutdown).await
}
