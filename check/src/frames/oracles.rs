//! The oracles of the `frames` target: every frame the hub writes is checked against
//! `docs/PROTOCOL.md` (types, error codes, `ref` echoes, who may receive it), and every close and
//! reply against the frame or event that caused it.

use super::*;

impl Script {
    /// A frame written to `conn`: documented, and for the right user.
    pub(super) fn check_frame(
        &self,
        conn: ConnId,
        frame: &[u8],
    ) -> BTreeMap<String, Box<RawValue>> {
        let doc = self.doc;
        let fields: BTreeMap<String, Box<RawValue>> =
            serde_json::from_slice(frame).unwrap_or_else(|e| {
                panic!(
                    "not a JSON object ({e}): {}",
                    String::from_utf8_lossy(frame)
                )
            });
        let text = || String::from_utf8_lossy(frame).into_owned();
        let kind = str_field(&fields, "type");
        assert!(
            doc.server_types.contains(&kind),
            "undocumented type: {}",
            text()
        );
        assert!(
            !fields.contains_key("ref") || doc.ref_types.contains(&kind),
            "a {kind} frame carries ref: {}",
            text()
        );
        let required: &[&str] = match kind.as_str() {
            "welcome" => &["conn", "user", "heartbeat_ms", "stream", "epoch", "seq"],
            "message" => &["event"],
            "joined" => &["room", "stream", "epoch", "seq"],
            "left" => &["room"],
            "bound" => &["thread"],
            "gap" => &["stream", "epoch", "from", "to", "reason"],
            "resumed" => &["stream", "epoch", "seq"],
            "error" => &["code", "message"],
            "pong" => &[],
            "refresh" => &["expires_in"],
            "refreshed" => &[],
            "presence" => &["room", "event", "user"],
            _ => &["run", "agent", "stream", "epoch", "seq"],
        };
        for field in required {
            assert!(
                fields.contains_key(*field),
                "{kind} without {field}: {}",
                text()
            );
        }
        if kind == "error" {
            let code = str_field(&fields, "code");
            assert!(
                doc.error_codes.contains(&code),
                "undocumented code: {}",
                text()
            );
        }
        if kind == "gap" {
            let reason = str_field(&fields, "reason");
            assert!(reason == "history" || reason == "epoch", "{}", text());
        }
        if kind == "presence" {
            let event = str_field(&fields, "event");
            assert!(event == "join" || event == "leave", "{}", text());
            let room = str_field(&fields, "room");
            assert!(
                self.conns[&conn].join.allows(&room.as_str().into()),
                "presence of a room outside {conn}'s grant reached it: {}",
                text()
            );
        }
        let user = &self.conns[&conn].user;
        if kind == "welcome" {
            assert_eq!(str_field(&fields, "user"), user.as_str(), "{}", text());
        }
        if fields.contains_key("stream") {
            let stream = str_field(&fields, "stream");
            let stream: StreamId = stream.parse().unwrap_or_else(|e| panic!("{e}: {}", text()));
            match stream {
                StreamId::User(owner) => assert_eq!(
                    &owner,
                    user,
                    "another user's stream reached {conn}: {}",
                    text()
                ),
                // Joined, resumed, replayed or live: only a room its grant lets it join.
                StreamId::Room(room) => assert!(
                    self.conns[&conn].join.allows(&room),
                    "a room outside {conn}'s grant reached it: {}",
                    text()
                ),
            }
        }
        fields
    }

