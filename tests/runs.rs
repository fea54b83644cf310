//! Agent runs: the five lifecycle events in order to the user's connections on the run's
//! thread, the automaton that refuses events out of order, the endings, `producer_lost`, and
//! the run report.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    AgentEvent, AgentUpdate, EventKind, Notice, Open, PublishError, RunError, RunId, RunReport,
    UserId,
};

fn alice() -> UserId {
    "alice".into()
}

fn r(name: &str) -> RunId {
    name.into()
}

/// Try to publish one event of alice's run `run` on thread `t1`.
fn try_agent(h: &mut Harness, run: &str, event: AgentEvent) -> Result<(), PublishError> {
    let update = AgentUpdate {
        run: run.into(),
        agent: "planner".into(),
        thread: Some("t1".into()),
        event,
    };
    h.with_hub(|hub, now| hub.send_agent_update(now, &alice(), update))
        .map(|_| ())
}

/// `tool_executing` of `tool` with call id `call`.
fn executing_call(tool: &str, call: &str) -> AgentEvent {
    AgentEvent::ToolExecuting {
        tool: tool.into(),
        call_id: Some(call.into()),
        input: json!({"q": call}),
    }
}

/// `tool_completed` of `tool` with call id `call`.
fn completed_call(tool: &str, call: &str) -> AgentEvent {
    AgentEvent::ToolCompleted {
        tool: tool.into(),
        call_id: Some(call.into()),
        output: json!([call]),
    }
}

fn failed(error: &str) -> AgentEvent {
    AgentEvent::AgentFailed {
        error: error.into(),
    }
}

fn cancelled(reason: Option<&str>) -> AgentEvent {
    AgentEvent::AgentCancelled {
        reason: reason.map(Into::into),
    }
}

/// The reports among the application's notices.
fn run_ended(h: &mut Harness) -> Vec<RunReport> {
    h.notices()
        .into_iter()
        .filter_map(|n| match n {
            Notice::RunEnded(report) => Some(*report),
            _ => None,
        })
        .collect()
}

/// Alice with a connection on t1 (frames taken) and a run `r1` started on t1.
fn started_run() -> (Harness, switchboard::ConnId) {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    h.take(conn);
    (h, conn)
}

/// The five events reach, in order and complete, only the user's connections on the thread.
#[test]
fn the_five_events_reach_the_users_connections_on_the_runs_thread_in_order() {
    let mut h = harness();
    let on_t1 = h.open(Open::new("alice").thread("t1")).unwrap();
    let unbound = h.connect("alice");
    let bob_on_t1 = h.open(Open::new("bob").thread("t1")).unwrap();
    for conn in [on_t1, unbound, bob_on_t1] {
        h.take(conn);
    }

    let events = [
        AgentEvent::AgentStarted {
            data: json!({"prompt": "p"}),
        },
        thinking("looking it up"),
        tool_executing("search"),
        tool_completed("search"),
        AgentEvent::AgentCompleted {
            result: json!({"ok": true}),
        },
    ];
    for event in events {
        assert_eq!(agent(&mut h, "alice", "r1", Some("t1"), event).reached, 1);
    }

    let frames = h.take(on_t1);
    assert_eq!(
        types(&frames),
        vec![
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["run"], "r1");
        assert_eq!(f["agent"], "planner");
        assert_eq!(f["thread"], "t1");
        assert_eq!(f["stream"], "user:alice");
        assert_eq!(f["seq"], i as u64 + 1);
        assert_eq!(f["event"], f["type"]);
    }
    assert_eq!(frames[0]["data"], json!({"prompt": "p"}));
    assert_eq!(frames[1]["thought"], "looking it up");
    assert_eq!(
        (
            &frames[2]["tool"],
            &frames[2]["call_id"],
            &frames[2]["input"]
        ),
        (&json!("search"), &Value::Null, &Value::Null)
    );
    assert_eq!(frames[3]["output"], Value::Null);
    assert_eq!(frames[4]["result"], json!({"ok": true}));
    assert!(
        h.frames(unbound).is_empty(),
        "not bound to the run's thread"
    );
    assert!(h.frames(bob_on_t1).is_empty(), "another user's thread t1");
}

