//! The POP3 command grammar (RFC 1939 §3, RFC 2449 §3, RFC 2595 §4,
//! RFC 5034 §4): one line, without its CRLF, in; a typed [`Command`] or a
//! [`ParseError`] out. Pure: no I/O, no state; which state a command is
//! legal in is the session's business.
//!
//! Keywords are case-insensitive. Arguments are separated by one or more
//! spaces (RFC 1939 says one; clients that send two are common enough, and
//! nothing is ambiguous). `USER` and `PASS` take the rest of the line as
//! their argument: user names are usually addresses, passwords may contain
//! spaces (RFC 1939 §7 leaves it open; Dovecot does the same). A message
//! number is a decimal number; one that does not fit is a number no
//! maildrop has (answered "no such message"), not a syntax error.
//!
//! Never panics on any input; a line longer than the session's limit never
//! gets here (the session's line reader refuses it).

/// One POP3 command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS secret`.
    Pass(String),
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        name: String,
        digest: String,
    },
    /// `AUTH [mechanism [initial-response]]` (RFC 5034). Without a
    /// mechanism: list the mechanisms (the form before RFC 5034 that some
    /// clients still send).
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Capa,
    Stls,
    Quit,
    Stat,
    /// `LIST [msg]`.
    List(Option<MsgNo>),
    Retr(MsgNo),
    Dele(MsgNo),
    Noop,
    Rset,
    /// `TOP msg n`: the header and the first `n` lines of the body.
    Top(MsgNo, u64),
    /// `UIDL [msg]`.
    Uidl(Option<MsgNo>),
}

/// A message number as the client wrote it: 1-based; `u32::MAX` stands
/// for any number too large to be one (no maildrop holds that many).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgNo(pub u32);

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No such command.
    Unknown,
    /// A known command with wrong arguments; the text says what is wrong.
    Syntax(&'static str),
}

impl Command {
    /// The keyword, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Quit => "QUIT",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Top(..) => "TOP",
            Command::Uidl(_) => "UIDL",
        }
    }
}

/// Parses one command line (without CRLF; a trailing CR is tolerated).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    if keyword.is_empty() || keyword.len() > 4 {
        return Err(ParseError::Unknown);
    }
    let mut kw = [0u8; 4];
    kw[..keyword.len()].copy_from_slice(keyword);
    kw.make_ascii_uppercase();
    let kw = &kw[..keyword.len()];
    let args = Args::new(rest);
    let cmd = match kw {
        b"USER" => Command::User(args.rest_text("USER needs a user name.")?),
        b"PASS" => Command::Pass(args.rest_text_raw("PASS needs a password.")?),
        b"APOP" => {
            let mut a = args;
            let name = a.word_text("APOP needs a name and a digest.")?;
            let digest = a.word_text("APOP needs a name and a digest.")?;
            a.end("APOP takes a name and a digest.")?;
            Command::Apop { name, digest }
        }
        b"AUTH" => {
            let mut a = args;
            let mechanism = a.opt_word_text();
            let initial = a.opt_word_text();
            a.end("AUTH takes a mechanism and an initial response.")?;
            Command::Auth { mechanism, initial }
        }
        b"CAPA" => args.none(Command::Capa, "CAPA takes no arguments.")?,
        b"STLS" => args.none(Command::Stls, "STLS takes no arguments.")?,
        b"QUIT" => args.none(Command::Quit, "QUIT takes no arguments.")?,
        b"STAT" => args.none(Command::Stat, "STAT takes no arguments.")?,
        b"NOOP" => args.none(Command::Noop, "NOOP takes no arguments.")?,
        b"RSET" => args.none(Command::Rset, "RSET takes no arguments.")?,
        b"LIST" => {
            let mut a = args;
            let n = a.opt_msg()?;
            a.end("LIST takes at most one message number.")?;
            Command::List(n)
        }
        b"UIDL" => {
            let mut a = args;
            let n = a.opt_msg()?;
            a.end("UIDL takes at most one message number.")?;
            Command::Uidl(n)
        }
        b"RETR" | b"DELE" => {
            let mut a = args;
            let n = a
                .opt_msg()?
                .ok_or(ParseError::Syntax("A message number is required."))?;
            a.end("Only one message number is allowed.")?;
            if kw == b"RETR" {
                Command::Retr(n)
            } else {
                Command::Dele(n)
            }
        }
        b"TOP" => {
            let mut a = args;
            let n = a.opt_msg()?.ok_or(ParseError::Syntax(
                "TOP needs a message number and a line count.",
            ))?;
            let lines = a
                .word()
                .ok_or(ParseError::Syntax(
                    "TOP needs a message number and a line count.",
                ))
                .and_then(|w| number(w).ok_or(ParseError::Syntax("Invalid line count.")))?;
            a.end("TOP takes a message number and a line count.")?;
            Command::Top(n, lines)
        }
        _ => return Err(ParseError::Unknown),
    };
    Ok(cmd)
}

