//! The tokio transport embedded in an axum application, as `switchboard serve` runs it: an
//! axum router on the listener whose WebSocket route authenticates in its own handler and
//! hands the upgrade to [`switchboard_tokio::axum::upgrade`]. The suite's cases run over it
//! unchanged, so the path the server uses (axum's router and the adapter's own upgrade, not
//! tokio-tungstenite's accept loop) passes everything the other transports pass.

use crate::authenticate;
use crate::network::OnTokioRouter;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use switchboard_tokio::axum::WebSocketUpgrade;
use switchboard_tokio::{position_from_query, Handle, Request};

/// The tokio transport behind an axum router.
#[derive(Debug)]
pub enum OnAxum {}

impl OnTokioRouter for OnAxum {
    const NAME: &'static str = "axum";

    fn serve(handle: Handle, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/ws", axum::routing::get(websocket))
            .with_state(handle);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
}

/// The route: the suite's authentication, the position to resume from, then the upgrade.
async fn websocket(State(handle): State<Handle>, uri: Uri, ws: WebSocketUpgrade) -> Response {
    let request = Request::builder()
        .uri(uri)
        .body(())
        .expect("a request of a parsed URI");
    match authenticate(&request) {
        Ok(mut open) => {
            open.resume = position_from_query(request.uri().query());
            switchboard_tokio::axum::upgrade(&handle, ws, open)
        }
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}
