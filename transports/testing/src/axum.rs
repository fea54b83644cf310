//! An axum route for WebSocket tests (feature `axum`): `GET /ws?user=<id>…` hands its
//! `WebSocketUpgrade` to the test's upgrade, and answers 401 without a `user`.

use crate::query_param;
use axum::extract::{ws::WebSocketUpgrade, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a route does with an upgrade: given the `user` of the query and the whole query.
type Upgrade = dyn Fn(WebSocketUpgrade, &str, &str) -> Response + Send + Sync;

/// Serve `GET /ws` on a free port of 127.0.0.1: a request whose query has `user=<id>` is
/// answered by `upgrade(ws, user, query)`, one without by 401. Returns the address and the
/// serving task (abort it when done).
pub async fn serve_ws_route<F>(upgrade: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(WebSocketUpgrade, &str, &str) -> Response + Send + Sync + 'static,
{
    async fn ws(
        State(upgrade): State<Arc<Upgrade>>,
        RawQuery(query): RawQuery,
        ws: WebSocketUpgrade,
    ) -> Response {
        let query = query.unwrap_or_default();
        match query_param(&query, "user") {
            Some(user) => upgrade(ws, user, &query),
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    let upgrade: Arc<Upgrade> = Arc::new(upgrade);
    let app = axum::Router::new()
        .route("/ws", axum::routing::get(ws))
        .with_state(upgrade);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let serving = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the route serves");
    });
    (addr, serving)
}
