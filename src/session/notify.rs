//! NOTIFY (RFC 5465): a client says once which events it wants for which
//! mailboxes, and the session tells it of them as they happen, between
//! commands and during IDLE, without the client polling.
//!
//! Owns the checked request ([`Spec`]: what is refused with BAD, what with
//! `NO [BADEVENT]`), and the live state of a session that made one
//! ([`Notifier`]): the folders watched for message events, the Maildir's
//! folder names and subscriptions as last told, and the one future per
//! watched folder the session waits on.
//!
//! Where events come from: the worker's one change watcher (`crate::watch`)
//! and the store's live sync. A folder watched for message events is held
//! open, so its feed keeps it in step with the disk as it changes (an MTA
//! delivering into `new/`, another session, mutt renaming files) and its
//! change signal wakes this session: a watched folder costs inotify
//! watches and its state in memory, never polling. Folders created,
//! deleted and renamed, and the `subscriptions` file replaced, come from
//! the watch of the Maildir root. The watcher coalesces each folder's
//! events, a STATUS goes out only when the figures the client asked about
//! moved, and at most one per folder every [`STATUS_EVERY`] (the first at
//! once, the last with the figures at the end of a burst): a burst of
//! 1,000 deliveries into several folders is a few dozen STATUS lines, not
//! 1,000.
//!
//! Decisions (RFC 5465 leaves them to the server):
//! - `inboxes` is `personal` (§6.3 allows it when the server cannot tell
//!   which mailboxes receive mail: in a Maildir any folder can, through a
//!   delivery filter).
//! - A STATUS for an unselected mailbox always has MESSAGES, UIDNEXT,
//!   UIDVALIDITY and UNSEEN (what clients show), and HIGHESTMODSEQ once
//!   CONDSTORE is on (§5.2, §5.3, §5.1 ask for subsets of these).
//! - Changes this client made itself are told too (§5 says SHOULD omit):
//!   the watcher cannot tell whose change it saw, and telling it is
//!   harmless, never wrong.
//! - FETCH items of MessageNew never set \Seen (§5.2): `BODY[...]` and
//!   `BINARY[...]` are served as their `.PEEK` forms, `RFC822` and
//!   `RFC822.TEXT` as `BODY.PEEK[]` and `BODY.PEEK[TEXT]`.
//! - At most [`MAX_WATCHED`] mailboxes per session get message events:
//!   a NOTIFY asking for more is refused with `NO [NOTIFICATIONOVERFLOW]`
//!   (§3.1), and when new folders push a session past it, the session says
//!   `* OK [NOTIFICATIONOVERFLOW]` and stops notifying (§5.8).
//!
//! Never: a thread or a timer per watched folder, a directory read on the
//! runtime (every store call goes through `blocking`), or an event for
//! the selected mailbox the client did not ask for between commands.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use crate::proto::response::{Code, StatusKind};
use crate::proto::{
    FetchAttr, NotifyEvent, NotifyFilter, NotifySet, Section, SectionText, StatusItem,
};
use crate::session::names::{SEP, canonical_inbox, from_wire};
use crate::session::{CmdResult, Enabled, Session, State, Status, blocking};
use crate::store::{Folder, FolderStatus, MailStore, StoreError};
use crate::watch::FolderWatch;

/// The events NOTIFY supports (what `BADEVENT` lists).
pub const SUPPORTED: &[&str] = &[
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
];

/// The most mailboxes one session watches for message events.
pub const MAX_WATCHED: usize = 256;

/// At most one STATUS per watched mailbox this often: the first change
/// after a quiet spell goes out at once (what a user waiting for mail
/// feels), a burst of deliveries then costs a line per mailbox per tick
/// with the figures at its end, not a line per message (a script filing
/// 1,000 messages into three folders made 350 lines without it).
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Events for the selected mailbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectedSpec {
    /// `selected-delayed`: expunges wait for a command that may tell them.
    pub delayed: bool,
    pub flags: bool,
    /// FETCH items to send with each new message (peek forms).
    pub fetch: Vec<FetchAttr>,
}

