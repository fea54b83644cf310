//! The hub's boundary, typed by destination. Each of the three parties the hub serves has its
//! own way in and its own kind of output:
//!
//! | Party | In | Out |
//! |---|---|---|
//! | the sockets (the transport) | [`SocketInput`] through [`Hub::handle_socket`](crate::Hub::handle_socket), and [`Hub::open`](crate::Hub::open) | [`SocketOutput`]: frames, pings, closes |
//! | the application | requests: [`Hub::publish`](crate::Hub::publish), [`Hub::send_agent_update`](crate::Hub::send_agent_update), [`Hub::producer_lost`](crate::Hub::producer_lost), ... | [`Notice`] |
//! | the cluster (other hubs, the sequencer) | [`ClusterInput`] through [`Hub::handle_cluster`](crate::Hub::handle_cluster) | [`ClusterOutput`] |
//!
//! The outputs of all three leave through one queue, [`Output`], drained with
//! [`Hub::poll_output`](crate::Hub::poll_output): their order across destinations matters (a
//! connection's `Close` after the frames queued before it, an interest before the entries of
//! its stream), and one drain loop cannot get it wrong.

mod answer;
mod app;
mod cluster;
mod socket;

pub use answer::{Answer, AppErrorCode, ClientRef, MAX_APP_CODE_BYTES};
pub use app::{
    AgentUpdate, AppMessage, CancelFrom, CancelRequest, CancelTicket, Delivery, Notice, Open,
    RefreshGrant, RefreshRefusal, RefreshRequest, RoomChange, WaiterId,
};
pub use cluster::{ClusterInput, ClusterOutput, Envelope, RemoteTarget};
pub use socket::{SocketInput, SocketOutput};

/// Something the hub asks its caller to do, drained in order with
/// [`Hub::poll_output`](crate::Hub::poll_output); its variant says for whom.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[must_use = "every output must be performed (the drain invariant)"]
pub enum Output {
    /// For a connection's socket: the transport performs it.
    Socket(SocketOutput),
    /// For the application.
    Notice(Notice),
    /// For the rest of the cluster: the bridge to other hubs carries it out.
    Cluster(ClusterOutput),
}
