//! What sessions read of a folder's state: its messages and UIDs, the
//! \Recent hand-out, and the changes since a session's last look
//! ([`Folder::changes`], the one call that never blocks a runtime thread).

use super::*;

impl Folder {
    /// Every message, ascending by UID.
    pub fn messages(&self) -> Arc<Vec<MessageMeta>> {
        let mut st = self.lock_state();
        if let Some(s) = &st.snapshot {
            return s.clone();
        }
        let s = Arc::new(st.msgs.iter().map(Msg::meta).collect::<Vec<_>>());
        st.snapshot = Some(s.clone());
        s
    }

    /// Calls `f` with each message's sequence number (from 1) and flags, in
    /// UID order, with the folder locked: for one quick pass that needs only
    /// the flags (SELECT's keywords and first unseen), without the copy of
    /// the whole folder [`Folder::messages`] makes and keeps (7 MB at
    /// 100,000 messages, which a client that only SELECTs and IDLEs never
    /// needs).
    pub fn for_each_flags(&self, mut f: impl FnMut(usize, &Flags)) {
        let st = self.lock_state();
        for (i, m) in st.msgs.iter().enumerate() {
            f(i + 1, &m.flags);
        }
    }

    /// The shared UID list ([`Folder::uid_list`]) and, in the same order,
    /// each message's RFC822.SIZE if known, read under one lock so the two
    /// agree: a POP3 maildrop's listing at login, without the copy of every
    /// message's metadata [`Folder::metas`] would make (7 MB at 100,000
    /// messages, per login).
    pub fn uids_and_sizes(&self) -> (Arc<Vec<u32>>, Vec<Option<u64>>) {
        let mut st = self.lock_state();
        let uids = uid_list_locked(&mut st);
        let sizes = st.msgs.iter().map(Msg::size).collect();
        (uids, sizes)
    }

    /// Every UID, ascending, shared: sessions in step with the folder hold
    /// this one list instead of a copy each. Rebuilt only after a change.
    pub fn uid_list(&self) -> Arc<Vec<u32>> {
        uid_list_locked(&mut self.lock_state())
    }

    /// The metadata of the given messages (`None` for those not here), in
    /// the order asked; cheaper than [`Folder::messages`] for a few.
    pub fn metas(&self, uids: &[u32]) -> Vec<Option<MessageMeta>> {
        let st = self.lock_state();
        // FETCH asks for runs of ascending UIDs: try the entry after the
        // last one found before searching (a binary search over a big
        // folder misses the cache at every step).
        let mut next = 0;
        uids.iter()
            .map(|&u| {
                let i = match st.msgs.get(next) {
                    Some(m) if m.uid == u => Some(next),
                    _ => st.find(u),
                }?;
                next = i + 1;
                Some(st.msgs[i].meta())
            })
            .collect()
    }

    /// The modseq of each message asked (`None` for those not here), in
    /// the order asked: what `FETCH ... (CHANGEDSINCE n)` filters on,
    /// without copying each message's flags as [`Folder::metas`] does
    /// (that copy was most of a resync's `UID FETCH 1:*` at 100,000
    /// messages).
    pub fn modseqs(&self, uids: &[u32]) -> Vec<Option<u64>> {
        let st = self.lock_state();
        let mut next = 0;
        uids.iter()
            .map(|&u| {
                let i = match st.msgs.get(next) {
                    Some(m) if m.uid == u => Some(next),
                    _ => st.find(u),
                }?;
                next = i + 1;
                Some(st.msgs[i].modseq)
            })
            .collect()
    }

    /// Takes the UIDs that are \Recent and not yet claimed by any session.
    pub fn take_recent(&self) -> Vec<u32> {
        let mut r = std::mem::take(&mut self.lock_state().recent);
        r.sort_unstable();
        r
    }

    /// The UIDs that are \Recent and not yet claimed by any session (also
    /// files still in `new/`, which become recent for whoever moves them),
    /// ascending, without claiming them: what a read-only session (EXAMINE)
    /// shows as \Recent (RFC 3501 §6.3.2: EXAMINE does not clear it).
    pub fn peek_recent(&self) -> Vec<u32> {
        let st = self.lock_state();
        let mut r = unclaimed_recent(&st, 0);
        r.sort_unstable();
        r
    }

    /// Number of \Recent messages nobody claimed yet, plus files still in
    /// `new/` (which become recent for whoever moves them).
    pub fn recent_count(&self) -> u32 {
        let st = self.lock_state();
        (st.recent.len() + st.msgs.iter().filter(|m| m.loc.in_new).count()) as u32
    }