/// A decimal number of digits only; saturates at `u64::MAX`.
fn number(w: &[u8]) -> Option<u64> {
    if w.is_empty() || w.len() > 64 || !w.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(w.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// The arguments after a keyword.
struct Args<'a> {
    rest: &'a [u8],
}

impl<'a> Args<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Args { rest }
    }

    fn word(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let s = &self.rest[start..];
        let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
        self.rest = &s[end..];
        Some(&s[..end])
    }

    fn opt_word_text(&mut self) -> Option<String> {
        self.word().map(|w| String::from_utf8_lossy(w).into_owned())
    }

    fn word_text(&mut self, missing: &'static str) -> Result<String, ParseError> {
        self.opt_word_text().ok_or(ParseError::Syntax(missing))
    }

    fn opt_msg(&mut self) -> Result<Option<MsgNo>, ParseError> {
        match self.word() {
            None => Ok(None),
            Some(w) => {
                let n = number(w).ok_or(ParseError::Syntax("Invalid message number."))?;
                Ok(Some(MsgNo(u32::try_from(n).unwrap_or(u32::MAX))))
            }
        }
    }

    fn end(&self, text: &'static str) -> Result<(), ParseError> {
        if self.rest.iter().all(|&b| b == b' ') {
            Ok(())
        } else {
            Err(ParseError::Syntax(text))
        }
    }

    fn none(self, cmd: Command, text: &'static str) -> Result<Command, ParseError> {
        self.end(text).map(|()| cmd)
    }

    /// The rest of the line, leading spaces dropped (a user name).
    fn rest_text(self, missing: &'static str) -> Result<String, ParseError> {
        let start = self
            .rest
            .iter()
            .position(|&b| b != b' ')
            .ok_or(ParseError::Syntax(missing))?;
        let s = &self.rest[start..];
        let end = s.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        Ok(String::from_utf8_lossy(&s[..end]).into_owned())
    }

    /// The rest of the line exactly as sent after the one separating space
    /// (a password may start or end with a space). Not UTF-8: refused by
    /// the session as a wrong password would be.
    fn rest_text_raw(self, missing: &'static str) -> Result<String, ParseError> {
        if self.rest.is_empty() {
            return Err(ParseError::Syntax(missing));
        }
        Ok(String::from_utf8_lossy(self.rest).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_table() {
        let ok: &[(&[u8], Command)] = &[
            (b"USER alice", Command::User("alice".into())),
            (
                b"user  alice@example.org ",
                Command::User("alice@example.org".into()),
            ),
            (b"PASS two words ", Command::Pass("two words ".into())),
            (b"PASS  x", Command::Pass(" x".into())),
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                Command::Apop {
                    name: "mrose".into(),
                    digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
                },
            ),
            (
                b"AUTH",
                Command::Auth {
                    mechanism: None,
                    initial: None,
                },
            ),
            (
                b"auth plain AGFsaWNlAHNlY3JldA==",
                Command::Auth {
                    mechanism: Some("plain".into()),
                    initial: Some("AGFsaWNlAHNlY3JldA==".into()),
                },
            ),
            (b"CAPA", Command::Capa),
            (b"stls\r", Command::Stls),
            (b"QUIT", Command::Quit),
            (b"STAT", Command::Stat),
            (b"LIST", Command::List(None)),
            (b"LIST 2", Command::List(Some(MsgNo(2)))),
            (b"LIST 0", Command::List(Some(MsgNo(0)))),
            (b"LIST 99999999999", Command::List(Some(MsgNo(u32::MAX)))),
            (b"RETR 1", Command::Retr(MsgNo(1))),
            (b"DELE 7", Command::Dele(MsgNo(7))),
            (b"NOOP", Command::Noop),
            (b"RSET", Command::Rset),
            (b"TOP 1 0", Command::Top(MsgNo(1), 0)),
            (b"TOP 1  10", Command::Top(MsgNo(1), 10)),
            (b"UIDL", Command::Uidl(None)),
            (b"UIDL 3", Command::Uidl(Some(MsgNo(3)))),
        ];
        for (line, want) in ok {
            assert_eq!(
                parse(line).as_ref(),
                Ok(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"FOO",
            b"RETRX 1",
            b"RETR",
            b"RETR x",
            b"RETR -1",
            b"RETR 1 2",
            b"DELE",
            b"TOP 1",
            b"TOP 1 x",
            b"TOP x 1",
            b"LIST a",
            b"STAT 1",
            b"USER",
            b"USER   ",
            b"PASS",
            b"APOP mrose",
            b"AUTH a b c",
            b"STLS now",
            b"QUIT now",
        ];
        for line in bad {
            assert!(parse(line).is_err(), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse(b"XTND"), Err(ParseError::Unknown));
        assert!(matches!(parse(b"RETR x"), Err(ParseError::Syntax(_))));
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&line);
        }

        #[test]
        fn numbers_round_trip(n in 1u32..u32::MAX, m in any::<u32>()) {
            let line = format!("TOP {n} {m}");
            prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Top(MsgNo(n), u64::from(m))));
        }
    }
}
