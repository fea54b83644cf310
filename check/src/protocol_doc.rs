//! What `docs/PROTOCOL.md` documents, read from the document itself, so that the fuzz oracles
//! check the hub against the reference client authors read rather than against a copy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const PROTOCOL: &str = include_str!("../../docs/PROTOCOL.md");

/// The frame types, error codes and close codes `docs/PROTOCOL.md` lists.
#[derive(Debug)]
pub struct ProtocolDoc {
    /// Every server frame `type` (section 3, including the agent run frames).
    pub server_types: BTreeSet<String>,
    /// The frame types that echo a client's `ref` (section 2).
    pub ref_types: BTreeSet<String>,
    /// The longest `ref` echoed, in bytes of JSON text (section 2); a longer one is refused.
    pub max_ref_bytes: usize,
    /// Every `error` code (section 4).
    pub error_codes: BTreeSet<String>,
    /// The `error` codes that take a strike (section 4, "Strike" column).
    pub strike_codes: BTreeSet<String>,
    /// Every client frame `type` (section 2).
    pub client_types: BTreeSet<String>,
    /// Every close code with its label (section 5).
    pub close_codes: BTreeMap<u16, String>,
}

/// The text between the line starting with `start` and the next line starting with `end`.
fn section<'a>(start: &str, end: &str) -> &'a str {
    let from = PROTOCOL
        .find(start)
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no {start:?}"));
    let rest = &PROTOCOL[from + start.len()..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no {end:?} after {start:?}"));
    &rest[..to]
}

/// The words between backticks in `text`.
fn ticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

impl ProtocolDoc {
    /// The lists, parsed once.
    pub fn get() -> &'static ProtocolDoc {
        static DOC: OnceLock<ProtocolDoc> = OnceLock::new();
        DOC.get_or_init(Self::parse)
    }

    fn parse() -> ProtocolDoc {
        let frames = section("## 3. Server frames", "## 4.");
        let mut server_types: BTreeSet<String> = frames
            .lines()
            .filter_map(|l| l.strip_prefix("### "))
            .filter(|h| !h.contains(' '))
            .map(str::to_owned)
            .collect();
        let agent_row = frames
            .lines()
            .find(|l| l.starts_with("| `type` | The event kind"))
            .expect("the agent frames' `type` row");
        server_types.extend(
            ticked(agent_row)
                .filter(|t| *t != "type")
                .map(str::to_owned),
        );

        let echo = section("Replies that echo `ref`:", ".");
        let ref_types = ticked(echo).map(str::to_owned).collect();
        let frames_intro = section("## 2. Client frames", "| `type` |");
        let words: Vec<&str> = frames_intro.split_whitespace().collect();
        let max_ref_bytes = words
            .windows(4)
            .find(|w| w[0] == "most" && w[2] == "bytes" && w[3] == "of")
            .and_then(|w| w[1].parse().ok())
            .expect("section 2 bounds the `ref`: \"of at most N bytes of JSON text\"");

        let client_table = section("| `type` | Fields", "\n\n");
        let client_types = client_table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();

        let errors = section("## 4. Error codes", "**Strikes.**");
        let rows = || {
            errors
                .lines()
                .filter_map(|l| l.strip_prefix("| `"))
                .filter_map(|l| Some((l.split('`').next()?, l.trim_end().ends_with("| yes |"))))
                .filter(|(c, _)| *c != "code")
        };
        let error_codes = rows().map(|(c, _)| c.to_owned()).collect();
        let strike_codes = rows()
            .filter(|(_, strike)| *strike)
            .map(|(c, _)| c.to_owned())
            .collect();

        let closes = section("## 5. Close codes", "## 6.");
        let close_codes = closes
            .lines()
            .filter_map(|l| {
                let mut cells = l.strip_prefix("| ")?.split(" | ");
                let code = cells.next()?.parse().ok()?;
                let label = ticked(cells.next()?).next()?.to_owned();
                Some((code, label))
            })
            .collect();
        let doc = ProtocolDoc {
            server_types,
            ref_types,
            max_ref_bytes,
            error_codes,
            strike_codes,
            client_types,
            close_codes,
        };
        doc.sanity();
        doc
    }

    /// The parse found what it must (a changed layout of the document fails loudly here).
    fn sanity(&self) {
        for t in [
            "welcome",
            "message",
            "error",
            "gap",
            "agent_started",
            "producer_lost",
        ] {
            assert!(self.server_types.contains(t), "{t} not found: {self:?}");
        }
        assert!(self.ref_types.contains("pong"), "{self:?}");
        assert!(!self.ref_types.contains("message"), "{self:?}");
        assert!(self.error_codes.contains("malformed_json"), "{self:?}");
        assert!(self.error_codes.contains("already_live"), "{self:?}");
        assert!(self.strike_codes.contains("rate_limited"), "{self:?}");
        assert!(self.strike_codes.contains("forbidden"), "{self:?}");
        assert!(!self.strike_codes.contains("not_member"), "{self:?}");
        assert!(self.client_types.contains("ping"), "{self:?}");
        assert!(self.client_types.contains("cancel"), "{self:?}");
        assert!(!self.client_types.contains("pong"), "{self:?}");
        assert_eq!(
            self.close_codes.get(&4029).map(String::as_str),
            Some("rate_limited")
        );
        assert_eq!(
            self.close_codes.get(&1000).map(String::as_str),
            Some("normal")
        );
    }
}
