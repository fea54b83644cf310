//! The invariants Switchboard keeps, in plain words, each with the tests that prove it.
//! `docs/VERIFICATION.md` says how many cases and executions stand behind them.
//!
//! 1. **Isolation.** A message reaches only the connections its target names: a user's (or a
//!    user's thread's) messages only that user's connections, a room's only its members. A
//!    `UserScope` can neither see nor address another user's connection; a client cannot resume
//!    another user's stream, join a room its token does not allow, or publish to a room its
//!    token does not allow publishing to.
//! 2. **Per-connection order.** Each connection receives the messages delivered to it live in
//!    the order they were published; what is replayed to it (pending messages, a resume) comes
//!    in stream order, in one piece, right after the frame that asked for it.
//! 3. **Run order.** Every connection sees each agent run in the automaton's order:
//!    `agent_started` first, a tool call completed only after it executed, `agent_completed`
//!    only with no call open, exactly one ending, nothing after it. An event out of order is
//!    refused to the producer and reaches nobody; a lost or silent producer ends the run with
//!    `producer_lost`.
//! 4. **Exactly once within history.** A client that reconnects with its positions receives
//!    every message it missed that history still holds, exactly once, in order, before anything
//!    live.
//! 5. **An explicit gap otherwise.** What history no longer holds is announced by one `gap`
//!    frame whose range is exactly what is lost (reason `history`), or that says the stream was
//!    created anew (reason `epoch`); a client never has to infer loss from a jump in `seq`.
//! 6. **No silent drop.** A reliable message is never dropped for a slow reader: the reader is
//!    closed with 4008 and recovers it by resuming. Only `agent_thinking` and ephemeral
//!    messages may be coalesced or shed, and only for a reader that is behind.
//! 7. **Limits hold.** Connections per user and per hub, rooms per connection, members per room,
//!    frame size, frame rate, strikes, per-connection queues and per-stream history never exceed
//!    their configured bounds; what passes one is refused with its documented code, and the
//!    server's gauges stay bounded under hostile clients.
//! 8. **No state after everyone leaves.** Once every connection closed and history expired,
//!    the hub holds no connection, user, room, stream, run or waiter, and every gauge is zero.
//!
//! The test below checks that every test named here exists, so that the list stays true.

