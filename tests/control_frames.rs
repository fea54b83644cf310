//! Control frames from the client: a WebSocket ping, and a pong that answers no ping of the
//! hub's, count against the connection's message rate like text frames. Past the rate each takes
//! a strike without an `error` frame (nothing more is written to a client that floods), and a
//! flood with no strike left closes with 4029. Pongs that answer the hub's pings are the
//! heartbeat and are never limited.

mod support;

use std::time::{Duration, Instant};
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    Config, ConnId, Hub, Liveness, Notice, Open, Output, Reason, SocketInput, SocketOutput,
};

/// The documented defaults of every preset.
const BURST: usize = 100;
const MAX_STRIKES: usize = 10;

/// A harness with the default limits and one connection of alice, its welcome taken.
fn alice() -> (Harness, ConnId) {
    let mut h = Harness::new(Config::production());
    let conn = h.connect("alice");
    h.take(conn);
    (h, conn)
}

/// The control frames a client can send unprompted.
#[derive(Debug, Clone, Copy)]
enum Control {
    Ping,
    UnsolicitedPong,
}

const CONTROLS: [Control; 2] = [Control::Ping, Control::UnsolicitedPong];

/// `conn` sends `n` control frames of `kind`.
fn send_control(h: &mut Harness, conn: ConnId, kind: Control, n: usize) {
    for _ in 0..n {
        match kind {
            Control::Ping => h.socket(SocketInput::Ping { conn }),
            Control::UnsolicitedPong => h.socket(SocketInput::Pong {
                conn,
                payload: b"not-ours",
            }),
        }
    }
}

/// Control frames within the burst pass silently: no frame in answer, no drop, no strike.
#[test]
fn control_frames_within_the_burst_pass_silently() {
    for kind in CONTROLS {
        let (mut h, conn) = alice();
        send_control(&mut h, conn, kind, BURST);

        assert!(h.frames(conn).is_empty(), "{kind:?}: {:?}", h.frames(conn));
        assert_eq!(drops(&h, Reason::OverRate), 0, "{kind:?}");
        assert_eq!(h.closed(conn), None, "{kind:?}");
    }
}

/// Past the burst each control frame is dropped as `over_rate` and takes a strike, with no
/// `error` frame; the frame that finds no strike left closes the connection with 4029.
#[test]
fn a_control_frame_flood_takes_strikes_silently_then_closes_with_4029() {
    for kind in CONTROLS {
        let (mut h, conn) = alice();
        send_control(&mut h, conn, kind, BURST + MAX_STRIKES);

        assert!(h.frames(conn).is_empty(), "{kind:?}: no error frames");
        assert_eq!(drops(&h, Reason::OverRate), MAX_STRIKES as u64, "{kind:?}");
        assert_eq!(h.closed(conn), None, "{kind:?}: strikes left until now");

        send_control(&mut h, conn, kind, 1);

        assert_eq!(
            h.closed(conn),
            Some((4029, Reason::RateLimited)),
            "{kind:?}"
        );
        assert_eq!(closes(&h, Reason::RateLimited), 1, "{kind:?}");
        assert!(h.hub().connection_info(conn).is_none(), "{kind:?}");
    }
}

/// Control frames and text frames draw on one rate: after a burst of pings the next text frame
/// is answered `rate_limited`.
#[test]
fn control_frames_and_text_frames_share_one_rate() {
    let (mut h, conn) = alice();
    send_control(&mut h, conn, Control::Ping, BURST / 2);
    send_control(&mut h, conn, Control::UnsolicitedPong, BURST / 2);
    h.send(conn, r#"{"type":"ping","ref":1}"#);

    assert_eq!(error_codes(h.frames(conn)), vec!["rate_limited"]);
    assert_eq!(drops(&h, Reason::OverRate), 1);
}

/// Text frames and control frames share the strikes too: ten strikes taken by text frames over
/// the rate leave none for a ping, which closes with 4029.
#[test]
fn strikes_taken_by_text_frames_leave_none_for_a_ping() {
    let (mut h, conn) = alice();
    for _ in 0..BURST + MAX_STRIKES {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    assert_eq!(h.frames_of(conn, "error").len(), MAX_STRIKES);

    send_control(&mut h, conn, Control::Ping, 1);

    assert_eq!(h.closed(conn), Some((4029, Reason::RateLimited)));
}

/// The rate refills for control frames as for text frames: a ping flood spread over time at
/// `messages_per_second` never strikes.
#[test]
fn pings_at_the_sustained_rate_never_strike() {
    let (mut h, conn) = alice();
    for _ in 0..60 {
        send_control(&mut h, conn, Control::Ping, 50);
        h.advance(Duration::from_secs(1));
    }

    assert_eq!(drops(&h, Reason::OverRate), 0);
    assert_eq!(h.closed(conn), None);
}

/// A pong that answers the hub's ping is the heartbeat: measured, and never limited, even with
/// the rate used up; an unsolicited pong at the same moment is dropped as over the rate.
#[test]
fn a_pong_that_answers_the_hubs_ping_is_never_rate_limited() {
    let t0 = Instant::now();
    let mut hub = Hub::new(Config::production());
    let conn = hub.open(t0, Open::new("alice")).unwrap();
    drain(&mut hub);
    let pinged = t0 + Duration::from_secs(25);
    hub.handle_timeout(pinged);
    let payload = drain(&mut hub)
        .into_iter()
        .find_map(|o| match o {
            Output::Socket(SocketOutput::Ping { payload, .. }) => Some(payload),
            _ => None,
        })
        .expect("the hub pinged");
    for _ in 0..BURST {
        hub.handle_socket(pinged, SocketInput::Ping { conn })
            .unwrap();
    }

    let pong = SocketInput::Pong {
        conn,
        payload: &payload,
    };
    hub.handle_socket(pinged, pong).unwrap();
    let over_rate = |hub: &Hub| hub.stats().counters.drops.get(Reason::OverRate);
    assert_eq!(over_rate(&hub), 0, "the answer to our ping is not limited");
    assert_eq!(hub.connection_info(conn).unwrap().rtt.samples, 1);

    hub.handle_socket(pinged, pong).unwrap();
    assert_eq!(over_rate(&hub), 1, "the same pong again answers nothing");
}

/// A ping is a sign of life: a dead connection that pings in time is resurrected.
#[test]
fn a_dead_connection_that_pings_is_resurrected() {
    let mut h = Harness::new(Config::production());
    let conn = h.connect("alice");
    h.set_answers_pings(conn, false);
    h.advance(Duration::from_secs(75));
    let dead = h.hub().connection_info(conn).unwrap().liveness;
    assert!(matches!(dead, Liveness::Dead { .. }), "{dead:?}");

    h.socket(SocketInput::Ping { conn });

    assert!(h.notices().contains(&Notice::Resurrected { conn }));
    assert_eq!(
        h.hub().connection_info(conn).unwrap().liveness,
        Liveness::Alive
    );
}

/// A ping on a connection that is gone is answered `UnknownConnection`, like every socket input.
#[test]
fn a_ping_for_a_closed_connection_is_unknown() {
    let (mut h, conn) = alice();
    h.drop_connection(conn);

    let result = h.with_hub(|hub, now| hub.handle_socket(now, SocketInput::Ping { conn }));

    assert!(result.is_err());
}
