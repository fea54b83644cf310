//! Heartbeats: pings on the presets' schedules, round-trip statistics, the health score, death
//! after the timeout, the 4000 close after the grace, resurrection, and the expiry of waiters,
//! all driven by the time passed in.

mod support;

use std::time::{Duration, Instant};
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    Config, ConnId, Hub, Liveness, Notice, Open, Output, Reason, SocketInput, SocketOutput,
};

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The three presets with their ping interval and silence timeout, in seconds.
fn presets() -> [(Config, u64, u64); 3] {
    [
        (Config::development(), 15, 45),
        (Config::staging(), 30, 90),
        (Config::production(), 25, 75),
    ]
}

/// A harness on `config` with one connection of alice that does not answer pings.
fn silent(config: Config) -> (Harness, ConnId) {
    let mut h = Harness::new(config);
    let conn = h.connect("alice");
    h.set_answers_pings(conn, false);
    h.notices();
    (h, conn)
}

/// The payload of the one ping among `outputs`.
fn ping_payload(outputs: &[Output]) -> [u8; 8] {
    let pings: Vec<[u8; 8]> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Socket(SocketOutput::Ping { payload, .. }) => Some(*payload),
            _ => None,
        })
        .collect();
    assert_eq!(pings.len(), 1, "{outputs:?}");
    pings[0]
}

fn health(h: &Harness, conn: ConnId) -> u8 {
    h.hub().connection_info(conn).expect("open").health
}

/// The presets time out silence after 45, 90 and 75 s, ping more often, with one ping of grace.
#[test]
fn the_presets_keep_the_45_90_and_75_second_timeouts() {
    for (config, interval, timeout) in presets() {
        assert_eq!(config.heartbeat.timeout, secs(timeout));
        assert_eq!(config.heartbeat.interval, secs(interval));
        assert_eq!(
            config.heartbeat.grace,
            secs(interval),
            "grace is one interval"
        );
    }
}

/// A connection is pinged every interval of its preset, starting one interval after it opened.
#[test]
fn each_preset_pings_on_its_interval() {
    for (config, interval, _) in presets() {
        let mut h = Harness::new(config);
        let conn = h.connect("alice");

        h.advance(secs(interval) - MS);
        assert_eq!(h.client(conn).pings, 0, "{interval} s preset pinged early");
        h.advance(MS);
        assert_eq!(h.client(conn).pings, 1);
        h.advance(secs(interval) * 3);
        assert_eq!(h.client(conn).pings, 4);
    }
}

/// The hub asks to be woken for the first ping exactly one interval after the open.
#[test]
fn poll_timeout_names_the_first_ping() {
    let t0 = Instant::now();
    let mut hub = Hub::new(Config::production());
    assert_eq!(hub.poll_timeout(), None, "an empty hub has nothing to do");
    let conn = hub.open(t0, Open::new("alice")).unwrap();
    drain(&mut hub);

    assert_eq!(hub.poll_timeout(), Some(t0 + secs(25)));
    hub.handle_timeout(t0 + secs(25) - MS);
    assert!(drain(&mut hub).is_empty(), "nothing is due early");
    hub.handle_timeout(t0 + secs(25));
    let out = drain(&mut hub);
    assert!(matches!(out[..], [Output::Socket(SocketOutput::Ping { conn: c, .. })] if c == conn));
}

/// A connection that answers its pings stays open and healthy indefinitely.
#[test]
fn a_connection_that_answers_pings_never_times_out() {
    let mut h = Harness::new(Config::development());
    let conn = h.connect("alice");
    h.advance(secs(600));

    assert_eq!(h.closed(conn), None);
    assert_eq!(h.client(conn).pings, 40);
    assert_eq!(health(&h, conn), 100);
    assert_eq!(h.hub().stats().counters.missed_pongs, 0);
}

