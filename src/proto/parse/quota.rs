//! SETQUOTA (RFC 9208 §4.1, §9):
//!
//! ```text
//! setquota          = "SETQUOTA" SP quota-root-name SP setquota-list
//! setquota-list     = "(" [setquota-resource *(SP setquota-resource)] ")"
//! setquota-resource = resource-name SP resource-limit
//! resource-limit    = number64
//! ```
//!
//! Only the grammar: whether the user may set quotas is the session's.

use super::{P, R};
use crate::proto::command::*;

impl P<'_> {
    /// After `SETQUOTA`.
    pub(super) fn setquota(&mut self) -> R<CommandBody> {
        self.sp()?;
        let root = Self::utf8(self.astring()?)?;
        self.sp()?;
        let limits = self.paren_list(true, |p| {
            let name = p.keyword()?;
            p.sp()?;
            Ok((name, p.number64()?))
        })?;
        Ok(CommandBody::SetQuota { root, limits })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::proto::command::*;

    #[test]
    fn quota_commands() {
        good(vec![
            (
                b"a GETQUOTA \"User quota\"\r\n",
                CommandBody::GetQuota("User quota".into()),
            ),
            (b"a GETQUOTA \"\"\r\n", CommandBody::GetQuota(String::new())),
            (
                b"a getquotaroot INBOX\r\n",
                CommandBody::GetQuotaRoot("INBOX".into()),
            ),
            (
                b"a SETQUOTA \"User quota\" (STORAGE 512 message 1000)\r\n",
                CommandBody::SetQuota {
                    root: "User quota".into(),
                    limits: vec![("STORAGE".into(), 512), ("MESSAGE".into(), 1000)],
                },
            ),
            (
                b"a SETQUOTA \"\" ()\r\n",
                CommandBody::SetQuota {
                    root: String::new(),
                    limits: vec![],
                },
            ),
        ]);
        bad(&[
            (b"a GETQUOTA\r\n", Some("a"), "Missing argument"),
            (b"a SETQUOTA x (STORAGE)\r\n", Some("a"), "Expected a space"),
            (
                b"a SETQUOTA x (STORAGE -1)\r\n",
                Some("a"),
                "Expected a number",
            ),
        ]);
    }
}
