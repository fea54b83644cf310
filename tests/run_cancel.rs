//! Cancel from the client: a `cancel` frame for one of its user's runs in progress becomes a
//! `Notice::Cancel` for the application (which tells the producer); a run of another user, an
//! unknown run or one that ended is answered `unknown_run` alike, and nothing reaches the
//! application. The run ends only when the producer sends `agent_cancelled`.

use serde_json::{json, Value};
use switchboard::testing::Harness;
use switchboard::{AgentEvent, AgentUpdate, Config, Notice, UserId};

/// Publish one event of `user`'s run `run`.
fn agent(h: &mut Harness, user: &str, run: &str, event: AgentEvent) {
    let update = AgentUpdate {
        run: run.into(),
        agent: "planner".into(),
        thread: None,
        event,
    };
    let user = UserId::from(user);
    h.with_hub(|hub, now| hub.send_agent_update(now, &user, update))
        .expect("the event is in order");
}

fn started() -> AgentEvent {
    AgentEvent::AgentStarted { data: Value::Null }
}

/// The cancel requests handed to the application: (user, run, ref).
fn cancels(h: &mut Harness) -> Vec<(String, String, Option<String>)> {
    (h.notices().into_iter())
        .filter_map(|n| match n {
            Notice::Cancel(c) => Some((
                c.user.to_string(),
                c.run.to_string(),
                c.reference.map(|r| r.get().to_owned()),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cancel_for_a_run_of_the_users_own_reaches_the_application_with_its_ref() {
    let mut h = Harness::new(Config::development());
    let conn = h.connect("alice");
    agent(&mut h, "alice", "r1", started());
    h.take(conn);
    h.notices();
    h.send(conn, r#"{"type":"cancel","run":"r1","ref":7}"#);
    assert_eq!(
        cancels(&mut h),
        vec![("alice".into(), "r1".into(), Some("7".into()))]
    );
    assert_eq!(h.take(conn), Vec::<Value>::new(), "the application answers");
    agent(
        &mut h,
        "alice",
        "r1",
        AgentEvent::AgentCancelled {
            reason: Some("asked".into()),
        },
    );
    let frames = h.take(conn);
    let kinds: Vec<&Value> = frames.iter().map(|f| &f["type"]).collect();
    assert_eq!(kinds, vec![&json!("agent_cancelled")]);
}

#[test]
fn a_cancel_for_another_users_run_is_answered_as_an_unknown_run_is() {
    let mut h = Harness::new(Config::development());
    let mallory = h.connect("mallory");
    agent(&mut h, "alice", "r1", started());
    h.take(mallory);
    h.notices();
    h.send(mallory, r#"{"type":"cancel","run":"r1","ref":1}"#);
    h.send(mallory, r#"{"type":"cancel","run":"nope","ref":1}"#);
    let answers = h.take(mallory);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0], answers[1], "nothing tells the two apart");
    assert_eq!(answers[0]["type"], json!("error"));
    assert_eq!(answers[0]["code"], json!("unknown_run"));
    assert_eq!(answers[0]["ref"], json!(1));
    assert_eq!(cancels(&mut h), vec![], "nothing reaches the application");
}

#[test]
fn a_cancel_for_a_run_that_ended_is_an_unknown_run_and_costs_no_strike() {
    let mut config = Config::development();
    config.limits.max_strikes = 1;
    let mut h = Harness::new(config);
    let conn = h.connect("alice");
    agent(&mut h, "alice", "r1", started());
    agent(
        &mut h,
        "alice",
        "r1",
        AgentEvent::AgentFailed { error: "x".into() },
    );
    h.take(conn);
    for _ in 0..3 {
        h.send(conn, r#"{"type":"cancel","run":"r1"}"#);
    }
    let codes: Vec<Value> = h.take(conn).iter().map(|f| f["code"].clone()).collect();
    assert_eq!(codes, vec![json!("unknown_run"); 3]);
    assert_eq!(h.closed(conn), None, "still open");
    assert_eq!(cancels(&mut h), vec![]);
}

#[test]
fn a_cancel_without_a_run_is_an_invalid_frame() {
    let mut h = Harness::new(Config::development());
    let conn = h.connect("alice");
    h.take(conn);
    h.send(conn, r#"{"type":"cancel","ref":2}"#);
    let answers = h.take(conn);
    assert_eq!(answers[0]["code"], json!("invalid_frame"));
    assert_eq!(answers[0]["ref"], json!(2));
}