/// Any client frame counts as life: a client that never answers pings but talks stays alive.
#[test]
fn any_client_frame_counts_as_life() {
    let (mut h, conn) = silent(Config::development());
    for _ in 0..20 {
        h.advance(secs(40));
        h.send(conn, r#"{"type":"ping"}"#);
    }

    assert_eq!(h.closed(conn), None);
    let info = h.hub().connection_info(conn).unwrap();
    assert_eq!(info.liveness, Liveness::Alive);
    assert!(h
        .notices()
        .iter()
        .all(|n| !matches!(n, Notice::Dead { .. })));
}

/// Round-trip statistics come from the pongs that answer the hub's pings.
#[test]
fn round_trip_statistics_come_from_pongs() {
    let t0 = Instant::now();
    let mut hub = Hub::new(Config::production());
    let conn = hub.open(t0, Open::new("alice")).unwrap();
    drain(&mut hub);
    let interval = secs(25);

    for (n, rtt) in [(1, 40), (2, 10)] {
        let pinged = t0 + interval * n;
        hub.handle_timeout(pinged);
        let payload = ping_payload(&drain(&mut hub));
        let pong = SocketInput::Pong {
            conn,
            payload: &payload,
        };
        hub.handle_socket(pinged + MS * rtt, pong).unwrap();
    }

    let rtt = hub.connection_info(conn).unwrap().rtt;
    assert_eq!(rtt.samples, 2);
    assert_eq!(rtt.last, Some(MS * 10));
    assert_eq!((rtt.min, rtt.max), (Some(MS * 10), Some(MS * 40)));
    assert_eq!(rtt.average(), Some(MS * 25));
    let histogram = hub.stats().counters.rtt;
    assert_eq!((histogram.count, histogram.sum), (2, MS * 50));
    assert_eq!(histogram.buckets.iter().sum::<u64>(), 2);
    assert_eq!(
        histogram.buckets[2], 1,
        "10 ms falls in the <= 10 ms bucket"
    );
    assert_eq!(
        histogram.buckets[4], 1,
        "40 ms falls in the <= 50 ms bucket"
    );
}

/// A pong whose payload answers no ping measures nothing, but still counts as life.
#[test]
fn a_pong_that_answers_no_ping_measures_nothing() {
    let t0 = Instant::now();
    let mut hub = Hub::new(Config::development());
    let conn = hub.open(t0, Open::new("alice")).unwrap();
    hub.handle_timeout(t0 + secs(15));
    drain(&mut hub);

    let pong = SocketInput::Pong {
        conn,
        payload: b"nonsense",
    };
    hub.handle_socket(t0 + secs(40), pong).unwrap();
    hub.handle_timeout(t0 + secs(60));

    let info = hub
        .connection_info(conn)
        .expect("alive: the pong was a sign of life");
    assert_eq!(info.rtt.samples, 0);
    assert_eq!(info.liveness, Liveness::Alive);
}

/// Health falls by 25 for each missed pong and recovers by 5 with each sign of life.
#[test]
fn health_falls_on_missed_pongs_and_recovers_on_traffic() {
    let (mut h, conn) = silent(Config::development());
    h.advance(secs(15));
    assert_eq!(health(&h, conn), 100, "a ping just sent is not missed yet");
    h.advance(secs(15));
    assert_eq!(health(&h, conn), 75);
    assert_eq!(h.hub().stats().counters.missed_pongs, 1);
    assert_eq!(h.hub().stats().health, [0, 0, 0, 1, 0]);

    for _ in 0..3 {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    assert_eq!(health(&h, conn), 90);
    assert_eq!(h.hub().stats().health, [0, 0, 0, 0, 1]);
    for _ in 0..10 {
        h.send(conn, r#"{"type":"ping"}"#);
    }
    assert_eq!(health(&h, conn), 100, "health never exceeds 100");
}

/// A pong later than `late_pong` costs 10 health; unlike a timely sign of life, it earns no
/// recovery.
#[test]
fn a_late_pong_lowers_health() {
    let t0 = Instant::now();
    let mut hub = Hub::new(Config::production());
    let conn = hub.open(t0, Open::new("alice")).unwrap();
    let late = Config::production().heartbeat.late_pong;
    hub.handle_timeout(t0 + secs(25));
    let payload = ping_payload(&drain(&mut hub));

    let pong = SocketInput::Pong {
        conn,
        payload: &payload,
    };
    hub.handle_socket(t0 + secs(25) + late + MS, pong).unwrap();

    assert_eq!(hub.connection_info(conn).unwrap().health, 100 - 10);
}

/// Silence for exactly the timeout means dead: health 0, `Notice::Dead`, close one grace later.
#[test]
fn a_connection_silent_for_the_timeout_is_dead() {
    for (config, interval, timeout) in presets() {
        let (mut h, conn) = silent(config);
        let opened = h.now();

        h.advance(secs(timeout) - MS);
        assert_eq!(
            h.hub().connection_info(conn).unwrap().liveness,
            Liveness::Alive
        );
        assert!(h
            .notices()
            .iter()
            .all(|n| !matches!(n, Notice::Dead { .. })));
        h.advance(MS);

        let info = h.hub().connection_info(conn).expect("dead, not closed yet");
        assert_eq!(
            info.liveness,
            Liveness::Dead {
                close_at: opened + secs(timeout + interval)
            }
        );
        assert_eq!(info.health, 0);
        assert_eq!(h.hub().stats().health[0], 1);
        assert!(h.notices().contains(&Notice::Dead { conn }));
        assert_eq!(h.closed(conn), None);
    }
}

/// A dead connection that shows no life within the grace is closed with 4000.
#[test]
fn a_dead_connection_is_closed_with_4000_when_the_grace_ends() {
    for (config, interval, timeout) in presets() {
        let (mut h, conn) = silent(config);

        h.advance(secs(timeout + interval) - MS);
        assert_eq!(h.closed(conn), None);
        h.advance(MS);

        assert_eq!(h.closed(conn), Some((4000, Reason::HeartbeatTimeout)));
        assert!(h.hub().connection_info(conn).is_none());
        let notices = h.notices();
        let dead = notices.iter().position(|n| *n == Notice::Dead { conn });
        let closed = notices.iter().position(|n| {
            *n == Notice::Closed {
                conn,
                user: "alice".into(),
                reason: Reason::HeartbeatTimeout,
            }
        });
        assert!(
            dead.is_some() && closed.is_some() && dead < closed,
            "{notices:?}"
        );
        assert_eq!(closes(&h, Reason::HeartbeatTimeout), 1);
    }
}

/// A dead connection that sends a frame before its deadline is resurrected and stays open.
#[test]
fn a_dead_connection_that_sends_a_frame_in_time_is_resurrected() {
    let (mut h, conn) = silent(Config::development());
    h.advance(secs(45));
    assert!(h.notices().contains(&Notice::Dead { conn }));

    h.advance(secs(14));
    h.send(conn, r#"{"type":"ping"}"#);

    assert_eq!(h.notices(), vec![Notice::Resurrected { conn }]);
    let info = h.hub().connection_info(conn).unwrap();
    assert_eq!(info.liveness, Liveness::Alive);
    assert!(info.health > 0);
    assert_eq!(h.hub().stats().counters.resurrections, 1);
    h.set_answers_pings(conn, true);
    h.advance(secs(120));
    assert_eq!(h.closed(conn), None);
}

/// A pong, whatever its payload, resurrects a dead connection too.
#[test]
fn a_dead_connection_that_answers_with_a_pong_in_time_is_resurrected() {
    let (mut h, conn) = silent(Config::production());
    h.advance(secs(75));

    h.socket(SocketInput::Pong {
        conn,
        payload: &[0; 8],
    });

    assert!(h.notices().contains(&Notice::Resurrected { conn }));
    h.advance(secs(30));
    assert_eq!(h.closed(conn), None);
}

/// A resurrected connection that falls silent again dies again after a full timeout.
#[test]
fn a_resurrected_connection_that_falls_silent_dies_again_after_a_full_timeout() {
    let (mut h, conn) = silent(Config::development());
    h.advance(secs(50));
    h.send(conn, r#"{"type":"ping"}"#);
    h.notices();

    h.advance(secs(45) - MS);
    assert!(h.notices().is_empty());
    h.advance(MS);
    assert_eq!(h.notices(), vec![Notice::Dead { conn }]);
    h.advance(secs(15));
    assert_eq!(h.closed(conn), Some((4000, Reason::HeartbeatTimeout)));
}

/// `handle_timeout` expires each waiter at its own deadline and removes it from the gauges.
#[test]
fn expired_waiters_are_cleaned_up_by_handle_timeout() {
    let mut h = Harness::new(Config::development());
    let t0 = h.now();
    let (early, late) = h.with_hub(|hub, _| {
        (
            hub.wait_for_connection(&"alice".into(), t0 + secs(5)),
            hub.wait_for_connection(&"bob".into(), t0 + secs(10)),
        )
    });
    assert_eq!(h.hub().stats().waiters, 2);

    h.advance(secs(5));
    assert_eq!(
        h.notices(),
        vec![Notice::WaitExpired {
            waiter: early,
            user: "alice".into()
        }]
    );
    assert_eq!(h.hub().stats().waiters, 1);
    h.advance(secs(5));
    assert_eq!(
        h.notices(),
        vec![Notice::WaitExpired {
            waiter: late,
            user: "bob".into()
        }]
    );
    assert_eq!(h.hub().stats().waiters, 0);
    assert!(h.hub().is_idle());
}