/// Which mailboxes a group means, names canonical (`INBOX` upper-case).
#[derive(Clone, Debug, PartialEq)]
enum Which {
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

impl Which {
    fn matches(&self, name: &str, subscribed: &BTreeSet<String>) -> bool {
        match self {
            Which::Personal => true,
            Which::Subscribed => subscribed.contains(name),
            Which::Subtree(roots) => roots.iter().any(|r| {
                name == r
                    || name
                        .strip_prefix(r.as_str())
                        .is_some_and(|rest| rest.starts_with(SEP))
            }),
            Which::Mailboxes(names) => names.iter().any(|n| n == name),
        }
    }
}

/// One group for mailboxes other than the selected one.
#[derive(Clone, Debug, PartialEq)]
struct Group {
    which: Which,
    /// MessageNew and MessageExpunge (always together, §5).
    messages: bool,
    flags: bool,
    names: bool,
    subscriptions: bool,
}

/// A checked NOTIFY SET.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// `None`: no events for the selected mailbox (§3.1: as `SELECTED NONE`).
    pub selected: Option<SelectedSpec>,
    groups: Vec<Group>,
}

impl Spec {
    /// Checks a NOTIFY SET: BAD for what §5 and §6.1 forbid, `NO
    /// [BADEVENT]` for events this server does not support (§3.1).
    pub fn check(set: &NotifySet, enabled: Enabled) -> Result<Spec, Status> {
        let mut selected = None;
        let mut seen_selected = false;
        let mut groups = Vec::new();
        let mut unsupported = false;
        for g in &set.groups {
            let mut new = None;
            let (mut expunge, mut flags, mut annotation) = (false, false, false);
            let (mut names, mut subscriptions, mut other_kind) = (false, false, false);
            for e in &g.events {
                match e {
                    NotifyEvent::MessageNew(atts) => new = Some(atts.clone()),
                    NotifyEvent::MessageExpunge => expunge = true,
                    NotifyEvent::FlagChange => flags = true,
                    NotifyEvent::AnnotationChange => annotation = true,
                    NotifyEvent::MailboxName => names = true,
                    NotifyEvent::SubscriptionChange => subscriptions = true,
                    NotifyEvent::MailboxMetadataChange
                    | NotifyEvent::ServerMetadataChange
                    | NotifyEvent::Other(_) => {
                        other_kind = true;
                        unsupported = true;
                    }
                }
            }
            if new.is_some() != expunge {
                return Err(Status::bad(
                    "MessageNew and MessageExpunge go together (RFC 5465 section 5).",
                ));
            }
            if (flags || annotation) && new.is_none() {
                return Err(Status::bad(
                    "FlagChange needs MessageNew and MessageExpunge (RFC 5465 section 5).",
                ));
            }
            unsupported |= annotation;
            let which = match &g.filter {
                NotifyFilter::Selected | NotifyFilter::SelectedDelayed => {
                    if seen_selected {
                        return Err(Status::bad(
                            "Only one of SELECTED and SELECTED-DELAYED (RFC 5465 section 6.1).",
                        ));
                    }
                    seen_selected = true;
                    if names || subscriptions || other_kind {
                        return Err(Status::bad(
                            "SELECTED takes only message events (RFC 5465 section 6.1).",
                        ));
                    }
                    selected = new.map(|atts| SelectedSpec {
                        delayed: g.filter == NotifyFilter::SelectedDelayed,
                        flags,
                        fetch: atts.into_iter().map(peek).collect(),
                    });
                    continue;
                }
                NotifyFilter::Inboxes | NotifyFilter::Personal => Which::Personal,
                NotifyFilter::Subscribed => Which::Subscribed,
                NotifyFilter::Subtree(v) => Which::Subtree(names_of(v, enabled)?),
                NotifyFilter::Mailboxes(v) => Which::Mailboxes(names_of(v, enabled)?),
            };
            groups.push(Group {
                which,
                messages: new.is_some(),
                flags,
                names,
                subscriptions,
            });
        }
        if unsupported {
            return Err(Status::no(
                Some(Code::BadEvent(SUPPORTED)),
                "Unsupported event (this server has no ANNOTATE or METADATA).",
            ));
        }
        Ok(Spec { selected, groups })
    }

