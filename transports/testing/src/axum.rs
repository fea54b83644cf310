//! An axum route for WebSocket tests (feature `axum`): `GET /ws?user=<id>…` hands its
//! WebSocket upgrade extractor (the test's choice, e.g. `switchboard_tokio::axum::WebSocketUpgrade`)
//! to the test's upgrade, and answers 401 without a `user`.

use crate::query_param;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a route does with an upgrade extractor `W`: given the `user` of the query and the
/// whole query.
type Upgrade<W> = dyn Fn(W, &str, &str) -> Response + Send + Sync;

/// Serve `GET /ws` on a free port of 127.0.0.1: a request whose query has `user=<id>` is
/// answered by `upgrade(ws, user, query)`, one without by 401. Returns the address and the
/// serving task (abort it when done).
pub async fn serve_ws_route<W, F>(upgrade: F) -> (SocketAddr, JoinHandle<()>)
where
    W: FromRequestParts<Arc<Upgrade<W>>> + Send + 'static,
    F: Fn(W, &str, &str) -> Response + Send + Sync + 'static,
{
    async fn ws<W>(
        State(upgrade): State<Arc<Upgrade<W>>>,
        RawQuery(query): RawQuery,
        ws: W,
    ) -> Response {
        let query = query.unwrap_or_default();
        match query_param(&query, "user") {
            Some(user) => upgrade(ws, user, &query),
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    let upgrade: Arc<Upgrade<W>> = Arc::new(upgrade);
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
