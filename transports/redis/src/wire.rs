//! What travels on the channels: an envelope or a command, tagged with the node it came from
//! so that a node ignores its own echoes.

use serde::{Deserialize, Serialize};
use switchboard::{Envelope, UserId};

/// Serialize `envelope` (already stripped for other nodes) with its origin.
pub(crate) fn envelope(origin: &str, envelope: &Envelope) -> Vec<u8> {
    encode(&Outgoing {
        origin,
        envelope: Some(envelope),
        disconnect: None,
    })
}

/// A command on the control channel: close every connection of `disconnect`.
pub(crate) fn disconnect(origin: &str, user: &UserId) -> Vec<u8> {
    encode(&Outgoing {
        origin,
        envelope: None,
        disconnect: Some(user),
    })
}

fn encode(message: &Outgoing<'_>) -> Vec<u8> {
    serde_json::to_vec(message).expect("envelopes and ids always serialize")
}

/// A message as sent: [`Incoming`], borrowed.
#[derive(Serialize)]
struct Outgoing<'a> {
    origin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    envelope: Option<&'a Envelope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect: Option<&'a UserId>,
}

/// A message received on any channel.
#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct Incoming {
    /// The node that published it.
    pub origin: String,
    /// A publish to deliver locally.
    #[serde(default)]
    pub envelope: Option<Envelope>,
    /// A user to disconnect locally.
    #[serde(default)]
    pub disconnect: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::{Message, RemoteTarget};

    #[test]
    fn an_envelope_arrives_with_its_origin() {
        let sent = Envelope {
            target: RemoteTarget::All,
            message: Message::new("news", serde_json::json!({"n": 1})),
            from: None,
            except: Vec::new(),
        };
        let incoming: Incoming = serde_json::from_slice(&envelope("node \"a\"", &sent)).unwrap();
        assert_eq!(incoming.origin, "node \"a\"");
        assert_eq!(incoming.envelope, Some(sent));
        let command: Incoming =
            serde_json::from_slice(&disconnect("b", &UserId::from("alice"))).unwrap();
        assert_eq!(command.disconnect, Some(UserId::from("alice")));
        assert_eq!(command.envelope, None);
    }
}
