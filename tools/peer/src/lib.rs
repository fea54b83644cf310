//! What the hubs Switchboard's benchmarks compare with (`switchboard-baseline`,
//! `switchboard-raw-peer`, `switchboard-socketio-peer`) share, so that they differ only in how
//! they deliver: their command line ([`Cli`]: the address and the secrets, the development
//! ones of `switchboard serve` by default, so the same tokens work), the client token and API
//! key checks (the extractors [`ClientUser`] of `GET /ws` and [`AuthorizedPublish`] of
//! `POST /api/publish`), the publish request and message frame of the protocol subset the load
//! tool speaks, and how they listen (announced as the benchmark scripts expect, `TCP_NODELAY`
//! as the Switchboard server sets it, until Ctrl-C).

#![forbid(unsafe_code)]

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The development secret of `switchboard serve`.
pub const DEVELOPMENT_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";
/// The development API key of `switchboard serve`.
pub const DEVELOPMENT_API_KEY: &str = "switchboard-development-api-key";

/// A peer's command line: where it listens and the secrets it checks. Each peer flattens it
/// into its own command (`#[command(flatten)]`), which names the peer and gives `--listen` its
/// default port (`mut_arg("listen", ...)`).
#[derive(Debug, Clone, clap::Args)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub secrets: Secrets,
}

/// The secrets a peer checks, from its command line or environment.
#[derive(Debug, Clone, clap::Args)]
pub struct Secrets {
    /// HS256 secret of client tokens.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", default_value = DEVELOPMENT_SECRET, hide_default_value = true, hide_env_values = true)]
    pub secret: String,
    /// Bearer key of `POST /api/publish`.
    #[arg(long, env = "SWITCHBOARD_API_KEY", default_value = DEVELOPMENT_API_KEY, hide_default_value = true, hide_env_values = true)]
    pub api_key: String,
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets {
            secret: DEVELOPMENT_SECRET.into(),
            api_key: DEVELOPMENT_API_KEY.into(),
        }
    }
}

/// The checks of a peer's credentials.
pub struct Keys {
    decoding: DecodingKey,
    validation: Validation,
    api_key: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Keys {
    /// The checks of `secrets`: HS256 tokens with `exp` and `sub`, the bearer API key.
    pub fn new(secrets: &Secrets) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        Keys {
            decoding: DecodingKey::from_secret(secrets.secret.as_bytes()),
            validation,
            api_key: secrets.api_key.clone(),
        }
    }

    /// The user of a valid client `token`.
    pub fn user(&self, token: &str) -> Option<String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Some(data.claims.sub)
    }

    /// True if the request carries the API key as its bearer.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            == Some(self.api_key.as_str())
    }
}

/// A peer's state, which holds its [`Keys`]: what the extractors check requests with.
pub trait HasKeys {
    /// The peer's keys.
    fn keys(&self) -> &Keys;
}

impl<T: HasKeys> HasKeys for Arc<T> {
    fn keys(&self) -> &Keys {
        (**self).keys()
    }
}

/// The query of `GET /ws`.
#[derive(Deserialize)]
struct Handshake {
    /// The client token.
    token: Option<String>,
}

/// The user of `GET /ws?token=<client token>`; without a valid token the request is answered
/// 401.
pub struct ClientUser(pub String);

impl<S: HasKeys + Send + Sync> FromRequestParts<S> for ClientUser {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, StatusCode> {
        let Query(handshake) = Query::<Handshake>::from_request_parts(parts, state)
            .await
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let token = handshake.token.ok_or(StatusCode::UNAUTHORIZED)?;
        let user = state.keys().user(&token).ok_or(StatusCode::UNAUTHORIZED)?;
        Ok(ClientUser(user))
    }
}

/// The message of a `POST /api/publish` that carries the API key as its bearer: without it the
/// request is answered 401 and its body is not read; a body that is not a [`Publish`] gets
/// axum's JSON rejection (400, 415 or 422).
pub struct AuthorizedPublish(pub Publish);

impl<S: HasKeys + Send + Sync> FromRequest<S> for AuthorizedPublish {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        if !state.keys().authorized(request.headers()) {
            return Err(StatusCode::UNAUTHORIZED.into_response());
        }
        let Json(publish) = Json::<Publish>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(AuthorizedPublish(publish))
    }
}

/// Where a publish goes: a room.
#[derive(Deserialize)]
pub struct PublishTo {
    /// The room.
    pub room: String,
}

/// The body of `POST /api/publish` (and of a Socket.IO client's `publish` event).
#[derive(Deserialize)]
pub struct Publish {
    /// Where to.
    pub to: PublishTo,
    /// The event name.
    pub event: String,
    /// Any JSON.
    #[serde(default)]
    pub data: Value,
}

/// A message as every recipient receives it.
#[derive(Serialize)]
pub struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    event: &'a str,
    data: &'a Value,
}

impl Publish {
    /// The frame of this message, serialized.
    pub fn frame(&self) -> String {
        let frame = MessageFrame {
            kind: "message",
            room: &self.to.room,
            event: &self.event,
            data: &self.data,
        };
        serde_json::to_string(&frame).expect("a message serializes")
    }
}

/// Bind `listen` and announce it on stderr as `<name> listening on http://<address>`, the line
/// the benchmark scripts wait for.
pub async fn bind(name: &str, listen: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!("{name} listening on http://{}", listener.local_addr()?);
    Ok(listener)
}

/// Ctrl-C (or SIGINT), the end of a peer started from its command line.
pub async fn interrupted() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Serve `app` on `listener` until `shutdown` completes, with `TCP_NODELAY` on every
/// connection, as the Switchboard server does: small frames go out at once, not after
/// Nagle's delay.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
