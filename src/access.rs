//! Which rooms a connection may join, and which it may publish to: granted when it opens (from
//! the client's token).

use crate::id::RoomId;

/// A set of rooms a connection is granted: to join ([`Open::access`](crate::Open::access)) or
/// to publish to ([`Open::publish`](crate::Open::publish)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoomAccess {
    /// Any room.
    #[default]
    Any,
    /// Only rooms matching one of these patterns: an exact name, or a prefix ending in `*`
    /// (`team-*` allows `team-1`). An empty list allows no room.
    Only(Vec<String>),
}

impl RoomAccess {
    /// True if the grant includes `room`.
    pub fn allows(&self, room: &RoomId) -> bool {
        match self {
            RoomAccess::Any => true,
            RoomAccess::Only(patterns) => patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => room.as_str().starts_with(prefix),
                None => p == room.as_str(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        let access = RoomAccess::Only(vec!["lobby".into(), "team-*".into()]);
        assert!(access.allows(&"lobby".into()));
        assert!(access.allows(&"team-7".into()));
        assert!(!access.allows(&"lobby2".into()));
        assert!(!access.allows(&"admin".into()));
        assert!(!RoomAccess::Only(vec![]).allows(&"x".into()));
        assert!(RoomAccess::Any.allows(&"x".into()));
    }
}
