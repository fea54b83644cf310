//! The fuzz target bodies (`switchboard_check`) run as ordinary tests over the corpus checked
//! in under the repository's `fuzz/corpus/<target>/`: seeds written by hand and inputs the
//! fuzzer found interesting, including any that once crashed. The fuzzer itself runs in CI
//! (`.ci/run`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Run `body` on every file of the target's corpus; fail naming each file that panics.
fn replay(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "{} holds only {} seeds",
        dir.display(),
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable seed");
            catch_unwind(AssertUnwindSafe(|| body(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

/// Client frames of every kind, valid and not, get documented replies and close codes.
#[test]
fn the_frames_corpus_passes() {
    replay("frames", switchboard_check::frames);
}

/// Operation sequences route exactly as the reference model says.
#[test]
fn the_operations_corpus_passes() {
    replay("operations", switchboard_check::operations);
}

/// Agent-run sequences with reconnects and lost producers follow the run automaton everywhere.
#[test]
fn the_runs_corpus_passes() {
    replay("runs", switchboard_check::runs);
}

/// Publish / drop / resume interleavings deliver exactly once in order, or an exact gap.
#[test]
fn the_resume_corpus_passes() {
    replay("resume", switchboard_check::resume);
}

// ----- findings of the fuzzer, fixed in the core --------------------------------------------

/// A room joined by a client has a stream the client can resume: its id, as `joined` reports
/// it, parses back as `room:<id>`. Found by the `frames` target: `join` accepts the room named
/// `""`, whose stream `room:` is not a valid stream id, so a `resume` naming it is refused as
/// `invalid_frame` (`docs/PROTOCOL.md` section 2 requires `room:<id>`).
#[test]
fn a_joined_rooms_stream_can_be_resumed() {
    use switchboard::testing::Harness;
    use switchboard::{Config, StreamId};
    let mut h = Harness::new(Config::development());
    let conn = h.connect("ana");
    h.send(conn, r#"{"type":"join","room":""}"#);
    let joined = h.frames(conn).last().expect("a reply").clone();
    if joined["type"] == "joined" {
        let stream = joined["stream"].as_str().unwrap_or_default();
        assert!(stream.parse::<StreamId>().is_ok(), "{joined}");
    } else {
        assert_eq!(joined["code"], "invalid_frame", "{joined}");
    }
}

/// A frame that is not a JSON object has no `type`: `docs/PROTOCOL.md` section 4 answers it
/// with `malformed_json`. Found by the `frames` target: the hub reads a JSON array as the
/// fields of a frame in declaration order, so `["ping",1]` is a `ping` with `ref` 1 and
/// `["join",null]` joins the room named `join`.
#[test]
fn a_json_array_is_not_a_frame() {
    use switchboard::testing::Harness;
    use switchboard::Config;
    let mut h = Harness::new(Config::development());
    let conn = h.connect("ana");
    h.send(conn, r#"["join",null]"#);
    let reply = h.frames(conn).last().expect("a reply").clone();
    assert_eq!(reply["code"], "malformed_json", "{reply}");
}
