//! Identifiers: the connection handle and the names of users, rooms, threads and runs.
//!
//! A [`ConnId`] is a slab key plus a generation. When a connection closes its slot is reused,
//! but with a new generation, so a stale handle can never reach the connection that holds the
//! slot now. Every other id is a cheap, immutable, reference-counted string.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A handle to one open connection: slot index plus generation. `Copy`, never a pointer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    pub(crate) fn new(index: usize, generation: u32) -> Self {
        let index = u32::try_from(index).expect("more than u32::MAX connection slots");
        Self { index, generation }
    }

    /// The slab slot this connection occupies.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The generation of the slot at the time this connection opened.
    pub(crate) fn generation(self) -> u32 {
        self.generation
    }

    /// A single number that identifies the connection (generation in the high half).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The inverse of [`ConnId::to_u64`].
    pub fn from_u64(raw: u64) -> Self {
        Self {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({}.{})", self.index, self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

/// A string that is not a connection id (`<index>.<generation>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a connection id (expected <index>.<generation>, e.g. \"3.0\")")]
pub struct ParseConnIdError;

impl std::str::FromStr for ConnId {
    type Err = ParseConnIdError;

    /// The inverse of `Display`: `"3.0"` is slot 3, generation 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (index, generation) = s.split_once('.').ok_or(ParseConnIdError)?;
        Ok(Self {
            index: index.parse().map_err(|_| ParseConnIdError)?,
            generation: generation.parse().map_err(|_| ParseConnIdError)?,
        })
    }
}

impl Serialize for ConnId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_id!(
    /// The authenticated user a connection belongs to.
    UserId
);
name_id!(
    /// A room: a named group of connections that join and leave it.
    RoomId
);
name_id!(
    /// A conversation thread of one user; connections bind to it.
    ThreadId
);
name_id!(
    /// One agent run: the five lifecycle events of one invocation of an agent.
    RunId
);
name_id!(
    /// The agent that produces a run (for display and reports).
    AgentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips_through_its_display_form() {
        let id = ConnId::new(7, 3);
        assert_eq!(id.to_string().parse::<ConnId>(), Ok(id));
        for bad in ["", "7", "7.", ".3", "a.b", "7.3.1", "-1.0"] {
            assert_eq!(bad.parse::<ConnId>(), Err(ParseConnIdError), "{bad:?}");
        }
    }

    #[test]
    fn conn_id_round_trips_through_u64() {
        let id = ConnId::new(7, 3);
        assert_eq!(ConnId::from_u64(id.to_u64()), id);
        assert_eq!(id.to_string(), "7.3");
    }

    #[test]
    fn same_slot_other_generation_is_another_connection() {
        assert_ne!(ConnId::new(1, 0), ConnId::new(1, 1));
    }
}