    fn wants_messages(&self, name: &str, subscribed: &BTreeSet<String>) -> Option<bool> {
        let mut found = None;
        for g in &self.groups {
            if g.messages && g.which.matches(name, subscribed) {
                found = Some(found.unwrap_or(false) | g.flags);
            }
        }
        found
    }

    fn wants(
        &self,
        name: &str,
        subscribed: &BTreeSet<String>,
        what: impl Fn(&Group) -> bool,
    ) -> bool {
        self.groups
            .iter()
            .any(|g| what(g) && g.which.matches(name, subscribed))
    }
}

fn names_of(v: &[String], enabled: Enabled) -> Result<Vec<String>, Status> {
    v.iter()
        .map(|n| Ok(canonical_inbox(&from_wire(n, enabled)?)))
        .collect()
}

/// The form of a FETCH item that never sets \Seen.
fn peek(a: FetchAttr) -> FetchAttr {
    match a {
        FetchAttr::BodySection {
            section, partial, ..
        } => FetchAttr::BodySection {
            peek: true,
            section,
            partial,
        },
        FetchAttr::Binary { part, partial, .. } => FetchAttr::Binary {
            peek: true,
            part,
            partial,
        },
        FetchAttr::Rfc822 => FetchAttr::BodySection {
            peek: true,
            section: Section::default(),
            partial: None,
        },
        FetchAttr::Rfc822Text => FetchAttr::BodySection {
            peek: true,
            section: Section {
                part: vec![],
                text: Some(SectionText::Text),
            },
            partial: None,
        },
        a => a,
    }
}

/// The figures of a STATUS last told for a watched folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Told {
    messages: u32,
    uidnext: u32,
    uidvalidity: u32,
    unseen: u32,
    highest_modseq: u64,
}

impl Told {
    fn of(st: &FolderStatus) -> Told {
        Told {
            messages: st.messages,
            uidnext: st.uidnext,
            uidvalidity: st.uidvalidity,
            unseen: st.unseen,
            highest_modseq: st.highest_modseq,
        }
    }

    /// Whether `now` is news for a client watching messages (and flags).
    fn moved(&self, now: &Told, flags: bool) -> bool {
        let counts = (self.messages, self.uidnext, self.uidvalidity)
            != (now.messages, now.uidnext, now.uidvalidity);
        counts || flags && (self.unseen, self.highest_modseq) != (now.unseen, now.highest_modseq)
    }
}

/// A folder watched for message events.
struct Watched {
    folder: Arc<Folder>,
    flags: bool,
    told: Told,
    /// No STATUS before this ([`STATUS_EVERY`] after the last one).
    next_at: tokio::time::Instant,
    /// A change came before `next_at`: a look is owed then.
    owed: bool,
    /// Tells this entry's wake from one of an entry of the same name
    /// dropped before.
    generation: u64,
}

type NextChange =
    Pin<Box<dyn Future<Output = (String, u64, watch::Receiver<u64>, bool)> + Send + Sync>>;

fn next_change(name: String, generation: u64, mut rx: watch::Receiver<u64>) -> NextChange {
    Box::pin(async move {
        let ok = rx.changed().await.is_ok();
        (name, generation, rx, ok)
    })
}

/// What woke a session that NOTIFY made wait on more than its client.
#[derive(Debug)]
pub enum Wake {
    /// The selected mailbox changed.
    Selected,
    /// This watched folder changed.
    Folder(String),
    /// Folders or subscriptions may have changed.
    Names,
}

