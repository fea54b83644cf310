//! Arbitrary bytes as client frames to a hub with a few connections; every reply and close checked against docs/PROTOCOL.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switchboard_check::frames(data));
