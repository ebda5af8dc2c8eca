//! STUB: interface only; the proto helper replaces this file.
use super::command::SequenceSet;

impl SequenceSet {
    /// The set as sorted, merged, inclusive ranges, with `*` standing for
    /// `largest` and `a:b` normalised to `min:max`. `Saved` yields nothing
    /// (the session resolves `$` before calling this).
    pub fn ranges(&self, _largest: u32) -> Vec<(u32, u32)> {
        unimplemented!()
    }
}
