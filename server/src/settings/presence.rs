//! `[presence]`: which rooms tell their members who comes and goes without being asked, and the
//! largest room whose members are told who is in it (`docs/OPERATIONS.md`, "Presence").

use super::SettingsError;
use crate::auth::claims::default_access;
use serde::Deserialize;
use switchboard::PresenceConfig;

/// `[presence]` as written in the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    /// Room patterns (exact names, or prefixes ending in `*`) whose members watch presence
    /// unless their join says `"presence": false`. Default: none.
    pub rooms: Option<Vec<String>>,
    /// The most users a room may hold for its members to get the member list and `presence`
    /// frames; above it only the count. Default 1000.
    pub max_members: Option<usize>,
}

/// The hub's presence configuration from `[presence]`: the patterns are checked like a token's
/// `rooms` claim.
pub fn resolve(file: PresenceSettings) -> Result<PresenceConfig, SettingsError> {
    let mut config = PresenceConfig::default();
    if let Some(rooms) = file.rooms {
        config.rooms = default_access(rooms)
            .map_err(|e| SettingsError::Invalid(format!("presence.rooms: {e}")))?;
    }
    if let Some(max) = file.max_members {
        config.max_members = max;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::{RoomAccess, RoomId};

    fn parse(text: &str) -> Result<PresenceConfig, SettingsError> {
        resolve(toml::from_str(text).expect("valid TOML"))
    }

    #[test]
    fn defaults_to_no_room_and_a_thousand_members() {
        let config = parse("").unwrap();
        assert_eq!(config.rooms, RoomAccess::Only(vec![]));
        assert_eq!(config.max_members, 1000);
    }

    #[test]
    fn room_patterns_and_the_cap_are_read() {
        let config = parse("rooms = [\"chat:*\", \"lobby\"]\nmax_members = 50").unwrap();
        assert!(config.rooms.allows(&RoomId::from("chat:9")));
        assert!(!config.rooms.allows(&RoomId::from("game")));
        assert_eq!(config.max_members, 50);
    }

    #[test]
    fn an_invalid_pattern_is_refused_with_its_key() {
        let e = parse("rooms = [\"\"]").unwrap_err().to_string();
        assert!(e.contains("presence.rooms"), "{e}");
    }
}
