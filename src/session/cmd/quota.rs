//! QUOTA (RFC 9208): GETQUOTAROOT and GETQUOTA answered from the Maildir++
//! `maildirsize` file (`store::maildir::quota`), which Dovecot's and
//! Courier's quota code and maildrop keep too, so every writer counts the
//! same numbers; SETQUOTA is refused (quotas are the operator's).
//!
//! One quota root per user, named `User quota` as Dovecot names its
//! default one (clients that migrated see the same name), covering every
//! folder. STORAGE is in KiB (bytes / 1024, rounded up for usage, down for
//! the limit, as RFC 9208 §5.1 counts in units of 1024 octets); MESSAGE is
//! the message count. A resource without a limit is not listed, and a
//! Maildir without `maildirsize` (or with no limit in it) has no quota
//! root at all: `* QUOTAROOT INBOX` alone.
//!
//! The limits come from the configuration (`mail.quota`, a user's quota
//! rule, `[mail.user_quota]`), written into `maildirsize` at login
//! (`store::apply_quota`), or from a `maildirsize` another program wrote.
//! `nestbox quota` shows and recalculates the same file from a shell.
//! Planned (issue 19): the warning at 90 % and SETQUOTA when the operator
//! allows it (`QUOTASET`).

use crate::proto::data::Data;
use crate::proto::response::Code;
use crate::session::names::{canonical_inbox, from_wire, to_wire};
use crate::session::{CmdResult, Session, Status, blocking};
use crate::store::{Quota, StoreError};

/// The one quota root's name.
pub const ROOT: &str = "User quota";

/// `(resource, usage, limit)` of each limited resource; empty when nothing
/// is limited.
fn resources(q: &Quota) -> Vec<(&'static str, u64, u64)> {
    let mut v = Vec::new();
    if let Some(l) = q.bytes_limit {
        v.push(("STORAGE", q.bytes.div_ceil(1024), l / 1024));
    }
    if let Some(l) = q.count_limit {
        v.push(("MESSAGE", q.count, l));
    }
    v
}

/// The quota's resources, read off the runtime.
async fn load_from(
    store: std::sync::Arc<crate::store::MailStore>,
) -> Result<Vec<(&'static str, u64, u64)>, Status> {
    let q = blocking(move || store.quota()).await??;
    Ok(q.as_ref().map(resources).unwrap_or_default())
}

pub async fn getquotaroot(s: &mut Session, mailbox: String) -> CmdResult {
    let name = canonical_inbox(&from_wire(&mailbox, s.enabled)?);
    let store = s.store()?;
    let n = name.clone();
    let exists = blocking(move || -> Result<bool, StoreError> {
        Ok(store.list_folders()?.iter().any(|f| f.name == n))
    })
    .await??;
    if !exists {
        return Err(Status::no(Some(Code::Nonexistent), "No such mailbox."));
    }
    let res = load_from(s.store()?).await?;
    let wire = to_wire(&name, s.enabled);
    let roots: &[&str] = if res.is_empty() { &[] } else { &[ROOT] };
    s.data(&Data::QuotaRoot {
        mailbox: wire.as_bytes(),
        roots,
    });
    if !res.is_empty() {
        s.data(&Data::Quota {
            root: ROOT,
            resources: &res,
        });
    }
    Ok(Status::ok("GETQUOTAROOT completed."))
}

pub async fn getquota(s: &mut Session, root: String) -> CmdResult {
    let res = load_from(s.store()?).await?;
    if root != ROOT || res.is_empty() {
        return Err(Status::no(Some(Code::Nonexistent), "No such quota root."));
    }
    s.data(&Data::Quota {
        root: ROOT,
        resources: &res,
    });
    Ok(Status::ok("GETQUOTA completed."))
}

pub fn setquota(_s: &mut Session) -> CmdResult {
    Err(Status::no(
        Some(Code::NoPerm),
        "Quotas are set by the server's operator.",
    ))
}
