//! QUOTA (RFC 9208): GETQUOTAROOT and GETQUOTA answered from the Maildir++
//! `maildirsize` file (`store::maildir::quota`), which Dovecot's and
//! Courier's quota code and maildrop keep too, so every writer counts the
//! same numbers; SETQUOTA is refused unless the operator allows it.
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
//! (`store::apply_quota`), or from a `maildirsize` another program wrote;
//! with `mail.quota_set` a user may set their own (SETQUOTA, `QUOTASET`).
//! How other programs' deliveries are counted and when the user is warned
//! is `store::quota_upkeep`'s; `nestbox quota` shows and recounts the
//! same file from a shell.

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

/// Whether the user has the quota root: when something is limited, and
/// always when they may set limits themselves (SETQUOTA needs a root).
fn root_exists(s: &Session, res: &[(&str, u64, u64)]) -> bool {
    !res.is_empty() || s.shared.config.mail.quota_set
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
    let has_root = root_exists(s, &res);
    let roots: &[&str] = if has_root { &[ROOT] } else { &[] };
    s.data(&Data::QuotaRoot {
        mailbox: wire.as_bytes(),
        roots,
    });
    if has_root {
        s.data(&Data::Quota {
            root: ROOT,
            resources: &res,
        });
    }
    Ok(Status::ok("GETQUOTAROOT completed."))
}

pub async fn getquota(s: &mut Session, root: String) -> CmdResult {
    let res = load_from(s.store()?).await?;
    if root != ROOT || !root_exists(s, &res) {
        return Err(Status::no(Some(Code::Nonexistent), "No such quota root."));
    }
    s.data(&Data::Quota {
        root: ROOT,
        resources: &res,
    });
    Ok(Status::ok("GETQUOTA completed."))
}

/// SETQUOTA (RFC 9208 §4.1.3), when the operator lets users set their own
/// limits (`mail.quota_set`, advertised as `QUOTASET`): the limits named
/// replace all the old ones (a resource left out has no limit), written
/// into `maildirsize` with the use counted again; the new state comes back
/// as an untagged QUOTA. STORAGE 0 cannot be kept (Maildir++ reads a 0
/// limit as none), so it is refused rather than turned into "unlimited".
pub async fn setquota(s: &mut Session, root: String, limits: Vec<(String, u64)>) -> CmdResult {
    if !s.shared.config.mail.quota_set {
        return Err(Status::no(
            Some(Code::NoPerm),
            "Quotas are set by the server's operator.",
        ));
    }
    if root != ROOT {
        return Err(Status::no(Some(Code::Nonexistent), "No such quota root."));
    }
    let (mut bytes, mut count) = (None, None);
    for (name, limit) in limits {
        let slot = match name.to_ascii_uppercase().as_str() {
            "STORAGE" => &mut bytes,
            "MESSAGE" => &mut count,
            _ => {
                return Err(Status::no(
                    None,
                    format!("Resource {name} is not supported (STORAGE and MESSAGE are)."),
                ));
            }
        };
        if slot.is_some() {
            return Err(Status::bad(format!("Resource {name} given twice.")));
        }
        if limit == 0 {
            return Err(Status::no(
                None,
                "A limit of 0 cannot be kept in maildirsize; leave the resource out for no limit.",
            ));
        }
        *slot = Some(limit);
    }
    let bytes = bytes.map(|kib| kib.saturating_mul(1024));
    let store = s.store()?;
    let q = blocking(move || store.set_quota_limits(bytes, count)).await??;
    let res = resources(&q);
    s.data(&Data::Quota {
        root: ROOT,
        resources: &res,
    });
    Ok(Status::ok("SETQUOTA completed."))
}