/// A session's NOTIFY state (see the module doc).
pub struct Notifier {
    spec: Spec,
    store: Arc<MailStore>,
    /// The Maildir root's watch; `None` without live sync (tools, tests) or
    /// when only the selected mailbox is watched.
    root: Option<FolderWatch>,
    /// Folder names with the inode of their directory, as last told.
    names: BTreeMap<String, u64>,
    subscribed: BTreeSet<String>,
    /// The selected mailbox (never in `watched`: it has its own events).
    selected: Option<String>,
    watched: BTreeMap<String, Watched>,
    pending: FuturesUnordered<NextChange>,
    generation: u64,
}

/// What a look at the Maildir found, read off the runtime.
struct Snapshot {
    names: BTreeMap<String, u64>,
    subscribed: BTreeSet<String>,
    /// Folders newly watched, open, with their status.
    opened: Vec<(String, Arc<Folder>, FolderStatus)>,
}

impl Notifier {
    /// Waits for the next event: the selected mailbox's change signal
    /// (`selected`, when the client asked for its events), a watched
    /// folder's, or the root's. Cancel-safe: a signal that fires while the
    /// session is busy is kept for the next call.
    pub async fn wait(&mut self, selected: Option<&mut watch::Receiver<u64>>) -> Wake {
        let selected = selected.filter(|_| self.spec.selected.is_some());
        let pending_empty = self.pending.is_empty();
        let root = self.root.as_mut();
        let (has_selected, has_root) = (selected.is_some(), root.is_some());
        // The watched folder whose held-back look is due first.
        let owed = self
            .watched
            .iter()
            .filter(|(_, w)| w.owed)
            .min_by_key(|(_, w)| w.next_at)
            .map(|(n, w)| (w.next_at, n.clone()));
        let owed_at = owed.as_ref().map(|(t, _)| *t);
        let selected_changed = async {
            match selected {
                // A closed channel (the folder dropped) never fires again.
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let root_changed = async {
            match root {
                Some(r) => r.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = selected_changed, if has_selected => Wake::Selected,
            _ = root_changed, if has_root => Wake::Names,
            _ = async {
                match owed_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            }, if owed_at.is_some() => {
                Wake::Folder(owed.map(|(_, n)| n).unwrap_or_default())
            }
            Some((name, generation, rx, ok)) = self.pending.next(), if !pending_empty => {
                let current = self.watched.get(&name).is_some_and(|w| w.generation == generation);
                if current && ok {
                    self.pending.push(next_change(name.clone(), generation, rx));
                }
                // A stale entry's wake: look again, at worst for nothing.
                if current { Wake::Folder(name) } else { Wake::Names }
            }
            else => std::future::pending().await,
        }
    }

    /// The selected mailbox's events, if the client asked for them.
    pub fn selected_spec(&self) -> Option<&SelectedSpec> {
        self.spec.selected.as_ref()
    }

    /// Whether STATUS for `name` is owed (its figures moved), with the new
    /// figures, read off the runtime.
    async fn status_of(&mut self, name: &str) -> Result<Option<FolderStatus>, Status> {
        let now = tokio::time::Instant::now();
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(None);
        };
        if now < w.next_at {
            w.owed = true;
            return Ok(None);
        }
        w.owed = false;
        let f = w.folder.clone();
        let st = blocking(move || f.status(false)).await?;
        let st = match st {
            Ok(st) => st,
            // Gone: the root's watch tells of it.
            Err(StoreError::NotFound | StoreError::Expunged) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(w) = self.watched.get_mut(name) else {
            return Ok(None);
        };
        let figures = Told::of(&st);
        if !w.told.moved(&figures, w.flags) {
            return Ok(None);
        }
        w.told = figures;
        w.next_at = now + STATUS_EVERY;
        Ok(Some(st))
    }

    /// Reads the Maildir's folders and subscriptions and opens the folders
    /// newly watched for message events (off the runtime).
    async fn look(&self) -> Result<Snapshot, Status> {
        let store = self.store.clone();
        let spec = self.spec.clone();
        let selected = self.selected.clone();
        let already: BTreeSet<String> = self.watched.keys().cloned().collect();
        let snap = blocking(move || -> Result<Snapshot, StoreError> {
            let names: BTreeMap<String, u64> = store.folder_ids()?.into_iter().collect();
            let subscribed: BTreeSet<String> = store
                .subscriptions()?
                .iter()
                .map(|s| canonical_inbox(s))
                .collect();
            let mut opened = Vec::new();
            let want = names.keys().filter(|n| {
                Some(*n) != selected.as_ref()
                    && !already.contains(*n)
                    && spec.wants_messages(n, &subscribed).is_some()
            });
            for n in want.take(MAX_WATCHED + 1) {
                match store.open_folder(n).and_then(|f| Ok((f.status(false)?, f))) {
                    Ok((st, f)) => opened.push((n.clone(), f, st)),
                    // Deleted since the listing: the next look sees it gone.
                    Err(StoreError::NotFound) => {}
                    // One folder that cannot be opened (a permission,
                    // a symlink) costs its events, not the others'.
                    Err(e) => tracing::warn!(folder = %n, error = %e, "NOTIFY cannot watch it"),
                }
            }
            Ok(Snapshot {
                names,
                subscribed,
                opened,
            })
        })
        .await??;
        Ok(snap)
    }

    /// Takes a snapshot in: the watched set follows it. Returns false when
    /// that would pass [`MAX_WATCHED`], and the folders newly watched that
    /// already hold messages (for a look after the first, their arrival is
    /// news: a folder an MTA creates with its first delivery in it).
    fn take(&mut self, snap: Snapshot) -> (bool, Vec<(String, FolderStatus)>) {
        self.names = snap.names;
        self.subscribed = snap.subscribed;
        let keep: Vec<String> = self
            .watched
            .keys()
            .filter(|n| {
                self.names.contains_key(*n)
                    && Some(*n) != self.selected.as_ref()
                    && self.spec.wants_messages(n, &self.subscribed).is_some()
            })
            .cloned()
            .collect();
        self.watched.retain(|n, _| keep.contains(n));
        let mut arrived = Vec::new();
        for (name, folder, st) in snap.opened {
            let flags = self
                .spec
                .wants_messages(&name, &self.subscribed)
                .unwrap_or(false);
            self.generation += 1;
            self.pending
                .push(next_change(name.clone(), self.generation, folder.watch()));
            self.watched.insert(
                name.clone(),
                Watched {
                    folder,
                    flags,
                    told: Told::of(&st),
                    next_at: tokio::time::Instant::now(),
                    owed: false,
                    generation: self.generation,
                },
            );
            if st.messages > 0 {
                arrived.push((name, st));
            }
        }
        (self.watched.len() <= MAX_WATCHED, arrived)
    }
}

impl Session {
    /// `NOTIFY NONE` / `NOTIFY SET ...` (RFC 5465 §3.1).
    pub(crate) async fn notify_command(&mut self, set: Option<NotifySet>) -> CmdResult {
        let Some(set) = set else {
            self.notify = None;
            return Ok(Status::ok("NOTIFY completed."));
        };
        let spec = Spec::check(&set, self.enabled)?;
        let store = self.store()?;
        let selected = match &self.state {
            State::Selected(_, view) => Some(view.name.clone()),
            _ => None,
        };
        let mut n = Notifier {
            root: if spec.groups.is_empty() {
                None
            } else {
                store.watch_folders()
            },
            spec,
            store,
            names: BTreeMap::new(),
            subscribed: BTreeSet::new(),
            selected,
            watched: BTreeMap::new(),
            pending: FuturesUnordered::new(),
            generation: 0,
        };
        // The root's watch is registered before the look, so nothing that
        // happens after the look is missed.
        let snap = n.look().await?;
        // What is there now is the starting point, not news.
        if !n.take(snap).0 {
            return Err(Status::no(
                Some(Code::NotificationOverflow),
                "Too many mailboxes to watch.",
            ));
        }
        if let Some(root) = &n.root {
            root.take_changes();
        }
        if set.status {
            // §3.1: a STATUS for each watched mailbox before the tagged OK.
            let condstore = self.enabled.condstore;
            let lines: Vec<(String, FolderStatus)> = {
                let mut v = Vec::new();
                for (name, w) in &n.watched {
                    let f = w.folder.clone();
                    let st = blocking(move || f.status(false)).await??;
                    v.push((name.clone(), st));
                }
                v
            };
            for (name, st) in lines {
                self.notify_status(&name, &st, condstore);
            }
        }
        self.notify = Some(Box::new(n));
        // A NOTIFY SET is an implicit NOOP (§3.1): the serving loop reports
        // the selected mailbox's changes before the tagged OK.
        Ok(Status::ok("NOTIFY completed."))
    }

    /// `* STATUS name (MESSAGES UIDNEXT UIDVALIDITY UNSEEN [HIGHESTMODSEQ])`.
    fn notify_status(&mut self, name: &str, st: &FolderStatus, condstore: bool) {
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
        ];
        if condstore {
            items.push(StatusItem::HighestModSeq);
        }
        crate::session::mailboxes::status_response(name, st, &items, self);
    }

    /// Tells the client what woke it (see [`Notifier::wait`]).
    pub(crate) async fn notify_wake(&mut self, wake: Wake) -> Result<(), Status> {
        match wake {
            Wake::Selected => self.notify_selected().await,
            Wake::Folder(name) => {
                let Some(n) = self.notify.as_mut() else {
                    return Ok(());
                };
                if let Some(st) = n.status_of(&name).await? {
                    let condstore = self.enabled.condstore;
                    self.notify_status(&name, &st, condstore);
                }
                Ok(())
            }
            Wake::Names => self.notify_names().await,
        }
    }

    /// The selected mailbox's new messages, expunges and flag changes, as
    /// asked (§5.1-5.3): EXISTS then a FETCH of the asked items for each
    /// new message.
    async fn notify_selected(&mut self) -> Result<(), Status> {
        let Some(spec) = self
            .notify
            .as_ref()
            .and_then(|n| n.selected_spec().cloned())
        else {
            return Ok(());
        };
        let before = match &self.state {
            State::Selected(_, view) => view.uids().last().copied().unwrap_or(0),
            _ => return Ok(()),
        };
        self.report_changes_with(!spec.delayed, spec.flags).await?;
        if spec.fetch.is_empty() {
            return Ok(());
        }
        let Some(mut view) = self.take_view() else {
            return Ok(());
        };
        let new: Vec<u32> = view
            .uids()
            .iter()
            .copied()
            .filter(|&u| u > before)
            .collect();
        let result = if new.is_empty() {
            Ok(Status::ok(""))
        } else {
            let set = crate::proto::SequenceSet::Ranges(
                new.iter()
                    .map(|&u| {
                        (
                            crate::proto::SeqNum::Value(u),
                            crate::proto::SeqNum::Value(u),
                        )
                    })
                    .collect(),
            );
            crate::session::cmd::fetch::fetch(self, &mut view, true, set, spec.fetch.clone(), None)
                .await
        };
        self.restore_view(view);
        result.map(|_| ())
    }

    /// Folders created, deleted or renamed, and subscriptions changed
    /// (§5.4, §5.5): a LIST for each name a group asked about; the watched
    /// set follows.
    async fn notify_names(&mut self) -> Result<(), Status> {
        let Some(mut n) = self.notify.take() else {
            return Ok(());
        };
        if let Some(root) = &n.root {
            root.take_changes();
        }
        let snap = match n.look().await {
            Ok(s) => s,
            Err(e) => {
                self.notify = Some(n);
                return Err(e);
            }
        };
        let (old_names, old_subs) = (n.names.clone(), n.subscribed.clone());
        let (new_names, new_subs) = (snap.names.clone(), snap.subscribed.clone());
        let (fits, arrived) = n.take(snap);
        // Renames: a directory that left one name and appeared under
        // another (same inode).
        let gone: Vec<&String> = old_names
            .keys()
            .filter(|k| !new_names.contains_key(*k))
            .collect();
        let came: Vec<&String> = new_names
            .keys()
            .filter(|k| !old_names.contains_key(*k))
            .collect();
        let mut renamed: Vec<(&String, &String)> = Vec::new();
        for &c in &came {
            if let Some(&g) = gone.iter().find(|g| old_names.get(**g) == new_names.get(c)) {
                renamed.push((g, c));
            }
        }
        let folders: Vec<String> = new_names.keys().cloned().collect();
        let subs: Vec<String> = new_subs.iter().cloned().collect();
        let space = crate::session::mailboxes::build(&folders, &subs);
        let uses = match crate::session::mailboxes::special_uses(
            n.store.clone(),
            self.shared.config.mail.special_use.clone(),
        )
        .await
        {
            Ok(u) => u,
            Err(e) => {
                self.notify = Some(n);
                return Err(e);
            }
        };
        let enabled = self.enabled;
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let wants_names =
            |name: &str, subs: &BTreeSet<String>| n.spec.wants(name, subs, |g| g.names);
        for (old, new) in &renamed {
            if wants_names(old, &old_subs) || wants_names(new, &new_subs) {
                lines.push(crate::session::mailboxes::notify_list_line(
                    new,
                    &space,
                    Some(old),
                    enabled,
                    &uses,
                ));
            }
        }
        for name in gone
            .iter()
            .filter(|g| !renamed.iter().any(|(o, _)| o == *g))
            .chain(
                came.iter()
                    .filter(|c| !renamed.iter().any(|(_, n)| n == *c)),
            )
        {
            if wants_names(name, &old_subs) || wants_names(name, &new_subs) {
                lines.push(crate::session::mailboxes::notify_list_line(
                    name, &space, None, enabled, &uses,
                ));
            }
        }
        for name in old_subs.symmetric_difference(&new_subs) {
            let asked = n.spec.wants(name, &old_subs, |g| g.subscriptions)
                || n.spec.wants(name, &new_subs, |g| g.subscriptions);
            if asked {
                lines.push(crate::session::mailboxes::notify_list_line(
                    name, &space, None, enabled, &uses,
                ));
            }
        }
        for l in lines {
            self.out.extend_from_slice(&l);
        }
        if fits {
            // Folders that came with mail in them (created by an MTA with
            // its first delivery, moved in whole): their messages are new
            // to the client (§5.2).
            // (Not a folder that was there already: one the client just
            // stopped selecting is watched again, which is not news.)
            let condstore = self.enabled.condstore;
            for (name, st) in arrived.iter().filter(|(n, _)| !old_names.contains_key(n)) {
                self.notify_status(name, st, condstore);
            }
        }
        if !fits {
            // §5.8: stop, as if NOTIFY NONE had been received.
            self.untagged(
                StatusKind::Ok,
                Some(Code::NotificationOverflow),
                "Too many mailboxes to watch; notifications stopped.",
            );
            return Ok(());
        }
        self.notify = Some(n);
        Ok(())
    }

    /// After SELECT, EXAMINE, CLOSE or UNSELECT: the mailbox that is now
    /// selected has its own events, and the one that was is watched like
    /// any other again.
    pub(crate) async fn notify_selection_changed(&mut self) -> Result<(), Status> {
        let selected = match &self.state {
            State::Selected(_, view) => Some(view.name.clone()),
            _ => None,
        };
        match self.notify.as_mut() {
            Some(n) if n.selected != selected => n.selected = selected,
            _ => return Ok(()),
        }
        self.notify_names().await
    }
}