    /// A receiver that wakes whenever the folder changed (the value is the
    /// new highest modseq). Sessions then call [`Folder::changes_since`].
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Changes relative to a session's view. Expunges are computed by
    /// merging `known` with the current UIDs, which is always right (the
    /// bounded log can miss old ones); see [`Folder::expunged_since`].
    pub fn changes_since(&self, since_modseq: u64, known: &[u32]) -> Changes {
        changes_since_locked(&self.lock_state(), since_modseq, known)
    }

    /// Everything a session needs to bring its view up to date (see
    /// [`ChangeQuery`]), read with the folder locked once. Never blocks the
    /// calling thread: when the folder is locked by someone else (a `STORE
    /// 1:*` over 100,000 messages holds it for 0.4 s, a sync of a big
    /// directory longer) or the answer needs a walk over every message,
    /// the read runs on the blocking pool; otherwise (nearly always) in
    /// place, in microseconds. Must be called inside the tokio runtime.
    pub async fn changes(self: &Arc<Self>, q: ChangeQuery) -> Result<Changes> {
        let quick = |st: &State| {
            q.since_modseq >= st.flag_log_floor
                || (st.highest_modseq <= q.since_modseq
                    && st.msgs.last().map_or(0, |m| m.uid) <= q.known.last().copied().unwrap_or(0))
        };
        match self.state.try_lock() {
            Ok(mut st) if quick(&st) => return Ok(self.changes_locked(&mut st, &q)),
            Err(TryLockError::Poisoned(p)) if quick(p.get_ref()) => {
                return Ok(self.changes_locked(&mut p.into_inner(), &q));
            }
            _ => {}
        }
        let f = self.clone();
        tokio::task::spawn_blocking(move || f.changes_locked(&mut f.lock_state(), &q))
            .await
            .map_err(|e| StoreError::Cannot(format!("change read task: {e}")))
    }

    pub(super) fn changes_locked(&self, st: &mut State, q: &ChangeQuery) -> Changes {
        let mut c = changes_since_locked(st, q.since_modseq, &q.known);
        c.uidvalidity = st.uidvalidity;
        if let Some(first_new) = c.new.first().map(|m| m.uid) {
            c.recent = if q.claim_recent {
                std::mem::take(&mut st.recent)
            } else {
                unclaimed_recent(st, first_new)
            };
            c.recent.sort_unstable();
        }
        if q.want_uid_list || !c.new.is_empty() || !c.expunged.is_empty() {
            c.uid_list = Some(uid_list_locked(st));
        }
        c
    }

    /// What a session starts its view from at SELECT: read with the folder
    /// locked once, so that the UID list, UIDVALIDITY, UIDNEXT and
    /// HIGHESTMODSEQ belong together.
    pub fn view_start(&self) -> ViewStart {
        let mut st = self.lock_state();
        ViewStart {
            uid_list: uid_list_locked(&mut st),
            uidvalidity: st.uidvalidity,
            uidnext: st.next_uid,
            highest_modseq: st.highest_modseq,
        }
    }
}

/// What a session knows of a folder, for [`Folder::changes`].
#[derive(Clone, Debug)]
pub struct ChangeQuery {
    /// The highest modseq the session has reported.
    pub since_modseq: u64,
    /// The UIDs the session knows, ascending.
    pub known: Arc<Vec<u32>>,
    /// Claim the \Recent of new messages (a read-write view).
    pub claim_recent: bool,
    /// Return the folder's shared UID list even if nothing changed (the
    /// session's list is its own copy and may share the folder's again).
    pub want_uid_list: bool,
}

/// See [`Folder::view_start`].
#[derive(Clone, Debug)]
pub struct ViewStart {
    pub uid_list: Arc<Vec<u32>>,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
}

/// The UIDs from `from` up that are \Recent for whoever claims them: those
/// handed out and not claimed yet, and files still in `new/` that no watcher
/// sync handed out (see [`Folder::peek_recent`]).
pub(super) fn unclaimed_recent(st: &State, from: u32) -> Vec<u32> {
    let start = st.msgs.partition_point(|m| m.uid < from);
    let mut r: Vec<u32> = st.recent.iter().copied().filter(|&u| u >= from).collect();
    r.extend(
        st.msgs[start..]
            .iter()
            .filter(|m| m.loc.in_new && !st.recent_in_new.contains(&m.uid))
            .map(|m| m.uid),
    );
    r.sort_unstable();
    r.dedup();
    r
}

