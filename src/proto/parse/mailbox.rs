//! The mailbox commands' arguments: mailbox names and LIST patterns,
//! SELECT/EXAMINE parameters, CREATE (RFC 6154 `USE`), RENAME, LIST
//! (RFC 5258 selection and return options, RFC 5819 `STATUS`), LSUB and
//! STATUS items. Names come back as the client spelled them (`INBOX` is
//! not folded, [`crate::proto::command::MailboxArg`] says why).
//!
//! ```text
//! mailbox       = "INBOX" / astring
//! list-mailbox  = 1*list-char / string
//! ```

use super::{P, R, bad};
use crate::proto::chars::is_list_char;
use crate::proto::command::*;

impl P<'_> {
    /// `mailbox` (an astring, decoded; `INBOX` not folded).
    pub(super) fn mailbox(&mut self) -> R<String> {
        Self::utf8(self.astring()?)
    }

    /// `list-mailbox = 1*list-char / string`.
    pub(super) fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"' | b'{') => Self::utf8(self.string()?),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return Err(self.missing_or("Expected a mailbox pattern"));
                }
                Self::utf8(a.to_vec())
            }
        }
    }

    /// `select = "SELECT" SP mailbox [select-params]` (RFC 7162 §3.2.8).
    pub(super) fn select(&mut self, read_only: bool) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let (mut condstore, mut qresync) = (false, None);
        if !self.at_end() {
            self.sp()?;
            self.paren_list(false, |p| match p.keyword()?.as_str() {
                "CONDSTORE" => {
                    condstore = true;
                    Ok(())
                }
                "QRESYNC" if qresync.is_none() => {
                    p.sp()?;
                    qresync = Some(p.qresync()?);
                    Ok(())
                }
                other => bad(format!("Unsupported select parameter {other}")),
            })?;
        }
        Ok(CommandBody::Select {
            mailbox,
            read_only,
            condstore,
            qresync,
        })
    }

    /// `"(" uidvalidity SP mod-sequence-value [SP known-uids]
    /// [SP seq-match-data] ")"` (RFC 7162 §7); `*` is not allowed in the
    /// sets.
    fn qresync(&mut self) -> R<Qresync> {
        self.expect(b'(')?;
        let uidvalidity = self.nz_number()?;
        self.sp()?;
        let modseq = match self.number64()? {
            0 => return bad("QRESYNC mod-sequence must not be zero"),
            m => m,
        };
        let mut q = Qresync {
            uidvalidity,
            modseq,
            known_uids: None,
            seq_match: None,
        };
        if self.eat(b' ') {
            if self.peek() != Some(b'(') {
                q.known_uids = Some(self.set_without_star()?);
                if self.eat(b' ') {
                    q.seq_match = Some(self.seq_match()?);
                }
            } else {
                q.seq_match = Some(self.seq_match()?);
            }
        }
        self.expect(b')')?;
        Ok(q)
    }

    /// `seq-match-data = "(" known-sequence-set SP known-uid-set ")"`.
    fn seq_match(&mut self) -> R<(SequenceSet, SequenceSet)> {
        self.expect(b'(')?;
        let seqs = self.set_without_star()?;
        self.sp()?;
        let uids = self.set_without_star()?;
        self.expect(b')')?;
        Ok((seqs, uids))
    }

    fn set_without_star(&mut self) -> R<SequenceSet> {
        let set = self.seq_set()?;
        match &set {
            SequenceSet::Ranges(rs)
                if rs
                    .iter()
                    .all(|&(a, b)| a != SeqNum::Asterisk && b != SeqNum::Asterisk) =>
            {
                Ok(set)
            }
            _ => bad("No * or $ in QRESYNC's sets"),
        }
    }

    /// `create = "CREATE" SP mailbox [SP "(" create-param ")"]`, only the
    /// `USE (...)` parameter of RFC 6154 §3 is known.
    pub(super) fn create(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut special_use = Vec::new();
        if !self.at_end() {
            self.sp()?;
            let params = self.paren_list(false, |p| {
                let name = p.keyword()?;
                if name != "USE" {
                    return bad(format!("Unsupported CREATE parameter {name}"));
                }
                p.sp()?;
                p.paren_list(true, |p| {
                    p.expect(b'\\')?;
                    let a = p.atom()?;
                    Ok(format!("\\{}", String::from_utf8_lossy(a)))
                })
            })?;
            special_use = params.into_iter().flatten().collect();
        }
        Ok(CommandBody::Create {
            mailbox,
            special_use,
        })
    }

    /// RFC 5258 §6: `list = "LIST" [SP list-select-opts] SP mailbox SP
    /// mbox-or-pat [SP list-return-opts]`.
    pub(super) fn list(&mut self) -> R<ListCommand> {
        let mut cmd = ListCommand::default();
        self.sp()?;
        if self.peek() == Some(b'(') {
            cmd.extended = true;
            let mut base = false;
            for opt in self.paren_list(true, Self::keyword)? {
                match opt.as_str() {
                    "SUBSCRIBED" => (cmd.select.subscribed, base) = (true, true),
                    // Not a base for RECURSIVEMATCH: it only widens the
                    // set (RFC 5258 §3).
                    "REMOTE" => cmd.select.remote = true,
                    "SPECIAL-USE" => (cmd.select.special_use, base) = (true, true),
                    "RECURSIVEMATCH" => cmd.select.recursive_match = true,
                    _ => return bad(format!("Unknown LIST selection option {opt}")),
                }
            }
            // RFC 5258 §3: RECURSIVEMATCH alone, or only with REMOTE, is a
            // syntax error.
            if cmd.select.recursive_match && !base {
                return bad("RECURSIVEMATCH needs another selection option");
            }
            self.sp()?;
        }
        cmd.reference = self.mailbox()?;
        self.sp()?;
        if self.peek() == Some(b'(') {
            cmd.extended = true;
            cmd.patterns = self.paren_list(false, Self::list_mailbox)?;
        } else {
            cmd.patterns = vec![self.list_mailbox()?];
        }
        if !self.at_end() {
            self.sp()?;
            if self.keyword()? != "RETURN" {
                return bad("Expected RETURN");
            }
            self.sp()?;
            cmd.extended = true;
            let opts = self.paren_list(true, |p| {
                let opt = p.keyword()?;
                match opt.as_str() {
                    "SUBSCRIBED" => Ok(ListRet::Subscribed),
                    "CHILDREN" => Ok(ListRet::Children),
                    "SPECIAL-USE" => Ok(ListRet::SpecialUse),
                    "STATUS" => {
                        p.sp()?;
                        let items = p.paren_list(false, Self::status_item)?;
                        Ok(ListRet::Status(items))
                    }
                    _ => bad(format!("Unknown LIST return option {opt}")),
                }
            })?;
            for o in opts {
                match o {
                    ListRet::Subscribed => cmd.ret.subscribed = true,
                    ListRet::Children => cmd.ret.children = true,
                    ListRet::SpecialUse => cmd.ret.special_use = true,
                    ListRet::Status(items) => cmd.ret.status = Some(items),
                }
            }
        }
        Ok(cmd)
    }

    /// `status-att` (RFC 9051 §9, RFC 8438, RFC 7162, RFC 7889 §4).
    pub(super) fn status_item(&mut self) -> R<StatusItem> {
        let k = self.keyword()?;
        Ok(match k.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "RECENT" => StatusItem::Recent,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "APPENDLIMIT" => StatusItem::AppendLimit,
            "MAILBOXID" => StatusItem::MailboxId,
            "DELETED-STORAGE" => StatusItem::DeletedStorage,
            _ => return bad(format!("Unknown STATUS item {k}")),
        })
    }

    /// `rename = "RENAME" SP mailbox SP mailbox`.
    pub(super) fn rename(&mut self) -> R<CommandBody> {
        self.sp()?;
        let from = self.mailbox()?;
        self.sp()?;
        let to = self.mailbox()?;
        Ok(CommandBody::Rename { from, to })
    }

    /// `lsub = "LSUB" SP mailbox SP list-mailbox`.
    pub(super) fn lsub(&mut self) -> R<CommandBody> {
        self.sp()?;
        let reference = self.mailbox()?;
        self.sp()?;
        let pattern = self.list_mailbox()?;
        Ok(CommandBody::Lsub { reference, pattern })
    }

    /// `status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"`.
    pub(super) fn status(&mut self) -> R<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        self.sp()?;
        let items = self.paren_list(false, Self::status_item)?;
        Ok(CommandBody::Status { mailbox, items })
    }
}

