//! The commands that change a set of messages: STORE (with CONDSTORE's
//! `UNCHANGEDSINCE`, RFC 7162 §3.1.3), COPY and MOVE (RFC 6851).

use super::{P, R, bad};
use crate::flags::FlagOp;
use crate::proto::chars::is_atom_char;
use crate::proto::command::*;

impl P<'_> {
    /// `copy = "COPY" SP sequence-set SP mailbox`, and the same for `move`.
    pub(super) fn copy_move(&mut self, uid: bool, is_move: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(if is_move {
            CommandBody::Move { uid, set, mailbox }
        } else {
            CommandBody::Copy { uid, set, mailbox }
        })
    }

    /// `store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags`
    /// (RFC 7162 §3.1.3), `store-att-flags = (["+" / "-"] "FLAGS"
    /// [".SILENT"]) SP (flag-list / (flag *(SP flag)))`.
    pub(super) fn store(&mut self, uid: bool) -> R<CommandBody> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            for (name, v) in self.paren_list(false, |p| {
                let k = p.keyword()?;
                p.sp()?;
                Ok((k, p.number64()?))
            })? {
                match name.as_str() {
                    "UNCHANGEDSINCE" => unchanged_since = Some(v),
                    _ => return bad(format!("Unknown STORE modifier {name}")),
                }
            }
            self.sp()?;
        }
        let att = String::from_utf8_lossy(self.take_while(is_atom_char)).to_ascii_uppercase();
        let (op, rest) = match att.as_bytes().first() {
            Some(b'+') => (FlagOp::Add, &att[1..]),
            Some(b'-') => (FlagOp::Remove, &att[1..]),
            _ => (FlagOp::Replace, &att[..]),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            "" => return Err(self.missing_or("Expected FLAGS, +FLAGS or -FLAGS")),
            _ => return bad(format!("Unknown STORE item {att}")),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while !self.at_end() {
                self.sp()?;
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(CommandBody::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::proto::command::*;

    #[test]
    fn good_store_copy_move() {
        use crate::flags::{Flag, FlagOp};
        use CommandBody as C;
        good(vec![
            (
                b"a STORE 1 +FLAGS (\\Seen)\r\n",
                C::Store {
                    uid: false,
                    set: one(1),
                    op: FlagOp::Add,
                    silent: false,
                    flags: vec![Flag::Seen],
                    unchanged_since: None,
                },
            ),
            (
                b"a UID STORE 1:2 -flags.silent \\Deleted $Junk\r\n",
                C::Store {
                    uid: true,
                    set: set(&[(V(1), V(2))]),
                    op: FlagOp::Remove,
                    silent: true,
                    flags: vec![Flag::Deleted, Flag::Keyword("$Junk".into())],
                    unchanged_since: None,
                },
            ),
            (
                b"a STORE $ (UNCHANGEDSINCE 9) FLAGS.SILENT ()\r\n",
                C::Store {
                    uid: false,
                    set: SequenceSet::Saved,
                    op: FlagOp::Replace,
                    silent: true,
                    flags: vec![],
                    unchanged_since: Some(9),
                },
            ),
            (
                b"a STORE 1 FLAGS (\\Answered \\Flagged \\Draft \\Recent)\r\n",
                C::Store {
                    uid: false,
                    set: one(1),
                    op: FlagOp::Replace,
                    silent: false,
                    flags: vec![
                        Flag::Answered,
                        Flag::Flagged,
                        Flag::Draft,
                        Flag::Extension("Recent".into()),
                    ],
                    unchanged_since: None,
                },
            ),
            (
                b"a COPY 1:2 Trash\r\n",
                C::Copy {
                    uid: false,
                    set: set(&[(V(1), V(2))]),
                    mailbox: "Trash".into(),
                },
            ),
            (
                b"a UID COPY $ \"A B\"\r\n",
                C::Copy {
                    uid: true,
                    set: SequenceSet::Saved,
                    mailbox: "A B".into(),
                },
            ),
            (
                b"a MOVE 5:3 x\r\n",
                C::Move {
                    uid: false,
                    set: set(&[(V(5), V(3))]),
                    mailbox: "x".into(),
                },
            ),
            (
                b"a UID MOVE *:1 x\r\n",
                C::Move {
                    uid: true,
                    set: set(&[(S, V(1))]),
                    mailbox: "x".into(),
                },
            ),
        ]);
    }

    #[test]
    fn bad_store() {
        bad(&[
            (
                b"a STORE 1 FLAG (\\Seen)\r\n",
                Some("a"),
                "Unknown STORE item FLAG",
            ),
            (
                b"a STORE 1 +FLAGS (\\Seen\r\n",
                Some("a"),
                "Missing argument",
            ),
        ]);
    }
}
