//! SASL for IMAP `AUTHENTICATE` (and POP3 `AUTH` once it is served): the mechanisms
//! offered, the PLAIN message (RFC 4616), the LOGIN mechanism's two prompts
//! (draft-murchison-sasl-login), and the base64 client responses with `*` (cancel, RFC 9051
//! §6.2.2). The initial response of `AUTHENTICATE` (SASL-IR, RFC 4959, where `=` means
//! empty) is decoded by the command parser (`proto::parse`), not here.
//!
//! The one rule for credential text, whichever way it arrives: UTF-8 without NUL. PLAIN's
//! fields are separated by NUL and can contain none (RFC 4616 §2); the LOGIN mechanism's and
//! the LOGIN command's ([`text_field`]) must not either. A NUL would smuggle a separator into
//! lookups and log lines, and some hash schemes stop at it or repeat the password around it
//! (bcrypt takes `secret\0secret` for `secret`).
//!
//! Pure functions over bytes: no I/O, no logging, no password checks. Every input here is
//! untrusted and may be any length or content; nothing panics on it.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The LOGIN mechanism's first challenge, base64 of `Username:`.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// The LOGIN mechanism's second challenge, base64 of `Password:`.
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// Mechanisms this server offers, in the order advertised.
pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN"];

/// Why a SASL exchange ended without credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client sent `*`: answer `BAD` (RFC 9051 §6.2.2).
    #[error("authentication cancelled")]
    Cancelled,
    /// Not valid base64: answer `BAD`.
    #[error("invalid base64 in SASL response")]
    BadBase64,
    /// Decoded, but not a well-formed message for the mechanism: answer `NO`/`BAD`.
    #[error("malformed SASL message")]
    Malformed,
    /// PLAIN with an authorization identity other than the authenticated one. Proxy
    /// authorization is not supported: answer `NO [AUTHORIZATIONFAILED]` (RFC 5530).
    #[error("authorization identity differs from authentication identity")]
    AuthzidMismatch,
}

/// Splits a PLAIN message `authzid NUL authcid NUL passwd` (RFC 4616 §2).
/// `None` unless there are exactly two NULs (so no part holds one), all parts are UTF-8, and
/// authcid is non-empty.
fn decode_plain(data: &[u8]) -> Option<(String, String, String)> {
    let mut parts = data.split(|&b| b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let passwd = parts.next()?;
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    Some((
        String::from_utf8(authzid.to_vec()).ok()?,
        String::from_utf8(authcid.to_vec()).ok()?,
        String::from_utf8(passwd.to_vec()).ok()?,
    ))
}

/// PLAIN credentials `(user, password)` from a decoded message, refusing an authzid that is
/// neither empty nor the same as the authcid.
pub fn plain_credentials(data: &[u8]) -> Result<(String, String), SaslError> {
    let (authzid, authcid, passwd) = decode_plain(data).ok_or(SaslError::Malformed)?;
    if !authzid.is_empty() && authzid != authcid {
        return Err(SaslError::AuthzidMismatch);
    }
    Ok((authcid, passwd))
}

/// Decodes one client response to a challenge (the line without CRLF): `*` cancels,
/// anything else must be base64 (an empty line is an empty response).
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii_end();
    match line {
        b"*" => Err(SaslError::Cancelled),
        _ => STANDARD.decode(line).map_err(|_| SaslError::BadBase64),
    }
}

/// A user name or password as text: UTF-8 without NUL (see the module doc). For the LOGIN
/// mechanism's decoded responses and the LOGIN command's arguments.
pub fn text_field(bytes: Vec<u8>) -> Result<String, SaslError> {
    if bytes.contains(&0) {
        return Err(SaslError::Malformed);
    }
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_table() {
        type Row = (
            &'static [u8],
            Option<(&'static str, &'static str, &'static str)>,
        );
        let table: &[Row] = &[
            (b"\0ann\0secret", Some(("", "ann", "secret"))),
            (b"ann\0ann\0secret", Some(("ann", "ann", "secret"))),
            (b"admin\0ann\0secret", Some(("admin", "ann", "secret"))),
            (b"\0ann\0", Some(("", "ann", ""))),
            (b"\0ann\0p\xc3\xa4ss", Some(("", "ann", "p\u{e4}ss"))),
            (b"\0\0secret", None),
            (b"\0ann", None),
            (b"ann", None),
            (b"", None),
            (b"\0ann\0sec\0ret", None),
            (b"\0a\xffn\0secret", None),
            (b"\0ann\0\xff", None),
        ];
        for (input, want) in table {
            let got = decode_plain(input);
            let want = want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn plain_credentials_table() {
        type Row = (
            &'static [u8],
            Result<(&'static str, &'static str), SaslError>,
        );
        let table: &[Row] = &[
            (b"\0ann\0pw", Ok(("ann", "pw"))),
            (b"ann\0ann\0pw", Ok(("ann", "pw"))),
            (b"root\0ann\0pw", Err(SaslError::AuthzidMismatch)),
            (b"ann\0pw", Err(SaslError::Malformed)),
        ];
        for (input, want) in table {
            let want = want.clone().map(|(u, p)| (u.to_string(), p.to_string()));
            assert_eq!(plain_credentials(input), want, "{input:?}");
        }
    }

    #[test]
    fn responses() {
        assert_eq!(decode_response(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_response(b"*  "), Err(SaslError::Cancelled));
        assert_eq!(decode_response(b""), Ok(vec![]));
        // `=` (empty) belongs to the initial response only (RFC 4959).
        assert_eq!(decode_response(b"="), Err(SaslError::BadBase64));
        assert_eq!(
            decode_response(b" AGFubgBzZWNyZXQ="),
            Err(SaslError::BadBase64)
        );
        assert_eq!(
            decode_response(b"AGFubgBzZWNyZXQ="),
            Ok(b"\0ann\0secret".to_vec())
        );
        assert_eq!(
            decode_response(b"AGFubgBzZWNyZXQ= "),
            Ok(b"\0ann\0secret".to_vec())
        );
        assert_eq!(decode_response(b"!!!"), Err(SaslError::BadBase64));
        assert_eq!(
            decode_response(b"AGFubgBzZWNyZXQ"),
            Err(SaslError::BadBase64)
        );
        assert_eq!(STANDARD.encode(b"Username:"), LOGIN_USERNAME_CHALLENGE);
        assert_eq!(STANDARD.encode(b"Password:"), LOGIN_PASSWORD_CHALLENGE);
    }

    #[test]
    fn text_fields() {
        assert_eq!(text_field(b"ann".to_vec()), Ok("ann".into()));
        assert_eq!(text_field(b"p\xc3\xa4ss".to_vec()), Ok("p\u{e4}ss".into()));
        assert_eq!(text_field(Vec::new()), Ok(String::new()));
        assert_eq!(text_field(b"a\0b".to_vec()), Err(SaslError::Malformed));
        assert_eq!(text_field(b"secret\0".to_vec()), Err(SaslError::Malformed));
        assert_eq!(text_field(b"\xff".to_vec()), Err(SaslError::Malformed));
    }
}
