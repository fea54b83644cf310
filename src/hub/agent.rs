//! Agent runs on the wire: an accepted event becomes a frame of the run's user stream, tagged
//! with the run (late joiners), its thread and, for thinking and message deltas, a coalescing
//! key (deltas of a message join in history and for readers behind); the run's
//! report records how many connections each event reached, and an ending is reported to the
//! application.

use super::delivery::Fanout;
use crate::error::PublishError;
use crate::id::{RunId, UserId};
use crate::io::{AgentUpdate, Delivery, Notice};
use crate::outbox::CoalesceKey;
use crate::protocol::{self, RunFrame};
use crate::reason::Reason;
use crate::run::{AgentEvent, EventKind, Run, Runs};
use crate::sequenced::Tags;
use crate::stream::RunTag;
use std::time::Instant;

/// Publish one event of `user`'s run: the first (which must be `agent_started`) starts the run
/// within the caps; every other is checked against the run's automaton. A refused event reaches
/// no one.
pub(super) fn update(
    runs: &mut Runs,
    f: &mut Fanout<'_>,
    now: Instant,
    user: &UserId,
    update: AgentUpdate,
) -> Result<Delivery, PublishError> {
    let key = (user.clone(), update.run.clone());
    match runs.get(&key) {
        Some(run) => run.check(&update.event)?,
        None => {
            let run = Run::start(
                now,
                update.run.clone(),
                user.clone(),
                update.agent,
                update.thread,
                &update.event,
            )?;
            if let Err(limit) = runs.start(run) {
                f.out.counters.drops.add(Reason::TooManyRuns);
                return Err(PublishError::TooManyRuns(limit));
            }
            f.sweep.schedule(now);
        }
    }
    Ok(emit(
        runs,
        f,
        now,
        &key,
        update.event.kind(),
        Some(&update.event),
    ))
}

/// The producer of `user`'s `run` went away: a run in progress ends with `producer_lost`.
pub(super) fn producer_lost(
    runs: &mut Runs,
    f: &mut Fanout<'_>,
    now: Instant,
    user: &UserId,
    run: &RunId,
) -> Option<Delivery> {
    let key = (user.clone(), run.clone());
    let running = runs.get(&key).is_some_and(Run::is_running);
    running.then(|| emit(runs, f, now, &key, EventKind::ProducerLost, None))
}

/// Deliver an accepted event of the run `key` (`event` `None`: the hub's `producer_lost`) and
/// record it in the run's report.
pub(super) fn emit(
    runs: &mut Runs,
    f: &mut Fanout<'_>,
    now: Instant,
    key: &(UserId, RunId),
    kind: EventKind,
    event: Option<&AgentEvent>,
) -> Delivery {
    let run = runs.get(key).expect("run exists");
    let (agent, thread) = (run.report.agent.clone(), run.report.thread.clone());
    let coalesce = match event {
        Some(AgentEvent::AgentThinking { .. }) => Some(CoalesceKey::Thinking(key.1.clone())),
        Some(AgentEvent::AgentMessageDelta { message, .. }) => {
            Some(CoalesceKey::Message(key.1.clone(), message.as_str().into()))
        }
        _ => None,
    };
    let run = RunTag {
        id: key.1.clone(),
        ends: kind.is_ending(),
    };
    let tags = Tags {
        thread: thread.as_ref(),
        run: Some(&run),
        coalesce: coalesce.as_ref(),
        ..Tags::default()
    };
    let delivery = f.publish_to_user(now, &key.0, tags, |sequence| {
        protocol::encode(&RunFrame {
            kind: kind.as_str(),
            run: &key.1,
            agent: &agent,
            thread: thread.as_ref(),
            sequence,
            event,
        })
    });
    let seq = delivery.position.map_or(0, |p| p.seq);
    let run = runs.record(key, now, kind, event, seq, delivery.reached);
    if kind.is_ending() {
        let report = run.report.clone();
        f.out.notice(Notice::RunEnded(Box::new(report)));
    }
    delivery
}
