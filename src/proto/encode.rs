//! STUB: interface only; the proto helper replaces this file.
use crate::flags::Flag;

/// A string as `quoted` when that is possible, otherwise as a `{n}` literal
/// (CR, LF, NUL, 8-bit bytes when `utf8` is false, or very long).
pub fn string(_out: &mut Vec<u8>, _s: &[u8], _utf8: bool) {
    unimplemented!()
}
/// `NIL` or [`string`].
pub fn nstring(_out: &mut Vec<u8>, _s: Option<&[u8]>, _utf8: bool) {
    unimplemented!()
}
/// An atom when the bytes are atom-chars, otherwise [`string`].
pub fn astring(_out: &mut Vec<u8>, _s: &[u8], _utf8: bool) {
    unimplemented!()
}
/// `(\Seen $Forwarded)`
pub fn flag_list<'a>(_out: &mut Vec<u8>, _flags: impl IntoIterator<Item = Flag>) {
    unimplemented!()
}
/// Sorted numbers compressed to `1:3,7,9:10`. Input need not be sorted.
pub fn sequence_set(_out: &mut Vec<u8>, _nums: &[u32]) {
    unimplemented!()
}
/// `"17-Jul-1996 02:44:25 -0700"` (quoted, day padded with a space).
pub fn date_time(_out: &mut Vec<u8>, _dt: &chrono::DateTime<chrono::FixedOffset>) {
    unimplemented!()
}
