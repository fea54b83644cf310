//! The cases: what every transport must do, as a client sees it (`docs/PROTOCOL.md`). Each
//! is generic over the [`Transport`] and starts its own switchboard; [`suite!`](crate::suite)
//! runs each over a transport.
//!
//! [`frame`] and [`close_code`] are public for transports' own tests.
//!
//! Ordering rules the cases rely on, true of every transport: what the application publishes
//! is handed to the connections before the publish returns; a client's frames are handled in
//! the order it sent them. So a ping sent after a publish is answered after anything that
//! publish gave the client (the `quiet` check).
//!
//! The cases by theme: [`routing`] (who receives what), [`hostile`] (bad input and limits),
//! [`agents`] (agent runs), [`backpressure`] (slow readers) and [`resume`] (reconnects,
//! offline messages, shutdown); every case is also here, where [`suite!`](crate::suite) names
//! it.

pub mod agents;
pub mod backpressure;
pub mod hostile;
pub mod resume;
pub mod routing;

pub use agents::*;
pub use backpressure::*;
pub use hostile::*;
pub use resume::*;
pub use routing::*;

use crate::{Client, Connect, Received, Transport};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::{
    AgentEvent, AgentUpdate, Audience, Config, ConnId, Delivery, HeartbeatConfig, Message,
    Position, PublishError, RunError, Target,
};

/// A development config whose heartbeat stays out of the way of cases that are not about it.
fn config() -> Config {
    let minute = Duration::from_secs(60);
    let development = Config::development();
    Config {
        heartbeat: HeartbeatConfig {
            interval: minute,
            timeout: 3 * minute,
            grace: minute,
            ..development.heartbeat
        },
        ..development
    }
}

/// Small outbound budgets, so that a reader that stops reading overflows soon.
fn tight_backpressure() -> Config {
    let mut config = config();
    config.backpressure.inflight_bytes = 16 * 1024;
    config.backpressure.queue_messages = 64;
    config.backpressure.queue_bytes = 256 * 1024;
    config
}

fn message(event: &str) -> Message {
    Message::new(event, json!({"n": 1}))
}

/// The next frame, which must not be the close.
pub async fn frame(client: &mut impl Client) -> Value {
    match client.recv().await {
        Received::Frame(frame) => frame,
        Received::Closed(code) => panic!("closed with {code:?} while a frame was expected"),
    }
}

/// The next frame, which must be a `message`; its `event`.
async fn event(client: &mut impl Client) -> String {
    let frame = frame(client).await;
    assert_eq!(frame["type"], "message", "unexpected frame {frame}");
    frame["event"].as_str().expect("an event").to_owned()
}

/// Read past any frames until the close; its code.
pub async fn close_code(client: &mut impl Client) -> Option<u16> {
    loop {
        if let Received::Closed(code) = client.recv().await {
            return code;
        }
    }
}

/// Connect, read the welcome, and return the client with its connection id.
async fn welcomed<T: Transport>(t: &T, connect: Connect) -> (T::Client, ConnId) {
    let mut client = t.connect(connect).await;
    let welcome = frame(&mut client).await;
    assert_eq!(
        welcome["type"], "welcome",
        "unexpected first frame {welcome}"
    );
    let conn = welcome["conn"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("welcome names the connection");
    (client, conn)
}

/// Send `frame` and return the reply.
async fn request(client: &mut impl Client, frame: Value) -> Value {
    client.send(&frame.to_string()).await;
    self::frame(client).await
}

/// Join `room`; the position `joined` reports.
async fn join(client: &mut impl Client, room: &str) -> Position {
    let joined = request(client, json!({"type": "join", "room": room})).await;
    assert_eq!(joined["type"], "joined", "unexpected frame {joined}");
    position(&joined)
}

/// The `epoch` and `seq` of a frame.
fn position(frame: &Value) -> Position {
    Position {
        epoch: frame["epoch"].as_u64().expect("an epoch"),
        seq: frame["seq"].as_u64().expect("a seq"),
    }
}

/// Nothing reached `client` since its last frame: a ping now is answered next.
async fn quiet(client: &mut impl Client, who: &str) {
    let reply = request(client, json!({"type": "ping", "ref": "quiet"})).await;
    assert_eq!(
        (&reply["type"], &reply["ref"]),
        (&json!("pong"), &json!("quiet")),
        "{who} received {reply}, meant for someone else"
    );
}

async fn publish<T: Transport>(t: &T, to: impl Into<Audience>, message: Message) -> Delivery {
    t.publish(to.into(), message).await.expect("published")
}

fn user(user: &str) -> Target {
    Target::User(user.into())
}

fn room(room: &str) -> Target {
    Target::Room(room.into())
}

fn thread(user: &str, thread: &str) -> Target {
    Target::Thread {
        user: user.into(),
        thread: thread.into(),
    }
}
