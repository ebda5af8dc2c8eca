//! NOTIFY (RFC 5465 §8):
//!
//! ```text
//! notify            = "NOTIFY" SP (notify-set / notify-none)
//! notify-none       = "NONE"
//! notify-set        = "SET" [status-indicator] SP event-groups
//! status-indicator  = SP "STATUS"
//! event-groups      = event-group *(SP event-group)
//! event-group       = "(" filter-mailboxes SP events ")"
//! filter-mailboxes  = "selected" / "selected-delayed" / "inboxes" /
//!                     "personal" / "subscribed" /
//!                     ("subtree" SP one-or-more-mailbox) /
//!                     ("mailboxes" SP one-or-more-mailbox)
//! one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
//! events            = ("(" event *(SP event) ")") / "NONE"
//! event             = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) /
//!                     "MessageExpunge" / "FlagChange" / "AnnotationChange" /
//!                     "MailboxName" / "SubscriptionChange" /
//!                     "MailboxMetadataChange" / "ServerMetadataChange" / atom
//! ```
//!
//! Only the grammar: which combinations are allowed (§5, §6.1) and which
//! events are supported is the session's (`session::notify`).

use super::{P, R, bad};
use crate::proto::command::*;

impl P<'_> {
    /// After `NOTIFY`.
    pub(super) fn notify(&mut self) -> R<CommandBody> {
        self.sp()?;
        match self.keyword()?.as_str() {
            "NONE" => Ok(CommandBody::Notify(None)),
            "SET" => {
                self.sp()?;
                let status = self.peek_kw("STATUS");
                if status {
                    self.keyword()?;
                    self.sp()?;
                }
                let mut groups = vec![self.notify_group()?];
                while !self.at_end() {
                    self.sp()?;
                    groups.push(self.notify_group()?);
                }
                Ok(CommandBody::Notify(Some(NotifySet { status, groups })))
            }
            k => bad(format!("Expected SET or NONE, not {k}")),
        }
    }

    /// `event-group = "(" filter-mailboxes SP events ")"`.
    fn notify_group(&mut self) -> R<NotifyGroup> {
        self.expect(b'(')?;
        let filter = match self.keyword()?.as_str() {
            "SELECTED" => NotifyFilter::Selected,
            "SELECTED-DELAYED" => NotifyFilter::SelectedDelayed,
            "INBOXES" => NotifyFilter::Inboxes,
            "PERSONAL" => NotifyFilter::Personal,
            "SUBSCRIBED" => NotifyFilter::Subscribed,
            "SUBTREE" => {
                self.sp()?;
                NotifyFilter::Subtree(self.one_or_more_mailbox()?)
            }
            "MAILBOXES" => {
                self.sp()?;
                NotifyFilter::Mailboxes(self.one_or_more_mailbox()?)
            }
            f => return bad(format!("Unknown NOTIFY mailbox filter {f}")),
        };
        self.sp()?;
        let events = if self.peek() == Some(b'(') {
            self.paren_list(false, Self::notify_event)?
        } else {
            match self.keyword()?.as_str() {
                "NONE" => Vec::new(),
                e => return bad(format!("Expected a list of events or NONE, not {e}")),
            }
        };
        self.expect(b')')?;
        Ok(NotifyGroup { filter, events })
    }

    /// `one-or-more-mailbox = mailbox / many-mailboxes`.
    fn one_or_more_mailbox(&mut self) -> R<Vec<MailboxArg>> {
        if self.peek() == Some(b'(') {
            self.paren_list(false, Self::mailbox)
        } else {
            Ok(vec![self.mailbox()?])
        }
    }

    /// One `event`.
    fn notify_event(&mut self) -> R<NotifyEvent> {
        let name = self.keyword()?;
        Ok(match name.as_str() {
            "MESSAGENEW" => {
                let atts = if self.rest().starts_with(b" (") {
                    self.sp()?;
                    self.paren_list(false, Self::fetch_att)?
                } else {
                    Vec::new()
                };
                NotifyEvent::MessageNew(atts)
            }
            "MESSAGEEXPUNGE" => NotifyEvent::MessageExpunge,
            "FLAGCHANGE" => NotifyEvent::FlagChange,
            "ANNOTATIONCHANGE" => NotifyEvent::AnnotationChange,
            "MAILBOXNAME" => NotifyEvent::MailboxName,
            "SUBSCRIPTIONCHANGE" => NotifyEvent::SubscriptionChange,
            "MAILBOXMETADATACHANGE" => NotifyEvent::MailboxMetadataChange,
            "SERVERMETADATACHANGE" => NotifyEvent::ServerMetadataChange,
            _ => NotifyEvent::Other(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::proto::command::*;

    fn set(status: bool, groups: Vec<NotifyGroup>) -> CommandBody {
        CommandBody::Notify(Some(NotifySet { status, groups }))
    }

    fn group(filter: NotifyFilter, events: Vec<NotifyEvent>) -> NotifyGroup {
        NotifyGroup { filter, events }
    }

    #[test]
    fn good_notify() {
        use NotifyEvent as E;
        use NotifyFilter as F;
        good(vec![
            (b"a NOTIFY NONE\r\n", CommandBody::Notify(None)),
            // RFC 5465 §3.1's example.
            (
                b"a notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge MailboxName SubscriptionChange MailboxMetadataChange)) (mailboxes (Misc \"Other One\") (MessageNew MessageExpunge MailboxName))\r\n",
                set(
                    true,
                    vec![
                        group(
                            F::Selected,
                            vec![
                                E::MessageNew(vec![
                                    FetchAttr::Uid,
                                    body_section(
                                        true,
                                        &[],
                                        Some(SectionText::HeaderFields(vec!["from".into(), "to".into(), "subject".into()])),
                                    ),
                                ]),
                                E::MessageExpunge,
                            ],
                        ),
                        group(
                            F::Subtree(vec!["Lists".into()]),
                            vec![E::MessageNew(vec![]), E::MessageExpunge, E::MailboxName, E::SubscriptionChange, E::MailboxMetadataChange],
                        ),
                        group(
                            F::Mailboxes(vec!["Misc".into(), "Other One".into()]),
                            vec![E::MessageNew(vec![]), E::MessageExpunge, E::MailboxName],
                        ),
                    ],
                ),
            ),
            (
                b"a NOTIFY SET (selected-delayed NONE) (personal (MessageNew MessageExpunge FlagChange)) (inboxes (Foo)) (subscribed (SubscriptionChange))\r\n",
                set(
                    false,
                    vec![
                        group(F::SelectedDelayed, vec![]),
                        group(F::Personal, vec![E::MessageNew(vec![]), E::MessageExpunge, E::FlagChange]),
                        group(F::Inboxes, vec![E::Other("FOO".into())]),
                        group(F::Subscribed, vec![E::SubscriptionChange]),
                    ],
                ),
            ),
        ]);
    }

    #[test]
    fn bad_notify() {
        bad(&[
            (b"a NOTIFY\r\n", Some("a"), "Missing argument"),
            (
                b"a NOTIFY SOME\r\n",
                Some("a"),
                "Expected SET or NONE, not SOME",
            ),
            (b"a NOTIFY SET\r\n", Some("a"), "Missing argument"),
            (
                b"a NOTIFY SET (everything (MessageNew))\r\n",
                Some("a"),
                "Unknown NOTIFY mailbox filter EVERYTHING",
            ),
            (
                b"a NOTIFY SET (personal MessageNew)\r\n",
                Some("a"),
                "Expected a list of events or NONE, not MESSAGENEW",
            ),
            (b"a NOTIFY SET (personal ())\r\n", Some("a"), "Empty list"),
            (
                b"a NOTIFY SET (subtree (MessageNew))\r\n",
                Some("a"),
                "Expected a space",
            ),
            (
                b"a NOTIFY NONE extra\r\n",
                Some("a"),
                "Unexpected extra arguments",
            ),
        ]);
    }
}
