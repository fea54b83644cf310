//! Addressing: who a publish is for ([`Target`]) and who is left out ([`Audience::except`]).

use crate::id::{ConnId, RoomId, ThreadId, UserId};
use smallvec::SmallVec;

/// The recipients of a publish.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One connection.
    Connection(ConnId),
    /// Every connection of a user (sequenced in the user's stream).
    User(UserId),
    /// Every member of a room (sequenced in the room's stream).
    Room(RoomId),
    /// The connections of a user bound to one of the user's threads (sequenced in the user's
    /// stream). Threads are per user: another user's thread of the same name is another thread.
    Thread {
        /// The thread's owner.
        user: UserId,
        /// The thread.
        thread: ThreadId,
    },
    /// Every open connection.
    All,
}

impl Target {
    /// This target without the given connections.
    pub fn except(self, conns: impl IntoIterator<Item = ConnId>) -> Audience {
        Audience {
            target: self,
            except: conns.into_iter().collect(),
        }
    }
}

/// A target and the connections to leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// Who the message is for.
    pub target: Target,
    /// Connections that must not receive it.
    pub except: SmallVec<[ConnId; 2]>,
}

impl Audience {
    /// True if `conn` is left out.
    pub fn excludes(&self, conn: ConnId) -> bool {
        self.except.contains(&conn)
    }
}

impl From<Target> for Audience {
    fn from(target: Target) -> Self {
        Audience {
            target,
            except: SmallVec::new(),
        }
    }
}