enum ListRet {
    Subscribed,
    Children,
    SpecialUse,
    Status(Vec<StatusItem>),
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::proto::command::*;

    #[test]
    fn good_mailbox_commands() {
        use CommandBody as C;
        good(vec![
            (b"a SELECT INBOX\r\n", C::Select { mailbox: "INBOX".into(), read_only: false, condstore: false, qresync: None }),
            (b"a select inbox\r\n", C::Select { mailbox: "inbox".into(), read_only: false, condstore: false, qresync: None }),
            (
                b"a EXAMINE \"Sent Items\" (CONDSTORE)\r\n",
                C::Select { mailbox: "Sent Items".into(), read_only: true, condstore: true, qresync: None },
            ),
            (
                b"a SELECT x (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
                C::Select {
                    mailbox: "x".into(),
                    read_only: false,
                    condstore: false,
                    qresync: Some(Qresync {
                        uidvalidity: 67890007,
                        modseq: 20050715194045000,
                        known_uids: Some(SequenceSet::Ranges(vec![
                            (SeqNum::Value(41), SeqNum::Value(41)),
                            (SeqNum::Value(43), SeqNum::Value(211)),
                            (SeqNum::Value(214), SeqNum::Value(541)),
                        ])),
                        seq_match: None,
                    }),
                },
            ),
            (
                b"a EXAMINE x (CONDSTORE QRESYNC (1 2 (1,3 10,30)))\r\n",
                C::Select {
                    mailbox: "x".into(),
                    read_only: true,
                    condstore: true,
                    qresync: Some(Qresync {
                        uidvalidity: 1,
                        modseq: 2,
                        known_uids: None,
                        seq_match: Some((
                            SequenceSet::Ranges(vec![
                                (SeqNum::Value(1), SeqNum::Value(1)),
                                (SeqNum::Value(3), SeqNum::Value(3)),
                            ]),
                            SequenceSet::Ranges(vec![
                                (SeqNum::Value(10), SeqNum::Value(10)),
                                (SeqNum::Value(30), SeqNum::Value(30)),
                            ]),
                        )),
                    }),
                },
            ),
            (
                b"a SELECT Entw&APw-rfe\r\n",
                C::Select { mailbox: "Entw&APw-rfe".into(), read_only: false, condstore: false, qresync: None },
            ),
            (
                "a SELECT \"Entwürfe\"\r\n".as_bytes(),
                C::Select { mailbox: "Entwürfe".into(), read_only: false, condstore: false, qresync: None },
            ),
            (
                "a SELECT Entwürfe\r\n".as_bytes(),
                C::Select { mailbox: "Entwürfe".into(), read_only: false, condstore: false, qresync: None },
            ),
            (b"a CREATE foo/bar\r\n", C::Create { mailbox: "foo/bar".into(), special_use: vec![] }),
            (
                b"a CREATE MySent (USE (\\Sent \\Archive))\r\n",
                C::Create { mailbox: "MySent".into(), special_use: vec!["\\Sent".into(), "\\Archive".into()] },
            ),
            (b"a DELETE {3}\r\nfoo\r\n", C::Delete("foo".into())),
            (b"a RENAME a \"b c\"\r\n", C::Rename { from: "a".into(), to: "b c".into() }),
            (b"a SUBSCRIBE x\r\n", C::Subscribe("x".into())),
            (b"a UNSUBSCRIBE \"\"\r\n", C::Unsubscribe("".into())),
            (b"a LIST \"\" *\r\n", C::List(list("", &["*"]))),
            (b"a LIST \"\" %/a]b\r\n", C::List(list("", &["%/a]b"]))),
            (b"a LIST ~/Mail \"%\"\r\n", C::List(list("~/Mail", &["%"]))),
            (
                b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
                C::List(ListCommand {
                    select: ListSelect { subscribed: true, recursive_match: true, ..Default::default() },
                    ret: ListReturn {
                        children: true,
                        status: Some(vec![StatusItem::Messages, StatusItem::Unseen]),
                        ..Default::default()
                    },
                    extended: true,
                    ..list("", &["INBOX", "Sent*"])
                }),
            ),
            (
                b"a LIST () \"\" % RETURN ()\r\n",
                C::List(ListCommand { extended: true, ..list("", &["%"]) }),
            ),
            (
                b"a list (special-use remote) \"\" * return (special-use subscribed)\r\n",
                C::List(ListCommand {
                    select: ListSelect { special_use: true, remote: true, ..Default::default() },
                    ret: ListReturn { special_use: true, subscribed: true, ..Default::default() },
                    extended: true,
                    ..list("", &["*"])
                }),
            ),
            (b"a LSUB \"\" *\r\n", C::Lsub { reference: "".into(), pattern: "*".into() }),
            (
                b"a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ)\r\n",
                C::Status {
                    mailbox: "INBOX".into(),
                    items: vec![
                        StatusItem::Messages,
                        StatusItem::UidNext,
                        StatusItem::UidValidity,
                        StatusItem::Unseen,
                        StatusItem::Deleted,
                        StatusItem::Size,
                        StatusItem::Recent,
                        StatusItem::HighestModSeq,
                    ],
                },
            ),
        ]);
    }

