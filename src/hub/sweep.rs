//! The periodic sweep: history expires by age, streams nobody reads here and that hold nothing
//! are forgotten, runs silent for `run_idle_timeout` end with `producer_lost`, and the reports
//! of runs ended `run_retention` ago are dropped. It runs again while anything remains.

use super::agent;
use super::delivery::Fanout;
use crate::run::{EventKind, Runs};
use crate::stream::StreamId;
use std::time::Instant;

/// Sweep at `now` (the sweep's deadline came).
pub(super) fn run(runs: &mut Runs, f: &mut Fanout<'_>, now: Instant) {
    let (conns, rooms) = (&*f.conns, &*f.rooms);
    f.streams.sweep(now, |id| match id {
        StreamId::User(u) => conns.is_connected(u),
        StreamId::Room(r) => !rooms.members(r).is_empty(),
    });
    for key in runs.idle(now) {
        agent::emit(runs, f, now, &key, EventKind::ProducerLost, None);
    }
    runs.forget_ended(now);
    if !f.streams.is_empty() || !runs.is_empty() {
        f.sweep.schedule(now);
    }
}
