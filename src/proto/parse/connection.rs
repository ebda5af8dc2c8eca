//! The commands about the connection rather than a mailbox: LOGIN,
//! AUTHENTICATE (RFC 4959 initial response), ENABLE (RFC 5161), ID
//! (RFC 2971) and COMPRESS (RFC 4978). What a mechanism's later responses mean is `auth::sasl`'s;
//! only the initial response on the command line is decoded here.

use base64::Engine as _;

use super::{Fail, P, R, bad};
use crate::proto::command::*;

impl P<'_> {
    /// `login = "LOGIN" SP userid SP password` (both astrings, UTF-8).
    pub(super) fn login(&mut self) -> R<CommandBody> {
        self.sp()?;
        let username = Self::utf8(self.astring()?)?;
        self.sp()?;
        let password = Self::utf8(self.astring()?)?;
        Ok(CommandBody::Login { username, password })
    }

    /// `enable = "ENABLE" 1*(SP capability)` (RFC 5161).
    pub(super) fn enable(&mut self) -> R<CommandBody> {
        let mut caps = Vec::new();
        while !self.at_end() || caps.is_empty() {
            self.sp()?;
            caps.push(String::from_utf8_lossy(self.atom()?).into_owned());
        }
        Ok(CommandBody::Enable(caps))
    }

    /// `compress = "COMPRESS" SP algorithm` (RFC 4978 §5). The grammar's
    /// `algorithm` is only `"DEFLATE"`; any atom is read here so the
    /// session can say which mechanism it does not know.
    pub(super) fn compress(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mechanism = String::from_utf8_lossy(self.atom()?).to_ascii_uppercase();
        Ok(CommandBody::Compress(mechanism))
    }

    /// `id = "ID" SP id-params-list` (RFC 2971):
    /// `"(" string SP nstring *(SP string SP nstring) ")" / NIL`.
    pub(super) fn id(&mut self) -> R<CommandBody> {
        self.sp()?;
        if self.peek_kw("NIL") {
            self.i += 3;
            return Ok(CommandBody::Id(None));
        }
        // RFC 2971 allows `()` in practice although the ABNF does not;
        // several clients send it.
        let params = self.paren_list(true, |p| {
            let k = String::from_utf8_lossy(&p.string()?).into_owned();
            p.sp()?;
            let v = p
                .nstring()?
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            Ok((k, v))
        })?;
        Ok(CommandBody::Id(Some(params)))
    }

    /// `authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]`,
    /// `initial-resp = base64 / "="` (RFC 4959).
    pub(super) fn authenticate(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mechanism = String::from_utf8_lossy(self.atom()?).to_ascii_uppercase();
        let mut initial_response = None;
        if !self.at_end() {
            self.sp()?;
            if self.eat(b'=') {
                initial_response = Some(Vec::new());
            } else {
                let b = self
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
                // An empty response is spelled `=`; nothing at all is wrong.
                if b.is_empty() {
                    return bad("Invalid base64 in initial response");
                }
                let data = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| Fail::Bad("Invalid base64 in initial response".into()))?;
                initial_response = Some(data);
            }
        }
        Ok(CommandBody::Authenticate {
            mechanism,
            initial_response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::proto::command::*;

    #[test]
    fn good_connection_commands() {
        use CommandBody as C;
        good(vec![
            (b"a ID NIL\r\n", C::Id(None)),
            (b"a ID ()\r\n", C::Id(Some(vec![]))),
            (
                b"a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n",
                C::Id(Some(vec![
                    ("name".into(), Some("Thunderbird".into())),
                    ("version".into(), None),
                ])),
            ),
            (
                b"a AUTHENTICATE PLAIN\r\n",
                C::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial_response: None,
                },
            ),
            (
                b"a authenticate plain AGJvYgBzZWNyZXQ=\r\n",
                C::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial_response: Some(b"\0bob\0secret".to_vec()),
                },
            ),
            (
                b"a AUTHENTICATE EXTERNAL =\r\n",
                C::Authenticate {
                    mechanism: "EXTERNAL".into(),
                    initial_response: Some(vec![]),
                },
            ),
            (
                b"a LOGIN bob secret\r\n",
                C::Login {
                    username: "bob".into(),
                    password: "secret".into(),
                },
            ),
            (
                b"a LOGIN \"bob@x.org\" \"p\\\"w\\\\d\"\r\n",
                C::Login {
                    username: "bob@x.org".into(),
                    password: "p\"w\\d".into(),
                },
            ),
            (
                b"a LOGIN {3}\r\nbob {5+}\r\np w\"d\r\n",
                C::Login {
                    username: "bob".into(),
                    password: "p w\"d".into(),
                },
            ),
            (
                b"a LOGIN \"j\xc3\xb6rg\" x\r\n",
                C::Login {
                    username: "jörg".into(),
                    password: "x".into(),
                },
            ),
            (
                b"a ENABLE CONDSTORE\r\n",
                C::Enable(vec!["CONDSTORE".into()]),
            ),
            (
                b"a ENABLE UTF8=ACCEPT IMAP4rev2\r\n",
                C::Enable(vec!["UTF8=ACCEPT".into(), "IMAP4rev2".into()]),
            ),
            (b"a COMPRESS DEFLATE\r\n", C::Compress("DEFLATE".into())),
            (b"a compress deflate\r\n", C::Compress("DEFLATE".into())),
            // Not `algorithm`, but an atom: the session answers it BAD by name.
            (b"a COMPRESS LZ4\r\n", C::Compress("LZ4".into())),
        ]);
    }

    #[test]
    fn bad_connection_commands() {
        bad(&[
            (b"a LOGIN bob\r\n", Some("a"), "Missing argument"),
            (
                b"a AUTHENTICATE PLAIN !!\r\n",
                Some("a"),
                "Invalid base64 in initial response",
            ),
            (
                b"a AUTHENTICATE PLAIN AGJ\r\n",
                Some("a"),
                "Invalid base64 in initial response",
            ),
            (b"a ENABLE\r\n", Some("a"), "Missing argument"),
            (b"a COMPRESS\r\n", Some("a"), "Missing argument"),
            (
                b"a COMPRESS DEFLATE 9\r\n",
                Some("a"),
                "Unexpected extra arguments",
            ),
            (b"a COMPRESS \"DEFLATE\"\r\n", Some("a"), "Expected an atom"),
        ]);
    }
}
