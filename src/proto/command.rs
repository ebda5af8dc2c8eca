//! The typed IMAP command: what the session state machine consumes.
//!
//! These types are the contract between the grammar (`proto::parse`) and the
//! session. They are deliberately our own rather than `imap-types`' so that
//! extensions imap-codec lacks (LIST-EXTENDED options, ESEARCH `RETURN`,
//! SEARCHRES `$`, CREATE `USE`, MULTIAPPEND) fit in the same shape, and so the
//! session never sees borrowed parser internals. Macros (`ALL`, `FAST`,
//! `FULL`) are expanded by the parser; strings are already decoded
//! (quoted/literal/atom forms and the SEARCH charset are gone).

use chrono::NaiveDate;

use crate::flags::Flag;

/// One complete client command with its tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

/// A mailbox name exactly as the client sent it (after string decoding).
///
/// Whether it is modified UTF-7 (IMAP4rev1) or UTF-8 (IMAP4rev2 /
/// UTF8=ACCEPT) is decided by the session, which knows what was enabled.
/// `INBOX` is *not* case-folded here.
pub type MailboxArg = String;

#[derive(Clone, Debug, PartialEq)]
pub enum CommandBody {
    // --- any state (RFC 9051 §6.1)
    Capability,
    Noop,
    Logout,
    /// RFC 2971.
    Id(Option<Vec<(String, Option<String>)>>),

    // --- not authenticated (§6.2)
    StartTls,
    /// `initial_response`: SASL-IR (RFC 4959), already base64-decoded;
    /// `Some(vec![])` for the `=` empty response.
    Authenticate {
        mechanism: String,
        initial_response: Option<Vec<u8>>,
    },
    Login {
        username: String,
        password: String,
    },

    // --- authenticated (§6.3)
    Enable(Vec<String>),
    /// COMPRESS (RFC 4978 §3) with the mechanism as sent, upper-cased
    /// (`algorithm`: only `DEFLATE` is defined; the session refuses others).
    Compress(String),
    Select {
        mailbox: MailboxArg,
        /// `true` for EXAMINE.
        read_only: bool,
        /// `(CONDSTORE)` select parameter (RFC 7162).
        condstore: bool,
        /// `(QRESYNC (...))` select parameter (RFC 7162 §3.2.5).
        qresync: Option<Qresync>,
    },
    Create {
        mailbox: MailboxArg,
        /// CREATE-SPECIAL-USE `(USE (\Sent ...))`, without backslashes kept: `"\\Sent"`.
        special_use: Vec<String>,
    },
    Delete(MailboxArg),
    Rename {
        from: MailboxArg,
        to: MailboxArg,
    },
    Subscribe(MailboxArg),
    Unsubscribe(MailboxArg),
    List(ListCommand),
    Lsub {
        reference: MailboxArg,
        pattern: MailboxArg,
    },
    Namespace,
    Status {
        mailbox: MailboxArg,
        items: Vec<StatusItem>,
    },
    /// One or more messages (MULTIAPPEND, RFC 3502, gives more than one).
    Append {
        mailbox: MailboxArg,
        messages: Vec<AppendMessage>,
    },
    Idle,
    /// NOTIFY (RFC 5465): `None` for `NOTIFY NONE`.
    Notify(Option<NotifySet>),
    /// REPLACE / UID REPLACE (RFC 8508): save `message` into `mailbox`,
    /// then expunge message `number` of the selected mailbox.
    Replace {
        uid: bool,
        number: SeqNum,
        mailbox: MailboxArg,
        message: AppendMessage,
    },
    /// GETQUOTA quota-root (RFC 9208 §4.2).
    GetQuota(String),
    /// GETQUOTAROOT mailbox (RFC 9208 §4.3).
    GetQuotaRoot(MailboxArg),
    /// SETQUOTA quota-root (resource limit ...) (RFC 9208 §4.1).
    SetQuota {
        root: String,
        limits: Vec<(String, u64)>,
    },

    // --- selected (§6.4)
    Check,
    Close,
    Unselect,
    /// `uids` is `Some` for UID EXPUNGE (RFC 4315).
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search(SearchCommand),
    /// SORT / UID SORT (RFC 5256 §3, RFC 5957).
    Sort(SortCommand),
    /// THREAD / UID THREAD (RFC 5256 §3).
    Thread(ThreadCommand),
    /// CANCELUPDATE (RFC 5267 §4.3.5): the tags of the searching commands
    /// whose UPDATE contexts end, at least one.
    CancelUpdate(Vec<String>),
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchAttr>,
        /// CONDSTORE `(CHANGEDSINCE n)`.
        changed_since: Option<u64>,
        /// QRESYNC's `VANISHED` modifier (UID FETCH with CHANGEDSINCE only,
        /// RFC 7162 §3.2.6).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        op: crate::flags::FlagOp,
        silent: bool,
        flags: Vec<Flag>,
        /// CONDSTORE `(UNCHANGEDSINCE n)`.
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxArg,
    },
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: MailboxArg,
    },
}

