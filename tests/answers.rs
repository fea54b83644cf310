//! The application answers its own frame types: a `reply` or an `error` with its own code,
//! each echoing the frame's `ref` to exactly the connection that sent it; and the membership
//! notices (`Joined`, `Left`) that let an application follow connections.

mod support;

use proptest::prelude::*;
use serde_json::json;
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    Answer, AppErrorCode, AppMessage, ClientRef, Config, ErrorCode, Notice, Open, Reason,
    RoomChange, UnknownConnection, MAX_APP_CODE_BYTES, MAX_REF_BYTES,
};

fn app_config() -> Config {
    let mut config = small_config();
    config.app_frame_types = vec!["user_message".into()];
    config
}

/// The one application frame among the notices.
fn app_message(h: &mut Harness) -> AppMessage {
    let mut apps: Vec<AppMessage> = (h.notices().into_iter())
        .filter_map(|n| match n {
            Notice::App(app) => Some(*app),
            _ => None,
        })
        .collect();
    assert_eq!(apps.len(), 1, "one application frame");
    apps.remove(0)
}

fn answer(h: &mut Harness, app: &AppMessage, answer: Answer) -> Result<(), UnknownConnection> {
    h.with_hub(|hub, _| hub.answer(app.conn, app.reference.clone(), answer))
}

#[test]
fn a_reply_reaches_exactly_the_sending_connection_with_its_ref() {
    let mut h = Harness::new(app_config());
    let sender = h.connect("alice");
    let sibling = h.connect("alice");
    let other = h.connect("bob");
    for conn in [sender, sibling, other] {
        h.take(conn);
    }
    h.send(
        sender,
        r#"{"type":"user_message","data":{"text":"hi"},"ref":{"id":"a-1"}}"#,
    );
    let app = app_message(&mut h);
    assert_eq!(
        app.reference.as_ref().map(ClientRef::get),
        Some(r#"{"id":"a-1"}"#)
    );

    answer(&mut h, &app, Answer::Reply(json!({"text": "hello"}))).unwrap();

    assert_eq!(
        h.take(sender),
        vec![json!({"type":"reply","data":{"text":"hello"},"ref":{"id":"a-1"}})]
    );
    assert!(h.frames(sibling).is_empty(), "the user's other connection");
    assert!(h.frames(other).is_empty(), "another user");
}

#[test]
fn an_application_error_carries_its_own_code_and_the_ref_without_a_strike() {
    let mut h = Harness::new(app_config());
    let conn = h.connect("alice");
    h.take(conn);
    let strikes = small_config().limits.max_strikes as usize;
    for i in 0..strikes + 3 {
        h.send(conn, &json!({"type":"user_message","ref":i}).to_string());
        let app = app_message(&mut h);
        let code = AppErrorCode::new("quota_exceeded").unwrap();
        let message = "too many questions today".to_owned();
        answer(&mut h, &app, Answer::Error { code, message }).unwrap();
        assert_eq!(
            h.take(conn),
            vec![
                json!({"type":"error","code":"quota_exceeded","message":"too many questions today","ref":i})
            ]
        );
    }
    assert_eq!(closes(&h, Reason::ProtocolViolation), 0, "still open");
}

#[test]
fn backend_unavailable_is_a_protocol_code_an_application_can_answer_with() {
    let mut h = Harness::new(app_config());
    let conn = h.connect("alice");
    h.take(conn);
    h.send(conn, r#"{"type":"user_message","ref":"r"}"#);
    let app = app_message(&mut h);

    let code = AppErrorCode::from(ErrorCode::BackendUnavailable);
    let message = "the backend is not answering".to_owned();
    answer(&mut h, &app, Answer::Error { code, message }).unwrap();

    assert_eq!(error_codes(&h.take(conn)), vec!["backend_unavailable"]);
}

#[test]
fn an_answer_without_a_ref_echoes_none_and_an_answer_to_a_closed_connection_is_unknown() {
    let mut h = Harness::new(app_config());
    let conn = h.connect("alice");
    h.take(conn);
    h.send(conn, r#"{"type":"user_message","data":1}"#);
    let app = app_message(&mut h);
    assert_eq!(app.reference, None);

    answer(&mut h, &app, Answer::Reply(json!(null))).unwrap();
    assert_eq!(h.take(conn), vec![json!({"type":"reply","data":null})]);

    h.drop_connection(conn);
    assert_eq!(
        answer(&mut h, &app, Answer::Reply(json!(1))),
        Err(UnknownConnection(conn))
    );
}

#[test]
fn a_client_ref_is_bounded_json() {
    assert!(ClientRef::parse("7").is_some());
    assert!(ClientRef::parse("{not json").is_none());
    let at_bound = format!("\"{}\"", "x".repeat(MAX_REF_BYTES - 2));
    assert!(ClientRef::parse(&at_bound).is_some());
    let over = format!("\"{}\"", "x".repeat(MAX_REF_BYTES - 1));
    assert!(ClientRef::parse(&over).is_none());
}

#[test]
fn joins_and_leaves_are_notices_and_a_close_reports_no_rooms() {
    let mut h = harness();
    let conn = h.open(Open::new("alice")).unwrap();
    h.notices();

    join(&mut h, conn, "lobby");
    h.send(conn, r#"{"type":"leave","room":"lobby"}"#);
    h.with_hub(|hub, now| hub.join_room(now, conn, &"side".into()))
        .unwrap();
    h.drop_connection(conn);

    let membership: Vec<Notice> = (h.notices().into_iter())
        .filter(|n| !matches!(n, Notice::Closed { .. }))
        .collect();
    let change = |room: &str| {
        Box::new(RoomChange {
            conn,
            user: "alice".into(),
            room: room.into(),
        })
    };
    assert_eq!(
        membership,
        vec![
            Notice::Joined(change("lobby")),
            Notice::Left(change("lobby")),
            Notice::Joined(change("side")),
        ],
        "a closing connection's rooms are not reported one by one"
    );
}

proptest! {
    /// An application's code is accepted exactly when it is 1 to 64 of `[a-z0-9_]`.
    #[test]
    fn an_application_code_is_accepted_exactly_when_it_is_short_lowercase_ascii(code in "\\PC{0,70}") {
        let valid = !code.is_empty()
            && code.len() <= MAX_APP_CODE_BYTES
            && code.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
        let made = AppErrorCode::new(&code);
        prop_assert_eq!(made.is_some(), valid);
        if let Some(made) = made {
            prop_assert_eq!(made.as_str(), code.as_str());
        }
    }

    /// Generated from the valid alphabet, a code is always accepted.
    #[test]
    fn every_short_code_of_the_alphabet_is_accepted(code in "[a-z0-9_]{1,64}") {
        prop_assert!(AppErrorCode::new(&code).is_some());
    }
}
