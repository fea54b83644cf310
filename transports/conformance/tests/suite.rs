//! The conformance suite over every transport: one `#[test]` per case and transport, named
//! `on_<transport>::<case>`.

use switchboard_conformance::{suite, InMemory, Network, OnAsyncStd, OnAxum, OnSmol, OnTokio, Sse};

suite!(on_harness, InMemory);
suite!(on_tokio, Network<OnTokio>);
suite!(on_axum, Network<OnAxum>);
suite!(on_async_std, Network<OnAsyncStd>);
suite!(on_smol, Network<OnSmol>);

// Server-Sent Events: every case but those an HTTP client cannot play. Not listed:
// - a_binary_frame_closes_with_1003: a posted body has no binary/text distinction (it is read
//   as a text frame, and refused with 1007 if it is not UTF-8);
// - a_ping_flood_closes_with_4029, an_unsolicited_pong_flood_closes_with_4029: HTTP has no
//   control frames (a flood of posted frames closes with 4029, server/tests/sse.rs);
// - a_silent_client_is_closed_with_4000: an event stream's client never answers pings, the
//   server's HTTP layer answers for it as it takes each keep-alive; a client that stops reading
//   stops those answers only once the socket buffers fill, which the slow-reader cases cover.
suite!(@cases on_sse, Sse;
    welcome_is_the_first_frame,
    join_then_leave,
    leaving_a_room_not_joined_is_an_error,
    publish_to_one_connection,
    publish_to_a_user_reaches_all_their_connections,
    publish_to_a_user_except_one_connection,
    publish_to_a_room_except_one_member,
    publish_to_a_thread,
    publish_to_everyone_except_one_connection,
    a_clients_room_publish_reaches_the_other_members,
    bind_and_unbind_a_thread,
    users_are_isolated,
    an_application_ping_is_answered_with_its_ref,
    malformed_json_gets_an_error_frame,
    an_unknown_type_gets_an_error_frame,
    an_invalid_frame_gets_an_error_frame,
    garbage_exhausts_the_strikes_and_closes_with_1008,
    invalid_utf8_closes_with_1007,
    an_oversized_frame_closes_with_1009,
    the_per_user_limit_refuses_with_4003,
    agent_events_arrive_in_order_on_the_run_thread,
    agent_events_out_of_order_are_refused,
    a_slow_reader_is_closed_with_4008_and_a_fast_reader_gets_everything,
    a_slow_reader_closed_with_4008_resumes_what_it_missed,
    resume_after_reconnect_without_gap,
    resume_after_reconnect_with_gap,
    offline_messages_wait_for_the_next_connection,
    shutdown_closes_with_1001_after_what_was_sent,
);
