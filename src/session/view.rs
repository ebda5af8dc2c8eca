//! The selected mailbox as one session sees it.
//!
//! A [`SelectedView`] maps sequence numbers to UIDs for this session only,
//! remembers which messages are `\Recent` here, and turns changes made by
//! anyone (this session, other sessions, other programs) into this
//! session's untagged responses at the moments RFC 9051 §7.5.1 allows.
//!
//! Invariants:
//! - `uids` is strictly ascending; sequence number `n` is `uids[n-1]`.
//! - A message that vanished from the folder stays in `uids` (and keeps its
//!   sequence number) until an `EXPUNGE` for it has been sent, so numbers
//!   the client holds never shift under it mid-command.
//! - `modseq` is the folder's highest modseq at the last report; flag
//!   changes above it are still owed to the client, except those this
//!   session already reported itself (`own_reported`).

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::proto::SequenceSet;
use crate::store::{ChangeQuery, Folder, MessageMeta, StoreError, ViewStart};

use super::{Enabled, Status};

pub struct SelectedView {
    pub folder: Arc<Folder>,
    /// Canonical UTF-8 name (`INBOX`, `Lists/rust`).
    pub name: String,
    pub read_only: bool,
    /// UIDVALIDITY announced at SELECT; if the folder's changes (its
    /// uidlist was replaced), every UID the client holds is void.
    uidvalidity: u32,
    /// Shared with the folder (and so with every other session in step with
    /// it) until this session's numbering diverges: an idle session must
    /// not cost memory in proportion to the mailbox.
    uids: Arc<Vec<u32>>,
    recent: BTreeSet<u32>,
    modseq: u64,
    /// Known gone from the folder, EXPUNGE not yet sent.
    pending_expunge: BTreeSet<u32>,
    /// QRESYNC: while expunges wait to be told (`pending_expunge`), the
    /// highest modseq the client may take as synced: the one reported
    /// before the first of them was seen (see [`SelectedView::unsent_floor`]).
    unsent_floor: Option<u64>,
    /// Flag changes this session already sent (uid -> modseq). Fx-hashed:
    /// a `STORE 1:*` puts 30,000 entries in and looks them up again.
    own_reported: FxHashMap<u32, u64>,
    /// SEARCHRES saved result (`$`), as UIDs ascending.
    pub saved: Vec<u32>,
    /// The keywords this session's last FLAGS response listed (compared
    /// case-insensitively): a keyword outside them is announced with a new
    /// FLAGS response before any FETCH that carries it.
    keywords: Vec<String>,
    /// Wakes when the folder changes (IDLE).
    pub watch: tokio::sync::watch::Receiver<u64>,
    /// Live results of SEARCH/SORT with UPDATE (RFC 5267 §4.3): they end
    /// with the selection.
    pub contexts: super::context::Contexts,
    /// Counts this session as a read-write holder (see `Folder::hold_rw`).
    _rw: Option<crate::store::RwHold>,
}

impl SelectedView {
    /// A view of the folder as `start` saw it (read when the folder was
    /// opened, off the runtime); `recent` are the UIDs this session claimed
    /// as `\Recent`. Anything that changed since is reported by the first
    /// [`SelectedView::report_changes`].
    pub fn new(
        folder: Arc<Folder>,
        name: String,
        read_only: bool,
        recent: Vec<u32>,
        start: ViewStart,
        keywords: Vec<String>,
    ) -> Self {
        let watch = folder.watch();
        let rw = (!read_only).then(|| folder.hold_rw());
        SelectedView {
            uidvalidity: start.uidvalidity,
            folder,
            name,
            read_only,
            uids: start.uid_list,
            recent: recent.into_iter().collect(),
            modseq: start.highest_modseq,
            pending_expunge: BTreeSet::new(),
            unsent_floor: None,
            own_reported: FxHashMap::default(),
            saved: Vec::new(),
            keywords,
            watch,
            contexts: Default::default(),
            _rw: rw,
        }
    }

    /// EXISTS as this session knows it.
    pub fn len(&self) -> u32 {
        self.uids.len() as u32
    }

    /// Nothing calls it: it goes with [`SelectedView::len`] (clippy's
    /// `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }

    pub fn uids(&self) -> &[u32] {
        &self.uids
    }

    /// The UID list itself (a shared handle), for reading the numbering
    /// while other parts of the view change.
    pub fn uid_list(&self) -> Arc<Vec<u32>> {
        self.uids.clone()
    }

    pub fn recent_count(&self) -> u32 {
        self.recent.len() as u32
    }

    pub fn is_recent(&self, uid: u32) -> bool {
        self.recent.contains(&uid)
    }

    /// While an expunge could not be told yet (during FETCH, STORE or
    /// SEARCH), the modseq the client's sync point must stay at: a FETCH of
    /// the same command may carry a higher MODSEQ, and a QRESYNC client that
    /// took that as its high-water mark would never learn of the expunge on
    /// its next resync (RFC 7162 §3.2.10's VANISHED comes later). The
    /// session says `* OK [HIGHESTMODSEQ floor]` after such a command.
    pub fn unsent_floor(&self) -> Option<u64> {
        self.unsent_floor
    }

