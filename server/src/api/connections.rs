//! The connections the node holds, asked about and closed through the API: a user's presence
//! (`GET /api/users/{user}`), a room's members (`GET /api/rooms/{room}`), disconnecting a user
//! (`POST /api/users/{user}/disconnect`); on a node of a cluster, for every node.

use super::identity::DisconnectRequest;
use super::{cluster_unavailable, name, ApiError, ErrorBody};
use super::{ConnectionView, DisconnectView, PresenceView, RoomView};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::Json;
use std::sync::Arc;
use switchboard::{ConnId, ConnectionInfo};
use switchboard_tokio::{Error, Handle};

/// Snapshots of `conns`, leaving out any that closed meanwhile.
async fn infos(handle: &Handle, conns: Vec<ConnId>) -> Result<Vec<ConnectionInfo>, Error> {
    let mut infos = Vec::with_capacity(conns.len());
    for conn in conns {
        match handle.connection_info(conn).await {
            Ok(info) => infos.push(info),
            Err(Error::UnknownConnection(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(infos)
}

/// A user's presence on this node (also what the dashboard's look-up shows).
pub async fn presence(handle: &Handle, user: String) -> Result<PresenceView, Error> {
    let conns = handle.user_connections(user.as_str()).await?;
    let conns = infos(handle, conns).await?;
    Ok(PresenceView {
        user,
        connected: !conns.is_empty(),
        total: conns.len() as u64,
        connections: conns.iter().map(ConnectionView::from).collect(),
        nodes: None,
    })
}

/// A user's presence: whether connected (on any node), each open connection of this node, and
/// in a cluster the count on every node.
#[utoipa::path(
    get,
    path = "/api/users/{user}",
    tag = "presence",
    params(("user" = String, Path, description = "The user id (1 to 256 bytes, no control character)")),
    responses(
        (status = 200, description = "The user's connections on this node, and in a cluster their count on every node", body = PresenceView),
        (status = 400, description = "An empty user id, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 503, description = "In a cluster, Redis could not be asked (`cluster_unavailable`); or the switchboard has stopped (the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn user_presence(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
) -> Result<Json<PresenceView>, ApiError> {
    name("user", &user)?;
    let view = presence(&state.handle, user).await?;
    let Some(bridge) = &state.bridge else {
        return Ok(Json(view));
    };
    let nodes = bridge.user_connections_by_node(view.user.as_str()).await;
    let nodes = nodes.map_err(cluster_unavailable)?;
    Ok(Json(view.in_cluster(bridge.node(), nodes)))
}

/// A room's members on every shard of this node, and in a cluster the count on every node.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}",
    tag = "presence",
    params(("room" = String, Path, description = "The room (1 to 256 bytes, no control character)")),
    responses(
        (status = 200, description = "The room's members on this node, and in a cluster their count on every node", body = RoomView),
        (status = 400, description = "An empty room, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 503, description = "In a cluster, Redis could not be asked (`cluster_unavailable`); or the switchboard has stopped (the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn room_members(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    name("room", &room)?;
    let members = state.handle.room_members(room.as_str()).await?;
    let members = infos(&state.handle, members).await?;
    let view = RoomView {
        room,
        total: members.len() as u64,
        members: members.iter().map(ConnectionView::from).collect(),
        nodes: None,
    };
    let Some(bridge) = &state.bridge else {
        return Ok(Json(view));
    };
    let nodes = bridge.room_members_by_node(view.room.as_str()).await;
    let nodes = nodes.map_err(cluster_unavailable)?;
    Ok(Json(view.in_cluster(bridge.node(), nodes)))
}

/// Close every connection of `user` with 4002, on this node and (on a node of a cluster) on
/// every other node; how many were closed on this node (also the dashboard's disconnect).
pub async fn disconnect_user(state: &AppState, user: String) -> Result<DisconnectView, Error> {
    let closed = match &state.bridge {
        // On every node; this node's connections are closed even if Redis is unreachable.
        Some(bridge) => {
            let (closed, told_others) = bridge.disconnect_user(user.as_str()).await;
            if let Err(e) = told_others {
                tracing::warn!(%user, error = %e, "could not disconnect the user on other nodes");
            }
            closed?
        }
        None => state.handle.disconnect_user(user.as_str()).await?,
    };
    Ok(DisconnectView {
        user,
        closed,
        cutoff: None,
    })
}

/// Close every connection of the user with 4002 (on every node of a cluster); with
/// `{"revoke": true}`, refuse the user's credentials issued until now first.
#[utoipa::path(
    post,
    path = "/api/users/{user}/disconnect",
    tag = "presence",
    params(("user" = String, Path, description = "The user id (1 to 256 bytes, no control character)")),
    request_body(content = Option<DisconnectRequest>, description = "Optional: `{\"revoke\": true}` also revokes the user's credentials issued until now"),
    responses(
        (status = 200, description = "How many connections were closed on this node, and the revocation's cut-off", body = DisconnectView),
        (status = 400, description = "A body that is not `{\"revoke\": bool}`; an empty user id, one over 256 bytes, or one with control characters", body = ErrorBody),
        (status = 429, description = "The node keeps as many revocations as it may (`auth.max_revocations`)", body = ErrorBody),
        (status = 503, description = "Redis could not store the revocation (`cluster_unavailable`), or the switchboard has stopped (`shutting_down`, the end of a shutdown)", body = ErrorBody),
    )
)]
pub(crate) async fn disconnect(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DisconnectView>, ApiError> {
    name("user", &user)?;
    let request = DisconnectRequest::from_body(&body.map_err(JsonRejection::from)?)?;
    // Revoke first: a client closed below must not get back in with the same credential.
    // A revocation Redis could not store still holds on this node: close the connections
    // anyway, then answer the error so that the caller retries.
    let revoked = match request.revoke {
        true => Some(
            state
                .auth
                .revocations
                .revoke_user(&user.as_str().into())
                .await,
        ),
        false => None,
    };
    let view = disconnect_user(&state, user).await?;
    let cutoff = revoked.transpose()?;
    Ok(Json(DisconnectView { cutoff, ..view }))
}