    #[test]
    fn bad_mailbox_commands() {
        bad(&[
            (b"a SELECT\r\n", Some("a"), "Missing argument"),
            (
                b"a LIST (FOO) \"\" *\r\n",
                Some("a"),
                "Unknown LIST selection option FOO",
            ),
            (
                b"a LIST (RECURSIVEMATCH) \"\" *\r\n",
                Some("a"),
                "RECURSIVEMATCH needs another selection option",
            ),
            (
                b"a LIST (REMOTE RECURSIVEMATCH) \"\" *\r\n",
                Some("a"),
                "RECURSIVEMATCH needs another selection option",
            ),
            (
                b"a LIST \"\" * RETURN (FOO)\r\n",
                Some("a"),
                "Unknown LIST return option FOO",
            ),
            (b"a LIST \"\" * FOO ()\r\n", Some("a"), "Expected RETURN"),
            (
                b"a STATUS x (FOO)\r\n",
                Some("a"),
                "Unknown STATUS item FOO",
            ),
            (
                b"a SELECT x (QRESYNC (1 0))\r\n",
                Some("a"),
                "QRESYNC mod-sequence must not be zero",
            ),
            (
                b"a SELECT x (QRESYNC (0 5))\r\n",
                Some("a"),
                "Number must not be zero",
            ),
            (
                b"a SELECT x (QRESYNC (1 5 1:*))\r\n",
                Some("a"),
                "No * or $ in QRESYNC's sets",
            ),
            (
                b"a SELECT x (QRESYNC (1 5) QRESYNC (1 5))\r\n",
                Some("a"),
                "Unsupported select parameter QRESYNC",
            ),
            (b"a SELECT x (QRESYNC)\r\n", Some("a"), "Expected a space"),
            (
                b"a CREATE x (FOO)\r\n",
                Some("a"),
                "Unsupported CREATE parameter FOO",
            ),
        ]);
    }
}