/// A run without a thread reaches every connection of its user.
#[test]
fn a_run_without_a_thread_reaches_every_connection_of_its_user() {
    let mut h = harness();
    let conns = [
        h.open(Open::new("alice").thread("t1")).unwrap(),
        h.connect("alice"),
    ];
    let bob = h.connect("bob");

    let d = agent(&mut h, "alice", "r1", None, started());

    assert_eq!(d.reached, 2);
    for conn in conns {
        let frame = &h.frames_of(conn, "agent_started")[0];
        assert!(frame.get("thread").is_none());
    }
    assert!(h.frames_of(bob, "agent_started").is_empty());
}

/// An event before `agent_started` is refused with `NotStarted` and delivered to no one.
#[test]
fn an_event_before_agent_started_is_refused() {
    let mut h = harness();
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    h.take(conn);
    let head = h.hub().stream_position(&user_stream("alice"));

    let result = try_agent(&mut h, "r1", thinking("too early"));

    assert_eq!(
        result,
        Err(PublishError::Run(RunError::NotStarted(r("r1"))))
    );
    assert!(h.frames(conn).is_empty());
    assert_eq!(h.hub().stream_position(&user_stream("alice")), head);
    assert!(h.hub().run_report(&alice(), &r("r1")).is_none());
    assert_eq!(h.hub().stats().runs_active, 0);
}

/// A second `agent_started` for a running run is refused with `AlreadyStarted`.
#[test]
fn a_second_agent_started_is_refused() {
    let (mut h, conn) = started_run();
    let result = try_agent(&mut h, "r1", started());
    assert_eq!(
        result,
        Err(PublishError::Run(RunError::AlreadyStarted(r("r1"))))
    );
    assert!(h.frames(conn).is_empty());
}

/// `tool_completed` without its `tool_executing` is refused and delivered to no one.
#[test]
fn tool_completed_without_its_tool_executing_is_refused() {
    let (mut h, conn) = started_run();

    let result = try_agent(&mut h, "r1", tool_completed("search"));

    assert_eq!(
        result,
        Err(PublishError::Run(RunError::ToolNotExecuting {
            run: r("r1"),
            call: "search".into()
        }))
    );
    assert!(h.frames(conn).is_empty());
    let report = h.hub().run_report(&alice(), &r("r1")).unwrap();
    assert_eq!(report.events.len(), 1, "only agent_started was recorded");
}

/// Tool calls are matched by `call_id`: several may be open; an open id cannot be reused.
#[test]
fn tool_calls_are_matched_by_call_id() {
    let (mut h, conn) = started_run();

    try_agent(&mut h, "r1", executing_call("search", "a")).unwrap();
    try_agent(&mut h, "r1", executing_call("search", "b")).unwrap();
    assert_eq!(
        try_agent(&mut h, "r1", executing_call("search", "a")),
        Err(PublishError::Run(RunError::ToolAlreadyExecuting {
            run: r("r1"),
            call: "a".into()
        }))
    );
    try_agent(&mut h, "r1", completed_call("search", "b")).unwrap();
    assert!(matches!(
        try_agent(&mut h, "r1", completed_call("search", "b")),
        Err(PublishError::Run(RunError::ToolNotExecuting { .. }))
    ));
    try_agent(&mut h, "r1", completed_call("search", "a")).unwrap();
    try_agent(&mut h, "r1", completed()).unwrap();

    let frames = h.frames(conn);
    let calls: Vec<(&str, &str)> = frames
        .iter()
        .filter_map(|f| Some((f["type"].as_str()?, f["call_id"].as_str()?)))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("tool_executing", "a"),
            ("tool_executing", "b"),
            ("tool_completed", "b"),
            ("tool_completed", "a")
        ]
    );
}

/// `agent_completed` while a tool call is still open is refused with the open calls.
#[test]
fn agent_completed_with_a_tool_call_open_is_refused() {
    let (mut h, conn) = started_run();
    agent(&mut h, "alice", "r1", Some("t1"), tool_executing("search"));
    h.take(conn);

    let result = try_agent(&mut h, "r1", completed());

    assert_eq!(
        result,
        Err(PublishError::Run(RunError::ToolsStillExecuting {
            run: r("r1"),
            open: vec!["search".into()]
        }))
    );
    assert!(h.frames(conn).is_empty());
    assert_eq!(h.hub().stats().runs_active, 1);
}