/// Every UID, ascending, shared (see [`Folder::uid_list`]).
pub(super) fn uid_list_locked(st: &mut State) -> Arc<Vec<u32>> {
    let key = (st.highest_modseq, st.msgs.len(), st.reshaped);
    let list = match &st.uid_list {
        Some((k, list)) if *k == key => return list.clone(),
        // Only appended to since: copy the old list (a memcpy) and walk
        // just the new messages, not 100,000 of them per delivery.
        Some(((_, len, reshaped), old)) if *reshaped == st.reshaped && *len <= key.1 => {
            let mut v = Vec::with_capacity(key.1);
            v.extend_from_slice(old);
            v.extend(st.msgs[*len..].iter().map(|m| m.uid));
            v
        }
        _ => st.msgs.iter().map(|m| m.uid).collect(),
    };
    let list = Arc::new(list);
    st.uid_list = Some((key, list.clone()));
    list
}

/// [`Folder::changes_since`] with the folder locked.
pub(super) fn changes_since_locked(st: &State, since_modseq: u64, known: &[u32]) -> Changes {
    let max_known = known.last().copied().unwrap_or(0);
    let mut c = Changes {
        highest_modseq: st.highest_modseq,
        ..Changes::default()
    };
    // Every new message, flag change and expunge takes a new modseq, so
    // a caller that has seen the highest one has nothing to learn: the
    // common case after each command costs no walk over the folder.
    if st.highest_modseq <= since_modseq && st.msgs.last().map_or(0, |m| m.uid) <= max_known {
        return c;
    }
    if since_modseq >= st.flag_log_floor {
        // New UIDs are above every known one; flag changes are in the
        // log; and when the messages up to `max_known` are as many as the
        // session knows, none of those is gone.
        let known_here = st.msgs.partition_point(|m| m.uid <= max_known);
        c.new = st.msgs[known_here..].iter().map(Msg::meta).collect();
        let start = st.flag_log.partition_point(|&(m, _)| m <= since_modseq);
        let mut changed: Vec<u32> = st
            .flag_log
            .range(start..)
            .map(|&(_, u)| u)
            .filter(|&u| u <= max_known && known.binary_search(&u).is_ok())
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for u in changed {
            if let Some(m) = st.find(u).map(|i| &st.msgs[i]) {
                if m.modseq > since_modseq {
                    c.flags.push(m.meta());
                }
            }
        }
        if known_here != known.len() {
            c.expunged = expunged_from(&st.msgs, known);
        }
        return c;
    }
    for m in &st.msgs {
        if m.uid > max_known {
            c.new.push(m.meta());
        } else if m.modseq > since_modseq && known.binary_search(&m.uid).is_ok() {
            c.flags.push(m.meta());
        }
    }
    c.expunged = expunged_from(&st.msgs, known);
    c
}

impl Folder {
    /// UIDs expunged after `modseq` (for QRESYNC `VANISHED (EARLIER)`), or
    /// `None` when the bounded log no longer reaches back that far. The
    /// log holds the last 10,000 expunges and outlives the folder in its
    /// index (`index::ExpungeMemory`) when it was closed cleanly; after a
    /// crash, or with the index lost, it starts again from the modseqs
    /// handed out from then on.
    pub fn expunged_since(&self, modseq: u64) -> Option<Vec<u32>> {
        let st = self.lock_state();
        if modseq < st.log_floor {
            return None;
        }
        let mut v: Vec<u32> = st
            .expunge_log
            .iter()
            .filter(|(_, m)| *m > modseq)
            .map(|(u, _)| *u)
            .collect();
        v.sort_unstable();
        v.dedup();
        Some(v)
    }
}

impl Folder {
    /// The messages whose modseq is above `since`, ascending by UID (what
    /// a QRESYNC SELECT reports): one walk under the lock, copying only
    /// those.
    pub fn changed_since(&self, since: u64) -> Vec<MessageMeta> {
        let st = self.lock_state();
        st.msgs
            .iter()
            .filter(|m| m.modseq > since)
            .map(Msg::meta)
            .collect()
    }
}

/// The UIDs of `known` (ascending) that `msgs` no longer has.
pub(super) fn expunged_from(msgs: &[Msg], known: &[u32]) -> Vec<u32> {
    let mut gone = Vec::new();
    let mut j = 0;
    for &u in known {
        while j < msgs.len() && msgs[j].uid < u {
            j += 1;
        }
        if msgs.get(j).is_none_or(|m| m.uid != u) {
            gone.push(u);
        }
    }
    gone
}
