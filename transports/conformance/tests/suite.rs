//! The conformance suite over every transport: one `#[test]` per case and transport, named
//! `on_<transport>::<case>`.

use switchboard_conformance::{suite, InMemory, Network, OnAsyncStd, OnAxum, OnSmol, OnTokio, Sse};

suite!(on_harness, InMemory);
suite!(on_tokio, Network<OnTokio>);
suite!(on_axum, Network<OnAxum>);
suite!(on_async_std, Network<OnAsyncStd>);
suite!(on_smol, Network<OnSmol>);

// Server-Sent Events: every case but those an HTTP client cannot play:
// - a_binary_frame_closes_with_1003: a posted body has no binary/text distinction (it is read
//   as a text frame, and refused with 1007 if it is not UTF-8);
// - a_ping_flood_closes_with_4029, an_unsolicited_pong_flood_closes_with_4029: HTTP has no
//   control frames (a flood of posted frames closes with 4029, server/tests/sse.rs);
// - a_silent_client_is_closed_with_4000: an event stream's client never answers pings, the
//   server's HTTP layer answers for it as it takes each keep-alive; a client that stops reading
//   stops those answers only once the socket buffers fill, which the slow-reader cases cover.
suite!(on_sse, Sse; except
    a_binary_frame_closes_with_1003,
    a_ping_flood_closes_with_4029,
    an_unsolicited_pong_flood_closes_with_4029,
    a_silent_client_is_closed_with_4000,
);
