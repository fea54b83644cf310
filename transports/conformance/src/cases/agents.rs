//! Agent runs: their events in order on the run's thread, and events out of order refused.

use super::*;

fn run_event(event: AgentEvent) -> AgentUpdate {
    AgentUpdate {
        run: "r1".into(),
        agent: "helper".into(),
        thread: Some("t1".into()),
        event,
    }
}

/// The five agent events of a run reach the user's connections bound to the run's thread,
/// in order, in the user stream; a connection on another thread sees none of them.
pub async fn agent_events_arrive_in_order_on_the_run_thread<T: Transport>() {
    let t = T::start(config()).await;
    let (mut on_thread, _) = welcomed(&t, Connect::user("alice").thread("t1")).await;
    let (mut elsewhere, _) = welcomed(&t, Connect::user("alice").thread("t2")).await;
    let events = [
        AgentEvent::AgentStarted {
            data: json!({"prompt": "p"}),
        },
        AgentEvent::AgentThinking {
            thought: "looking it up".into(),
        },
        AgentEvent::ToolExecuting {
            tool: "search".into(),
            call_id: Some("c1".into()),
            input: json!({"q": "x"}),
        },
        AgentEvent::ToolCompleted {
            tool: "search".into(),
            call_id: Some("c1".into()),
            output: json!([1]),
        },
        AgentEvent::AgentCompleted {
            result: json!({"ok": true}),
        },
    ];
    for event in events {
        let delivery = t.agent_update("alice", run_event(event)).await;
        assert_eq!(delivery.expect("in order").reached, 1);
    }
    let mut last_seq = 0;
    for kind in [
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_completed",
    ] {
        let frame = frame(&mut on_thread).await;
        assert_eq!(
            (
                &frame["type"],
                &frame["run"],
                &frame["agent"],
                &frame["thread"]
            ),
            (&json!(kind), &json!("r1"), &json!("helper"), &json!("t1"))
        );
        assert_eq!(frame["stream"], "user:alice");
        let seq = position(&frame).seq;
        assert!(seq > last_seq, "{kind} after seq {last_seq}");
        last_seq = seq;
    }
    quiet(&mut elsewhere, "alice on another thread").await;
    drop((on_thread, elsewhere));
    t.shutdown().await;
}

/// An agent event out of order is refused to the producer and reaches no one: anything
/// before `agent_started`, a second start, a tool completion without its execution, and
/// anything after the end.
pub async fn agent_events_out_of_order_are_refused<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice").thread("t1")).await;
    let thinking = || AgentEvent::AgentThinking {
        thought: "hmm".into(),
    };
    let started = || AgentEvent::AgentStarted { data: json!(null) };
    let update = |event| t.agent_update("alice", run_event(event));
    let refused = |result: Result<Delivery, PublishError>| match result {
        Err(PublishError::Run(error)) => error,
        other => panic!("accepted out of order: {other:?}"),
    };
    assert!(matches!(
        refused(update(thinking()).await),
        RunError::NotStarted(_)
    ));
    update(started()).await.expect("the start");
    assert!(matches!(
        refused(update(started()).await),
        RunError::AlreadyStarted(_)
    ));
    let orphan = AgentEvent::ToolCompleted {
        tool: "search".into(),
        call_id: None,
        output: json!(null),
    };
    assert!(matches!(
        refused(update(orphan).await),
        RunError::ToolNotExecuting { .. }
    ));
    let done = AgentEvent::AgentCompleted { result: json!(1) };
    update(done).await.expect("the end");
    assert!(matches!(
        refused(update(thinking()).await),
        RunError::Ended(_)
    ));
    assert_eq!(frame(&mut alice).await["type"], "agent_started");
    assert_eq!(frame(&mut alice).await["type"], "agent_completed");
    quiet(&mut alice, "alice, after the refused events").await;
    drop(alice);
    t.shutdown().await;
}
