//! Arbitrary agent-run events, producer loss, drops and reconnects: every view of every run follows the run automaton.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchboard_check::runs(data));
