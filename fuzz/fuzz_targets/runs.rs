//! Arbitrary agent-run events, producer loss, drops and reconnects: every view of every run follows the run automaton.
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};

// An input that decodes to nothing checks nothing: libFuzzer never adds it to a corpus.
fuzz_target!(|data: &[u8]| -> Corpus {
    if switchboard_check::runs(data) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
