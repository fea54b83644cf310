//! Connections: opening, closing and looking them up; connection ids that a recycled slot can
//! never answer to; what `connection_info` reports; the `welcome` frame.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use switchboard::{
    Config, ConnId, Hub, Liveness, Notice, Open, PublishError, Reason, RoomError, SocketInput,
    Target, UnknownConnection,
};

/// The slab slot of a connection id (the low half of its number).
fn slot(conn: ConnId) -> u32 {
    conn.to_u64() as u32
}

/// An opened connection is found by id, under its user, and in the gauges.
#[test]
fn an_opened_connection_is_known_by_id_and_under_its_user() {
    let mut h = harness();
    let conn = h.connect("alice");

    assert_eq!(h.hub().connection_count(), 1);
    assert_eq!(h.hub().connection_info(conn).expect("open").id, conn);
    assert!(h.hub().is_user_connected(&"alice".into()));
    assert_eq!(h.hub().user_connections(&"alice".into()), &[conn]);
    let stats = h.hub().stats();
    assert_eq!((stats.connections, stats.users), (1, 1));
    assert_eq!(stats.counters.opened, 1);
    assert_eq!(
        h.notices(),
        vec![Notice::Opened {
            conn,
            user: "alice".into()
        }]
    );
}

/// The first frame is `welcome`: connection id, user, ping interval in ms, user stream head.
#[test]
fn the_first_frame_is_welcome_with_the_connection_id_and_the_heartbeat_interval() {
    let mut h = harness();
    let conn = h.connect("alice");

    let frames = h.frames(conn);
    assert_eq!(types(frames), vec!["welcome"]);
    let welcome = &frames[0];
    assert_eq!(welcome["conn"], conn.to_string());
    assert_eq!(welcome["user"], "alice");
    assert_eq!(
        welcome["heartbeat_ms"], 15_000,
        "development pings every 15 s"
    );
    assert_eq!(welcome["stream"], "user:alice");
    assert_eq!(welcome["seq"], 0);
    assert!(welcome["epoch"].as_u64().is_some());
    assert!(welcome.get("thread").is_none());
}

/// `welcome` announces the interval of the configuration the hub runs with.
#[test]
fn welcome_announces_the_configured_ping_interval() {
    for (config, ms) in [
        (Config::development(), 15_000),
        (Config::staging(), 30_000),
        (Config::production(), 25_000),
    ] {
        let mut h = switchboard::testing::Harness::new(config);
        let conn = h.connect("alice");
        assert_eq!(h.frames_of(conn, "welcome")[0]["heartbeat_ms"], ms);
    }
}

/// `welcome` names the thread the connection was bound to at open.
#[test]
fn welcome_names_the_thread_bound_at_open() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t-42")).unwrap();
    assert_eq!(h.frames_of(conn, "welcome")[0]["thread"], "t-42");
}

/// The connection id survives a round trip through `u64`, for transports that need a number.
#[test]
fn a_connection_id_round_trips_through_u64() {
    let mut h = harness();
    let _first = h.connect("alice");
    let conn = h.connect("bob");
    assert_eq!(ConnId::from_u64(conn.to_u64()), conn);
}

/// A close by the application sends its close code and forgets the connection everywhere.
#[test]
fn closing_a_connection_sends_its_close_code_and_forgets_it_everywhere() {
    let mut h = harness();
    let conn = h.connect("alice");
    join(&mut h, conn, "lobby");
    h.notices();

    h.with_hub(|hub, _| hub.close_connection(conn, Reason::Normal))
        .unwrap();

    assert_eq!(h.closed(conn), Some((1000, Reason::Normal)));
    assert!(h.hub().connection_info(conn).is_none());
    assert!(!h.hub().is_user_connected(&"alice".into()));
    assert!(h.hub().user_connections(&"alice".into()).is_empty());
    assert!(h.hub().room_members(&"lobby".into()).is_empty());
    assert_eq!(h.hub().connection_count(), 0);
    assert_eq!(
        h.notices(),
        vec![Notice::Closed {
            conn,
            user: "alice".into(),
            reason: Reason::Normal
        }]
    );
    assert_eq!(closes(&h, Reason::Normal), 1);
}

/// Closing with a reason that has no close code closes as `normal` (1000).
#[test]
fn closing_with_a_reason_without_close_code_closes_as_normal() {
    let mut h = harness();
    let a = h.connect("alice");
    let b = h.connect("bob");

    h.with_hub(|hub, _| hub.close_connection(a, Reason::PeerClosed))
        .unwrap();
    h.with_hub(|hub, _| hub.close_connection(b, Reason::Forbidden))
        .unwrap();

    assert_eq!(h.closed(a), Some((1000, Reason::Normal)));
    assert_eq!(h.closed(b), Some((1000, Reason::Normal)));
    assert_eq!(closes(&h, Reason::Normal), 2);
}

