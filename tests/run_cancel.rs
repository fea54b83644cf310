//! Cancel from the client: a `cancel` frame for one of its user's runs in progress becomes a
//! `Notice::Cancel` for the application (which tells the producer); a run of another user, an
//! unknown run or one that ended is answered `unknown_run` alike, and nothing reaches the
//! application. The run ends only when the producer sends `agent_cancelled`. In a cluster, a
//! cancel for a run not in progress on the client's hub is the cluster's to answer: another
//! node's hub hands it to its application when the asking user has the run in progress there.

use serde_json::{json, Value};
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, Answer, CancelFrom, CancelRequest, CancelTicket, Config, Notice,
    UserId,
};

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
            Notice::Cancel(c) => match c.from {
                CancelFrom::Client { reference, .. } => Some((
                    c.user.to_string(),
                    c.run.to_string(),
                    reference.map(|r| r.get().to_owned()),
                )),
                CancelFrom::Node(_) => None,
            },
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

fn in_a_cluster() -> Harness {
    let mut config = Config::development();
    config.cluster = true;
    Harness::new(config)
}

fn ticket(id: u64) -> CancelTicket {
    CancelTicket {
        node: "b".into(),
        id,
    }
}

#[test]
fn in_a_cluster_a_cancel_for_a_run_not_in_progress_here_goes_to_the_cluster_unanswered() {
    let mut h = in_a_cluster();
    let conn = h.connect("alice");
    agent(&mut h, "alice", "here", started());
    h.take(conn);
    h.notices();
    h.send(conn, r#"{"type":"cancel","run":"elsewhere","ref":4}"#);
    assert_eq!(h.take(conn), Vec::<Value>::new(), "the cluster answers");
    assert_eq!(
        cancels(&mut h),
        vec![],
        "nothing for this node's application"
    );
    let asked = h.cluster_cancels();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].user.as_str(), asked[0].run.as_str()),
        ("alice", "elsewhere")
    );
    let CancelFrom::Client {
        conn: from,
        reference,
    } = &asked[0].from
    else {
        panic!("a client of this hub asked: {:?}", asked[0].from);
    };
    assert_eq!(*from, conn);
    assert_eq!(reference.as_ref().map(|r| r.get()), Some("4"));
    // The cluster's answer reaches the client with its ref, as an application's does.
    h.with_hub(|hub, _| hub.answer(conn, reference.clone(), Answer::unknown_run()))
        .expect("open");
    let answer = h.take(conn);
    assert_eq!(answer[0]["code"], json!("unknown_run"));
    assert_eq!(answer[0]["ref"], json!(4));

    h.send(conn, r#"{"type":"cancel","run":"here","ref":5}"#);
    assert_eq!(
        cancels(&mut h).len(),
        1,
        "a run in progress here stays local"
    );
    assert_eq!(h.cluster_cancels(), vec![]);
}

#[test]
fn the_unknown_run_the_cluster_answers_is_the_one_a_hub_answers() {
    let mut alone = Harness::new(Config::development());
    let conn = alone.connect("alice");
    alone.take(conn);
    alone.send(conn, r#"{"type":"cancel","run":"r9","ref":3}"#);
    let local = alone.take(conn);
    let mut clustered = in_a_cluster();
    let conn = clustered.connect("alice");
    clustered.take(conn);
    clustered.send(conn, r#"{"type":"cancel","run":"r9","ref":3}"#);
    let asked = clustered.cluster_cancels().remove(0);
    let CancelFrom::Client { reference, .. } = asked.from else {
        panic!("a client asked");
    };
    clustered
        .with_hub(|hub, _| hub.answer(conn, reference, Answer::unknown_run()))
        .expect("open");
    assert_eq!(clustered.take(conn), local, "nothing tells the two apart");
}

#[test]
fn a_cancel_from_another_node_reaches_the_application_only_for_the_asking_users_run() {
    let mut h = in_a_cluster();
    agent(&mut h, "alice", "r1", started());
    agent(&mut h, "mallory", "m1", started());
    h.notices();
    let asked = |h: &mut Harness, n: u64, user: &str, run: &str| {
        h.with_hub(|hub, _| hub.remote_cancel(ticket(n), user.into(), run.into()))
    };
    assert!(
        asked(&mut h, 1, "alice", "r1"),
        "alice's run is in progress here"
    );
    let notices = h.notices();
    let expected = CancelRequest {
        from: CancelFrom::Node(ticket(1)),
        user: "alice".into(),
        run: "r1".into(),
    };
    assert_eq!(notices, vec![Notice::Cancel(Box::new(expected))]);
    assert!(
        !asked(&mut h, 2, "alice", "m1"),
        "another user's run is never found"
    );
    assert!(
        !asked(&mut h, 3, "mallory", "r1"),
        "nor is alice's for mallory"
    );
    assert!(!asked(&mut h, 4, "alice", "nope"));
    assert_eq!(h.notices(), vec![], "nothing reaches the application");
    agent(
        &mut h,
        "alice",
        "r1",
        AgentEvent::AgentCancelled { reason: None },
    );
    assert!(
        !asked(&mut h, 5, "alice", "r1"),
        "a run that ended is not in progress"
    );
}
