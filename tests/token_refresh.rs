//! Token lifetimes on live connections: a connection opened with a token that expires is asked
//! for a fresh one (`refresh`) ahead of the expiry and closed with 4005 after it (and the
//! leeway) unless the application accepted a fresh token meanwhile; an accepted token applies
//! its grants at once and starts a new lifetime. All driven by the time passed in.

use serde_json::{json, Value};
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    Config, ConnId, Message, Notice, Open, Reason, RefreshGrant, RefreshRefusal, RoomAccess,
    Target, UnknownConnection, MAX_TOKEN_BYTES,
};

const MS: Duration = Duration::from_millis(1);
/// How far ahead of its expiry a connection is asked for a fresh token.
const AHEAD: Duration = Duration::from_secs(60);
/// How long after its expiry a connection is closed without a fresh token.
const LEEWAY: Duration = Duration::from_secs(5);
/// The lifetime of the tokens the connections open with.
const LIFETIME: Duration = Duration::from_secs(600);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn config() -> Config {
    let mut config = Config::development();
    config.tokens.refresh_ahead = AHEAD;
    config.tokens.leeway = LEEWAY;
    config
}

/// A harness with one connection of alice whose token expires in [`LIFETIME`], with the
/// frames and notices of its opening taken.
fn expiring() -> (Harness, ConnId) {
    let mut h = Harness::new(config());
    let exp = h.now() + LIFETIME;
    let conn = h.open(Open::new("alice").expires_at(exp)).unwrap();
    h.take(conn);
    h.notices();
    (h, conn)
}

/// The fresh tokens handed to the application, by connection.
fn refresh_requests(h: &mut Harness) -> Vec<(ConnId, String)> {
    (h.notices().into_iter())
        .filter_map(|n| match n {
            Notice::Refresh(r) => Some((r.conn, r.token)),
            _ => None,
        })
        .collect()
}

/// A grant of any room until `lifetime` from now.
fn grant_for(h: &Harness, lifetime: Duration) -> RefreshGrant {
    RefreshGrant {
        expires_at: Some(h.now() + lifetime),
        join: RoomAccess::Any,
        publish: RoomAccess::Any,
    }
}

#[test]
fn a_refresh_frame_is_sent_refresh_ahead_of_the_expiry() {
    let (mut h, conn) = expiring();
    h.advance(LIFETIME - AHEAD - MS);
    assert_eq!(h.take(conn), Vec::<Value>::new(), "not yet");
    h.advance(MS);
    assert_eq!(
        h.take(conn),
        vec![json!({"type": "refresh", "expires_in": 60})]
    );
    h.advance(AHEAD - MS);
    assert_eq!(h.take(conn), Vec::<Value>::new(), "asked once");
}

#[test]
fn a_token_living_less_than_refresh_ahead_is_asked_for_at_half_its_life() {
    let mut h = Harness::new(config());
    let exp = h.now() + secs(20);
    let conn = h.open(Open::new("alice").expires_at(exp)).unwrap();
    h.take(conn);
    h.advance(secs(10) - MS);
    assert!(h.take(conn).is_empty());
    h.advance(MS);
    assert_eq!(
        h.take(conn),
        vec![json!({"type": "refresh", "expires_in": 10})]
    );
}

#[test]
fn without_a_fresh_token_the_connection_closes_with_4005_after_the_expiry_and_leeway() {
    let (mut h, conn) = expiring();
    h.advance(LIFETIME + LEEWAY - MS);
    assert_eq!(h.closed(conn), None, "open until the leeway ran out");
    h.advance(MS);
    assert_eq!(h.closed(conn), Some((4005, Reason::TokenExpired)));
    assert!(h.notices().iter().any(|n| matches!(
        n,
        Notice::Closed { conn: c, reason: Reason::TokenExpired, .. } if *c == conn
    )));
    assert_eq!(h.hub().stats().counters.closes.get(Reason::TokenExpired), 1);
    h.take(conn);
    let delivery = h.publish(Target::User("alice".into()), Message::new("late", 1.into()));
    assert_eq!(delivery.reached, 0, "nothing reaches the closed connection");
    assert!(h.take(conn).is_empty());
}