/// What a client knew of a mailbox when it last synced, for `SELECT ...
/// (QRESYNC (uidvalidity modseq [known-uids] [seq-match-data]))` (RFC 7162
/// §3.2.5).
#[derive(Clone, Debug, PartialEq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    /// The UIDs the client knows (no `*`); `None`: all.
    pub known_uids: Option<SequenceSet>,
    /// Message numbers and the UIDs they had, as a hint (this server
    /// answers exactly without it, and ignores it).
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

impl CommandBody {
    /// The command's name for logs and for `BAD`/`NO` texts.
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::Id(_) => "ID",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::Compress(_) => "COMPRESS",
            CommandBody::Select {
                read_only: false, ..
            } => "SELECT",
            CommandBody::Select {
                read_only: true, ..
            } => "EXAMINE",
            CommandBody::Create { .. } => "CREATE",
            CommandBody::Delete(_) => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe(_) => "SUBSCRIBE",
            CommandBody::Unsubscribe(_) => "UNSUBSCRIBE",
            CommandBody::List(_) => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append { .. } => "APPEND",
            CommandBody::Idle => "IDLE",
            CommandBody::Notify(_) => "NOTIFY",
            CommandBody::Replace { .. } => "REPLACE",
            CommandBody::GetQuota(_) => "GETQUOTA",
            CommandBody::GetQuotaRoot(_) => "GETQUOTAROOT",
            CommandBody::SetQuota { .. } => "SETQUOTA",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Expunge { .. } => "EXPUNGE",
            CommandBody::Search(_) => "SEARCH",
            CommandBody::Sort(_) => "SORT",
            CommandBody::Thread(_) => "THREAD",
            CommandBody::CancelUpdate(_) => "CANCELUPDATE",
            CommandBody::Fetch { .. } => "FETCH",
            CommandBody::Store { .. } => "STORE",
            CommandBody::Copy { .. } => "COPY",
            CommandBody::Move { .. } => "MOVE",
        }
    }
}

/// `NOTIFY SET [STATUS] event-groups` (RFC 5465 §8), as written: whether
/// the groups make sense together (§5, §6.1) is the session's to check.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifySet {
    /// The STATUS indicator: send STATUS for the watched mailboxes now.
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// One `(filter-mailboxes events)` group; `events` empty for `NONE`.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<NotifyEvent>,
}

/// `filter-mailboxes` (RFC 5465 §6). Mailbox names as sent (decoded from
/// the wire as every mailbox argument is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<MailboxArg>),
    Mailboxes(Vec<MailboxArg>),
}

/// An event name of RFC 5465 §5, or any other atom (`event-ext`), which the
/// session refuses with `NO [BADEVENT]`.
#[derive(Clone, Debug, PartialEq)]
pub enum NotifyEvent {
    /// With the FETCH items to send for each new message (§5.2).
    MessageNew(Vec<FetchAttr>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    Other(String),
}

/// LIST with RFC 5258 (LIST-EXTENDED) and RFC 5819 (LIST-STATUS) options.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListCommand {
    pub reference: MailboxArg,
    /// One or more patterns (`LIST "" ("INBOX" "Sent*")`).
    pub patterns: Vec<MailboxArg>,
    pub select: ListSelect,
    pub ret: ListReturn,
    /// True when any extended syntax was used (selection options, pattern
    /// list or RETURN): the response then follows RFC 5258 rules.
    pub extended: bool,
}

/// LIST selection options (RFC 5258 §3.1, RFC 6154 §5.1).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListSelect {
    pub subscribed: bool,
    pub remote: bool,
    pub recursive_match: bool,
    pub special_use: bool,
}

/// LIST return options (RFC 5258 §3.2, RFC 5819, RFC 6154).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// `STATUS (...)` return option: the items to report per mailbox.
    pub status: Option<Vec<StatusItem>>,
}

/// STATUS data items (RFC 9051 §6.3.11, RFC 8438 SIZE, RFC 7162
/// HIGHESTMODSEQ, RFC 7889 APPENDLIMIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    /// IMAP4rev1 only; still accepted from rev2 clients and answered.
    Recent,
    HighestModSeq,
    /// The largest message APPEND accepts into the mailbox (RFC 7889 §3.1).
    AppendLimit,
    /// OBJECTID (RFC 8474 §4).
    MailboxId,
    /// KiB an EXPUNGE would free (RFC 9208 §4.2, with QUOTA=RES-STORAGE).
    DeletedStorage,
}

