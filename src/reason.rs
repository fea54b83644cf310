//! Why a connection was closed or a frame dropped: one enum, one counter per variant.
//!
//! Every close the hub performs and every frame or request it rejects or drops carries a
//! [`Reason`]. Closes map to a WebSocket close code; [`ReasonCounts`] keeps the per-reason
//! counters that [`Stats`](crate::Stats) reports.

use std::fmt;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $label:literal, $code:expr;)*) => {
        /// The reason for a close or a drop. Stable labels appear in metrics and frames.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable snake_case label of this reason.
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $label,)* }
            }

            /// The WebSocket close code a close for this reason carries, if it is a close.
            pub fn close_code(self) -> Option<u16> {
                match self { $(Reason::$variant => $code,)* }
            }
        }
    };
}

reasons! {
    /// The application closed the connection normally (1000).
    Normal = "normal", Some(1000);
    /// The peer closed the connection or the socket failed; the hub closes nothing itself.
    PeerClosed = "peer_closed", None;
    /// The hub is shutting down (1001).
    Shutdown = "shutdown", Some(1001);
    /// The node is restarting; reconnect elsewhere and resume (1012).
    ServiceRestart = "service_restart", Some(1012);
    /// A binary frame: the protocol is JSON text (1003).
    BinaryFrame = "binary_frame", Some(1003);
    /// A text frame that is not UTF-8 (1007).
    InvalidUtf8 = "invalid_utf8", Some(1007);
    /// A frame larger than `max_frame_bytes` (1009).
    FrameTooLarge = "frame_too_large", Some(1009);
    /// Too many bad frames in a short time (1008).
    ProtocolViolation = "protocol_violation", Some(1008);
    /// No frame and no pong within the heartbeat timeout and grace (4000).
    HeartbeatTimeout = "heartbeat_timeout", Some(4000);
    /// Closed to make room for a newer connection of the same user (4001).
    Evicted = "evicted", Some(4001);
    /// The application disconnected the user (4002).
    Disconnected = "disconnected", Some(4002);
    /// The user already has `max_connections_per_user` connections (4003).
    UserLimit = "user_limit", Some(4003);
    /// The hub already has `max_connections` connections (4004).
    ServerFull = "server_full", Some(4004);
    /// The connection's token expired (with the leeway) and no fresh one was accepted (4005).
    TokenExpired = "token_expired", Some(4005);
    /// The reader fell past its queue limit; reconnect and resume (4008).
    SlowConsumer = "slow_consumer", Some(4008);
    /// A flood of frames past the rate limit (4029).
    RateLimited = "rate_limited", Some(4029);
    /// A frame was dropped: not valid JSON or missing required fields.
    Malformed = "malformed", None;
    /// A frame was dropped: its `type` is not part of the protocol.
    UnknownType = "unknown_type", None;
    /// A frame was dropped: it came faster than the rate limit.
    OverRate = "over_rate", None;
    /// A request was rejected: the connection may not use that room or thread.
    Forbidden = "forbidden", None;
    /// A fresh token (a `refresh` frame) was refused: it did not verify.
    InvalidToken = "invalid_token", None;
    /// A request was rejected: a room or connection limit would be exceeded.
    LimitReached = "limit_reached", None;
    /// An ephemeral message was replaced by a newer one while the reader was behind.
    Coalesced = "coalesced", None;
    /// An ephemeral message dropped for a reader past its queue limit (the lossy lane).
    Shed = "shed", None;
    /// A message for a connection that no longer exists (stale or unknown id).
    UnknownConnection = "unknown_connection", None;
    /// An agent run was refused: its user, or the hub, has the most runs in progress allowed.
    TooManyRuns = "too_many_runs", None;
}

impl Reason {
    /// True for the closes that hand out what was queued for the connection before the close
    /// frame (the application's, evictions, shutdowns); the others discard it.
    pub(crate) fn is_graceful(self) -> bool {
        matches!(
            self,
            Reason::Shutdown
                | Reason::ServiceRestart
                | Reason::Normal
                | Reason::Disconnected
                | Reason::Evicted
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One counter per [`Reason`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasonCounts {
    counts: [u64; Reason::ALL.len()],
}

impl ReasonCounts {
    pub(crate) fn add(&mut self, reason: Reason) {
        self.counts[reason as usize] += 1;
    }

    /// Add another set of counts to these (the totals of several hubs).
    pub fn merge(&mut self, other: &ReasonCounts) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
    }

    /// The count for one reason.
    pub fn get(&self, reason: Reason) -> u64 {
        self.counts[reason as usize]
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every reason with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_distinct_and_labels_unique() {
        let mut codes: Vec<u16> = Reason::ALL.iter().filter_map(|r| r.close_code()).collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n);
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }

    #[test]
    fn counts_add_up() {
        let mut c = ReasonCounts::default();
        c.add(Reason::Evicted);
        c.add(Reason::Evicted);
        c.add(Reason::Coalesced);
        assert_eq!(c.get(Reason::Evicted), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.iter().count(), 2);
        let mut sum = c.clone();
        sum.merge(&c);
        assert_eq!((sum.get(Reason::Evicted), sum.total()), (4, 6));
    }
}
