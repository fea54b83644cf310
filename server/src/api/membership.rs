//! Rooms the backend decides: `POST /api/users/{user}/rooms/{room}` joins every open
//! connection of the user to the room, `DELETE` takes them out, on every node of a cluster.
//!
//! The backend decides, not the client's token: the join does not consult the connections'
//! join grants, and the room stays joined when a refreshed token does not allow it (the room
//! limits hold all the same). Each connection is told with `joined` (or `left`) without a
//! `ref`. This node acts on its own connections, then publishes the command on the cluster's
//! control channel so that every other node acts on its own.

use super::{cluster_unavailable, name, ApiError, ErrorBody, MembershipView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use std::sync::Arc;

/// Join every open connection of the user to the room, on every node.
#[utoipa::path(
    post,
    path = "/api/users/{user}/rooms/{room}",
    tag = "presence",
    params(
        ("user" = String, Path, description = "The user id (1 to 256 bytes, no control character)"),
        ("room" = String, Path, description = "The room (1 to 256 bytes, no control character)"),
    ),
    responses(
        (status = 200, description = "What the join did on this node (a user without connections: all 0); in a cluster, every other node was told", body = MembershipView),
        (status = 400, description = "An empty user or room, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 503, description = "This node's connections joined but Redis could not carry the command to the other nodes (`cluster_unavailable`: retrying is safe), or the switchboard has stopped", body = ErrorBody),
    )
)]
pub(crate) async fn add_to_room(
    State(state): State<Arc<AppState>>,
    Path((user, room)): Path<(String, String)>,
) -> Result<Json<MembershipView>, ApiError> {
    change(&state, user, room, true).await.map(Json)
}

/// Take every open connection of the user out of the room, on every node.
#[utoipa::path(
    delete,
    path = "/api/users/{user}/rooms/{room}",
    tag = "presence",
    params(
        ("user" = String, Path, description = "The user id (1 to 256 bytes, no control character)"),
        ("room" = String, Path, description = "The room (1 to 256 bytes, no control character)"),
    ),
    responses(
        (status = 200, description = "What the leave did on this node; in a cluster, every other node was told", body = MembershipView),
        (status = 400, description = "An empty user or room, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 503, description = "This node's connections left but Redis could not carry the command to the other nodes (`cluster_unavailable`: retrying is safe), or the switchboard has stopped", body = ErrorBody),
    )
)]
pub(crate) async fn remove_from_room(
    State(state): State<Arc<AppState>>,
    Path((user, room)): Path<(String, String)>,
) -> Result<Json<MembershipView>, ApiError> {
    change(&state, user, room, false).await.map(Json)
}

/// Join (`join`) or leave on this node, and tell the other nodes of a cluster.
async fn change(
    state: &AppState,
    user: String,
    room: String,
    join: bool,
) -> Result<MembershipView, ApiError> {
    name("user", &user)?;
    name("room", &room)?;
    let (u, r) = (user.as_str(), room.as_str());
    let (done, cluster) = match &state.bridge {
        Some(bridge) => {
            let (done, told) = match join {
                true => bridge.add_user_to_room(u, r).await,
                false => bridge.remove_user_from_room(u, r).await,
            };
            // Acted on here first: a retry after the error finds those unchanged.
            told.map_err(cluster_unavailable)?;
            (done?, Some(true))
        }
        None => {
            let handle = &state.handle;
            let done = match join {
                true => handle.add_user_to_room(u, r).await?,
                false => handle.remove_user_from_room(u, r).await?,
            };
            (done, None)
        }
    };
    Ok(MembershipView {
        user,
        room,
        changed: done.changed,
        unchanged: done.unchanged,
        refused: done.refused,
        cluster,
    })
}