/// One message of an APPEND.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendMessage {
    pub flags: Vec<Flag>,
    /// The internal date as given, with its zone.
    pub date: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub data: AppendData,
    /// Sent as `~{n}` (literal8, RFC 3516): may contain NUL.
    pub binary: bool,
}

/// Where an APPEND message's bytes are.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendData {
    /// In the command.
    Bytes(Vec<u8>),
    /// Diverted by the framer (a big message, which the session spooled):
    /// the command's `index`-th diverted literal, `size` bytes.
    Diverted { index: usize, size: u64 },
    /// CATENATE (RFC 4469): the message is its parts, in order. Each
    /// [`CatPart::Text`] holds `Bytes` or `Diverted`, never `Catenate`.
    Catenate(Vec<CatPart>),
}

/// One part of a CATENATE message (RFC 4469 §5 `cat-part`).
#[derive(Clone, Debug, PartialEq)]
pub enum CatPart {
    /// `TEXT literal` (or `TEXT literal8`, `binary`): these octets.
    Text { data: AppendData, binary: bool },
    /// `URL astring`: the octets of the message or part the IMAP URL
    /// (RFC 5092) names; the astring's bytes as sent (any bytes: a URL that
    /// is not one is the session's `NO [BADURL]`, not a syntax error).
    Url(Vec<u8>),
}

impl AppendData {
    /// The message's size in bytes; for CATENATE, of its TEXT parts only
    /// (what the URLs add is known once they are resolved).
    pub fn len(&self) -> u64 {
        match self {
            AppendData::Bytes(b) => b.len() as u64,
            AppendData::Diverted { size, .. } => *size,
            AppendData::Catenate(parts) => parts
                .iter()
                .map(|p| match p {
                    CatPart::Text { data, .. } => data.len(),
                    CatPart::Url(_) => 0,
                })
                .fold(0u64, u64::saturating_add),
        }
    }

    /// No bytes at all. A CATENATE message is never empty here: its URLs
    /// may add bytes (the session checks the assembled message).
    pub fn is_empty(&self) -> bool {
        !matches!(self, AppendData::Catenate(_)) && self.len() == 0
    }
}

/// A number in a sequence set: a value or `*` (the largest in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    Asterisk,
}

/// `sequence-set` (RFC 9051 §9), or `$` (SEARCHRES, RFC 5182).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequenceSet {
    /// Ranges as written; `a:b` with a > b is allowed and means b:a.
    Ranges(Vec<(SeqNum, SeqNum)>),
    /// `$`: the result saved by the last `SEARCH RETURN (SAVE)`.
    Saved,
}

/// SEARCH / UID SEARCH with ESEARCH (RFC 4731) and SEARCHRES (RFC 5182).
#[derive(Clone, Debug, PartialEq)]
pub struct SearchCommand {
    pub uid: bool,
    /// `None` when no RETURN was given (a rev1 client expects `* SEARCH`;
    /// a rev2 client gets `* ESEARCH` with ALL). `Some(vec![])` is
    /// `RETURN ()`, which means `RETURN (ALL)`.
    pub ret: Option<Vec<SearchReturn>>,
    /// The charset named by `CHARSET x`, upper-cased. The parser has already
    /// decoded the search strings with it; an unknown charset is a parse
    /// error of kind `BadCharset`.
    pub charset: Option<String>,
    /// The criteria; several top-level keys are ANDed into `SearchKey::And`.
    pub criteria: SearchKey,
}

/// `sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria`
/// (RFC 5256 §5), or the extended form with `RETURN (...)` after `SORT`
/// (ESORT, RFC 5267 §3).
#[derive(Clone, Debug, PartialEq)]
pub struct SortCommand {
    pub uid: bool,
    /// `None` for a plain SORT (answered `* SORT`); `Some` for the
    /// extended SORT (answered `* ESEARCH`), `Some(vec![])` meaning ALL.
    pub ret: Option<Vec<SearchReturn>>,
    /// At least one, in order of precedence.
    pub criteria: Vec<SortCriterion>,
    /// The (mandatory) charset, upper-cased; the search strings are
    /// already decoded with it.
    pub charset: String,
    /// Several top-level keys are ANDed into `SearchKey::And`.
    pub search: SearchKey,
}

