//! # switchboard-conformance
//!
//! One set of test bodies ([`cases`]) that every way of running a switchboard must pass,
//! unchanged: the in-memory harness ([`InMemory`]), the tokio transport (on its own and
//! embedded in an axum router, [`OnAxum`], as the server runs it), and the async-std
//! transport under async-std and under smol ([`Network`]), and the Server-Sent Events
//! transport ([`Sse`]). The network transports are driven by real WebSocket clients (real HTTP
//! clients for Server-Sent Events) over real sockets on 127.0.0.1. The server crate runs the
//! same cases over its production gateway, with real token authentication, from its own tests
//! (`server/tests/conformance.rs`), through the hooks for a transport defined elsewhere
//! ([`Connect::query`], [`publish_through`], [`agent_update_through`], [`SseConnection::open`]).
//!
//! A transport joins by implementing [`Transport`] (start, connect, publish, agent update,
//! advance the clock, shut down) with a [`Client`] (send, receive, pause, fall silent,
//! close), then naming itself in one [`suite!`] line, which generates one `#[test]` per case:
//!
//! ```ignore
//! switchboard_conformance::suite!(on_my_transport, MyTransport);
//! // cargo test: on_my_transport::welcome_is_the_first_frame, on_my_transport::...
//! ```
//!
//! A failing case names its transport twice: in the test's path (`on_tokio::...`) and in the
//! line printed when it fails (`case ... failed on transport tokio`).
//!
//! Time: a case that needs time to pass calls [`Transport::advance`], which moves the
//! harness's manual clock and sleeps for real on a network transport; a client meant to stay
//! healthy meanwhile calls [`Client::idle`] alongside (on a network transport it keeps reading,
//! which answers the pings). Nothing asserts how long anything took.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod axum;
pub mod cases;
mod in_memory;
mod network;
mod sse;

pub use axum::OnAxum;
pub use in_memory::{InMemory, InMemoryClient};
pub use network::{
    agent_update_through, publish_through, Network, OnAsyncStd, OnSmol, OnTokio, OnTokioRouter,
    Setup,
};
pub use sse::{OnSseRoutes, Sse, SseConnection};
/// The network transports' client, what it reads, and the guard bounding every wait.
pub use switchboard_testing::{authenticate, guard, Received, WsClient};

use std::future::Future;
use std::time::Duration;
use switchboard::{AgentUpdate, Audience, Config, Delivery, Message, Position, PublishError};

/// A way of running a switchboard, as the suite drives it.
pub trait Transport: Sized {
    /// The transport's name, printed with a failing case.
    const NAME: &'static str;
    /// A client connected to it.
    type Client: Client;

    /// Run a case to completion on this transport's runtime.
    fn block_on<F: Future>(case: F) -> F::Output;

    /// Start a switchboard with `config`, ready for clients.
    fn start(config: Config) -> impl Future<Output = Self>;

    /// Connect a client as `connect` says. A refused connection is still returned: it
    /// receives the refusal's close code.
    fn connect(&self, connect: Connect) -> impl Future<Output = Self::Client>;

    /// Publish as the application does ([`switchboard::Hub::publish`]).
    fn publish(
        &self,
        to: Audience,
        message: Message,
    ) -> impl Future<Output = Result<Delivery, PublishError>>;

    /// Publish one event of `user`'s agent run ([`switchboard::Hub::send_agent_update`]).
    fn agent_update(
        &self,
        user: &str,
        update: AgentUpdate,
    ) -> impl Future<Output = Result<Delivery, PublishError>>;

    /// Let `by` pass: the harness's clock moves (firing every timer on the way), a network
    /// transport sleeps.
    fn advance(&self, by: Duration) -> impl Future<Output = ()>;

    /// Shut down gracefully (every client is closed with 1001 after what was sent to it).
    fn shutdown(&self) -> impl Future<Output = ()>;
}

/// A client connected to a [`Transport`].
pub trait Client {
    /// Send a text frame.
    fn send(&mut self, text: &str) -> impl Future<Output = ()>;

    /// Send a text frame whose payload is `bytes`, UTF-8 or not.
    fn send_raw_text(&mut self, bytes: &[u8]) -> impl Future<Output = ()>;

    /// Send a binary frame.
    fn send_binary(&mut self, bytes: &[u8]) -> impl Future<Output = ()>;

    /// Send a WebSocket ping control frame (answered by the WebSocket layer, counted by the
    /// hub).
    fn send_ping(&mut self, payload: &[u8]) -> impl Future<Output = ()>;

    /// Send a WebSocket pong control frame that answers none of the server's pings.
    fn send_unsolicited_pong(&mut self, payload: &[u8]) -> impl Future<Output = ()>;

    /// The next frame, or the close. Waiting for a frame that never comes fails the case.
    /// Resumes reading after [`Client::pause`].
    fn recv(&mut self) -> impl Future<Output = Received>;

    /// Stop reading (a slow consumer): what the server writes piles up unread and no flush is
    /// reported. The next [`Client::recv`] resumes.
    fn pause(&mut self);

    /// Stop answering pings and stay silent (a dead client).
    fn silence(&mut self);

    /// Stay connected and healthy for `duration` (answering pings), keeping what arrives for
    /// [`Client::recv`]. Call it alongside [`Transport::advance`].
    fn idle(&mut self, duration: Duration) -> impl Future<Output = ()>;

    /// Close the connection from the client's side, returning once the server has taken note:
    /// anything the application does afterwards sees it closed.
    fn close(self) -> impl Future<Output = ()>;
}

