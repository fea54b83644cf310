//! The JSON bodies of the backend API, as requests are read and answers written: each derives
//! its OpenAPI schema ([`utoipa::ToSchema`]) from the type the handler uses, so the document
//! (`/api/openapi.json`, [`crate::openapi`]) describes what the code does.
//!
//! Two core types cannot derive an OpenAPI schema here ([`AgentEvent`] and [`Position`] live in
//! the core crate, which knows nothing of OpenAPI): the document takes theirs from the core's
//! own JSON Schema derive ([`core_schemas`]), so the two cannot drift, and the views refer to
//! them by name ([`AgentEventSchema`], [`PositionSchema`]).

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use switchboard::{AgentEvent, ConnectionInfo, Delivery, Position, Stats};
use utoipa::openapi::{schema::Schema, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Where a published message goes, as written in a request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
    /// Every connection of a user.
    User(String),
    /// Every member of a room.
    Room(String),
    /// The user's connections bound to a thread.
    Thread {
        /// The user.
        user: String,
        /// The thread.
        thread: String,
    },
    /// One connection, by the id its `welcome` frame gave.
    Connection(String),
    /// Every open connection.
    All,
}

/// One target or several.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Targets {
    /// One target.
    One(TargetSpec),
    /// Several: the message is published to each.
    Many(Vec<TargetSpec>),
}

/// `POST /api/publish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Where to: `{"user": "alice"}`, `{"room": "lobby"}`, `{"thread": {"user", "thread"}}`,
    /// `{"connection": "3.0"}`, `"all"`, or an array of those.
    pub to: Targets,
    /// Connection ids to leave out.
    #[serde(default)]
    pub except: Vec<String>,
    /// The event name clients see.
    pub event: String,
    /// Any JSON.
    #[serde(default)]
    pub data: Value,
    /// Publish in the lossy lane under this coalescing key (not sequenced, not kept).
    #[serde(default)]
    pub ephemeral: Option<String>,
}

/// What one publish did, as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Connections reached.
    pub reached: usize,
    /// Kept for a connection of the user that is not open yet.
    pub buffered: bool,
    /// The stream position given to the message, if sequenced.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline, value_type = Option<PositionSchema>)]
    pub position: Option<Position>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            reached: d.reached,
            buffered: d.buffered,
            position: d.position,
        }
    }
}

/// The answer to `POST /api/publish`: one delivery per target.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResponse {
    /// Connections reached, over every target.
    pub reached: usize,
    /// What each target's publish did, in the order of `to`.
    pub deliveries: Vec<DeliveryView>,
}

/// `POST /api/runs/{user}/{run}/events`: one agent-run event. A message delta is refused (409
/// `run_order`) unless its `offset` is the message's length so far, or after its `final` delta.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentEventRequest {
    /// The agent (taken from `agent_started`).
    #[serde(default)]
    pub agent: Option<String>,
    /// The run's thread (taken from `agent_started`).
    #[serde(default)]
    pub thread: Option<String>,
    /// The event, tagged by `event`.
    #[serde(flatten)]
    #[schema(inline, value_type = AgentEventSchema)]
    pub event: AgentEvent,
}

/// The core's [`Position`] in the document: a reference to its component, which
/// [`core_schemas`] describes. Used `inline` (the reference itself): utoipa would otherwise
/// register the reference as a component of its own, under the core's name.
pub struct PositionSchema;

/// The core's [`AgentEvent`] in the document: a reference to its component, which
/// [`core_schemas`] describes. Used `inline`, as [`PositionSchema`].
pub struct AgentEventSchema;

/// Makes `$marker` a reference to the component of the core type `$core`, named as the core's
/// schema names it.
macro_rules! core_schema_ref {
    ($marker:ty, $core:ty) => {
        impl PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                Ref::from_schema_name(<$core as JsonSchema>::schema_name()).into()
            }
        }

        impl ToSchema for $marker {
            fn name() -> std::borrow::Cow<'static, str> {
                <$core as JsonSchema>::schema_name()
            }
        }
    };
}

core_schema_ref!(PositionSchema, Position);
core_schema_ref!(AgentEventSchema, AgentEvent);

/// The components that describe the core's types the API reads and answers ([`AgentEvent`],
/// [`Position`]) and those they use, by name: the core's own JSON Schema (draft 2020-12, the
/// dialect of OpenAPI 3.1), as requests are parsed (a field with a default is optional), its
/// references pointing into the document's components.
pub fn core_schemas() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12().for_deserialize();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    generator.subschema_for::<AgentEvent>();
    generator.subschema_for::<Position>();
    generator.take_definitions(true)
}

