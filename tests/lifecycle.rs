//! The hub's life as a whole: application-defined frames, graceful shutdown, guard tests on
//! the types, the gauges and counters of `stats()`, and a hub that returns to holding nothing.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    AppMessage, ClientRef, Config, ConnId, Hub, Notice, Open, OpenError, Output, Reason,
    SocketOutput, Target,
};

/// A configuration that hands `user_message` and `typing` frames to the application.
fn app_config() -> Config {
    let mut config = small_config();
    config.app_frame_types = vec!["user_message".into(), "typing".into()];
    config
}

/// The application frames among the notices.
fn app_messages(h: &mut Harness) -> Vec<AppMessage> {
    h.notices()
        .into_iter()
        .filter_map(|n| match n {
            Notice::App(app) => Some(*app),
            _ => None,
        })
        .collect()
}

/// An `app_frame_types` frame becomes `Notice::App` with conn, user, thread and data.
#[test]
fn an_application_frame_becomes_a_notice_with_user_connection_thread_and_data() {
    let mut h = Harness::new(app_config());
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    h.take(conn);
    h.notices();

    h.send(
        conn,
        r#"{"type":"user_message","data":{"text":"What is the weather?"},"ref":3,"extra":1}"#,
    );

    assert_eq!(
        app_messages(&mut h),
        vec![AppMessage {
            conn,
            user: "alice".into(),
            thread: Some("t1".into()),
            kind: "user_message".into(),
            data: json!({"text": "What is the weather?"}),
            reference: ClientRef::parse("3"),
        }]
    );
    assert!(
        h.frames(conn).is_empty(),
        "no reply to an application frame"
    );
}

/// An application frame without `data` carries `null`, and an unbound connection no thread.
#[test]
fn an_application_frame_without_data_carries_null() {
    let mut h = Harness::new(app_config());
    let conn = h.connect("bob");
    h.notices();

    h.send(conn, r#"{"type":"typing"}"#);

    let apps = app_messages(&mut h);
    assert_eq!(apps.len(), 1);
    assert_eq!(
        (apps[0].thread.clone(), apps[0].data.clone()),
        (None, json!(null))
    );
    assert_eq!(apps[0].kind, "typing");
}

/// A type the application did not register is `unknown_type`, not a notice.
#[test]
fn an_unregistered_type_is_unknown() {
    let mut h = Harness::new(app_config());
    let conn = h.connect("alice");
    h.notices();

    h.send(conn, r#"{"type":"user_mesage","data":1}"#);

    assert!(app_messages(&mut h).is_empty());
    assert_eq!(error_codes(h.frames(conn)), vec!["unknown_type"]);
}

/// Shutdown closes every connection with 1001 after handing out the frames queued for it.
#[test]
fn shutdown_closes_everyone_with_1001_after_their_pending_frames() {
    let now = Instant::now();
    let mut hub = Hub::new(small_config());
    let stalled = hub.open(now, Open::new("alice")).unwrap();
    let idle = hub.open(now, Open::new("bob")).unwrap();
    for i in 0..8 {
        hub.publish(now, Target::User("alice".into()), &big(&format!("m{i}")))
            .unwrap();
    }
    let before = drain(&mut hub);
    let queued = hub.connection_info(stalled).unwrap().queued_messages;
    assert!(queued > 0, "precondition: frames wait for a flush");

    hub.shutdown(Reason::Shutdown);

    let out = drain(&mut hub);
    let mine: Vec<&Output> = out
        .iter()
        .filter(|o| match o {
            Output::Socket(socket) => socket.conn() == stalled,
            _ => false,
        })
        .collect();
    assert_eq!(mine.len(), queued + 1);
    assert!(mine[..queued]
        .iter()
        .all(|o| matches!(o, Output::Socket(SocketOutput::Send { .. }))));
    assert_eq!(
        mine[queued],
        &Output::Socket(SocketOutput::Close {
            conn: stalled,
            code: 1001,
            reason: Reason::Shutdown
        })
    );
    let received = sent_to(&before, stalled).len() + sent_to(&out, stalled).len();
    assert_eq!(received, 1 + 8, "welcome and every message");
    assert!(out.contains(&Output::Socket(SocketOutput::Close {
        conn: idle,
        code: 1001,
        reason: Reason::Shutdown
    })));
    assert_eq!(hub.connection_count(), 0);
    assert!(hub.is_shutting_down());
}

/// A hub that is shutting down refuses new connections with 1001.
#[test]
fn a_hub_that_is_shutting_down_refuses_new_connections_with_1001() {
    let mut h = harness();
    h.with_hub(|hub, _| hub.shutdown(Reason::Shutdown));

    let refused = h.open(Open::new("alice"));

    assert_eq!(refused, Err(OpenError::ShuttingDown { restart: false }));
    assert_eq!(refused.unwrap_err().close_code(), 1001);
    assert_eq!(h.hub().connection_count(), 0);
    assert_eq!(h.hub().stats().counters.refused_opens, 1);
}

/// A hub that restarts (the node's clients go to other nodes) refuses new connections with
/// 1012, as it closed the open ones.
#[test]
fn a_hub_that_restarts_refuses_new_connections_with_1012() {
    let mut h = harness();
    h.with_hub(|hub, _| hub.shutdown(Reason::ServiceRestart));
    let refused = h.open(Open::new("alice"));
    assert_eq!(refused, Err(OpenError::ShuttingDown { restart: true }));
    assert_eq!(refused.unwrap_err().close_code(), 1012);
}

/// A restart closes everyone with 1012; any other reason given to `shutdown` closes as 1001.
#[test]
fn a_restart_closes_with_1012_and_other_reasons_as_shutdown() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.with_hub(|hub, _| hub.shutdown(Reason::ServiceRestart));
    assert_eq!(h.closed(conn), Some((1012, Reason::ServiceRestart)));

    let mut h = harness();
    let conn = h.connect("alice");
    h.with_hub(|hub, _| hub.shutdown(Reason::Evicted));
    assert_eq!(h.closed(conn), Some((1001, Reason::Shutdown)));
}

/// Guard: a hub can be moved to another thread (one hub per event loop, on any thread).
#[test]
fn the_hub_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Hub>();
    assert_send::<Output>();
    assert_send::<ConnId>();
}