/// How a client connects: the user it authenticates as, and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// The user.
    pub user: String,
    /// A thread to bind to at once.
    pub thread: Option<String>,
    /// Its position on its user stream, to resume after.
    pub resume: Option<Position>,
    /// Connect with small socket buffers, so that a client that stops reading soon stops the
    /// server's writes (network transports; the harness needs nothing).
    pub small_buffers: bool,
}

impl Connect {
    /// Connect as `user`, no thread, no resume.
    pub fn user(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            thread: None,
            resume: None,
            small_buffers: false,
        }
    }

    /// Bind to `thread` at once.
    pub fn thread(mut self, thread: &str) -> Self {
        self.thread = Some(thread.to_owned());
        self
    }

    /// Resume the user stream after `position`.
    pub fn resume(mut self, position: Position) -> Self {
        self.resume = Some(position);
        self
    }

    /// Use small socket buffers (for a client that will stop reading).
    pub fn small_buffers(mut self) -> Self {
        self.small_buffers = true;
        self
    }

    /// The WebSocket handshake's query: `credential`, the parameters by which the transport
    /// identifies the user (`user=alice` for the suite's own authenticator, `token=<jwt>` for
    /// a server that verifies tokens), then `thread=` and `resume=` when asked for.
    pub fn query(&self, credential: &str) -> String {
        let mut query = credential.to_owned();
        if let Some(thread) = &self.thread {
            query += &format!("&thread={thread}");
        }
        if let Some(position) = self.resume {
            query += &format!("&resume={position}");
        }
        query
    }
}

/// Run one case over `T`; if it fails, say which case on which transport.
pub fn run<T: Transport>(case: &str, body: impl Future<Output = ()>) {
    struct Failing<'a>(&'a str, &'static str);
    impl Drop for Failing<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!(
                    "conformance case `{}` failed on transport {}",
                    self.0, self.1
                );
            }
        }
    }
    let _failing = Failing(case, T::NAME);
    T::block_on(body);
}

/// Generate the suite over one transport: a module `$module` with one `#[test]` per case,
/// each running [`cases`]`::<case>::<$transport>` through [`run`]. A transport for which some
/// cases do not apply names those after `except` (a name that is not a case does not compile):
///
/// ```ignore
/// switchboard_conformance::suite!(on_tokio, switchboard_conformance::Network<OnTokio>);
/// switchboard_conformance::suite!(on_http, HttpOnly; except a_binary_frame_closes_with_1003);
/// ```
#[macro_export]
macro_rules! suite {
    ($module:ident, $transport:ty) => {
        $crate::suite!($module, $transport; except);
    };
    ($module:ident, $transport:ty; except $($skip:ident),* $(,)?) => {
        // `$` handed down, for the case macro defined in the module.
        $crate::suite!(@module ($) $module, $transport; $($skip),*);
    };
    (@module ($d:tt) $module:ident, $transport:ty; $($skip:ident),*) => {
        mod $module {
            // The transport's type is named where the macro is called.
            #[allow(unused_imports)]
            use super::*;

            // A skipped case expands to nothing, any other to its test.
            macro_rules! case {
                $( ($skip) => {}; )*
                ($d case:ident) => {
                    #[test]
                    fn $d case() {
                        $crate::run::<$transport>(
                            stringify!($d case),
                            $crate::cases::$d case::<$transport>(),
                        );
                    }
                };
            }

            case!(welcome_is_the_first_frame);
            case!(join_then_leave);
            case!(leaving_a_room_not_joined_is_an_error);
            case!(publish_to_one_connection);
            case!(publish_to_a_user_reaches_all_their_connections);
            case!(publish_to_a_user_except_one_connection);
            case!(publish_to_a_room_except_one_member);
            case!(publish_to_a_thread);
            case!(publish_to_everyone_except_one_connection);
            case!(a_clients_room_publish_reaches_the_other_members);
            case!(bind_and_unbind_a_thread);
            case!(users_are_isolated);
            case!(an_application_ping_is_answered_with_its_ref);
            case!(malformed_json_gets_an_error_frame);
            case!(an_unknown_type_gets_an_error_frame);
            case!(an_invalid_frame_gets_an_error_frame);
            case!(garbage_exhausts_the_strikes_and_closes_with_1008);
            case!(a_binary_frame_closes_with_1003);
            case!(a_ping_flood_closes_with_4029);
            case!(an_unsolicited_pong_flood_closes_with_4029);
            case!(invalid_utf8_closes_with_1007);
            case!(an_oversized_frame_closes_with_1009);
            case!(the_per_user_limit_refuses_with_4003);
            case!(a_silent_client_is_closed_with_4000);
            case!(agent_events_arrive_in_order_on_the_run_thread);
            case!(agent_events_out_of_order_are_refused);
            case!(a_slow_reader_is_closed_with_4008_and_a_fast_reader_gets_everything);
            case!(a_slow_reader_closed_with_4008_resumes_what_it_missed);
            case!(a_reader_behind_a_budget_smaller_than_a_report_gets_everything);
            case!(resume_after_reconnect_without_gap);
            case!(resume_after_reconnect_with_gap);
            case!(offline_messages_wait_for_the_next_connection);
            case!(shutdown_closes_with_1001_after_what_was_sent);

            /// Every skipped name is a case: a misspelt one fails to compile.
            #[allow(dead_code)]
            fn skipped() {
                $( let _ = $crate::cases::$skip::<$transport>; )*
            }
        }
    };
}
