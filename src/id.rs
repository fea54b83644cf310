//! Identifiers: the connection handle and the names of users, rooms, threads and runs.
//!
//! A [`ConnId`] is a slab key plus a generation, stamped with the shard (the hub of a process)
//! that issued it. When a connection closes its slot is reused, but with a new generation, so a
//! stale handle can never reach the connection that holds the slot now; and since the shard is
//! part of the id, the hubs of one process never issue the same id. Every other id is a cheap,
//! immutable, reference-counted string.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A handle to one open connection: shard, slot index and generation, displayed as
/// `shard.index.generation`. `Copy`, 8 bytes, never a pointer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    /// The shard in the top 8 bits, the generation in the low 24.
    stamp: u32,
}

/// Generations count modulo 2^24: a slot must be reused 16 million times before an old id
/// could match again.
const GENERATION_MASK: u32 = (1 << 24) - 1;

/// The generation a slot gets when its connection closes.
pub(crate) fn next_generation(generation: u32) -> u32 {
    generation.wrapping_add(1) & GENERATION_MASK
}

impl ConnId {
    pub(crate) fn new(shard: u8, index: usize, generation: u32) -> Self {
        let index = u32::try_from(index).expect("more than u32::MAX connection slots");
        let stamp = (u32::from(shard) << 24) | (generation & GENERATION_MASK);
        Self { index, stamp }
    }

    /// The slab slot this connection occupies.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The generation of the slot at the time this connection opened.
    pub(crate) fn generation(self) -> u32 {
        self.stamp & GENERATION_MASK
    }

    /// The shard (hub) that issued this id: [`Config::shard`](crate::Config::shard).
    pub fn shard(self) -> u8 {
        (self.stamp >> 24) as u8
    }

    /// A single number that identifies the connection.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.stamp) << 32) | u64::from(self.index)
    }

    /// The inverse of [`ConnId::to_u64`].
    pub fn from_u64(raw: u64) -> Self {
        Self {
            index: raw as u32,
            stamp: (raw >> 32) as u32,
        }
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({self})")
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.shard(), self.index, self.generation())
    }
}

/// A string that is not a connection id (`<shard>.<index>.<generation>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a connection id (expected <shard>.<index>.<generation>, e.g. \"0.3.0\")")]
pub struct ParseConnIdError;

impl std::str::FromStr for ConnId {
    type Err = ParseConnIdError;

    /// The inverse of `Display`: `"1.3.0"` is shard 1, slot 3, generation 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('.');
        let mut next = || parts.next().ok_or(ParseConnIdError);
        let shard: u8 = next()?.parse().map_err(|_| ParseConnIdError)?;
        let index: usize = next()?.parse().map_err(|_| ParseConnIdError)?;
        let generation: u32 = next()?.parse().map_err(|_| ParseConnIdError)?;
        if parts.next().is_some() || generation > GENERATION_MASK || index > u32::MAX as usize {
            return Err(ParseConnIdError);
        }
        Ok(Self::new(shard, index, generation))
    }
}

impl Serialize for ConnId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConnId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        /// Read from the wire: a non-empty string (an empty name could not be told apart from
        /// a missing one, nor written as a stream such as `room:<id>`).
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                if s.is_empty() {
                    return Err(serde::de::Error::custom(concat!(
                        "an empty ",
                        stringify!($name)
                    )));
                }
                Ok(Self(Arc::from(&*s)))
            }
        }

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
    /// One agent run: the events of one invocation of an agent, from `agent_started` to its end.
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
        let id = ConnId::new(2, 7, 3);
        assert_eq!(id.to_string(), "2.7.3");
        assert_eq!(id.to_string().parse::<ConnId>(), Ok(id));
        for bad in [
            "",
            "7",
            "7.3",
            "2.7.",
            "a.b.c",
            "2.7.3.1",
            "256.0.0",
            "0.0.16777216",
        ] {
            assert_eq!(bad.parse::<ConnId>(), Err(ParseConnIdError), "{bad:?}");
        }
    }

    #[test]
    fn conn_id_round_trips_through_u64() {
        let id = ConnId::new(255, 7, GENERATION_MASK);
        assert_eq!(ConnId::from_u64(id.to_u64()), id);
        assert_eq!(
            (id.shard(), id.index(), id.generation()),
            (255, 7, GENERATION_MASK)
        );
    }

    #[test]
    fn same_slot_other_generation_or_shard_is_another_connection() {
        assert_ne!(ConnId::new(0, 1, 0), ConnId::new(0, 1, 1));
        assert_ne!(ConnId::new(0, 1, 0), ConnId::new(1, 1, 0));
        assert_eq!(
            next_generation(GENERATION_MASK),
            0,
            "generations wrap in 24 bits"
        );
    }
}