/// Guard: `Output` stays within 48 bytes.
#[test]
fn an_output_stays_within_48_bytes() {
    // The largest variant is a socket's `Send`: a connection id (8 bytes) and a `Bytes` (32),
    // plus the discriminant, whose spare values tell the other destinations apart. Anything
    // bigger belongs behind a `Box`, as an envelope, a sequencer's entry, an application frame
    // and a run report already are; every queued output pays for the largest variant.
    assert_eq!(std::mem::size_of::<ConnId>(), 8);
    assert_eq!(std::mem::size_of::<bytes::Bytes>(), 32);
    assert!(
        std::mem::size_of::<Output>() <= 48,
        "Output grew to {} bytes",
        std::mem::size_of::<Output>()
    );
}

/// The gauges describe what the hub holds now.
#[test]
fn the_gauges_describe_what_the_hub_holds() {
    let mut h = harness();
    let a1 = h.open(Open::new("alice").thread("t1")).unwrap();
    let a2 = h.open(Open::new("alice").thread("t2")).unwrap();
    let b = h.connect("bob");
    join(&mut h, a1, "lobby");
    join(&mut h, b, "lobby");
    join(&mut h, b, "kitchen");
    agent(&mut h, "alice", "r1", Some("t1"), started());
    let deadline = h.now() + Duration::from_secs(60);
    h.with_hub(|hub, _| hub.wait_for_connection(&"carol".into(), deadline));

    let s = h.hub().stats();
    assert_eq!((s.connections, s.users, s.rooms, s.threads), (3, 2, 2, 2));
    assert_eq!((s.runs_active, s.waiters), (1, 1));
    assert_eq!(s.streams, 4, "two users, two rooms");
    assert_eq!(s.history_messages, 1, "the run's first event");
    assert!(s.history_bytes > 0);
    assert_eq!(s.health, [0, 0, 0, 0, 3]);
    assert_eq!(
        (s.queued_messages, s.queued_bytes, s.inflight_bytes),
        (0, 0, 0)
    );

    h.drop_connection(a2);
    let s = h.hub().stats();
    assert_eq!((s.connections, s.users, s.threads), (2, 2, 1));
}

