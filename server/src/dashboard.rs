//! `/dashboard`: a live operations page. Connections, users, rooms, threads and runs; health
//! bands and ping round trips; message and byte rates; closes and drops by reason; queues and
//! history against their budgets; one row per node of a cluster; and a user look-up with a
//! disconnect button. Plain HTML, CSS and JavaScript embedded in the binary, no build step.
//!
//! Served when `[dashboard] enabled` (default: in development only). Routes:
//!
//! - `GET /dashboard`, `/dashboard/dashboard.js`, `/dashboard/dashboard.css`: the page, which
//!   holds no data (a strict content security policy: its own script and style only, no
//!   frames);
//! - `POST /dashboard/session` with `Authorization: Bearer <API key>`: opens a session (see
//!   `sessions`): an `HttpOnly`, `SameSite=Strict` cookie scoped to `/dashboard`, and
//!   `{"csrf", "expires_in_secs"}` for the page; 401 without the right key. `GET` answers the
//!   same for the cookie's live session (a reloaded page), `DELETE` ends it;
//! - `GET /dashboard/feed`: a WebSocket that sends the [`Feed`] once a second (never a poll of
//!   every connection: `feed`); the cookie is its credential, since a browser cannot set
//!   headers on a WebSocket;
//! - `GET /dashboard/users/{user}`: the user's presence (as `GET /api/users/{user}`, and on a
//!   cluster the connections on every node);
//! - `POST /dashboard/users/{user}/disconnect`: as `POST /api/users/{user}/disconnect`.
//!
//! Every route but the page needs the session cookie (401 `no_session` otherwise). What changes
//! something (disconnect, sign-out) also needs the session's CSRF token in `x-csrf-token` and,
//! when the browser sends an `Origin`, this server's own (403 `csrf` otherwise); so does the
//! feed's handshake (cross-site WebSocket hijacking). At most [`MAX_FEEDS`] feeds are open at
//! once (503 `too_many_feeds` beyond); a feed whose reader does not take a message within
//! [`SEND_TIMEOUT`] is closed, and so is one whose session ends (close code 1008).

mod feed;
mod sessions;

pub use feed::{ClusterLink, Feed, NodeSample, Rates, Totals, CLUSTER_TTL, INTERVAL};
pub use sessions::{Refused, Session, Sessions};

use crate::api::{self, ApiError, PresenceView};
use crate::settings::DashboardConfig;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAGE: &str = include_str!("../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard/dashboard.css");

/// The session cookie's name.
pub const COOKIE: &str = "switchboard_dashboard";
/// Feeds open at once on a node.
pub const MAX_FEEDS: usize = 32;
/// How long a feed's reader may take to take one message.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a feed reads from the page (it sends none).
const MAX_INCOMING: usize = 1024;

struct Dashboard {
    app: Arc<AppState>,
    sessions: Sessions,
    latest: feed::Latest,
    secure_cookie: bool,
    feeds: AtomicUsize,
}

/// The dashboard's routes, if `config` enables it (an empty router otherwise). Starts the
/// sampler; on a node of a cluster, `cluster` shares samples with the other nodes.
pub fn routes(
    config: &DashboardConfig,
    app: Arc<AppState>,
    cluster: Option<ClusterLink>,
) -> Router {
    if !config.enabled {
        return Router::new();
    }
    let latest = feed::spawn(feed::Sources {
        handle: app.handle.clone(),
        admission: app.admission.clone(),
        budgets: app.budgets,
        cluster,
    });
    let dashboard = Arc::new(Dashboard {
        app,
        sessions: Sessions::new(config.session_ttl, config.max_sessions),
        latest,
        secure_cookie: config.secure_cookie,
        feeds: AtomicUsize::new(0),
    });
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/dashboard.js", get(script))
        .route("/dashboard/dashboard.css", get(style))
        .route(
            "/dashboard/session",
            get(current).post(sign_in).delete(sign_out),
        )
        .route("/dashboard/feed", get(open_feed))
        .route("/dashboard/users/{user}", get(look_up))
        .route("/dashboard/users/{user}/disconnect", post(disconnect))
        // No route reads a body.
        .layer(DefaultBodyLimit::max(MAX_INCOMING))
        .with_state(dashboard)
}

async fn page(headers: HeaderMap) -> Response {
    // The feed's WebSocket is named explicitly: not every browser counts ws: as 'self'.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("");
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'"
    );
    let mut response = asset("text/html; charset=utf-8", PAGE);
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// What the page keeps of its session.
#[derive(Debug, Serialize)]
struct SessionView {
    /// Send it in `x-csrf-token` with every action.
    csrf: String,
    /// Seconds until the session ends.
    expires_in_secs: u64,
}

impl SessionView {
    fn of(session: &Session, now: Instant) -> Json<Self> {
        Json(SessionView {
            csrf: session.csrf.clone(),
            expires_in_secs: session.expires.saturating_duration_since(now).as_secs(),
        })
    }
}