#[test]
fn an_accepted_refresh_is_answered_refreshed_and_starts_a_new_lifetime() {
    let (mut h, conn) = expiring();
    h.advance(LIFETIME - AHEAD);
    h.take(conn);
    h.send(conn, r#"{"type":"refresh","token":"fresh","ref":7}"#);
    assert_eq!(refresh_requests(&mut h), vec![(conn, "fresh".to_owned())]);
    assert!(h.take(conn).is_empty(), "answered once verified");
    let grant = grant_for(&h, secs(1200));
    h.with_hub(|hub, now| hub.refreshed(now, conn, grant))
        .unwrap();
    assert_eq!(
        h.take(conn),
        vec![json!({"type": "refreshed", "expires_in": 1200, "ref": 7})]
    );
    // The old expiry and leeway pass: still open, still receiving.
    h.advance(AHEAD + LEEWAY + secs(1));
    assert_eq!(h.closed(conn), None);
    h.publish(
        Target::User("alice".into()),
        Message::new("still", 1.into()),
    );
    assert_eq!(h.events(conn), vec!["still"]);
    h.take(conn);
    // The next ask comes refresh_ahead before the new expiry.
    let asked_at = secs(1200) - AHEAD - AHEAD - LEEWAY - secs(1);
    h.advance(asked_at - MS);
    assert!(h.frames_of(conn, "refresh").is_empty());
    h.advance(MS);
    assert_eq!(
        h.take(conn),
        vec![json!({"type": "refresh", "expires_in": 60})]
    );
}

#[test]
fn a_refresh_narrowing_the_grants_leaves_the_rooms_no_longer_allowed() {
    let (mut h, conn) = expiring();
    h.send(conn, r#"{"type":"join","room":"lobby"}"#);
    h.send(conn, r#"{"type":"join","room":"team-1"}"#);
    let bob = h.connect("bob");
    h.send(bob, r#"{"type":"join","room":"lobby"}"#);
    h.take(conn);
    h.send(conn, r#"{"type":"refresh","token":"narrow","ref":"r"}"#);
    let grant = RefreshGrant {
        expires_at: Some(h.now() + LIFETIME),
        join: RoomAccess::Only(vec!["team-*".into()]),
        publish: RoomAccess::Only(vec![]),
    };
    h.with_hub(|hub, now| hub.refreshed(now, conn, grant))
        .unwrap();
    assert_eq!(
        h.take(conn),
        vec![
            json!({"type": "left", "room": "lobby", "reason": "forbidden"}),
            json!({"type": "refreshed", "expires_in": 600, "ref": "r"}),
        ]
    );
    assert_eq!(h.hub().room_members(&"lobby".into()), vec![bob]);
    assert_eq!(h.hub().room_members(&"team-1".into()).len(), 1);
    h.send(bob, r#"{"type":"publish","room":"lobby","event":"hi"}"#);
    assert!(h.take(conn).is_empty(), "a room left receives nothing");
    h.send(conn, r#"{"type":"join","room":"lobby","ref":1}"#);
    let refused = h.take(conn);
    assert_eq!(refused[0]["code"], "forbidden", "{refused:?}");
    h.send(
        conn,
        r#"{"type":"publish","room":"team-1","event":"x","ref":2}"#,
    );
    let refused = h.take(conn);
    assert_eq!(
        refused[0]["code"], "forbidden",
        "the new publish grant applies"
    );
}

#[test]
fn a_refresh_pending_when_the_deadline_passes_closes_with_4005_and_its_late_answer_is_harmless() {
    let (mut h, conn) = expiring();
    h.advance(LIFETIME - AHEAD);
    h.send(conn, r#"{"type":"refresh","token":"slow","ref":1}"#);
    assert_eq!(refresh_requests(&mut h).len(), 1);
    h.advance(AHEAD + LEEWAY);
    assert_eq!(h.closed(conn), Some((4005, Reason::TokenExpired)));
    h.take(conn);
    let grant = grant_for(&h, LIFETIME);
    let late = h.with_hub(|hub, now| hub.refreshed(now, conn, grant));
    assert_eq!(late, Err(UnknownConnection(conn)));
    let refusal = RefreshRefusal::Forbidden;
    let late = h.with_hub(|hub, now| hub.refresh_refused(now, conn, refusal));
    assert_eq!(late, Err(UnknownConnection(conn)));
    assert!(h.take(conn).is_empty(), "nothing after the close");
}

#[test]
fn a_second_refresh_while_one_is_verified_is_answered_refresh_in_progress() {
    let (mut h, conn) = expiring();
    h.send(conn, r#"{"type":"refresh","token":"one","ref":1}"#);
    h.send(conn, r#"{"type":"refresh","token":"two","ref":2}"#);
    assert_eq!(refresh_requests(&mut h), vec![(conn, "one".to_owned())]);
    let answer = h.take(conn);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["code"], "refresh_in_progress");
    assert_eq!(answer[0]["ref"], 2);
    let grant = grant_for(&h, LIFETIME);
    h.with_hub(|hub, now| hub.refreshed(now, conn, grant))
        .unwrap();
    assert_eq!(h.take(conn)[0]["ref"], 1, "the first one's ref");
    h.send(conn, r#"{"type":"refresh","token":"three"}"#);
    assert_eq!(
        refresh_requests(&mut h).len(),
        1,
        "verified: the next one is taken"
    );
}

#[test]
fn a_refused_refresh_is_an_error_with_its_ref_and_the_old_expiry_holds() {
    let (mut h, conn) = expiring();
    h.advance(LIFETIME - AHEAD);
    h.take(conn);
    h.send(conn, r#"{"type":"refresh","token":"bobs","ref":1}"#);
    let refusal = RefreshRefusal::Forbidden;
    h.with_hub(|hub, now| hub.refresh_refused(now, conn, refusal))
        .unwrap();
    let error = h.take(conn);
    assert_eq!(error.len(), 1);
    assert_eq!(
        (&error[0]["code"], &error[0]["ref"]),
        (&json!("forbidden"), &json!(1))
    );
    h.send(conn, r#"{"type":"refresh","token":"stale","ref":2}"#);
    let refusal = RefreshRefusal::InvalidToken { reason: "expired" };
    h.with_hub(|hub, now| hub.refresh_refused(now, conn, refusal))
        .unwrap();
    let error = h.take(conn);
    assert_eq!(error[0]["code"], "invalid_token");
    assert_eq!(error[0]["reason"], "expired");
    assert_eq!(error[0]["ref"], 2);
    let drops = h.hub().stats().counters.drops;
    assert_eq!(
        (
            drops.get(Reason::Forbidden),
            drops.get(Reason::InvalidToken)
        ),
        (1, 1)
    );
    h.advance(AHEAD + LEEWAY);
    assert_eq!(h.closed(conn), Some((4005, Reason::TokenExpired)));
}

#[test]
fn a_client_verifying_a_token_of_its_own_when_the_ask_is_due_is_not_asked() {
    let (mut h, conn) = expiring();
    h.send(conn, r#"{"type":"refresh","token":"early"}"#);
    h.advance(LIFETIME - AHEAD);
    assert!(h.frames_of(conn, "refresh").is_empty());
    let grant = grant_for(&h, LIFETIME);
    h.with_hub(|hub, now| hub.refreshed(now, conn, grant))
        .unwrap();
    assert_eq!(
        h.take(conn),
        vec![json!({"type": "refreshed", "expires_in": 600})]
    );
}

#[test]
fn an_oversized_or_missing_token_is_an_invalid_frame_handed_to_no_one() {
    let (mut h, conn) = expiring();
    let long = format!(
        r#"{{"type":"refresh","token":"{}","ref":5}}"#,
        "t".repeat(MAX_TOKEN_BYTES + 1)
    );
    h.send(conn, &long);
    h.send(conn, r#"{"type":"refresh","ref":6}"#);
    let errors = h.take(conn);
    assert_eq!(errors.len(), 2);
    for (error, reference) in errors.iter().zip([5, 6]) {
        assert_eq!(
            (&error["code"], &error["ref"]),
            (&json!("invalid_frame"), &json!(reference))
        );
    }
    assert!(refresh_requests(&mut h).is_empty());
}

#[test]
fn refresh_frames_count_against_the_rate() {
    let (mut h, conn) = expiring();
    let burst = h.hub().config().limits.message_burst as usize;
    for _ in 0..=burst {
        h.send(conn, r#"{"type":"refresh","token":"t"}"#);
    }
    let codes: Vec<Value> = h.take(conn).iter().map(|f| f["code"].clone()).collect();
    assert_eq!(codes.len(), burst);
    assert_eq!(codes[burst - 1], "rate_limited", "the frame past the burst");
    assert!(codes[..burst - 1]
        .iter()
        .all(|c| c == "refresh_in_progress"));
}

#[test]
fn a_connection_without_expiry_is_never_asked_nor_closed_for_its_token() {
    let mut h = Harness::new(config());
    let conn = h.connect("alice");
    h.take(conn);
    h.advance(secs(86_400));
    assert!(h.frames_of(conn, "refresh").is_empty());
    assert_eq!(h.closed(conn), None);
}