/// `sort-criterion = ["REVERSE" SP] sort-key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// `sort-key` (RFC 5256 §5, RFC 5957 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// `thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria`
/// (RFC 5256 §5).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadCommand {
    pub uid: bool,
    pub algorithm: ThreadAlgorithm,
    /// As in [`SortCommand::charset`].
    pub charset: String,
    pub search: SearchKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

/// A SEARCH or extended SORT return option: RFC 4731 (MIN MAX ALL
/// COUNT), RFC 5182 (SAVE), RFC 5267 §4 (CONTEXT UPDATE PARTIAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
    /// A hint that the criteria will be used again (RFC 5267 §4.2).
    Context,
    /// Keep the result current with ADDTO/REMOVEFROM (RFC 5267 §4.3).
    Update,
    /// Only these positions of the result (RFC 5267 §4.4, RFC 9394 §3.1).
    Partial(PartialRange),
}

/// `partial-range` (RFC 5267 §5, with RFC 9394's `-a:-b` form): result
/// positions, 1 the first result (or, `from_end`, the last), both
/// non-zero, kept as the client wrote them since the response echoes
/// them (`500:400` means `400:500`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialRange {
    pub from_end: bool,
    pub first: u32,
    pub second: u32,
}

impl PartialRange {
    /// The 0-based positions of a result of `n` entries this range
    /// selects (empty when it lies beyond the result).
    pub fn slice(&self, n: usize) -> std::ops::Range<usize> {
        let lo = self.first.min(self.second) as usize;
        let hi = self.first.max(self.second) as usize;
        let (start, end) = if self.from_end {
            // -1 is the last result: -k is the (n-k+1)-th.
            (n.saturating_sub(hi), n.saturating_sub(lo.saturating_sub(1)))
        } else {
            (lo.saturating_sub(1), hi.min(n))
        };
        if start >= end { 0..0 } else { start..end }
    }
}

/// A search key (RFC 9051 §6.4.4, plus MODSEQ from RFC 7162, OLDER/YOUNGER
/// from RFC 5032).
#[derive(Clone, Debug, PartialEq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    /// A message sequence set (numbers are sequence numbers).
    SequenceSet(SequenceSet),
    Uid(SequenceSet),
    Answered,
    Deleted,
    Draft,
    Flagged,
    Seen,
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unseen,
    Keyword(String),
    Unkeyword(String),
    /// rev1 only (`\Recent` set), still accepted.
    Recent,
    New,
    Old,
    /// Internal date (date part, in the server's zone), RFC 9051 §6.4.4.
    Before(NaiveDate),
    On(NaiveDate),
    Since(NaiveDate),
    /// Date: header (date part, ignoring its zone).
    SentBefore(NaiveDate),
    SentOn(NaiveDate),
    SentSince(NaiveDate),
    Larger(u64),
    Smaller(u64),
    /// Substring searches, case-insensitive, on decoded text.
    Bcc(String),
    Cc(String),
    From(String),
    To(String),
    Subject(String),
    /// `HEADER name value`; an empty value matches any message with the field.
    Header(String, String),
    Body(String),
    Text(String),
    ModSeq(u64),
    /// Seconds (RFC 5032).
    Older(u32),
    Younger(u32),
    /// The save date (RFC 8514 §4): like BEFORE/ON/SINCE; a message
    /// without one matches none of them.
    SavedBefore(NaiveDate),
    SavedOn(NaiveDate),
    SavedSince(NaiveDate),
    /// Every message, when the mailbox keeps save dates (RFC 8514 §4).
    SaveDateSupported,
    /// OBJECTID (RFC 8474 §6).
    EmailId(String),
    ThreadId(String),
}

/// One FETCH data item (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ).
#[derive(Clone, Debug, PartialEq)]
pub enum FetchAttr {
    Uid,
    Flags,
    InternalDate,
    Rfc822Size,
    Envelope,
    /// `BODY` without a section: non-extensible BODYSTRUCTURE.
    Body,
    BodyStructure,
    /// `RFC822` = `BODY[]` but sets \Seen and is returned as `RFC822`.
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    BodySection {
        peek: bool,
        section: Section,
        /// `<offset.count>`
        partial: Option<(u32, u32)>,
    },
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
    ModSeq,
    /// OBJECTID (RFC 8474 §5).
    EmailId,
    ThreadId,
    /// RFC 8514.
    SaveDate,
    /// RFC 8970; `lazy`: answer only from what is at hand (NIL otherwise).
    Preview {
        lazy: bool,
    },
}

/// `section` (RFC 9051 §6.4.5): a part path and an optional text specifier.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Section {
    /// `1.2.3` -> `[1, 2, 3]`; empty for the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as the client wrote them (case preserved for the echo in
    /// the response).
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only valid with a non-empty part path.
    Mime,
}
