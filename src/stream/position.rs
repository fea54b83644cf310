//! Naming streams and places in them: [`StreamId`] (`user:<id>` or `room:<id>`) and
//! [`Position`] (`<epoch>:<seq>`), with their text forms, the ones clients read and write.

use crate::id::{RoomId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A stream: the sequenced messages of one user or one room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamId {
    /// Messages addressed to a user, a user's thread, and the user's agent runs.
    User(UserId),
    /// Messages published to a room.
    Room(RoomId),
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::User(u) => write!(f, "user:{u}"),
            StreamId::Room(r) => write!(f, "room:{r}"),
        }
    }
}

impl std::str::FromStr for StreamId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("user", id)) if !id.is_empty() => Ok(StreamId::User(id.into())),
            Some(("room", id)) if !id.is_empty() => Ok(StreamId::Room(id.into())),
            _ => Err(format!("{s:?} is not a stream (user:<id> or room:<id>)")),
        }
    }
}

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A place in a stream: its epoch and the last sequence number seen (0 = nothing yet).
///
/// Written `<epoch>:<seq>` ([`Display`](fmt::Display) and [`FromStr`](std::str::FromStr)), the
/// form of the `resume` query parameter a client passes at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Position {
    /// The stream epoch the sequence number belongs to.
    pub epoch: u64,
    /// The last sequence number seen.
    pub seq: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.seq)
    }
}

/// A string that is not a position (`<epoch>:<seq>`, two unsigned integers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream position (expected <epoch>:<seq>, e.g. \"3:41\")")]
pub struct ParsePositionError;

impl std::str::FromStr for Position {
    type Err = ParsePositionError;

    /// The inverse of `Display`: `"3:41"` is epoch 3, sequence number 41.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, seq) = s.split_once(':').ok_or(ParsePositionError)?;
        Ok(Position {
            epoch: epoch.parse().map_err(|_| ParsePositionError)?,
            seq: seq.parse().map_err(|_| ParsePositionError)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip() {
        for s in ["user:alice", "room:lobby:2"] {
            assert_eq!(s.parse::<StreamId>().unwrap().to_string(), s);
        }
        assert!("alice".parse::<StreamId>().is_err());
        assert!("room:".parse::<StreamId>().is_err());
    }

    #[test]
    fn positions_round_trip_through_their_text_form() {
        let p = Position { epoch: 3, seq: 41 };
        assert_eq!(p.to_string(), "3:41");
        assert_eq!("3:41".parse::<Position>(), Ok(p));
        assert_eq!("1:0".parse::<Position>(), Ok(Position { epoch: 1, seq: 0 }));
        for bad in ["", "1", "x:1", "1:x", "1:2:3", ":1", "1:", "-1:2"] {
            assert_eq!(bad.parse::<Position>(), Err(ParsePositionError), "{bad:?}");
        }
    }
}