/// One open connection, as the presence and room routes show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// The connection id (as in its `welcome`).
    pub id: String,
    /// Its user.
    pub user: String,
    /// The thread it is bound to.
    pub thread: Option<String>,
    /// The rooms it is in.
    pub rooms: Vec<String>,
    /// Health score, 0–100.
    pub health: u8,
    /// The last ping round trip, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Frames received from it.
    pub messages_in: u64,
    /// Frames handed to it.
    pub messages_out: u64,
    /// Frames waiting in its queue.
    pub queued_messages: usize,
    /// The node that holds it (in a cluster: the node that answered; the connections of
    /// other nodes are counted in `nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl From<&ConnectionInfo> for ConnectionView {
    fn from(info: &ConnectionInfo) -> Self {
        ConnectionView {
            id: info.id.to_string(),
            user: info.user.as_str().to_owned(),
            thread: info.thread.as_ref().map(|t| t.as_str().to_owned()),
            rooms: info.rooms.iter().map(|r| r.as_str().to_owned()).collect(),
            health: info.health,
            rtt_ms: info.rtt.last.map(|d| d.as_secs_f64() * 1000.0),
            messages_in: info.traffic.messages_in,
            messages_out: info.traffic.messages_out,
            queued_messages: info.queued_messages,
            node: None,
        }
    }
}

/// `GET /api/users/{user}`: a user's presence, on every node of a cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceView {
    /// The user.
    pub user: String,
    /// Whether the user has an open connection (on any node of a cluster).
    pub connected: bool,
    /// The user's open connections on the node that answered, oldest first.
    pub connections: Vec<ConnectionView>,
    /// The user's open connections on every node.
    pub total: u64,
    /// In a cluster: the user's open connections per node that has some (the answering
    /// node's counted exactly, the others' as they open and close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, u64>>,
}

/// `GET /api/rooms/{room}`: a room's members, on every node of a cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    /// The room.
    pub room: String,
    /// Its members on every shard of the node that answered.
    pub members: Vec<ConnectionView>,
    /// Its members on every node.
    pub total: u64,
    /// In a cluster: its members per node that has some (the answering node's counted
    /// exactly, the others' as of their last heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, u64>>,
}

impl PresenceView {
    /// The answer of a node of a cluster: `nodes` as Redis counts them, but this `node`'s
    /// own connections as it holds them.
    pub fn in_cluster(self, node: &str, nodes: BTreeMap<String, u64>) -> Self {
        let (connections, total, nodes) = on_every_node(self.connections, node, nodes);
        PresenceView {
            connected: total > 0,
            connections,
            total,
            nodes: Some(nodes),
            ..self
        }
    }
}

impl RoomView {
    /// The answer of a node of a cluster: `nodes` as Redis counts them, but this `node`'s
    /// own members as it holds them.
    pub fn in_cluster(self, node: &str, nodes: BTreeMap<String, u64>) -> Self {
        let (members, total, nodes) = on_every_node(self.members, node, nodes);
        RoomView {
            members,
            total,
            nodes: Some(nodes),
            ..self
        }
    }
}

/// `local` (the connections of `node`) tagged with their node, and the counts per node with
/// `node`'s own replaced by `local`'s: the connections, their total, the counts.
fn on_every_node(
    local: Vec<ConnectionView>,
    node: &str,
    mut nodes: BTreeMap<String, u64>,
) -> (Vec<ConnectionView>, u64, BTreeMap<String, u64>) {
    nodes.remove(node);
    if !local.is_empty() {
        nodes.insert(node.to_owned(), local.len() as u64);
    }
    let local = local
        .into_iter()
        .map(|c| ConnectionView {
            node: Some(node.to_owned()),
            ..c
        })
        .collect();
    (local, nodes.values().sum(), nodes)
}

/// `POST` and `DELETE /api/users/{user}/rooms/{room}`: what joining (or leaving) the room did
/// to the user's connections on the node that answered; in a cluster, every other node was
/// told to do the same to its own.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    /// The user.
    pub user: String,
    /// The room.
    pub room: String,
    /// Connections on this node that joined (or left) the room now; each was told with
    /// `joined` (or `left`) without a `ref`.
    pub changed: usize,
    /// Connections on this node already in the room (or, for a leave, not in it).
    pub unchanged: usize,
    /// Connections on this node a room limit kept out (`max_rooms_per_connection`,
    /// `max_members_per_room`); always 0 for a leave.
    pub refused: usize,
    /// In a cluster: the command went to every other node (which act on their own
    /// connections the same way); absent on a single node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<bool>,
}