/// `agent_failed` ends a run, even with tool calls open, and carries its error.
#[test]
fn agent_failed_ends_the_run() {
    let (mut h, conn) = started_run();
    agent(&mut h, "alice", "r1", Some("t1"), tool_executing("search"));

    agent(&mut h, "alice", "r1", Some("t1"), failed("boom"));

    let frame = h.frames_of(conn, "agent_failed")[0].clone();
    assert_eq!(frame["error"], "boom");
    let report = h.hub().run_report(&alice(), &r("r1")).unwrap();
    assert_eq!(report.ended, Some(EventKind::AgentFailed));
    assert_eq!(h.hub().stats().runs_active, 0);
}

/// `agent_cancelled` ends a run and carries its reason, or `null`.
#[test]
fn agent_cancelled_ends_the_run() {
    let (mut h, conn) = started_run();
    agent(&mut h, "alice", "r1", Some("t1"), cancelled(Some("user")));
    agent(&mut h, "alice", "r2", Some("t1"), started());
    agent(&mut h, "alice", "r2", Some("t1"), cancelled(None));

    let frames = h.frames_of(conn, "agent_cancelled");
    assert_eq!(frames[0]["reason"], "user");
    assert_eq!(frames[1]["reason"], Value::Null);
    for run in ["r1", "r2"] {
        let report = h.hub().run_report(&alice(), &r(run)).unwrap();
        assert_eq!(report.ended, Some(EventKind::AgentCancelled));
    }
}

/// Nothing is accepted after an ending, whichever ending it was, and nothing is delivered.
#[test]
fn nothing_is_accepted_after_an_ending() {
    let endings = [completed(), failed("x"), cancelled(None)];
    for ending in endings {
        let (mut h, conn) = started_run();
        try_agent(&mut h, "r1", ending).unwrap();
        h.take(conn);

        for event in [
            thinking("late"),
            tool_executing("search"),
            completed(),
            failed("again"),
            started(),
        ] {
            assert_eq!(
                try_agent(&mut h, "r1", event),
                Err(PublishError::Run(RunError::Ended(r("r1"))))
            );
        }
        assert!(h.frames(conn).is_empty());
    }
}

/// An ending hands the application the run's report in `Notice::RunEnded`.
#[test]
fn an_ending_hands_the_report_to_the_application() {
    let (mut h, _conn) = started_run();
    agent(&mut h, "alice", "r1", Some("t1"), thinking("hm"));
    assert!(run_ended(&mut h).is_empty(), "not ended yet");

    agent(&mut h, "alice", "r1", Some("t1"), completed());

    let reports = run_ended(&mut h);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(
        (&report.run, &report.user, &report.agent),
        (&r("r1"), &alice(), &"planner".into())
    );
    assert_eq!(report.thread, Some("t1".into()));
    assert_eq!(report.ended, Some(EventKind::AgentCompleted));
    let kinds: Vec<EventKind> = report.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::AgentStarted,
            EventKind::AgentThinking,
            EventKind::AgentCompleted
        ]
    );
    assert_eq!(Some(report), h.hub().run_report(&alice(), &r("r1")));
}

/// `Hub::producer_lost` ends a running run with a `producer_lost` frame to its listeners, and
/// reports that frame's delivery.
#[test]
fn a_lost_producer_ends_the_run_with_producer_lost_to_its_listeners() {
    let (mut h, conn) = started_run();
    let unbound = h.connect("alice");
    h.take(unbound);
    h.notices();

    let lost = h.with_hub(|hub, now| hub.producer_lost(now, &alice(), &r("r1")));

    assert_eq!(
        lost.map(|d| (d.reached, d.position.map(|p| p.seq))),
        Some((1, Some(2)))
    );
    let frames = h.take(conn);
    assert_eq!(types(&frames), vec!["producer_lost"]);
    assert_eq!(frames[0]["run"], "r1");
    assert_eq!(frames[0]["seq"], 2);
    assert!(frames[0].get("event").is_none());
    assert!(h.frames(unbound).is_empty());
    let reports = run_ended(&mut h);
    assert_eq!(reports[0].ended, Some(EventKind::ProducerLost));
    assert_eq!(h.hub().stats().runs_active, 0);
    assert_eq!(
        try_agent(&mut h, "r1", completed()),
        Err(PublishError::Run(RunError::Ended(r("r1"))))
    );
}

