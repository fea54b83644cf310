//! What a client token says ([`Claims`], as signed) and what the server makes of it once
//! verified ([`Identity`]): the user, the token's expiry and id, and two distinct grants, one
//! for joining rooms ([`JoinGrant`]) and one for publishing to them ([`PublishGrant`]).
//!
//! Both grants are lists of room patterns (exact names, or prefixes ending in `*`), bounded
//! so that a token cannot make a connection's state large: at most [`MAX_PATTERNS`] patterns
//! of 1 to [`MAX_PATTERN_BYTES`] bytes each. A token without the claim gets the server's
//! default grant (`[auth] default_rooms`, `default_publish`: in development any room, in
//! staging and production none unless configured).

use serde::{Deserialize, Serialize};
use switchboard::{RoomAccess, RoomId, UserId};

/// The most room patterns one `rooms` or `publish` claim (or ticket) may hold.
pub const MAX_PATTERNS: usize = 64;
/// The longest room pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;
/// The longest token id (`jti`), in bytes: it becomes a key in the revocation store.
pub const MAX_TOKEN_ID_BYTES: usize = 256;

/// The claims of a client token, as signed. `aud`, `iss` and `nbf` are checked by the
/// verifier against the server's settings; the others are read here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id. Required.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch. Optional; a user's revocation refuses the
    /// tokens issued at or before it, and every token without `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, seconds since the Unix epoch. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's id, for revoking this one token. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Rooms the client may join: exact names, or prefixes ending in `*`. Absent: the
    /// server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// Rooms the client may publish to, as patterns like `rooms`. Absent: the server's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
}

/// Why a list of room patterns was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a room list holds at most {MAX_PATTERNS} patterns of 1 to {MAX_PATTERN_BYTES} bytes each")]
pub struct InvalidPatterns;

/// Room patterns checked against [`MAX_PATTERNS`] and [`MAX_PATTERN_BYTES`].
fn patterns(list: Vec<String>) -> Result<RoomAccess, InvalidPatterns> {
    let valid = list.len() <= MAX_PATTERNS
        && list
            .iter()
            .all(|p| !p.is_empty() && p.len() <= MAX_PATTERN_BYTES);
    if valid {
        Ok(RoomAccess::Only(list))
    } else {
        Err(InvalidPatterns)
    }
}

/// The rooms a connection may join: the token's `rooms`, or the server's default. Enforced
/// by the hub (a `join` outside it is answered `forbidden`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGrant(RoomAccess);

/// The rooms a connection may publish to: the token's `publish`, or the server's default.
/// Enforced by the hub (a `publish` outside it is answered `forbidden`, even to a room the
/// connection is in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishGrant(RoomAccess);

impl JoinGrant {
    /// The grant of a claim, or `default` without one.
    pub fn from_claim(
        claim: Option<Vec<String>>,
        default: &RoomAccess,
    ) -> Result<Self, InvalidPatterns> {
        grant(claim, default).map(JoinGrant)
    }

    /// True if the connection may join `room`.
    pub fn allows(&self, room: &RoomId) -> bool {
        self.0.allows(room)
    }

    /// The grant as the hub takes it at open.
    pub fn access(&self) -> RoomAccess {
        self.0.clone()
    }
}

impl PublishGrant {
    /// The grant of a claim, or `default` without one.
    pub fn from_claim(
        claim: Option<Vec<String>>,
        default: &RoomAccess,
    ) -> Result<Self, InvalidPatterns> {
        grant(claim, default).map(PublishGrant)
    }

    /// True if the connection may publish to `room`.
    pub fn allows(&self, room: &RoomId) -> bool {
        self.0.allows(room)
    }

    /// The grant as patterns, for the hub.
    pub fn access(&self) -> RoomAccess {
        self.0.clone()
    }
}

fn grant(claim: Option<Vec<String>>, default: &RoomAccess) -> Result<RoomAccess, InvalidPatterns> {
    match claim {
        Some(list) => patterns(list),
        None => Ok(default.clone()),
    }
}

/// The server's room patterns from settings (`[auth] default_rooms`): checked like a claim.
pub fn default_access(list: Vec<String>) -> Result<RoomAccess, InvalidPatterns> {
    patterns(list)
}

/// Who a verified client is and what it may do: what the hub needs to open its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: UserId,
    /// When the credential expires, seconds since the Unix epoch (`exp`); `None` for a
    /// connection opened with a ticket, which has no expiry of its own.
    pub expires_at: Option<u64>,
    /// When the credential was issued, seconds since the Unix epoch (`iat`, or when the
    /// ticket was issued); `None` for a token without `iat`.
    pub issued_at: Option<u64>,
    /// The token's id (`jti`), if it has one.
    pub token_id: Option<String>,
    /// The rooms it may join.
    pub join: JoinGrant,
    /// The rooms it may publish to.
    pub publish: PublishGrant,
}

/// True if `user` is a user id the server accepts: not empty, and no control character
/// (a user id reaches logs and metrics labels: no line breaks, escapes or NULs in it).
pub fn valid_user(user: &str) -> bool {
    !user.is_empty() && !user.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_claim_overrides_the_default_and_its_absence_takes_it() {
        let nothing = RoomAccess::Only(vec![]);
        let join = JoinGrant::from_claim(Some(list(&["team-*"])), &nothing).unwrap();
        assert!(join.allows(&"team-red".into()) && !join.allows(&"lobby".into()));
        let defaulted = JoinGrant::from_claim(None, &nothing).unwrap();
        assert!(!defaulted.allows(&"lobby".into()));
        let open = PublishGrant::from_claim(None, &RoomAccess::Any).unwrap();
        assert!(open.allows(&"anything".into()));
        let star = PublishGrant::from_claim(Some(list(&["*"])), &nothing).unwrap();
        assert!(star.allows(&"anything".into()), "a bare `*` is every room");
    }

    #[test]
    fn room_lists_are_bounded_in_count_and_length() {
        let any = RoomAccess::Any;
        let many = vec!["r".to_owned(); MAX_PATTERNS + 1];
        assert_eq!(
            JoinGrant::from_claim(Some(many), &any),
            Err(InvalidPatterns)
        );
        let long = vec!["r".repeat(MAX_PATTERN_BYTES + 1)];
        assert_eq!(
            PublishGrant::from_claim(Some(long), &any),
            Err(InvalidPatterns)
        );
        assert_eq!(
            JoinGrant::from_claim(Some(list(&[""])), &any),
            Err(InvalidPatterns)
        );
        let most = vec!["r".repeat(MAX_PATTERN_BYTES); MAX_PATTERNS];
        assert!(JoinGrant::from_claim(Some(most), &any).is_ok());
        assert_eq!(
            JoinGrant::from_claim(Some(vec![]), &any).map(|g| g.access()),
            Ok(RoomAccess::Only(vec![]))
        );
    }

    #[test]
    fn user_ids_are_non_empty_without_control_characters() {
        assert!(valid_user("zoë"));
        for bad in ["", "al\u{0}ice", "al\nice", "al\u{9b}ice"] {
            assert!(!valid_user(bad), "{bad:?}");
        }
    }
}