/// Each invariant (by number) and the tests that prove it: file, test function.
const PROOFS: &[(u8, &str, &str)] = &[
    (
        1,
        "check/tests/model.rs",
        "the_hub_routes_every_message_exactly_as_the_reference_model",
    ),
    (
        1,
        "check/tests/fuzz_corpus.rs",
        "the_operations_corpus_passes",
    ),
    (1, "check/tests/fuzz_corpus.rs", "the_frames_corpus_passes"),
    (
        1,
        "tests/addressing.rs",
        "a_user_scopes_publishes_reach_only_its_own_user",
    ),
    (
        1,
        "tests/addressing.rs",
        "a_user_scope_cannot_send_to_another_users_connection",
    ),
    (
        1,
        "tests/resume_frames.rs",
        "resuming_another_users_stream_is_forbidden_and_replays_nothing",
    ),
    (
        1,
        "tests/rooms.rs",
        "a_room_the_token_does_not_allow_is_refused_with_forbidden",
    ),
    (
        1,
        "server/tests/hostile.rs",
        "bad_tokens_get_401_and_forbidden_rooms_an_error",
    ),
    (
        1,
        "tests/rooms.rs",
        "a_publish_outside_the_publish_grant_is_forbidden_and_delivers_nothing",
    ),
    (
        1,
        "server/tests/tokens.rs",
        "a_publish_outside_the_tokens_publish_claim_is_forbidden",
    ),
    (
        2,
        "check/tests/model.rs",
        "the_hub_routes_every_message_exactly_as_the_reference_model",
    ),
    (
        2,
        "check/tests/delivery_model.rs",
        "every_stream_is_delivered_exactly_once_or_with_an_exact_gap",
    ),
    (
        2,
        "server/tests/hostile.rs",
        "malformed_frames_get_their_documented_answers",
    ),
    (3, "check/tests/fuzz_corpus.rs", "the_runs_corpus_passes"),
    (
        3,
        "check/tests/delivery_model.rs",
        "every_device_sees_every_run_in_order_across_reconnects",
    ),
    (3, "tests/runs.rs", "nothing_is_accepted_after_an_ending"),
    (
        3,
        "tests/runs.rs",
        "a_run_silent_for_the_idle_timeout_ends_with_producer_lost",
    ),
    (
        3,
        "tests/resume.rs",
        "a_client_that_drops_mid_run_and_resumes_sees_the_run_in_automaton_order_each_event_once",
    ),
    (4, "check/tests/fuzz_corpus.rs", "the_resume_corpus_passes"),
    (
        4,
        "check/tests/delivery_model.rs",
        "every_stream_is_delivered_exactly_once_or_with_an_exact_gap",
    ),
    (
        4,
        "tests/resume.rs",
        "reconnecting_replays_exactly_the_missed_user_messages_then_the_live_tail",
    ),
    (5, "check/tests/fuzz_corpus.rs", "the_resume_corpus_passes"),
    (
        4,
        "server/tests/node_kill.rs",
        "a_client_resumes_on_another_node_after_its_node_is_killed_outright",
    ),
    (
        5,
        "server/tests/core_paths.rs",
        "a_resume_past_history_opens_with_the_exact_gap_then_the_rest",
    ),
    (
        5,
        "tests/resume.rs",
        "a_user_position_older_than_history_gets_a_history_gap_with_the_exact_range_then_the_rest",
    ),
    (
        5,
        "tests/resume.rs",
        "a_position_from_before_a_restart_gets_an_epoch_gap_then_the_new_history",
    ),
    (
        5,
        "tests/offline.rs",
        "buffered_events_expire_with_history_age_and_the_cut_is_announced_as_a_gap",
    ),
    (
        6,
        "tests/delivery.rs",
        "a_reliable_message_past_the_queue_limit_closes_the_reader_with_4008_never_a_silent_drop",
    ),
    (
        6,
        "tests/resume.rs",
        "a_slow_consumer_closed_with_4008_recovers_every_discarded_message_by_reconnecting",
    ),
    (
        6,
        "check/tests/delivery_model.rs",
        "every_stream_is_delivered_exactly_once_or_with_an_exact_gap",
    ),
    (
        7,
        "check/tests/model.rs",
        "the_hub_routes_every_message_exactly_as_the_reference_model",
    ),
    (
        7,
        "check/tests/delivery_model.rs",
        "every_stream_is_delivered_exactly_once_or_with_an_exact_gap",
    ),
    (
        7,
        "tests/limits.rs",
        "a_flood_past_the_rate_limit_closes_with_4029",
    ),
    (
        7,
        "tests/limits.rs",
        "a_frame_over_max_frame_bytes_closes_with_1009",
    ),
    (
        7,
        "tests/users.rs",
        "a_fourth_connection_of_a_user_is_refused_with_4003_by_default",
    ),
    (
        7,
        "server/tests/hostile.rs",
        "a_flood_past_the_rate_limit_is_closed_with_4029",
    ),
    (
        7,
        "server/tests/hostile.rs",
        "a_client_that_never_reads_is_closed_with_4000_past_the_heartbeat_timeout",
    ),
    (
        7,
        "server/tests/hostile.rs",
        "a_client_that_never_reads_is_closed_with_4008_and_its_queue_stays_bounded",
    ),
    (
        7,
        "server/tests/core_paths.rs",
        "a_node_at_its_connection_limit_refuses_with_4004_before_any_frame",
    ),
    (
        7,
        "server/tests/hostile.rs",
        "half_open_handshakes_and_excess_connections_do_not_disturb_others",
    ),
    (
        7,
        "server/tests/hostile.rs",
        "the_api_refuses_wrong_keys_and_malformed_bodies",
    ),
    (
        8,
        "check/tests/model.rs",
        "the_hub_routes_every_message_exactly_as_the_reference_model",
    ),
    (8, "check/tests/fuzz_corpus.rs", "the_frames_corpus_passes"),
    (
        8,
        "tests/lifecycle.rs",
        "after_everyone_leaves_and_history_expires_the_hub_holds_nothing",
    ),
];

/// Every invariant has a proof, and every test named as a proof exists in its file.
#[test]
fn every_invariant_names_tests_that_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    for n in 1..=8 {
        assert!(
            PROOFS.iter().any(|(i, _, _)| *i == n),
            "invariant {n} has no proof"
        );
    }
    for (n, file, test) in PROOFS {
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("invariant {n}: {file}: {e}"));
        let defined = text.contains(&format!("fn {test}("));
        assert!(defined, "invariant {n}: {file} has no test {test}");
    }
}
