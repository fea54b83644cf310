//! Who a test client is: the tests' authenticator, from the handshake's query string.

use crate::query_param;
use switchboard::Open;
use switchboard_transport::{Refusal, Request};

/// The tests' authenticator: `?user=<id>` opens a connection of that user (allowed any room,
/// as [`Open::new`] is), `&thread=<id>` puts it in that thread; without `user` the handshake
/// is refused with 401. A `resume=<epoch>:<seq>` parameter is applied by the transport itself.
pub fn authenticate(request: &Request) -> Result<Open, Refusal> {
    let query = request.uri().query().unwrap_or_default();
    let user = query_param(query, "user").ok_or_else(Refusal::unauthorized)?;
    let open = Open::new(user);
    Ok(match query_param(query, "thread") {
        Some(thread) => open.thread(thread),
        None => open,
    })
}
