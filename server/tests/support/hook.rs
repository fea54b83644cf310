//! A webhook backend for the tests: a real HTTP server on an ephemeral port that receives what
//! a real server POSTs, verifies each delivery's signature with the recipe of `docs/API.md`,
//! records it, and answers as the test scripts it.

use super::TestServer;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

pub const HOOK_SECRET: &str = "a-webhook-secret-for-the-tests";

/// What the test backend does with one delivery.
pub enum Scripted {
    /// Answer with this status and body.
    Answer(u16, String),
    /// Wait for a permit of the gate, then answer 200 with a reply.
    Hold,
}

/// The script: the event, and how many times its id was delivered before.
pub type Script = dyn Fn(&Value, usize) -> Scripted + Send + Sync;

/// One delivery as the backend saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Value,
    pub signed: bool,
}

/// What the backend holds, shared with its route.
pub struct Inner {
    script: Box<Script>,
    deliveries: Mutex<Vec<Delivery>>,
    gate: Semaphore,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Deliveries that arrived while another of the same user was being answered.
    pub overlaps: AtomicUsize,
    /// The size of each batch received.
    pub batches: Mutex<Vec<usize>>,
}

/// A backend on an ephemeral port.
#[derive(Clone)]
pub struct Backend {
    pub inner: Arc<Inner>,
    pub url: String,
}

impl Backend {
    pub async fn start(script: impl Fn(&Value, usize) -> Scripted + Send + Sync + 'static) -> Self {
        let inner = Arc::new(Inner {
            script: Box::new(script),
            deliveries: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            in_flight: Mutex::new(HashMap::new()),
            overlaps: AtomicUsize::new(0),
            batches: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Backend { inner, url }
    }

    /// A backend that replies `{"echo": data}` to every frame and takes every lifecycle event.
    pub async fn echo() -> Self {
        Self::start(|event, _| Scripted::Answer(200, echo(event))).await
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.deliveries().into_iter().map(|d| d.event).collect()
    }

    pub fn open_gate(&self, permits: usize) {
        self.inner.gate.add_permits(permits);
    }
}

/// `{"reply": {"echo": data}}`, or for a batch, each event's in `answers`.
pub fn echo(event: &Value) -> String {
    match event.as_array() {
        Some(batch) => {
            let answers: Vec<Value> = (batch.iter())
                .map(|e| json!({"id": e["id"], "reply": {"echo": e["data"]}}))
                .collect();
            json!({"answers": answers}).to_string()
        }
        None => json!({"reply": {"echo": event["data"]}}).to_string(),
    }
}

/// Verify a delivery's signature as `docs/API.md` tells a backend to: HMAC-SHA256 of
/// `timestamp + "." + body` with the secret, hex, among the `v1=` values, and a timestamp
/// within five minutes of now.
fn verified(headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signatures)) = (
        header("x-switchboard-timestamp"),
        header("x-switchboard-signature"),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let Ok(at) = timestamp.parse::<u64>() else {
        return false;
    };
    if now.abs_diff(at) > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected: String = (mac.finalize().into_bytes().iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    signatures
        .split(',')
        .any(|s| s.trim().strip_prefix("v1=") == Some(expected.as_str()))
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let event: Value = serde_json::from_slice(&body).expect("the server sends JSON");
    let signed = verified(&headers, &body);
    if let Value::Array(events) = &event {
        // A batch: no event id header, each event its own id.
        assert!(headers.get("x-switchboard-event-id").is_none());
        inner.batches.lock().unwrap().push(events.len());
    } else {
        assert_eq!(
            headers["x-switchboard-event-id"].to_str().unwrap(),
            event["id"].as_str().unwrap()
        );
    }
    let users: Vec<String> = match &event {
        Value::Array(batch) => batch.iter().map(|e| e["user"].to_string()).collect(),
        single => vec![single["user"].to_string()],
    };
    let before = {
        let mut deliveries = inner.deliveries.lock().unwrap();
        let before = (deliveries.iter())
            .filter(|d| d.event["id"] == event["id"])
            .count();
        deliveries.push(Delivery {
            event: event.clone(),
            signed,
        });
        before
    };
    let overlapping = {
        let mut in_flight = inner.in_flight.lock().unwrap();
        let mut overlapping = false;
        for user in &users {
            let n = in_flight.entry(user.clone()).or_default();
            *n += 1;
            overlapping |= *n > 1;
        }
        overlapping
    };
    if overlapping {
        inner.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    // Long enough for a second event of the user to arrive if the server sent one in parallel.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let answer = match (inner.script)(&event, before) {
        Scripted::Answer(status, body) => (StatusCode::from_u16(status).unwrap(), body),
        Scripted::Hold => {
            inner.gate.acquire().await.unwrap().forget();
            (StatusCode::OK, echo(&event))
        }
    };
    let mut in_flight = inner.in_flight.lock().unwrap();
    for user in &users {
        *in_flight.get_mut(user).unwrap() -= 1;
    }
    answer
}

/// A server forwarding `user_message` to `url`, with millisecond backoffs; `extra` adds to
/// `[webhook]`.
pub async fn server(url: &str, extra: &str) -> TestServer {
    TestServer::with(&format!(
        "[frames]\ntypes = [\"user_message\"]\n[webhook]\nurl = \"{url}\"\nsecret = \"{HOOK_SECRET}\"\nbackoff_ms = 1\nmax_backoff_ms = 5\n{extra}"
    ))
    .await
}
