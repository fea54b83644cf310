//! Keys from a JWKS URL: a JWKS served by an HTTP server of the test on an ephemeral port,
//! whose keys rotate while the switchboard runs. A key added to the set verifies after one
//! fetch triggered by its unknown `kid`, the old key keeps verifying during the overlap, a
//! flood of unknown `kid`s costs the JWKS server no more requests, a key removed stops
//! verifying after the next fetch, a failed fetch keeps the cached keys, an old set is
//! refreshed in the background, and a JWKS server that never answers only delays the token
//! that waited for it.

mod support;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::keys::{claims, jwks, TestKey};
use support::*;
use switchboard_testing::eventually;

/// What the JWKS server does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answer the document.
    Serve,
    /// Answer 500.
    Fail,
    /// Never answer.
    Hang,
}

#[derive(Clone)]
struct Issuer {
    document: Arc<Mutex<Value>>,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
}

/// An HTTP server of the test serving a JWKS at `/jwks`, counting its requests.
struct JwksServer {
    addr: SocketAddr,
    issuer: Issuer,
}

impl JwksServer {
    async fn start(document: Value) -> Self {
        let issuer = Issuer {
            document: Arc::new(Mutex::new(document)),
            mode: Arc::new(Mutex::new(Mode::Serve)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/jwks", get(answer))
            .with_state(issuer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer { addr, issuer }
    }

    /// The switchboard's settings for this JWKS, with `extra` keys of `[auth.jwks]`.
    fn settings(&self, extra: &str) -> String {
        format!("[auth.jwks]\nurl = \"http://{}/jwks\"\n{extra}", self.addr)
    }

    fn serve(&self, document: Value) {
        *self.issuer.document.lock().unwrap() = document;
    }

    fn set_mode(&self, mode: Mode) {
        *self.issuer.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> usize {
        self.issuer.requests.load(Ordering::SeqCst)
    }
}

async fn answer(State(issuer): State<Issuer>) -> Response {
    issuer.requests.fetch_add(1, Ordering::SeqCst);
    let mode = *issuer.mode.lock().unwrap();
    match mode {
        Mode::Serve => Json(issuer.document.lock().unwrap().clone()).into_response(),
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Hang => std::future::pending().await,
    }
}

/// The issuer rotates from key `a` to key `b`: a token naming `b` makes the server fetch the
/// set once and verifies; `a` still verifies (the overlap); then twenty tokens naming keys
/// nobody has are refused `unknown_key` without one more request (at most one fetch per
/// refetch interval, an hour here).
#[tokio::test]
async fn a_rotation_costs_one_fetch_and_a_flood_of_unknown_keys_none() {
    let (a, b) = (TestKey::rsa_a(), TestKey::ec());
    let issuer = JwksServer::start(jwks(&[(&a, "a")])).await;
    let server = TestServer::with(&issuer.settings("refetch_interval_secs = 3600")).await;
    assert_eq!(issuer.requests(), 1, "fetched at start");
    let by_a = a.sign(Some("a"), &claims("alice", 60));
    assert_eq!(server.connect_token(&by_a).await.welcome()["user"], "alice");
    assert_eq!(issuer.requests(), 1, "a known key needs no fetch");

    issuer.serve(jwks(&[(&a, "a"), (&b, "b")]));
    let by_b = b.sign(Some("b"), &claims("bob", 60));
    assert_eq!(server.connect_token(&by_b).await.welcome()["user"], "bob");
    assert_eq!(issuer.requests(), 2, "the unknown kid fetched the set once");
    assert_eq!(server.connect_token(&by_a).await.welcome()["user"], "alice");

    for i in 0..20 {
        let token = b.sign(Some(&format!("nobody-{i}")), &claims("mallory", 60));
        assert_eq!(server.token_refusal(&token).await, "unknown_key");
    }
    assert_eq!(
        issuer.requests(),
        2,
        "a flood of unknown kids fetched nothing more"
    );
}

/// A key the issuer removed stops verifying once the set was fetched again; a fetch that
/// fails keeps the keys the server had; a token without `kid` finds no JWKS key.
#[tokio::test]
async fn a_removed_key_stops_verifying_and_a_failed_fetch_keeps_the_cache() {
    let (a, b) = (TestKey::rsa_a(), TestKey::ed25519());
    let issuer = JwksServer::start(jwks(&[(&a, "a"), (&b, "b")])).await;
    let server = TestServer::with(&issuer.settings("refetch_interval_secs = 1")).await;
    let by_a = a.sign(Some("a"), &claims("alice", 60));
    let by_b = b.sign(Some("b"), &claims("bob", 60));
    server.connect_token(&by_a).await;
    let no_kid = b.sign(None, &claims("bob", 60));
    assert_eq!(server.token_refusal(&no_kid).await, "unknown_key");

    issuer.serve(jwks(&[(&b, "b")]));
    // Past the refetch interval, an unknown kid fetches the set without `a`.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = b.sign(Some("c"), &claims("carol", 60));
    let before = issuer.requests();
    assert_eq!(server.token_refusal(&unknown).await, "unknown_key");
    assert_eq!(issuer.requests(), before + 1);
    assert_eq!(server.token_refusal(&by_a).await, "unknown_key");
    server.connect_token(&by_b).await;

    issuer.set_mode(Mode::Fail);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = issuer.requests();
    assert_eq!(server.token_refusal(&unknown).await, "unknown_key");
    assert_eq!(issuer.requests(), before + 1, "the failed fetch happened");
    assert_eq!(
        server.connect_token(&by_b).await.welcome()["user"],
        "bob",
        "the cached keys stay"
    );
}

/// A set older than `max_age_secs` is fetched again in the background when a token uses it:
/// a key added meanwhile then verifies without a fetch of its own.
#[tokio::test]
async fn an_old_set_is_refreshed_in_the_background() {
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let issuer = JwksServer::start(jwks(&[(&a, "a")])).await;
    let settings = issuer.settings("max_age_secs = 1\nrefetch_interval_secs = 1");
    let server = TestServer::with(&settings).await;
    issuer.serve(jwks(&[(&a, "a"), (&b, "b")]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server
        .connect_token(&a.sign(Some("a"), &claims("alice", 60)))
        .await;
    eventually("the background refresh", || async {
        issuer.requests() == 2
    })
    .await;
    let by_b = b.sign(Some("b"), &claims("bob", 60));
    assert_eq!(server.connect_token(&by_b).await.welcome()["user"], "bob");
    assert_eq!(issuer.requests(), 2, "b was in the refreshed set");
}

/// A JWKS server that accepts and never answers: the start and the token that asks for an
/// unknown key each wait at most the fetch timeout, then the token is `unknown_key`; other
/// clients connect meanwhile.
#[tokio::test]
async fn a_jwks_server_that_never_answers_delays_only_who_waits_for_it() {
    let issuer = JwksServer::start(jwks(&[])).await;
    issuer.set_mode(Mode::Hang);
    let settings = issuer.settings("timeout_secs = 1\nrefetch_interval_secs = 1");
    let server = TestServer::with(&settings).await;
    let unknown = TestKey::rsa_a().sign(Some("a"), &claims("alice", 60));
    let waiting = server.token_refusal(&unknown);
    let other = async {
        server.connect_token(&server.token("bob", None)).await;
    };
    let (reason, ()) = tokio::join!(waiting, other);
    assert_eq!(reason, "unknown_key");
    assert_eq!(issuer.requests(), 2, "the start's fetch and the token's");
}