/// `POST /dashboard/session`: the API key for a session.
async fn sign_in(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if let Err(refused) = api::authorize(&d.app, &headers) {
        return refused.into_response();
    }
    let now = Instant::now();
    let Some((id, session)) = d.sessions.open(now) else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no randomness for a session id",
        )
        .into_response();
    };
    let ttl = d.sessions.ttl().as_secs();
    let secure = if d.secure_cookie { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={id}; Path=/dashboard; Max-Age={ttl}; HttpOnly; SameSite=Strict{secure}");
    let mut response = SessionView::of(&session, now).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a hex id"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /dashboard/session`: the cookie's session, for a page loaded again.
async fn current(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    let now = Instant::now();
    match session_of(&d, &headers, now) {
        Ok((_, session)) => SessionView::of(&session, now).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// `DELETE /dashboard/session`: sign out.
async fn sign_out(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    match action(&d, &headers) {
        Ok(id) => {
            d.sessions.close(&id);
            let cookie =
                format!("{COOKIE}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict");
            (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

/// A user's presence on this node, and on a cluster their connections on every node.
#[derive(Debug, Serialize)]
struct LookUp {
    #[serde(flatten)]
    presence: PresenceView,
    /// Open connections on every live node (a cluster only; `null` if Redis did not answer).
    cluster_connections: Option<u64>,
}

/// `GET /dashboard/users/{user}`.
async fn look_up(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    if let Err(refused) = session_of(&d, &headers, Instant::now()) {
        return refused.into_response();
    }
    let cluster_connections = match &d.app.bridge {
        Some(bridge) => bridge.user_connections(user.as_str()).await.ok(),
        None => None,
    };
    let presence = match api::presence(&d.app.handle, user).await {
        Ok(presence) => presence,
        Err(e) => return ApiError::from(e).into_response(),
    };
    Json(LookUp {
        presence,
        cluster_connections,
    })
    .into_response()
}

/// `POST /dashboard/users/{user}/disconnect`.
async fn disconnect(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    if let Err(refused) = action(&d, &headers) {
        return refused.into_response();
    }
    tracing::info!(%user, "disconnected from the dashboard");
    match api::disconnect_user(&d.app, user).await {
        Ok(closed) => Json(closed).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /dashboard/feed`: the WebSocket of the feed.
async fn open_feed(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = match session_of(&d, &headers, Instant::now()) {
        Ok((id, _)) => id,
        Err(refused) => return refused.into_response(),
    };
    if !same_origin(&headers) {
        return csrf_refused().into_response();
    }
    let Some(slot) = FeedSlot::take(&d) else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_feeds",
            format!("this node serves at most {MAX_FEEDS} dashboard feeds at once"),
        )
        .into_response();
    };
    upgrade
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| run_feed(d, id, socket, slot))
}

/// A feed's place among the [`MAX_FEEDS`]; given back when dropped.
struct FeedSlot(Arc<Dashboard>);

impl FeedSlot {
    fn take(d: &Arc<Dashboard>) -> Option<Self> {
        d.feeds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_FEEDS).then_some(n + 1)
            })
            .ok()
            .map(|_| FeedSlot(d.clone()))
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        self.0.feeds.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Send each new feed until the page goes, stops reading, or its session ends.
async fn run_feed(d: Arc<Dashboard>, id: String, socket: WebSocket, _slot: FeedSlot) {
    let (mut sink, mut incoming) = socket.split();
    let mut latest = d.latest.clone();
    loop {
        let text = latest.borrow_and_update().clone();
        if d.sessions.get(&id, Instant::now()).is_none() {
            let close = CloseFrame {
                code: 1008,
                reason: "session ended".into(),
            };
            let _ =
                tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(close)))).await;
            return;
        }
        if let Some(text) = text {
            let sent =
                tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.as_ref().into())));
            if !matches!(sent.await, Ok(Ok(()))) {
                return;
            }
        }
        // Until the next feed; the page sends nothing but its close (and pongs).
        loop {
            tokio::select! {
                changed = latest.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
                message = incoming.next() => match message {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

/// The session named by the request's cookie.
fn session_of(
    d: &Dashboard,
    headers: &HeaderMap,
    now: Instant,
) -> Result<(String, Session), ApiError> {
    let id = cookie(headers).ok_or_else(no_session)?;
    let session = d.sessions.get(&id, now).ok_or_else(no_session)?;
    Ok((id, session))
}

/// The session of an action that changes something: the cookie's, with its CSRF token, from
/// this server's own page.
fn action(d: &Dashboard, headers: &HeaderMap) -> Result<String, ApiError> {
    let id = cookie(headers).ok_or_else(no_session)?;
    let csrf = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match d.sessions.authorize(&id, csrf, Instant::now()) {
        Ok(_) if same_origin(headers) => Ok(id),
        Ok(_) | Err(Refused::Csrf) => Err(csrf_refused()),
        Err(Refused::NoSession) => Err(no_session()),
    }
}

fn no_session() -> ApiError {
    ApiError::unauthorized(
        "no_session",
        "no dashboard session: sign in with the API key (POST /dashboard/session)",
    )
}

fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this action needs the session's x-csrf-token, from this server's own page",
    )
    .with_reason("csrf")
}

/// The dashboard's session cookie, from any `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// False when the request comes from a page of another origin: its `Origin` is not this
/// server's `Host`. Requests without an `Origin` are not from a browser's cross-site page.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    matches!((origin, host), (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; switchboard_dashboard=abc; b=2")]);
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        let split = headers(&[("cookie", "a=1"), ("cookie", "switchboard_dashboard=xyz")]);
        assert_eq!(cookie(&split).as_deref(), Some("xyz"));
        assert_eq!(
            cookie(&headers(&[("cookie", "switchboard_dashboardx=1")])),
            None
        );
    }

    #[test]
    fn only_this_servers_own_pages_pass_the_origin_check() {
        let from = |origin: &str| headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
        assert!(same_origin(&from("http://127.0.0.1:8080")));
        assert!(same_origin(&from("https://127.0.0.1:8080")));
        assert!(!same_origin(&from("http://evil.example")));
        assert!(!same_origin(&from("http://127.0.0.1:8081")));
        assert!(!same_origin(&from("null")));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
    }
}