/// A lost producer of a run that ended, or never existed, changes nothing.
#[test]
fn a_lost_producer_of_an_ended_or_unknown_run_changes_nothing() {
    let (mut h, conn) = started_run();
    agent(&mut h, "alice", "r1", Some("t1"), completed());
    h.take(conn);
    h.notices();

    for (user, run) in [("alice", "r1"), ("alice", "nope"), ("bob", "r1")] {
        let lost = h.with_hub(|hub, now| hub.producer_lost(now, &user.into(), &r(run)));
        assert_eq!(lost, None, "{user}'s {run} is not in progress");
    }

    assert!(h.frames(conn).is_empty());
    assert!(run_ended(&mut h).is_empty());
    let report = h.hub().run_report(&alice(), &r("r1")).unwrap();
    assert_eq!(report.ended, Some(EventKind::AgentCompleted));
}

/// A run silent for `run_idle_timeout` is ended by the hub with `producer_lost`.
#[test]
fn a_run_silent_for_the_idle_timeout_ends_with_producer_lost() {
    let mut config = small_config();
    config.run_idle_timeout = Duration::from_secs(30);
    let mut h = Harness::new(config);
    let conn = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    h.advance(Duration::from_secs(20));
    agent(&mut h, "alice", "r1", Some("t1"), thinking("still here"));
    h.take(conn);

    h.advance(Duration::from_secs(29));
    assert!(
        h.frames(conn).is_empty(),
        "30 s since the last event not reached"
    );
    h.advance(CLEANUP * 2);

    assert_eq!(types(h.frames(conn)), vec!["producer_lost"]);
    let report = h.hub().run_report(&alice(), &r("r1")).unwrap();
    assert_eq!(report.ended, Some(EventKind::ProducerLost));
}

/// The run report says, per event, how many connections it reached when it was published.
#[test]
fn the_report_says_per_event_whether_it_reached_a_connection() {
    let mut h = harness();
    let _unbound = h.connect("alice");
    agent(&mut h, "alice", "r1", Some("t1"), started());
    let first = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), thinking("one listener"));
    let _second = h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), completed());

    let report = h.hub().run_report(&alice(), &r("r1")).unwrap();
    let reached: Vec<(EventKind, usize)> =
        report.events.iter().map(|e| (e.kind, e.reached)).collect();
    assert_eq!(
        reached,
        vec![
            (EventKind::AgentStarted, 0),
            (EventKind::AgentThinking, 1),
            (EventKind::AgentCompleted, 2)
        ]
    );
    let seqs: Vec<u64> = report.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(!report.fully_delivered());
    assert_eq!(
        types(&h.frames(first)[1..]),
        vec!["agent_started", "agent_thinking", "agent_completed"],
        "the first connection on the thread got the started event it missed"
    );
}

/// A run whose every event reached a connection is fully delivered.
#[test]
fn a_run_that_reached_a_connection_with_every_event_is_fully_delivered() {
    let (mut h, _conn) = started_run();
    agent(&mut h, "alice", "r1", Some("t1"), completed());
    assert!(h
        .hub()
        .run_report(&alice(), &r("r1"))
        .unwrap()
        .fully_delivered());
}

/// An ended run's report stays queryable for `run_retention`, then is forgotten.
#[test]
fn an_ended_runs_report_is_kept_for_run_retention() {
    let mut config = small_config();
    config.run_retention = Duration::from_secs(60);
    let mut h = Harness::new(config);
    h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), completed());

    h.advance(Duration::from_secs(59));
    assert!(h.hub().run_report(&alice(), &r("r1")).is_some());
    h.advance(CLEANUP * 2);
    assert!(h.hub().run_report(&alice(), &r("r1")).is_none());
}

