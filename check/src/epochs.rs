//! The one rule the protocol gives about epoch values (`docs/PROTOCOL.md` section 6): each new
//! stream, that is each incarnation, gets a larger epoch than any before it. The models number
//! incarnations in the order they create them and learn epochs from the frames clients read;
//! this checks an epoch against those learned so far.

/// `epoch` may be incarnation `inc`'s: it is larger than the epoch of every incarnation created
/// before it and smaller than that of every one created after it, among those `learned`
/// (incarnation, epoch).
pub(crate) fn fits(
    inc: usize,
    epoch: u64,
    learned: impl IntoIterator<Item = (usize, u64)>,
) -> Result<(), String> {
    for (i, other) in learned {
        ensure!(
            i == inc || (i < inc && other < epoch) || (i > inc && other > epoch),
            "incarnation {inc} has epoch {epoch}, incarnation {i} epoch {other}: epochs must \
             grow with each stream created"
        );
    }
    Ok(())
}
