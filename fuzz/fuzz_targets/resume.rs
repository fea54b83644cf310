//! Arbitrary publish / drop / resume interleavings: exactly-once in-order delivery within history, exact gaps outside.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchboard_check::resume(data));
