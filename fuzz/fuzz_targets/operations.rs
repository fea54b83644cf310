//! Arbitrary sequences of hub operations checked against the reference model.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchboard_check::operations(data));
