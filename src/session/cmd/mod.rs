//! One file per command (or per small family of commands), one handler
//! each. [`run`] is the only entry: the session has already checked that the
//! command is legal in the current state. The commands of the Selected
//! state get the view they act on as a parameter ([`run_selected`]), so
//! none looks the state up again.

pub mod append;
pub mod auth;
pub mod cancelupdate;
mod catenate;
pub mod compress;
pub mod copy;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod mailbox;
pub mod misc;
pub mod quota;
pub mod replace;
pub mod search;
pub mod select;
pub mod sort;
pub mod store;

use crate::proto::CommandBody;

use super::view::SelectedView;
use super::{CmdResult, Session, Status};

pub async fn run(s: &mut Session, tag: &str, body: CommandBody) -> CmdResult {
    use CommandBody as C;
    if matches!(body, C::Status { .. }) && super::condstore::enables(&body) {
        s.enable_condstore(None);
    }
    match body {
        C::Capability => misc::capability(s),
        C::Noop => misc::noop(s),
        C::Logout => misc::logout(s),
        C::Id(params) => misc::id(s, params),
        C::Enable(caps) => misc::enable(s, caps),
        C::Compress(mechanism) => compress::compress(s, &mechanism),
        C::Namespace => misc::namespace(s),
        C::Check => misc::check(s),
        C::StartTls => auth::starttls(s),
        C::Login { username, password } => auth::login(s, username, password).await,
        C::Authenticate {
            mechanism,
            initial_response,
        } => auth::authenticate(s, mechanism, initial_response).await,
        C::Select {
            mailbox,
            read_only,
            condstore,
            qresync,
        } => select::select(s, mailbox, read_only, condstore, qresync).await,
        C::Close => select::close(s).await,
        C::Unselect => select::unselect(s),
        C::Create {
            mailbox,
            special_use,
        } => mailbox::create(s, mailbox, special_use).await,
        C::Delete(mailbox) => mailbox::delete(s, mailbox).await,
        C::Rename { from, to } => mailbox::rename(s, from, to).await,
        C::Subscribe(mailbox) => mailbox::subscribe(s, mailbox, true).await,
        C::Unsubscribe(mailbox) => mailbox::subscribe(s, mailbox, false).await,
        C::Status { mailbox, items } => mailbox::status(s, mailbox, items).await,
        C::List(list) => list::list(s, list).await,
        C::Lsub { reference, pattern } => list::lsub(s, reference, pattern).await,
        C::Append { mailbox, messages } => append::append(s, mailbox, messages).await,
        C::Idle => idle::idle(s, tag).await,
        C::Notify(set) => s.notify_command(set).await,
        C::GetQuota(root) => quota::getquota(s, root).await,
        C::GetQuotaRoot(mailbox) => quota::getquotaroot(s, mailbox).await,
        C::SetQuota { root, limits } => quota::setquota(s, root, limits).await,
        C::Expunge { .. }
        | C::Search(_)
        | C::Sort(_)
        | C::Thread(_)
        | C::Fetch { .. }
        | C::Store { .. }
        | C::Copy { .. }
        | C::Move { .. }
        | C::CancelUpdate(_)
        | C::Replace { .. } => run_selected(s, tag, body).await,
    }
}

/// Runs a command that acts on the selected mailbox with its view lent
/// out of the session state for the command's length.
async fn run_selected(s: &mut Session, tag: &str, body: CommandBody) -> CmdResult {
    let Some(mut view) = s.take_view() else {
        return Err(Status::bad(format!(
            "{} requires a selected mailbox.",
            body.name()
        )));
    };
    if super::condstore::enables(&body) {
        s.enable_condstore(Some(&view));
    }
    let result = on_view(s, &mut view, tag, body).await;
    s.restore_view(view);
    result
}

async fn on_view(
    s: &mut Session,
    view: &mut SelectedView,
    tag: &str,
    body: CommandBody,
) -> CmdResult {
    use CommandBody as C;
    match body {
        C::Expunge { uids } => expunge::expunge(view, uids, s.enabled.condstore).await,
        C::Search(cmd) => search::search(s, view, tag, cmd).await,
        C::Sort(cmd) => sort::sort(s, view, tag, cmd).await,
        C::CancelUpdate(tags) => cancelupdate::cancel_update(view, tags),
        C::Thread(cmd) => sort::thread(s, view, cmd).await,
        C::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        } => {
            if vanished {
                fetch::vanished_earlier(s, view, &set, changed_since)?;
            }
            fetch::fetch(s, view, uid, set, items, changed_since).await
        }
        C::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        } => store::store(s, view, uid, set, op, silent, flags, unchanged_since).await,
        C::Copy { uid, set, mailbox } => copy::copy(s, view, uid, set, mailbox, false).await,
        C::Move { uid, set, mailbox } => copy::copy(s, view, uid, set, mailbox, true).await,
        C::Replace {
            uid,
            number,
            mailbox,
            message,
        } => replace::replace(s, view, uid, number, mailbox, message).await,
        other => Err(Status::bad(format!(
            "{} does not act on a selected mailbox.",
            other.name()
        ))),
    }
}