/// Past `max_ended_runs`, the run that ended first is forgotten at once, before its
/// retention: a burst of short runs cannot grow the hub. Runs in progress are never forgotten.
#[test]
fn past_max_ended_runs_the_oldest_ended_run_is_forgotten_first() {
    let mut config = small_config();
    config.run_retention = Duration::from_secs(60);
    config.max_ended_runs = 2;
    let mut h = Harness::new(config);
    h.open(Open::new("alice").thread("t1")).unwrap();
    agent(&mut h, "alice", "long", Some("t1"), started());
    for run in ["r1", "r2", "r3"] {
        agent(&mut h, "alice", run, Some("t1"), started());
        agent(&mut h, "alice", run, Some("t1"), completed());
    }
    let kept = |h: &Harness, run: &str| h.hub().run_report(&alice(), &r(run)).is_some();
    assert!(!kept(&h, "r1"), "the first to end is forgotten");
    assert!(kept(&h, "r2") && kept(&h, "r3"));
    assert!(kept(&h, "long"), "a run in progress is never forgotten");
    // The forgotten run's id may start again, as after its retention.
    agent(&mut h, "alice", "r1", Some("t1"), started());
    assert!(kept(&h, "r1") && kept(&h, "r2"));
}

/// Run ids are per user: another user's run of the same id is another run.
#[test]
fn run_ids_are_per_user() {
    let (mut h, conn) = started_run();
    let bob = h.open(Open::new("bob").thread("t1")).unwrap();
    h.take(bob);

    let bobs = AgentUpdate {
        run: r("r1"),
        agent: "planner".into(),
        thread: Some("t1".into()),
        event: thinking("not started for bob"),
    };
    let refused = h.with_hub(|hub, now| hub.send_agent_update(now, &"bob".into(), bobs));
    assert_eq!(
        refused,
        Err(PublishError::Run(RunError::NotStarted(r("r1"))))
    );
    agent(&mut h, "bob", "r1", Some("t1"), started());
    agent(&mut h, "bob", "r1", Some("t1"), completed());

    assert_eq!(
        types(h.frames(bob)),
        vec!["agent_started", "agent_completed"]
    );
    assert!(h.frames(conn).is_empty(), "alice sees nothing of bob's r1");
    let alices = h.hub().run_report(&alice(), &r("r1")).unwrap();
    assert_eq!(alices.ended, None, "alice's r1 is still running");
}

/// A user scope publishes run events of its own user only.
#[test]
fn a_user_scope_publishes_its_own_users_runs() {
    let mut h = harness();
    let alice_conn = h.connect("alice");
    let bob_conn = h.connect("bob");
    let update = AgentUpdate {
        run: r("r1"),
        agent: "planner".into(),
        thread: None,
        event: started(),
    };

    let d = h
        .with_hub(|hub, now| hub.scope("alice").send_agent_update(now, update))
        .unwrap();

    assert_eq!(d.reached, 1);
    assert_eq!(h.frames_of(alice_conn, "agent_started").len(), 1);
    assert!(h.frames_of(bob_conn, "agent_started").is_empty());
    assert!(h.with_hub(|hub, _| hub.scope("alice").run_report(&r("r1")).is_some()));
    assert!(h.with_hub(|hub, _| hub.scope("bob").run_report(&r("r1")).is_none()));
}

/// A late joiner gets the run so far as the live listener saw it, then the same live tail.
#[test]
fn a_late_joiner_gets_the_same_frames_as_the_live_listener_then_the_live_tail() {
    let mut h = harness();
    let live = h.open(Open::new("alice").thread("t1")).unwrap();
    h.take(live);
    agent(&mut h, "alice", "r1", Some("t1"), started());
    agent(&mut h, "alice", "r1", Some("t1"), thinking("a"));
    agent(&mut h, "alice", "r1", Some("t1"), tool_executing("search"));
    let seen_live = h.take(live);

    let late = h.open(Open::new("alice").thread("t1")).unwrap();
    let mut so_far = h.take(late);
    assert_eq!(so_far.remove(0)["type"], "welcome");
    assert_eq!(so_far, seen_live);
    assert!(
        h.frames(live).is_empty(),
        "the catch-up is for the late joiner only"
    );

    agent(&mut h, "alice", "r1", Some("t1"), tool_completed("search"));
    let d = agent(&mut h, "alice", "r1", Some("t1"), completed());

    assert_eq!(d.reached, 2);
    let tail = h.take(late);
    assert_eq!(types(&tail), vec!["tool_completed", "agent_completed"]);
    assert_eq!(tail, h.take(live), "the live tail is the same for both");
    let report = h.hub().run_report(&alice(), &r("r1")).unwrap();
    let reached: Vec<usize> = report.events.iter().map(|e| e.reached).collect();
    assert_eq!(
        reached,
        vec![1, 1, 1, 2, 2],
        "the report counts live reach, not catch-up"
    );
}
