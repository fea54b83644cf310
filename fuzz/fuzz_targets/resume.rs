//! Arbitrary publish / drop / resume interleavings: exactly-once in-order delivery within history, exact gaps outside.
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};

// An input that decodes to nothing checks nothing: libFuzzer never adds it to a corpus.
fuzz_target!(|data: &[u8]| -> Corpus {
    if switchboard_check::resume(data) {
        Corpus::Keep
    } else {
        Corpus::Reject
    }
});