/// A connection the peer closed is forgotten without a close frame from the hub.
#[test]
fn a_connection_the_peer_closed_is_forgotten_without_a_close_frame() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.notices();

    h.drop_connection(conn);

    assert_eq!(h.closed(conn), None, "no close frame for a gone socket");
    assert!(h.hub().connection_info(conn).is_none());
    assert_eq!(
        h.notices(),
        vec![Notice::Closed {
            conn,
            user: "alice".into(),
            reason: Reason::PeerClosed
        }]
    );
    assert_eq!(closes(&h, Reason::PeerClosed), 1);
}

/// Closing a connection that is already closed is an `UnknownConnection` error.
#[test]
fn closing_a_closed_connection_is_an_unknown_connection_error() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.drop_connection(conn);

    let again = h.with_hub(|hub, _| hub.close_connection(conn, Reason::Normal));
    assert_eq!(again, Err(UnknownConnection(conn)));
    assert_eq!(h.closed(conn), None);
}

/// A slot freed by a close is reused with a new generation: the new connection has another id.
#[test]
fn a_reused_slot_gives_the_new_connection_a_different_id() {
    let mut h = harness();
    let old = h.connect("alice");
    h.drop_connection(old);

    let new = h.connect("bob");

    assert_eq!(slot(new), slot(old), "the freed slot is reused");
    assert_ne!(new, old);
    assert_ne!(h.frames_of(new, "welcome")[0]["conn"], old.to_string());
    assert!(h.hub().connection_info(old).is_none());
    assert_eq!(
        h.hub().connection_info(new).expect("open").user,
        "bob".into()
    );
}

/// A message to a stale id is refused, and the connection now in its slot receives nothing.
#[test]
fn a_message_to_a_stale_id_is_refused_and_the_slots_new_holder_receives_nothing() {
    let mut h = harness();
    let old = h.connect("alice");
    h.drop_connection(old);
    let new = h.connect("bob");
    assert_eq!(slot(new), slot(old), "the freed slot is reused");
    h.take(new);
    let sent_before = h.hub().stats().counters.messages_out;

    let result =
        h.with_hub(|hub, now| hub.publish(now, Target::Connection(old), &msg("for alice only")));

    assert_eq!(
        result,
        Err(PublishError::UnknownConnection(UnknownConnection(old)))
    );
    assert!(h.frames(new).is_empty());
    assert_eq!(h.hub().stats().counters.messages_out, sent_before);
    assert_eq!(drops(&h, Reason::UnknownConnection), 1);
}

/// Inputs and requests naming a stale id are refused and never touch the slot's new holder.
#[test]
fn inputs_and_requests_naming_a_stale_id_never_touch_the_slots_new_holder() {
    let mut h = harness();
    let old = h.connect("alice");
    h.drop_connection(old);
    let new = h.connect("bob");
    assert_eq!(slot(new), slot(old), "the freed slot is reused");
    h.take(new);
    let before = h.hub().connection_info(new).unwrap().traffic;

    let results = h.with_hub(|hub, now| {
        let join = br#"{"type":"join","room":"lobby"}"#;
        [
            hub.handle_socket(
                now,
                SocketInput::Text {
                    conn: old,
                    bytes: join,
                },
            ),
            hub.handle_socket(
                now,
                SocketInput::Binary {
                    conn: old,
                    bytes: b"x",
                },
            ),
            hub.handle_socket(
                now,
                SocketInput::Pong {
                    conn: old,
                    payload: &[0; 8],
                },
            ),
            hub.handle_socket(
                now,
                SocketInput::Flushed {
                    conn: old,
                    bytes: 1,
                },
            ),
            hub.handle_socket(now, SocketInput::Closed { conn: old }),
            hub.close_connection(old, Reason::Normal),
            hub.update_connection_thread(old, Some("t1".into())),
        ]
    });
    let room = h.with_hub(|hub, now| hub.join_room(now, old, &"lobby".into()));

    assert!(results.iter().all(|r| *r == Err(UnknownConnection(old))));
    assert_eq!(
        room,
        Err(RoomError::UnknownConnection(UnknownConnection(old)))
    );
    assert!(h.frames(new).is_empty());
    assert_eq!(h.closed(new), None);
    let info = h.hub().connection_info(new).expect("still open");
    assert_eq!(info.traffic, before);
    assert!(info.rooms.is_empty());
    assert_eq!(info.thread, None);
    assert!(h.hub().room_members(&"lobby".into()).is_empty());
}