/// The counters add up opens, publishes, frames and bytes both ways, closes and drops.
#[test]
fn the_counters_add_up_what_the_hub_did() {
    let now = Instant::now();
    let mut hub = Hub::new(small_config());
    let a = hub.open(now, Open::new("alice")).unwrap();
    let b = hub.open(now, Open::new("bob")).unwrap();
    let join = br#"{"type":"join","room":"lobby"}"#;
    let bad = br#"{"type":"dance"}"#;
    for (conn, bytes) in [(a, &join[..]), (b, &join[..]), (b, &bad[..])] {
        hub.handle_socket(now, switchboard::SocketInput::Text { conn, bytes })
            .unwrap();
    }
    hub.publish(now, Target::Room("lobby".into()), &msg("m1"))
        .unwrap();
    hub.publish(now, Target::All, &msg("m2")).unwrap();
    hub.close_connection(b, Reason::Normal).unwrap();

    let out = drain(&mut hub);
    let sends: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Socket(SocketOutput::Send { frame, .. }) => Some(frame.len() as u64),
            _ => None,
        })
        .collect();
    let c = hub.stats().counters;
    assert_eq!((c.opened, c.refused_opens, c.publishes), (2, 0, 2));
    assert_eq!(c.messages_in, 3);
    assert_eq!(c.bytes_in, (2 * join.len() + bad.len()) as u64);
    assert_eq!(c.messages_out, sends.len() as u64);
    assert_eq!(c.bytes_out, sends.iter().sum::<u64>());
    assert_eq!(c.closes.get(Reason::Normal), 1);
    assert_eq!(c.closes.total(), 1);
    assert_eq!(c.drops.get(Reason::UnknownType), 1);
    assert_eq!(
        notices_in(&out).len(),
        5,
        "two opens, two joins and a close"
    );
}

/// A hub with an open connection is not idle.
#[test]
fn a_hub_with_a_connection_is_not_idle() {
    let mut h = harness();
    assert!(h.hub().is_idle());
    let conn = h.connect("alice");
    assert!(!h.hub().is_idle());
    h.drop_connection(conn);
    assert!(h.hub().is_idle(), "nothing was published: nothing is kept");
}

/// Once everyone left and history and reports expired, the hub holds nothing and never wakes.
#[test]
fn after_everyone_leaves_and_history_expires_the_hub_holds_nothing() {
    let mut config = small_config();
    config.run_retention = Duration::from_secs(30);
    let mut h = Harness::new(config);
    let a = h.open(Open::new("alice").thread("t1")).unwrap();
    let b = h.connect("bob");
    join(&mut h, a, "lobby");
    join(&mut h, b, "lobby");
    h.publish(room("lobby"), msg("hello"));
    h.publish(user("bob"), msg("hi bob"));
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), completed());
    let deadline = h.now() + Duration::from_secs(10);
    h.with_hub(|hub, _| hub.wait_for_connection(&"carol".into(), deadline));

    h.drop_connection(a);
    h.with_hub(|hub, _| hub.disconnect_user(&"bob".into()));
    assert_eq!(h.hub().connection_count(), 0);
    assert!(
        !h.hub().is_idle(),
        "history, a run report and a waiter remain"
    );

    h.advance(MAX_AGE + CLEANUP * 2);

    assert!(h.hub().is_idle(), "{:?}", h.hub().stats());
    let s = h.hub().stats();
    assert_eq!(
        (s.streams, s.history_messages, s.runs_active, s.waiters),
        (0, 0, 0, 0)
    );
    assert!(h.hub().run_report(&"alice".into(), &"r1".into()).is_none());
    h.advance(Duration::from_secs(600));
    assert_eq!(h.hub().poll_timeout(), None, "nothing left to wake up for");
}
