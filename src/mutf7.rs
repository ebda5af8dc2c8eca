//! STUB: interface only; the proto helper replaces this file.
/// UTF-8 -> modified UTF-7 (RFC 3501 §5.1.3).
pub fn encode(_s: &str) -> String {
    unimplemented!()
}
/// Modified UTF-7 -> UTF-8; strict: rejects non-canonical encodings,
/// unterminated `&` shifts, 8-bit bytes and encoded printable ASCII.
pub fn decode(_s: &str) -> Result<String, Mutf7Error> {
    unimplemented!()
}
#[derive(Debug, PartialEq, Eq)]
pub struct Mutf7Error;