    /// The closes and the sender's replies are what the command can cause.
    pub(super) fn check_causes(&self, cause: &Cause) {
        for (&conn, &(code, _)) in &self.closes {
            let sent = match &cause.sender {
                Some((sender, sent)) if *sender == conn => Some(sent),
                _ => None,
            };
            let allowed: &[u16] = match sent {
                Some(Sent::Binary) => &[1003],
                Some(Sent::Control { .. }) => &[4029],
                Some(Sent::Text(_)) => &[1007, 1008, 1009, 4029, 4008],
                None if cause.time => &[4000, 4008],
                None => &[4008],
            };
            assert!(
                allowed.contains(&code),
                "{conn} closed with {code} by {cause:?}"
            );
        }
        let Some((sender, Sent::Text(bytes))) = &cause.sender else {
            return;
        };
        let replies = self.frames.get(sender).map_or(&[][..], Vec::as_slice);
        let closed = self.closes.get(sender).map(|c| c.0);
        if bytes.len() > MAX_FRAME {
            assert_eq!(closed, Some(1009), "an oversized frame closes with 1009");
            assert!(replies.is_empty(), "an oversized frame gets no reply");
            return;
        }
        if std::str::from_utf8(bytes).is_err() {
            assert_eq!(closed, Some(1007), "invalid UTF-8 closes with 1007");
            assert!(replies.is_empty(), "invalid UTF-8 gets no reply");
            return;
        }
        assert!(
            matches!(closed, None | Some(1008 | 4029 | 4008)),
            "a well-formed-size text frame closed with {closed:?}"
        );
        // A frame is a JSON object: anything else (an array included) is `malformed_json`.
        let object = bytes.trim_ascii_start().starts_with(b"{");
        let head = object
            .then(|| serde_json::from_slice::<Head>(bytes).ok())
            .flatten();
        let kind = head.as_ref().map(|h| h.kind.as_str());
        let reference = head.as_ref().and_then(|h| h.reference.as_deref());
        let oversized_ref = reference.is_some_and(|r| r.get().len() > self.doc.max_ref_bytes);
        let too_many_streams =
            kind == Some("resume") && resume_streams(bytes) > ROOMS_PER_CONNECTION + 1;
        if oversized_ref || too_many_streams {
            // Refused whole: one `invalid_frame` (unless over the rate), never an echo of an
            // oversized `ref`, nothing of the frame handled.
            assert!(replies.len() <= 1, "{replies:?} to a refused frame");
            for reply in replies {
                assert_eq!(str_field(reply, "type"), "error", "{reply:?}");
                let code = str_field(reply, "code");
                assert!(matches!(code.as_str(), "invalid_frame" | "rate_limited"));
                let echoed = reply.get("ref").map(|r| r.get());
                if oversized_ref || code == "rate_limited" {
                    assert_eq!(echoed, None, "an oversized ref is not echoed");
                } else {
                    assert_eq!(echoed, reference.map(RawValue::get), "ref of {code}");
                }
            }
            return;
        }
        let (types, codes): (&[&str], &[&str]) = match kind {
            None => (&["error"], &["malformed_json"]),
            Some("ping") => (&["pong", "error"], &[]),
            Some("join") => (
                &["joined", "resumed", "gap", "message", "presence", "error"],
                &[
                    "invalid_frame",
                    "forbidden",
                    "too_many_rooms",
                    "room_full",
                    "already_live",
                ],
            ),
            Some("leave") => (&["left", "error"], &["invalid_frame", "not_member"]),
            Some("publish") => (&["error"], &["invalid_frame", "not_member", "forbidden"]),
            Some("bind") => (&["bound", "gap", "message", "error"], &["invalid_frame"]),
            Some("resume") => (
                &["resumed", "joined", "gap", "message", "presence", "error"],
                &[
                    "invalid_frame",
                    "forbidden",
                    "too_many_rooms",
                    "room_full",
                    "already_live",
                ],
            ),
            Some("user_message") => (&["error"], &["invalid_frame"]),
            // Handed to the application to verify (which the fuzzed application never answers):
            // no reply, or a refusal of the frame itself.
            Some("refresh") => (&["error"], &["invalid_frame", "refresh_in_progress"]),
            // Handed to the run's producer; no run of the user in progress is `unknown_run`.
            Some("cancel") => (&["error"], &["invalid_frame", "unknown_run"]),
            Some(_) => (&["error"], &["unknown_type"]),
        };
        let agent = |t: &str| {
            !matches!(
                t,
                "welcome"
                    | "message"
                    | "joined"
                    | "presence"
                    | "left"
                    | "bound"
                    | "pong"
                    | "gap"
                    | "resumed"
                    | "error"
                    | "refresh"
                    | "refreshed"
            )
        };
        for reply in replies {
            let t = str_field(reply, "type");
            // Binding or resuming the user stream replays agent run frames too.
            let binding = matches!(kind, Some("bind" | "resume")) && agent(&t);
            assert!(
                types.contains(&t.as_str()) || binding,
                "{t} in reply to {kind:?}"
            );
            if t == "error" {
                let code = str_field(reply, "code");
                let rate = code == "rate_limited";
                assert!(
                    rate || codes.contains(&code.as_str()),
                    "{code} in reply to {kind:?}"
                );
                if code == "forbidden" && kind == Some("publish") {
                    self.check_forbidden_publish(*sender, bytes);
                }
                if rate || code == "malformed_json" {
                    assert!(!reply.contains_key("ref"), "{code} carries a ref");
                    continue;
                }
            }
            if self.doc.ref_types.contains(&t) {
                let echoed = reply.get("ref").map(|r| r.get());
                assert_eq!(echoed, reference.map(RawValue::get), "ref of {t}");
            }
        }
        // A reader that stopped may have its replies queued behind what it did not read yet.
        let reading = self.conns.get(sender).is_some_and(|c| c.reading);
        if !reading || closed.is_some() {
            return;
        }
        let rate_limited = replies.len() == 1 && str_field(&replies[0], "code") == "rate_limited";
        if kind == Some("ping") {
            assert_eq!(replies.len(), 1, "a ping gets exactly one reply");
        }
        if matches!(kind, Some("join" | "leave" | "bind")) && !rate_limited {
            assert!(!replies.is_empty(), "{kind:?} got no reply");
        }
    }

    /// A `publish` answered `forbidden` names a room outside its sender's publish grant (known
    /// while the sender is open).
    fn check_forbidden_publish(&self, sender: ConnId, bytes: &[u8]) {
        #[derive(Deserialize)]
        struct Publish {
            room: String,
        }
        let publish: Publish = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("forbidden to a publish without a room ({e})"));
        if let Some(conn) = self.conns.get(&sender) {
            assert!(
                !conn.publish.allows(&publish.room.into()),
                "forbidden to a publish inside the grant"
            );
        }
    }
}
