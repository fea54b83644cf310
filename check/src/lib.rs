//! # switchboard-check
//!
//! The checking engines of the Switchboard core, outside the product crate: the fuzz target
//! bodies and the reference models they and the property tests share. Each target takes the
//! raw bytes of one input, drives a real [`Hub`](switchboard::Hub) through the public API only
//! (with the `testing` feature's [`Harness`](switchboard::testing::Harness)), and panics when
//! an oracle fails. Not published.
//!
//! The same bodies run under libFuzzer (the `fuzz/` directory, `cargo +nightly fuzz run
//! <target>`) and as ordinary tests over the checked-in corpus (`tests/fuzz_corpus.rs` of this
//! crate), so a crash found by the fuzzer becomes a regression test by adding its input to the
//! corpus. The property tests of this crate (`tests/model.rs`, `tests/delivery_model.rs`)
//! generate cases for the same models with proptest.
//!
//! | Target | Input | Oracle |
//! |---|---|---|
//! | [`frames()`] | arbitrary bytes, read as client frames for a few connections | never a panic; every frame the hub writes is JSON of a type `docs/PROTOCOL.md` lists, with a listed error code, `ref` echoed exactly where the protocol says; every close code is listed and caused by what the protocol says causes it, and required where its cause is certain (strikes, rate, silence, a stalled reader's queue); run events accepted exactly as the run automaton says; the reply to each frame fits its type; no state is left once everyone left |
//! | [`operations()`] | an [`Arbitrary`] sequence of hub operations ([`operations::Case`]) | the hub delivers exactly what a reference model predicts, in order, never across users, never past a limit; frames past the rate and out of strikes answered and closed (4029, 1008) exactly as the model's token buckets say |
//! | [`runs()`] | agent-run events and message deltas (valid or not, under a flush window or none), producer loss, drops and reconnects ([`devices::RunsCase`]) | each connection and each device sees every run in the automaton's order, and exactly one ending; every reader assembles every message's exact text, with no hole and no text repeated live |
//! | [`resume()`] | publishes, drops, reconnects and resumes ([`devices::ResumeCase`]) | every stream is delivered exactly once in order within history (bounded by count, bytes and age), with an exact `gap` outside it; a stalled reader closed with 4008 exactly when its queue overflows |
//!
//! Inputs of the structured targets are decoded with [`arbitrary::Unstructured`] from the raw
//! bytes (`arbitrary_take_rest`), exactly as libFuzzer's typed targets do; an input that decodes to
//! nothing (too short, or no operation) is skipped, and the fuzz targets reject it so that no
//! corpus keeps it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use arbitrary::{Arbitrary, Unstructured};

/// Fail with a message unless `cond` holds (the fuzzing counterpart of `assert!`, returning an
/// error so that proptest can shrink).
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// Fail unless the two values are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($arg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}: {:?} != {:?}",
                format!($($arg)+),
                left,
                right
            ));
        }
    }};
}

mod budgets;
pub mod devices;
mod epochs;
mod frame_bytes;
pub mod frames;
pub mod operations;
mod protocol_doc;

pub use protocol_doc::ProtocolDoc;

/// Decode a structured input the way libFuzzer's typed targets do and, if `holds` says it holds
/// something to check, `check` it, panicking with the first violation. `false` for an input
/// that does not decode or holds nothing to check: the fuzz target rejects it.
fn check_case<'a, T: Arbitrary<'a>>(
    data: &'a [u8],
    holds: impl FnOnce(&T) -> bool,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> bool {
    let Some(case) = T::arbitrary_take_rest(Unstructured::new(data))
        .ok()
        .filter(holds)
    else {
        return false;
    };
    if let Err(e) = check(&case) {
        panic!("{e}");
    }
    true
}

/// Target `frames`: arbitrary bytes as client frames (text, binary, pongs) to a hub with a few
/// connections, interleaved with publishes, slow reading and time. Panics on any reply or close
/// that `docs/PROTOCOL.md` does not document for what was sent. See [`mod@frames`] for how
/// the bytes are read.
pub fn frames(data: &[u8]) {
    let _outcomes = frames::run(data);
}

/// Target `operations`: decodes an [`operations::Case`] and checks the hub against the
/// reference model after every operation. Panics on the first difference. Returns `false`
/// for an input that decodes to nothing (too short, or no operation), which checks nothing:
/// the fuzz target rejects it, so libFuzzer never keeps it in a corpus.
pub fn operations(data: &[u8]) -> bool {
    check_case(
        data,
        |case: &operations::Case| !case.ops.is_empty(),
        |case| operations::run(&case.normalized()),
    )
}

/// Target `runs`: decodes a [`devices::RunsCase`] (agent-run events and message deltas, valid
/// or not, producer loss, idle runs, drops, reconnects and slow readers) and checks every
/// connection's and every device's view of every run and text of every message. Panics on the
/// first violation. Returns `false` for an input that decodes to nothing (too short, no
/// device or no operation), as [`operations()`] does.
pub fn runs(data: &[u8]) -> bool {
    check_case(
        data,
        |case: &devices::RunsCase| !case.devices.is_empty() && !case.ops.is_empty(),
        devices::run_runs,
    )
}

/// Target `resume`: decodes a [`devices::ResumeCase`] (publishes, drops, reconnects with
/// positions, `resume` frames, slow readers, expiring history) and checks exactly-once in-order
/// delivery within history and exact gaps outside it. Panics on the first violation. Returns
/// `false` for an input that decodes to nothing (too short, no device or no operation), as
/// [`operations()`] does.
pub fn resume(data: &[u8]) -> bool {
    check_case(
        data,
        |case: &devices::ResumeCase| !case.devices.is_empty() && !case.ops.is_empty(),
        devices::run_resume,
    )
}
