//! The demo page, for development: `GET /demo` serves a page that connects with the TypeScript
//! client (`clients/typescript`), chats in a room and shows agent runs as they are assembled.
//!
//! Served only when `[demo] enabled` (default: in development only). Routes:
//!
//! - `GET /demo` — the page; `GET /demo/switchboard.min.js` — the client bundle, built by
//!   `npm run bundle` in `clients/typescript` and committed, so the server needs no Node;
//! - `POST /demo/token` `{"user"}` → `{"token"}` — a client token for any user, only while the
//!   server runs on the public development credentials (otherwise 404: anyone could sign in as
//!   anyone); the page also takes a token typed in;
//! - `POST /demo/run` with `Authorization: Bearer <client token>` and `{"thread", "step_ms"}`
//!   → `{"run"}` — runs a scripted agent on the token's own user, one event every `step_ms`
//!   (default 400, at most 5000), through the same path as `POST /api/runs/...`.

use crate::auth::{unix_now, Authenticator, Claims, Credential, TokenKeys};
use crate::settings::Settings;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard::{AgentEvent, AgentUpdate};
use switchboard_tokio::Handle;

const PAGE: &str = include_str!("../../clients/typescript/demo/index.html");
const BUNDLE: &str = include_str!("../../clients/typescript/demo/switchboard.min.js");

/// The longest pause between two scripted agent events.
const MAX_STEP: Duration = Duration::from_secs(5);
/// The longest user id `/demo/token` signs for.
const MAX_USER_LEN: usize = 64;
/// How long a demo token lives.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

struct Demo {
    handle: Handle,
    /// Checks the bearer of `/demo/run`.
    auth: Arc<Authenticator>,
    /// Signs `/demo/token`'s tokens: only on the development credentials.
    mint: Option<TokenKeys>,
    runs: AtomicU64,
}

/// The demo routes, if `settings` enable them (an empty router otherwise); `/demo/run`
/// checks its bearer with `auth`.
pub fn routes(settings: &Settings, handle: &Handle, auth: Arc<Authenticator>) -> Router {
    if !settings.demo {
        return Router::new();
    }
    let mint = match &settings.auth.secret {
        Some(secret) if settings.development_credentials => Some(TokenKeys::new(secret.expose())),
        _ => None,
    };
    let demo = Arc::new(Demo {
        handle: handle.clone(),
        auth,
        mint,
        runs: AtomicU64::new(0),
    });
    let mut router = Router::new()
        .route("/demo", get(page))
        .route("/demo/switchboard.min.js", get(bundle))
        .route("/demo/run", post(run));
    if demo.mint.is_some() {
        router = router.route("/demo/token", post(token));
    }
    router.with_state(demo)
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn bundle() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        BUNDLE,
    )
        .into_response()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let code = if status == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "bad_request"
    };
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user: String,
}

async fn token(
    State(demo): State<Arc<Demo>>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"user\": \"name\"}");
    };
    let user = request.user.trim();
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("a user id of 1 to {MAX_USER_LEN} bytes"),
        );
    }
    let Some(mint) = &demo.mint else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Any room and any publish: the demo's rooms are whatever the page asks for.
    let any = Some(vec!["*".to_owned()]);
    let claims = Claims {
        sub: user.to_owned(),
        exp: unix_now() + TOKEN_TTL.as_secs(),
        iat: Some(unix_now()),
        rooms: any.clone(),
        publish: any,
        ..Claims::default()
    };
    Json(json!({"token": mint.sign(&claims)})).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    #[serde(default)]
    thread: Option<String>,
    #[serde(default)]
    step_ms: Option<u64>,
}

async fn run(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <client token>`",
        );
    };
    let identity = match demo.auth.authenticate(Credential::Token(bearer)).await {
        Ok(identity) => identity,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let Ok(Json(request)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected {\"thread\": ..., \"step_ms\": ...}",
        );
    };
    let step = Duration::from_millis(request.step_ms.unwrap_or(400)).min(MAX_STEP);
    let run = format!("demo-{}", demo.runs.fetch_add(1, Ordering::Relaxed) + 1);
    let thread = request.thread.filter(|t| !t.is_empty());
    tokio::spawn(script(
        demo.handle.clone(),
        identity.user.to_string(),
        run.clone(),
        thread,
        step,
    ));
    Json(json!({"run": run})).into_response()
}

/// The scripted agent: it thinks, calls two tools (one of them twice), and answers.
async fn script(handle: Handle, user: String, run: String, thread: Option<String>, step: Duration) {
    let events = [
        AgentEvent::AgentStarted {
            data: json!({"prompt": "What should I wear in Lisbon today?"}),
        },
        AgentEvent::AgentThinking {
            thought: "I need today's weather in Lisbon.".into(),
        },
        AgentEvent::ToolExecuting {
            tool: "weather".into(),
            call_id: Some("call-1".into()),
            input: json!({"city": "Lisbon"}),
        },
        AgentEvent::ToolCompleted {
            tool: "weather".into(),
            call_id: Some("call-1".into()),
            output: json!({"sky": "sunny", "high_c": 24}),
        },
        AgentEvent::AgentThinking {
            thought: "Sunny and warm; checking the wind as well.".into(),
        },
        AgentEvent::ToolExecuting {
            tool: "wind".into(),
            call_id: None,
            input: json!({"city": "Lisbon"}),
        },
        AgentEvent::ToolCompleted {
            tool: "wind".into(),
            call_id: None,
            output: json!({"kmh": 12}),
        },
        AgentEvent::AgentCompleted {
            result: Value::String(
                "Light clothes and sunglasses; a thin jacket for the evening breeze.".into(),
            ),
        },
    ];
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(step).await;
        }
        let update = AgentUpdate {
            run: run.as_str().into(),
            agent: "demo-agent".into(),
            thread: thread.as_deref().map(Into::into),
            event,
        };
        if let Err(e) = handle.send_agent_update(user.as_str(), update).await {
            tracing::warn!(%run, error = %e, "the demo agent stopped");
            return;
        }
    }
}
