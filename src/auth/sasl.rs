//! SASL helpers for IMAP `AUTHENTICATE` (and for POP3 `AUTH` once POP3, which is planned,
//! is served): the PLAIN message (RFC 4616), the LOGIN mechanism's two prompts
//! (draft-murchison-sasl-login), and the base64 client responses with `*` (cancel,
//! RFC 9051 §6.2.2) and `=` (empty initial response, RFC 4959 SASL-IR).
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
/// `None` unless there are exactly two NULs, all parts are UTF-8, and authcid is non-empty.
pub fn decode_plain(data: &[u8]) -> Option<(String, String, String)> {
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

/// Decodes one client response line (without CRLF): `*` cancels, `=` is an empty
/// initial response (SASL-IR), anything else must be base64.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii();
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ => STANDARD.decode(line).map_err(|_| SaslError::BadBase64),
    }
}

/// A LOGIN-mechanism username or password response, decoded to text.
pub fn decode_login_field(line: &[u8]) -> Result<String, SaslError> {
    let bytes = decode_response(line)?;
    // NUL inside would be a way to smuggle separators into later log lines or lookups.
    if bytes.contains(&0) {
        return Err(SaslError::Malformed);
    }
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}

/// Base64 for a server challenge.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
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
        assert_eq!(decode_response(b"="), Ok(vec![]));
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
        assert_eq!(decode_login_field(b"YW5u"), Ok("ann".into()));
        assert_eq!(decode_login_field(b"YQBi"), Err(SaslError::Malformed));
        assert_eq!(decode_login_field(b"/w=="), Err(SaslError::Malformed));
        assert_eq!(encode(b"Username:"), LOGIN_USERNAME_CHALLENGE);
        assert_eq!(encode(b"Password:"), LOGIN_PASSWORD_CHALLENGE);
    }
}