    /// True if the message is gone but its EXPUNGE is still owed.
    pub fn is_expunged(&self, uid: u32) -> bool {
        self.pending_expunge.contains(&uid)
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// Resolves a set to `(seq, uid)` pairs, ascending. Sequence numbers
    /// beyond EXISTS are the client's error (`BAD`); UIDs that do not exist
    /// are silently skipped (RFC 9051 §6.4.8).
    pub fn resolve(&self, set: &SequenceSet, uid_mode: bool) -> Result<Vec<(u32, u32)>, Status> {
        if let SequenceSet::Saved = set {
            return Ok(self
                .saved
                .iter()
                .filter_map(|&u| self.seq_of(u).map(|s| (s, u)))
                .collect());
        }
        let mut out = Vec::new();
        if uid_mode {
            let Some(&largest) = self.uids.last() else {
                return Ok(out);
            };
            for (lo, hi) in set.ranges(largest) {
                let start = self.uids.partition_point(|&u| u < lo);
                for (i, &u) in self.uids[start..].iter().enumerate() {
                    if u > hi {
                        break;
                    }
                    out.push((start as u32 + i as u32 + 1, u));
                }
            }
        } else {
            let n = self.len();
            if n == 0 {
                return Err(Status::bad("No messages in mailbox, invalid sequence set."));
            }
            for (lo, hi) in set.ranges(n) {
                if lo == 0 || hi > n {
                    return Err(Status::bad("Invalid message sequence number."));
                }
                for s in lo..=hi {
                    out.push((s, self.uids[(s - 1) as usize]));
                }
            }
        }
        out.dedup();
        Ok(out)
    }

    /// The FLAGS and PERMANENTFLAGS responses for this view's keywords
    /// (SELECT sends them, and so does a view that meets a new keyword).
    pub fn flags_responses(&self, out: &mut Vec<u8>) {
        use crate::proto::data::{self, Data};
        use crate::proto::response::{Code, StatusKind, status_line};
        data::write(out, &Data::Flags(&self.keywords));
        let code = Code::PermanentFlags {
            keywords: self.keywords.clone(),
            read_only: self.read_only,
        };
        let text = if self.read_only {
            "Read-only mailbox."
        } else {
            "Flags permitted."
        };
        status_line(out, None, StatusKind::Ok, Some(&code), text);
    }

    /// Announces keywords of `flags` that this session's FLAGS did not list
    /// yet: a new FLAGS (and PERMANENTFLAGS) response with them added, to
    /// be sent before the FETCH responses that carry them. A client that
    /// tracks FLAGS (RFC 9051 §7.3.5: it MUST record the update) may reject
    /// a keyword it was never told of; Dovecot announces them the same way.
    /// Keywords appear when this session's STORE sets one, another
    /// session's does, or another program renames a file.
    pub fn announce_keywords<'a>(
        &mut self,
        flags: impl IntoIterator<Item = &'a crate::flags::Flags>,
        out: &mut Vec<u8>,
    ) {
        let mut grew = false;
        for f in flags {
            for k in f.keywords() {
                if !self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    self.keywords.push(k.clone());
                    grew = true;
                }
            }
        }
        if grew {
            self.flags_responses(out);
        }
    }

    /// Remembers a flag change this session reported itself.
    /// The highest modseq this session has reported changes up to: what it
    /// may tell the client as HIGHESTMODSEQ.
    pub fn highest_modseq(&self) -> u64 {
        self.modseq
    }

    pub fn note_own_flags(&mut self, uid: u32, modseq: u64) {
        self.own_reported.insert(uid, modseq);
    }

    /// Appends the untagged responses owed to the client to `out`.
    /// `expunge_ok`: EXPUNGE may be sent now (not during FETCH, STORE or
    /// SEARCH, RFC 9051 §7.5.1).
    /// `with_uid`: unsolicited FETCH carries the UID (the client uses UID
    /// commands, or rev2). Returns false if the view is void (the folder
    /// was deleted or its UIDVALIDITY changed): the session must then end
    /// the connection, as Dovecot does. The folder's changes are read with
    /// one call that never blocks this thread ([`Folder::changes`]).
    pub async fn report_changes(
        &mut self,
        expunge_ok: bool,
        enabled: Enabled,
        with_uid: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.report_changes_with(expunge_ok, true, enabled, with_uid, out)
            .await
    }

    /// [`SelectedView::report_changes`]; without `flags_ok` flag changes
    /// are left for a later report (a NOTIFY client that did not ask for
    /// FlagChange, RFC 5465 §5.1): the view's modseq then stays where it
    /// was, so the next report finds them (and the new messages' flags).
    pub async fn report_changes_with(
        &mut self,
        expunge_ok: bool,
        flags_ok: bool,
        enabled: Enabled,
        with_uid: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        use crate::proto::data::{self, Data, FetchItem};
        let with_uid_wanted = with_uid || enabled.rev2;
        if self.folder.is_gone() {
            return Ok(false);
        }
        let query = ChangeQuery {
            since_modseq: self.modseq,
            // A list shared with the folder (or another session) counts
            // more than once: one of our own may share the folder's again.
            want_uid_list: Arc::strong_count(&self.uids) == 1,
            known: self.uids.clone(),
            claim_recent: !self.read_only,
        };
        let ch = self.folder.changes(query).await?;
        if ch.uidvalidity != self.uidvalidity {
            return Ok(false);
        }
        for uid in &ch.expunged {
            if self.uids.binary_search(uid).is_ok() {
                self.pending_expunge.insert(*uid);
            }
        }
        // Update contexts lose expunged messages at once: their REMOVEFROM
        // goes before any EXPUNGE, numbered as the client still numbers
        // (RFC 5267 §4.3.4).
        let uids = &self.uids;
        let seq_of = |u: u32| uids.binary_search(&u).ok().map(|i| i as u32 + 1);
        self.contexts.expunged(&ch.expunged, &seq_of, out);
        if expunge_ok && !self.pending_expunge.is_empty() && enabled.qresync {
            // QRESYNC: one VANISHED with the UIDs (RFC 7162 §3.2.10).
            let mut told = Vec::new();
            for uid in std::mem::take(&mut self.pending_expunge) {
                if let Ok(i) = self.uids.binary_search(&uid) {
                    Arc::make_mut(&mut self.uids).remove(i);
                    self.recent.remove(&uid);
                    self.saved.retain(|&u| u != uid);
                    told.push(uid);
                }
            }
            if !told.is_empty() {
                super::qresync::write(out, false, &super::qresync::ranges_of(told));
            }
        }
        if expunge_ok && !self.pending_expunge.is_empty() {
            for uid in std::mem::take(&mut self.pending_expunge) {
                if let Ok(i) = self.uids.binary_search(&uid) {
                    data::write(out, &Data::Expunge(i as u32 + 1));
                    Arc::make_mut(&mut self.uids).remove(i);
                    self.recent.remove(&uid);
                    self.saved.retain(|&u| u != uid);
                }
            }
        }
        let last = self.uids.last().copied().unwrap_or(0);
        let mut grew = false;
        for m in &ch.new {
            if m.uid > self.uids.last().copied().unwrap_or(0) {
                Arc::make_mut(&mut self.uids).push(m.uid);
                grew = true;
            }
        }
        if grew {
            for &uid in &ch.recent {
                if uid > last && self.uids.binary_search(&uid).is_ok() {
                    self.recent.insert(uid);
                }
            }
            data::write(out, &Data::Exists(self.uids.len() as u32));
            if !enabled.rev2 {
                data::write(out, &Data::Recent(self.recent.len() as u32));
            }
        }
        if self.pending_expunge.is_empty() && Arc::strong_count(&self.uids) == 1 {
            // In step with the folder again: share its list. Its UIDs only
            // ever grow at the top, so equal length and equal last UID
            // mean equal lists (a change racing this report is reported
            // by the next one either way).
            if let Some(shared) = ch.uid_list {
                if shared.len() == self.uids.len() && shared.last() == self.uids.last() {
                    self.uids = shared;
                }
            }
        }
        // New messages may carry keywords too: announced on arrival, before
        // the client can FETCH them.
        self.announce_keywords(ch.new.iter().chain(&ch.flags).map(|m| &m.flags), out);
        let told_flags: &[MessageMeta] = if flags_ok { &ch.flags } else { &[] };
        for m in told_flags {
            if self.own_reported.get(&m.uid) == Some(&m.modseq)
                || self.pending_expunge.contains(&m.uid)
            {
                continue;
            }
            let Some(seq) = self.seq_of(m.uid) else {
                continue;
            };
            let flags = FetchItem::Flags {
                flags: &m.flags,
                recent: !enabled.rev2 && self.recent.contains(&m.uid),
            };
            let shown = super::condstore::Shown {
                uid: with_uid_wanted,
                condstore: enabled.condstore,
            };
            shown.write_flags(out, seq, m, flags);
        }
        // New messages and flag changes (this session's too) may join or
        // leave update contexts' results: decided by `context::update`.
        self.contexts
            .touch(ch.new.iter().chain(&ch.flags).map(|m| m.uid));
        if self.own_reported.capacity() > 1024 {
            // An idle session keeps no table sized for its last big STORE.
            self.own_reported = FxHashMap::default();
        } else {
            self.own_reported.clear();
        }
        if self.pending_expunge.is_empty() {
            self.unsent_floor = None;
        } else if self.unsent_floor.is_none() {
            self.unsent_floor = Some(self.modseq);
        }
        if flags_ok {
            self.modseq = self.modseq.max(ch.highest_modseq);
        }
        Ok(true)
    }
}