/// `POST /api/users/{user}/disconnect`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisconnectView {
    /// The user.
    pub user: String,
    /// Connections closed on this node.
    pub closed: usize,
    /// With `{"revoke": true}`: the revocation's cut-off (seconds since the epoch); the
    /// user's credentials issued at or before it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<u64>,
}

/// `GET /api/stats`: gauges and counters summed over the node's shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// Open connections.
    pub connections: usize,
    /// Users with an open connection.
    pub users: usize,
    /// Rooms with a member (once per shard holding members).
    pub rooms: usize,
    /// Threads with a bound connection.
    pub threads: usize,
    /// Streams kept.
    pub streams: usize,
    /// Agent runs in progress.
    pub runs_active: usize,
    /// Frames waiting in outbound queues.
    pub queued_messages: usize,
    /// Bytes waiting in outbound queues.
    pub queued_bytes: usize,
    /// Messages kept in stream histories.
    pub history_messages: usize,
    /// Bytes kept in stream histories.
    pub history_bytes: usize,
    /// Open connections per health band: 0–19, 20–39, 40–59, 60–79, 80–100.
    #[schema(min_items = 5, max_items = 5)]
    pub health: Vec<usize>,
    /// Counters since the server started.
    pub counters: CountersView,
    /// In a cluster: what every live node held at its last heartbeat (absent on a single
    /// node, or when Redis could not be asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterView>,
}

/// The cluster part of [`StatsView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// Open connections on every live node.
    pub connections: u64,
    /// What each live node held at its last heartbeat, by node id.
    pub nodes: BTreeMap<String, NodeView>,
}

/// What one node held at its last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Open connections.
    pub connections: u64,
    /// Users with an open connection there (a user with connections on two nodes counts on
    /// both).
    pub users: u64,
    /// Rooms with a member there.
    pub rooms: u64,
}

impl ClusterView {
    /// The loads Redis holds, as answered by `node`.
    pub fn new(node: &str, loads: BTreeMap<String, switchboard_redis::NodeLoad>) -> Self {
        let nodes: BTreeMap<String, NodeView> = loads
            .into_iter()
            .map(|(node, load)| {
                let view = NodeView {
                    connections: load.connections,
                    users: load.users,
                    rooms: load.rooms,
                };
                (node, view)
            })
            .collect();
        ClusterView {
            node: node.to_owned(),
            connections: nodes.values().map(|n| n.connections).sum(),
            nodes,
        }
    }
}

/// The counters of [`StatsView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountersView {
    /// Connections opened.
    pub opened: u64,
    /// Connections refused at open.
    pub refused: u64,
    /// Messages published (backend and clients).
    pub publishes: u64,
    /// Client frames received.
    pub messages_in: u64,
    /// Frames handed to sockets.
    pub messages_out: u64,
    /// Client bytes received.
    pub bytes_in: u64,
    /// Bytes handed to sockets.
    pub bytes_out: u64,
    /// Connections closed, by reason (reasons with a count only).
    pub closes: BTreeMap<String, u64>,
    /// Frames dropped or refused, by reason (reasons with a count only).
    pub drops: BTreeMap<String, u64>,
}

impl From<&Stats> for StatsView {
    fn from(s: &Stats) -> Self {
        let c = &s.counters;
        let by_reason = |counts: &switchboard::ReasonCounts| {
            counts
                .iter()
                .map(|(reason, n)| (reason.to_string(), n))
                .collect()
        };
        StatsView {
            connections: s.connections,
            users: s.users,
            rooms: s.rooms,
            threads: s.threads,
            streams: s.streams,
            runs_active: s.runs_active,
            queued_messages: s.queued_messages,
            queued_bytes: s.queued_bytes,
            history_messages: s.history_messages,
            history_bytes: s.history_bytes,
            health: s.health.to_vec(),
            counters: CountersView {
                opened: c.opened,
                refused: c.refused_opens,
                publishes: c.publishes,
                messages_in: c.messages_in,
                messages_out: c.messages_out,
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
                closes: by_reason(&c.closes),
                drops: by_reason(&c.drops),
            },
            cluster: None,
        }
    }
}

/// Every error answer: a stable code and a message (for people, not for parsing); a 401 and a
/// refused message delta also name their stable reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The stable error code (`bad_request`, `unauthorized`, `run_order`, ...).
    pub error: String,
    /// What went wrong.
    pub message: String,
    /// A 401's stable reason: `missing` or `wrong_key`; a `run_order` 409's for message deltas:
    /// `wrong_offset`, `message_ended`, `messages_open` or `too_many_messages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `wrong_offset`: the offset the message's next delta must have (its length so far,
    /// in Unicode scalar values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_offset: Option<u64>,
}
