//! The conformance suite over every transport: one `#[test]` per case and transport, named
//! `on_<transport>::<case>`.

use switchboard_conformance::{suite, InMemory, Network, OnAsyncStd, OnAxum, OnSmol, OnTokio};

suite!(on_harness, InMemory);
suite!(on_tokio, Network<OnTokio>);
suite!(on_axum, Network<OnAxum>);
suite!(on_async_std, Network<OnAsyncStd>);
suite!(on_smol, Network<OnSmol>);
