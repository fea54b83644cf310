//! The stream's history: catch-up, gaps, bounds, pending entries and runs in progress.

use super::*;

fn limits(max_messages: usize) -> HistoryConfig {
    HistoryConfig {
        max_messages,
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(60),
        ..crate::Config::development().history
    }
}

fn entry(seq: u64, now: Instant, pending: bool) -> Entry {
    Entry {
        seq,
        at: now,
        body: Body::Frame(bytes::Bytes::from(format!("m{seq}"))),
        thread: None,
        run: None,
        coalesce: None,
        pending,
    }
}

fn push(s: &mut Stream, now: Instant, l: &HistoryConfig) -> u64 {
    let seq = s.advance().seq;
    s.append(entry(seq, now, seq % 2 == 0), l);
    seq
}

#[test]
fn a_run_is_in_progress_while_its_kept_entries_include_no_ending() {
    let now = Instant::now();
    let l = limits(10);
    let mut s = Stream::new(7);
    let mut add = |run: &str, ends: bool, thread: Option<&str>| {
        let seq = s.advance().seq;
        let run = Some(RunTag {
            id: run.into(),
            ends,
        });
        let thread = thread.map(ThreadId::from);
        s.append(
            Entry {
                run,
                thread,
                ..entry(seq, now, false)
            },
            &l,
        );
    };
    add("a", false, None);
    add("b", false, Some("t"));
    add("c", false, None);
    add("a", false, None);
    add("c", true, None);
    push(&mut s, now, &l);
    let mut all = s.runs_in_progress(|_| true);
    all.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    assert_eq!(all.as_slice(), [RunId::from("a"), RunId::from("b")]);
    let unthreaded = s.runs_in_progress(|t| t.is_none());
    assert_eq!(unthreaded.as_slice(), [RunId::from("a")]);
    s.check_runs();
    // Trimmed out of history, a run's entries no longer say it is in progress.
    for _ in 0..10 {
        push(&mut s, now, &l);
    }
    assert!(s.runs_in_progress(|_| true).is_empty());
    s.check_runs();
}

#[test]
fn catch_up_within_history_has_no_gap() {
    let now = Instant::now();
    let l = limits(10);
    let mut s = Stream::new(7);
    for _ in 0..5 {
        push(&mut s, now, &l);
    }
    let (gap, from) = s.catch_up_from(Position { epoch: 7, seq: 2 });
    assert_eq!(gap, None);
    let seqs: Vec<u64> = s.entries_from(from).map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
}

#[test]
fn catch_up_past_history_reports_the_exact_gap() {
    let now = Instant::now();
    let l = limits(3);
    let mut s = Stream::new(1);
    for _ in 0..10 {
        push(&mut s, now, &l);
    }
    assert_eq!(s.retained().0, 3);
    let (gap, from) = s.catch_up_from(Position { epoch: 1, seq: 4 });
    assert_eq!(
        gap,
        Some(Gap {
            from: 5,
            to: 7,
            reason: GapReason::History
        })
    );
    assert_eq!(from, 8);
}

#[test]
fn another_epoch_is_a_gap_from_the_start() {
    let now = Instant::now();
    let l = limits(3);
    let mut s = Stream::new(2);
    push(&mut s, now, &l);
    let (gap, from) = s.catch_up_from(Position { epoch: 1, seq: 40 });
    assert_eq!(
        gap,
        Some(Gap {
            from: 1,
            to: 0,
            reason: GapReason::Epoch
        })
    );
    assert_eq!(from, 1);
}

#[test]
fn pending_entries_are_counted_until_claimed_or_trimmed() {
    let now = Instant::now();
    let l = limits(3);
    let mut s = Stream::new(1);
    for _ in 0..4 {
        push(&mut s, now, &l);
    }
    assert!(s.has_pending(), "2 and 4 are pending");
    s.claim(4);
    s.claim(4);
    assert!(s.has_pending(), "2 still is");
    push(&mut s, now, &l);
    push(&mut s, now, &l);
    assert!(s.has_pending(), "6 is");
    s.claim(6);
    assert!(!s.has_pending(), "2 was trimmed, 4 and 6 claimed");
}

#[test]
fn a_stream_without_entries_announces_what_precedes_its_first_only_if_something_does() {
    let at = |epoch, seq| Position { epoch, seq };
    let mut s = Stream::new(1);
    assert_eq!(
        s.adopt(at(9, 1)),
        Ok(None),
        "its first entry is the stream's first"
    );
    let mut s = Stream::new(1);
    let gap = Gap {
        from: 1,
        to: 4,
        reason: GapReason::Epoch,
    };
    assert_eq!(
        s.adopt(at(9, 5)),
        Ok(Some(gap)),
        "1..4 were sealed before it"
    );
    assert_eq!(s.adopt(at(9, 5)), Err(AlreadyTaken));
    let hole = Gap {
        from: 6,
        to: 6,
        reason: GapReason::History,
    };
    assert_eq!(s.adopt(at(9, 7)), Ok(Some(hole)));
}

#[test]
fn older_entries_are_restored_newest_first_in_front_only_when_contiguous() {
    let now = Instant::now();
    let l = limits(4);
    let entry = |seq: u64| entry(seq, now, false);
    let at = |seq| Position { epoch: 9, seq };
    let mut s = Stream::new(1);
    assert!(
        s.restore(at(7), entry(7), &l),
        "a fresh stream starts with it"
    );
    assert_eq!(s.position(), at(7));
    assert!(!s.restore(at(5), entry(5), &l), "not contiguous");
    assert!(s.restore(at(6), entry(6), &l));
    assert!(
        !s.restore(Position { epoch: 8, seq: 5 }, entry(5), &l),
        "another epoch"
    );
    assert!(s.restore(at(5), entry(5), &l));
    assert!(s.restore(at(4), entry(4), &l));
    assert!(!s.restore(at(3), entry(3), &l), "the bounds are full");
    let seqs: Vec<u64> = s.entries_from(0).map(|e| e.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    assert_eq!(s.position(), at(7));
}

#[test]
fn history_expires_by_age() {
    let now = Instant::now();
    let l = limits(10);
    let mut s = Stream::new(1);
    push(&mut s, now, &l);
    push(&mut s, now + Duration::from_secs(30), &l);
    s.expire(now + Duration::from_secs(61), l.max_age);
    assert_eq!(s.retained().0, 1);
    s.expire(now + Duration::from_secs(91), l.max_age);
    assert!(s.is_empty());
    assert_eq!(s.position().seq, 2, "the counter survives an empty history");
}
