//! The fuzz target bodies (`switchboard_check`) run as ordinary tests over the corpus checked
//! in under the repository's `fuzz/corpus/<target>/`: seeds written by hand and inputs the
//! fuzzer found interesting, including any that once crashed. The fuzzer itself runs in CI
//! (`.ci/run`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Run `body` on every file of the target's corpus; fail naming each file that panics, and
/// each file that decodes to nothing (`body` returns `false`: a structured input too short for
/// its case, or with no device or no operation), which checks nothing and only slows every
/// replay. Such seeds appear when a case's types change (libFuzzer never keeps one, since the
/// fuzz targets reject them): delete the files named, then run `fuzz/campaign.sh` to grow the
/// corpus again.
fn replay(target: &str, body: fn(&[u8]) -> bool) {
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
    let mut failed = Vec::new();
    let mut nothing = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("a readable seed");
        match catch_unwind(AssertUnwindSafe(|| body(&data))) {
            Err(_) => failed.push(path.display().to_string()),
            Ok(false) => nothing.push(path.display().to_string()),
            Ok(true) => {}
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    assert!(
        nothing.is_empty(),
        "inputs that decode to nothing (delete them): {nothing:#?}"
    );
}

/// Client frames of every kind, valid and not, get documented replies and close codes.
#[test]
fn the_frames_corpus_passes() {
    replay("frames", |data| {
        switchboard_check::frames(data);
        true
    });
}

/// Operation sequences route exactly as the reference model says, and every seed decodes to at
/// least one operation.
#[test]
fn the_operations_corpus_passes() {
    replay("operations", switchboard_check::operations);
}

/// Agent-run sequences with reconnects and lost producers follow the run automaton everywhere,
/// and every seed decodes to at least one device and one operation.
#[test]
fn the_runs_corpus_passes() {
    replay("runs", switchboard_check::runs);
}

/// Publish / drop / resume interleavings deliver exactly once in order, or an exact gap, and
/// every seed decodes to at least one device and one operation.
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

/// What a seed named after a behaviour must show.
#[derive(Debug)]
enum Shows {
    /// A connection closed (or an open refused) with this code.
    Close(u16),
    /// No connection closed with this code.
    NoClose(u16),
    /// An `error` frame with this code, at least this many times.
    Error(&'static str, usize),
    /// A frame of this `type`, at least this many times.
    Frame(&'static str, usize),
    /// The hub refused at least this many agent run events.
    Refused(usize),
}

/// What each `frames` seed named after a behaviour must show; the seeds with a hash for a name
/// are the fuzzer's and show whatever they show.
const NAMED: &[(&str, &[Shows])] = {
    use Shows::*;
    &[
        ("agent-run", &[Frame("agent_completed", 1), Refused(2)]),
        ("agent-run-offline", &[Frame("tool_executing", 1)]),
        ("agent-run-thread-catch-up", &[Frame("producer_lost", 1)]),
        ("app-type", &[NoClose(1008)]),
        ("binary-frame", &[Close(1003)]),
        (
            "bind-unbind",
            &[Frame("bound", 2), Error("invalid_frame", 1)],
        ),
        ("control-frame-flood", &[Close(4029)]),
        // Nesting past the 512-byte frame limit: closed before anything parses it.
        ("deeply-nested-data", &[Close(1009)]),
        ("deeply-nested-ref", &[Error("invalid_frame", 1)]),
        (
            "default-line-is-text",
            &[Frame("pong", 1), Error("malformed_json", 1)],
        ),
        ("duplicate-keys", &[Error("malformed_json", 1)]),
        ("ephemeral-to-slow-reader", &[NoClose(4008)]),
        ("everyone-leaves", &[Frame("message", 1)]),
        ("forbidden-publish", &[Error("forbidden", 1)]),
        ("forbidden-room", &[Error("forbidden", 1)]),
        ("frame-at-the-limit", &[Frame("pong", 1), Close(1009)]),
        ("heartbeat-silence", &[Close(4000)]),
        (
            "idle-run-times-out",
            &[Frame("producer_lost", 1), Refused(1)],
        ),
        ("invalid-utf8", &[Close(1007)]),
        (
            "join-leave",
            &[Frame("joined", 1), Frame("left", 1), Error("not_member", 1)],
        ),
        ("join-since", &[Frame("joined", 2)]),
        ("join-since-stale-epoch", &[Frame("gap", 1)]),
        ("json-array-frame", &[Error("malformed_json", 1)]),
        ("malformed-flood", &[Close(1008)]),
        ("malformed-json", &[Error("malformed_json", 1)]),
        ("missing-or-bad-type", &[Error("malformed_json", 3)]),
        ("offline-buffering", &[Frame("message", 2)]),
        ("oversized-frame", &[Close(1009)]),
        ("ping-huge-number-ref", &[Frame("pong", 1)]),
        ("ping-ref-kinds", &[Frame("pong", 4)]),
        ("ping-with-ref", &[Frame("pong", 1)]),
        // Ten unsolicited pongs take the burst; the pong that answers the hub's ping is not
        // limited, so the fifth unsolicited one after it (past four strikes) closes.
        ("pong-answering-the-hubs-ping", &[Close(4029)]),
        ("pongs", &[NoClose(4029)]),
        ("publish-kinds", &[Frame("message", 6)]),
        ("rate-flood", &[Error("rate_limited", 1), Close(4029)]),
        // The burst, 200 ms (one frame's worth at 5/s), one frame within the rate, one past it.
        (
            "rate-refill",
            &[Frame("pong", 11), Error("rate_limited", 1)],
        ),
        ("ref-at-the-bound", &[Frame("pong", 1), Frame("joined", 1)]),
        ("ref-over-the-bound", &[Error("invalid_frame", 1)]),
        // A `resume` of several rooms, answered in part (`too_many_rooms` for one) before
        // another of its streams takes the last strike: the hub closes with 1008 after replies
        // whose flushes its transport reports only once the connection is closed.
        (
            "regression-a-resume-answered-in-part-runs-out-of-strikes",
            &[Close(1008), Error("too_many_rooms", 1), Frame("joined", 3)],
        ),
        ("regression-empty-room-name", &[Error("malformed_json", 1)]),
        // When everyone leaves at the end, another member's `left` overflows the queue of
        // `ana`, who stopped reading in `lobby`: closed with 4008 before its turn to leave.
        (
            "regression-leaving-overflows-a-stalled-reader",
            &[Close(4008)],
        ),
        (
            "regression-reply-overflows-a-stalled-reader",
            &[Close(4008)],
        ),
        (
            "regression-reply-queued-for-a-stalled-reader",
            &[NoClose(4008)],
        ),
        (
            "resume-and-join-since-outside-the-grant",
            &[Error("forbidden", 2)],
        ),
        ("resume-fresh-connection", &[Frame("resumed", 1)]),
        ("resume-invalid-stream", &[Error("invalid_frame", 1)]),
        ("resume-other-user", &[Error("forbidden", 1)]),
        ("resume-streams", &[Frame("resumed", 1)]),
        ("resume-too-many-streams", &[Error("invalid_frame", 1)]),
        ("room-full", &[Error("room_full", 1)]),
        ("room-publish", &[Frame("message", 1)]),
        ("server-full", &[Close(4004)]),
        ("slow-reader", &[Close(4008)]),
        ("slow-reader-resumes", &[NoClose(4008)]),
        // Forty messages to everyone for a reader that never reads: more than fit.
        ("stalled-reader-owed-everything", &[Close(4008)]),
        // Four strikes: more errors than that without a close means the strikes refilled.
        ("strikes-exhausted", &[Close(1008)]),
        (
            "strikes-refill",
            &[Error("malformed_json", 5), NoClose(1008)],
        ),
        // A strike comes back after 2 s also when the time comes in steps of 3 ms and 1 997 ms.
        (
            "strikes-refill-in-odd-steps",
            &[Error("malformed_json", 5), NoClose(1008)],
        ),
        ("too-many-rooms", &[Error("too_many_rooms", 1)]),
        ("unbalanced-nesting", &[Error("malformed_json", 1)]),
        ("unicode-escapes", &[Frame("joined", 1)]),
        ("unknown-type", &[Error("unknown_type", 1)]),
        ("user-limit", &[Close(4003)]),
        ("whitespace", &[Frame("pong", 2)]),
    ]
};

/// Each `frames` seed named after a behaviour shows that behaviour, and every seed with a
/// name is in [`NAMED`]: a seed that stopped reaching what its name says (after a change of
/// limits, say), or that was renamed, would still pass the oracles while checking nothing of
/// it.
#[test]
fn frames_seeds_named_after_a_behaviour_show_it() {
    use Shows::*;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/frames");
    let hash = |name: &str| name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let mut named: Vec<String> = std::fs::read_dir(&dir)
        .expect("the frames corpus")
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !hash(name))
        .collect();
    named.sort();
    let listed: Vec<&str> = NAMED.iter().map(|(seed, _)| *seed).collect();
    assert_eq!(named, listed, "the named seeds of {}", dir.display());
    let mut missed = Vec::new();
    for (seed, shows) in NAMED {
        let data = std::fs::read(dir.join(seed)).unwrap_or_else(|e| panic!("{seed}: {e}"));
        let outcomes = switchboard_check::frames::run(&data);
        let count = |map: &std::collections::BTreeMap<String, usize>, key: &str| {
            map.get(key).copied().unwrap_or(0)
        };
        for show in *shows {
            let shown = match show {
                Close(code) => outcomes.closes.contains_key(code),
                NoClose(code) => !outcomes.closes.contains_key(code),
                Error(code, at_least) => count(&outcomes.errors, code) >= *at_least,
                Frame(kind, at_least) => count(&outcomes.frames, kind) >= *at_least,
                Refused(at_least) => outcomes.updates.1 >= *at_least,
            };
            if !shown {
                missed.push(format!("{seed} does not show {show:?}: {outcomes:?}"));
            }
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}