/// `connection_info` reports the user, thread, rooms, metadata and opening time.
#[test]
fn connection_info_reports_who_the_connection_is_and_where_it_is() {
    let mut h = harness();
    let opened_at = h.now();
    let open = Open::new("alice")
        .thread("t1")
        .metadata(json!({"agent": "cli/1.0"}));
    let conn = h.open(open).unwrap();
    join(&mut h, conn, "lobby");
    join(&mut h, conn, "team-7");
    h.advance(Duration::from_secs(3));

    let info = h.hub().connection_info(conn).expect("open");
    assert_eq!(info.id, conn);
    assert_eq!(info.user, "alice".into());
    assert_eq!(info.thread, Some("t1".into()));
    let mut rooms = info.rooms.clone();
    rooms.sort();
    assert_eq!(rooms, vec!["lobby".into(), "team-7".into()]);
    assert_eq!(info.metadata, json!({"agent": "cli/1.0"}));
    assert_eq!(info.opened_at, opened_at);
}

/// A new connection is healthy and alive, with no round trip measured and nothing queued.
#[test]
fn a_new_connection_is_healthy_alive_and_has_nothing_queued() {
    let mut h = harness();
    let conn = h.connect("alice");

    let info = h.hub().connection_info(conn).expect("open");
    assert_eq!(info.health, 100);
    assert_eq!(info.liveness, Liveness::Alive);
    assert_eq!(info.rtt.samples, 0);
    assert_eq!(info.rtt.last, None);
    assert_eq!((info.queued_messages, info.inflight_bytes), (0, 0));
}

/// `connection_info` counts the frames and bytes received from and handed to the connection.
#[test]
fn connection_info_counts_frames_and_bytes_in_and_out() {
    let now = Instant::now();
    let mut hub = Hub::new(small_config());
    let conn = hub.open(now, Open::new("alice")).unwrap();
    let ping = br#"{"type":"ping","ref":1}"#;
    let bad = b"{nope";
    hub.handle_socket(now, SocketInput::Text { conn, bytes: ping })
        .unwrap();
    hub.handle_socket(now, SocketInput::Text { conn, bytes: bad })
        .unwrap();
    hub.publish(now, Target::User("alice".into()), &msg("m1"))
        .unwrap();

    let out = sent_to(&drain(&mut hub), conn);
    let traffic = hub.connection_info(conn).expect("open").traffic;
    assert_eq!(traffic.messages_in, 2);
    assert_eq!(traffic.bytes_in, (ping.len() + bad.len()) as u64);
    assert_eq!(out.len(), 4, "welcome, pong, error, message");
    assert_eq!(traffic.messages_out, 4);
    assert_eq!(
        traffic.bytes_out,
        out.iter().map(|f| f.len() as u64).sum::<u64>()
    );
}

/// Round trips measured from pongs show up in `connection_info`.
#[test]
fn connection_info_reports_measured_round_trips() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.advance(Duration::from_secs(15));

    let info = h.hub().connection_info(conn).expect("open");
    assert_eq!(h.client(conn).pings, 1);
    assert_eq!(info.rtt.samples, 1);
    assert_eq!(
        info.rtt.last,
        Some(Duration::ZERO),
        "the harness answers at once"
    );
}

/// The queue depth grows by one per message past the in-flight budget and empties on reading.
#[test]
fn connection_info_reports_the_queue_depth() {
    let mut h = harness();
    let conn = h.connect("alice");
    h.set_reading(conn, false);
    fill_queue(&mut h, &user("alice"), conn, 1);

    for depth in 2..=4 {
        h.publish(user("alice"), big("more"));
        assert_eq!(queued(&h, conn), depth);
    }
    let info = h.hub().connection_info(conn).unwrap();
    assert!(info.inflight_bytes > 0 && info.inflight_bytes <= INFLIGHT);

    h.set_reading(conn, true);
    assert_eq!(queued(&h, conn), 0);
}

/// Several connections of several users each get their own id.
#[test]
fn open_connections_have_distinct_ids() {
    let mut h = harness();
    let mut ids: Vec<ConnId> = ["a", "b", "a", "c", "b"]
        .iter()
        .map(|u| h.connect(u))
        .collect();
    h.drop_connection(ids.remove(1));
    ids.push(h.connect("d"));

    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.iter().all(|&c| h.hub().connection_info(c).is_some()));
}

/// A hub only knows the ids it issued: the same slot and generation stamped with another
/// shard is an unknown connection, and the ids of two shards never collide.
#[test]
fn an_id_of_another_shard_is_unknown_here() {
    let mut config = Config::development();
    config.shard = 3;
    let mut h = switchboard::testing::Harness::new(config);
    let conn = h.connect("alice");
    assert_eq!(conn.shard(), 3);
    assert!(conn.to_string().starts_with("3."));

    let mut other = switchboard::testing::Harness::new(Config::development());
    let elsewhere = other.connect("alice");
    assert_ne!(conn, elsewhere);
    let published = h.with_hub(|hub, now| {
        hub.publish(
            now,
            Target::Connection(elsewhere),
            &switchboard::Message::new("x", json!(null)),
        )
    });
    assert!(published.is_err());
    assert!(h.hub().connection_info(elsewhere).is_none());
}
