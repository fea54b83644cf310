//! Faults injected on purpose, to show that the verification catches them (docs/VERIFICATION.md,
//! "Mutation checks"). Only a build with `--cfg switchboard_mutations` has any: there the fault
//! named by the `SWITCHBOARD_MUTATION` variable is switched on. In every other build
//! [`injected`] is a constant `false` and the faulty branches compile away.

/// A fault the models and properties must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A history `gap` one message wider than the loss (`gap_bound`).
    GapBound,
    /// `already_live` for a position that leaves nothing missing (`already_live`).
    AlreadyLive,
    /// Thoughts never reach a reader that keeps up (`live_thoughts`).
    LiveThoughts,
    /// A message delta offered to a queue that holds a delta of its message is dropped
    /// instead of joined (`queued_delta`).
    QueuedDelta,
    /// A connection out of strikes is never closed: its bad frame gets the `error` anyway
    /// (`endless_strikes`).
    EndlessStrikes,
    /// The message rate allows a burst one frame larger than configured (`wider_burst`).
    WiderBurst,
    /// A user-stream frame carries the number after its own, while the hub's head and history
    /// keep the right one (`message_seq`): a client resuming from its position misses one.
    MessageSeq,
    /// A reader's queue takes one live frame more than `queue_messages` before the next
    /// closes it with 4008 (`longer_queue`).
    LongerQueue,
}

/// True if `fault` is injected in this build and run.
#[cfg(not(switchboard_mutations))]
#[inline(always)]
pub(crate) const fn injected(_: Fault) -> bool {
    false
}

/// True if `fault` is injected in this build and run: `SWITCHBOARD_MUTATION` names it.
#[cfg(switchboard_mutations)]
pub(crate) fn injected(fault: Fault) -> bool {
    let name = match fault {
        Fault::GapBound => "gap_bound",
        Fault::AlreadyLive => "already_live",
        Fault::LiveThoughts => "live_thoughts",
        Fault::QueuedDelta => "queued_delta",
        Fault::EndlessStrikes => "endless_strikes",
        Fault::WiderBurst => "wider_burst",
        Fault::MessageSeq => "message_seq",
        Fault::LongerQueue => "longer_queue",
    };
    std::env::var("SWITCHBOARD_MUTATION").is_ok_and(|v| v == name)
}
