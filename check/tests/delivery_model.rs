//! The delivery rules checked under random cases: devices that follow the protocol's client
//! algorithm through publishes, agent runs, drops, reconnects with positions, `resume` frames,
//! slow reading and expiring history, against a shadow of every stream.
//!
//! The engine and its invariants (isolation, exactly once in order, exact gaps, no silent loss,
//! the run automaton per connection and across resumes, the streams the hub keeps) live in
//! `switchboard_check::devices`, where they are stated in full; it is also the body of the
//! `runs` and `resume` fuzz targets. Here proptest generates the cases (1 to 4 devices, up to
//! 100 operations, history of 3 to 12 messages; in the `resume` cases also 1 KiB of frames and
//! one second, and a queue of four frames the model predicts the overflow of): 256 per property
//! in plain `cargo test`, 10 000 in CI (`PROPTEST_CASES`), a failure shrunk to a minimal case
//! and saved under `proptest-regressions/`.
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use switchboard_check::devices::{
    self, DeviceOp, DeviceSpec, ResumeCase, ResumeOp, RunOp, RunsCase,
};

fn device_spec() -> impl Strategy<Value = DeviceSpec> {
    (0..2u8, 0..3u8, 0..4u8).prop_map(|(user, thread, rooms)| DeviceSpec {
        user,
        thread,
        rooms,
    })
}

fn device_op() -> impl Strategy<Value = DeviceOp> {
    let device = || 0..4u8;
    prop_oneof![
        2 => device().prop_map(|device| DeviceOp::Drop { device }),
        3 => (device(), any::<bool>(), any::<bool>())
            .prop_map(|(device, drain, by_join)| DeviceOp::Reconnect { device, drain, by_join }),
        2 => (device(), any::<bool>())
            .prop_map(|(device, reading)| DeviceOp::Reading { device, reading }),
        2 => (0..=500u16).prop_map(|ms| DeviceOp::Tick { ms }),
        1 => Just(DeviceOp::LongTick),
    ]
}

fn run_op() -> impl Strategy<Value = RunOp> {
    // Actions 10 to 15 (modulo 16) of a running run are message deltas (`World::agent`):
    // drawn on their own as well, so that runs stream messages at length.
    let delta = (0..16u8, 10..16u8).prop_map(|(high, low)| high * 16 + low);
    prop_oneof![
        6 => (0..2u8, 0..2u8, any::<u8>())
            .prop_map(|(user, slot, action)| RunOp::Event { user, slot, action }),
        6 => (0..2u8, 0..2u8, delta)
            .prop_map(|(user, slot, action)| RunOp::Event { user, slot, action }),
        1 => (0..2u8, 0..2u8).prop_map(|(user, slot)| RunOp::ProducerLost { user, slot }),
        1 => Just(RunOp::Idle),
        4 => device_op().prop_map(RunOp::Device),
    ]
}

fn resume_op() -> impl Strategy<Value = ResumeOp> {
    prop_oneof![
        4 => (0..2u8, 0..3u8, any::<bool>())
            .prop_map(|(user, thread, big)| ResumeOp::PublishUser { user, thread, big }),
        3 => (0..2u8, any::<bool>()).prop_map(|(room, big)| ResumeOp::PublishRoom { room, big }),
        1 => (0..4u8, proptest::option::of(0..2u8))
            .prop_map(|(device, room)| ResumeOp::ResumeLive { device, room }),
        4 => device_op().prop_map(ResumeOp::Device),
    ]
}

fn runs_case() -> impl Strategy<Value = RunsCase> {
    let devices = vec(device_spec(), 1..=4);
    (3..=12u8, 0..4u8, devices, vec(run_op(), 1..=100)).prop_map(
        |(history, flush, devices, ops)| RunsCase {
            history,
            flush,
            devices,
            ops,
        },
    )
}

fn resume_case() -> impl Strategy<Value = ResumeCase> {
    (
        3..=12u8,
        vec(device_spec(), 1..=4),
        vec(resume_op(), 1..=100),
    )
        .prop_map(|(history, devices, ops)| ResumeCase {
            history,
            devices,
            ops,
        })
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/delivery_model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Agent runs (valid and refused events, lost and idle producers) across drops and
    /// reconnects: every connection and every device sees each run in the automaton's order,
    /// with exactly one ending.
    #[test]
    fn every_device_sees_every_run_in_order_across_reconnects(case in runs_case()) {
        devices::run_runs(&case).map_err(TestCaseError::fail)?;
    }

    /// Publishes, drops, resumes, stalled readers and time: every stream is delivered exactly
    /// once in order within history, with an exact `gap` for what history's bounds (count,
    /// bytes, age) dropped, nothing is lost silently, and a stalled reader is closed with 4008
    /// exactly when its queue overflows.
    #[test]
    fn every_stream_is_delivered_exactly_once_or_with_an_exact_gap(case in resume_case()) {
        devices::run_resume(&case).map_err(TestCaseError::fail)?;
    }
}
