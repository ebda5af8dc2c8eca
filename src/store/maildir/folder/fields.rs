//! The uidlist extension fields of messages: what `dovecot-uidlist` says
//! about a message beyond its UID and sizes. Dovecot writes `P<uidl>` (a
//! POP3 UIDL kept from a migration or saved by its POP3 server), `O<n>`
//! (POP3 order) and `G<guid>` (`maildir-uidlist.h`); a POP3 client that
//! moved over from Dovecot or Courier depends on `P` never being lost, or
//! it downloads everything again.
//!
//! Owns keeping them per message (in [`Rare`]: a message without any
//! costs nothing) from every place a folder learns them (the uidlist read
//! whole or appended to, records adopted when their files are seen, the
//! index), and answering the POP3 session's questions about them. Every
//! full rewrite of the uidlist writes them back (`sync`). It never makes
//! up or changes a field: the uidlist is the authority, and a record read
//! from it replaces what a message had; a message whose record is not in
//! the file keeps its fields. The one field nestbox writes itself is a
//! copy's or moved message's `G` (its EMAILID, see `objectid`), in the
//! new record. `S` and `W` are not kept here: the folder owns sizes and
//! writes the ones it knows.
//!
//! The index keeps the fields (see `index`'s module doc) rather than the
//! folder re-reading the uidlist on every open: the seal lets a folder
//! open without reading a file of 8 MB at 100,000 messages, and the fields
//! of a folder that has none cost the index nothing.

use super::*;

impl Msg {
    /// The extension fields of its uidlist record (other than `S` and `W`),
    /// as [`uidlist::Record::extra`] keeps them; empty for nearly all.
    pub(super) fn ul_fields(&self) -> &str {
        self.rare.as_ref().map_or("", |r| &r.ul_fields)
    }

    pub(super) fn set_ul_fields(&mut self, fields: &str) {
        self.edit_rare(fields.is_empty(), |r| r.ul_fields = fields.into());
    }

    /// Takes the fields a uidlist record gives this message (as
    /// [`uidlist::Parsed::fields`] yields them); returns whether they
    /// changed (the index is then behind).
    pub(super) fn take_fields<'a>(
        &mut self,
        fields: impl Iterator<Item = &'a str> + Clone,
    ) -> bool {
        if uidlist::same_fields(fields.clone(), self.ul_fields()) {
            return false;
        }
        let text: Vec<&str> = fields.collect();
        self.set_ul_fields(&text.join(" "));
        true
    }

    /// The value of the field with this key, if the record has one.
    pub(super) fn field(&self, key: char) -> Option<&str> {
        self.ul_fields()
            .split(' ')
            .find_map(|f| f.strip_prefix(key))
    }
}

impl State {
    /// [`Msg::take_fields`] for message `uid`, if it is here.
    pub(super) fn take_record_fields<'a>(
        &mut self,
        uid: u32,
        fields: impl Iterator<Item = &'a str> + Clone,
    ) {
        if let Some(i) = self.find(uid) {
            self.dirty |= self.msgs[i].take_fields(fields);
        }
    }

    /// The fields an index image kept ([`IndexData::fields`]), given to
    /// its messages, just loaded (a line whose UID is not one of them with
    /// that base name is stale and ignored).
    pub(super) fn take_indexed_fields(&mut self, image: &[u8]) {
        if image.is_empty() {
            return;
        }
        for r in uidlist::parse_records(image, 3) {
            if let Some(i) = self.find(r.uid)
                && self.msgs[i].base() == r.base
            {
                self.msgs[i].set_ul_fields(&r.extra);
            }
        }
    }

    /// What [`IndexData::fields`] holds of this state: a uidlist line for
    /// each message with fields, ascending by UID (nothing, and one quick
    /// pass, in a folder without any).
    pub(super) fn fields_image(&self) -> Vec<u8> {
        uidlist::render_lines(
            self.msgs
                .iter()
                .filter(|m| !m.ul_fields().is_empty())
                .map(|m| uidlist::Line {
                    uid: m.uid,
                    base: m.base(),
                    size: None,
                    vsize: None,
                    extra: m.ul_fields(),
                }),
        )
    }
}

impl Folder {
    /// The POP3 UIDLs the uidlist keeps for messages of this folder
    /// (Dovecot's `P` field), ascending by UID; messages without one are
    /// not listed (their UIDL is the session's to derive). An empty `P`
    /// stands for the message's base file name, as in Dovecot
    /// (`maildir_mail_get_special`, `MAIL_FETCH_UIDL_BACKEND`), and is
    /// given as that. One pass over the folder's records, allocating
    /// nothing when no message has fields: a POP3 session asks once at
    /// login.
    pub fn pop3_uidls(&self) -> Vec<(u32, Box<str>)> {
        let st = self.lock_state();
        st.msgs
            .iter()
            .filter_map(|m| {
                let uidl = m.field('P')?;
                let uidl = if uidl.is_empty() { m.base() } else { uidl };
                Some((m.uid, uidl.into()))
            })
            .collect()
    }

    /// Each message's base file name (up to the first `:`) and GUID (the
    /// uidlist's `G` field, else the base name, as Dovecot's
    /// `MAIL_FETCH_GUID` on Maildir), ascending by UID: what a POP3 UIDL
    /// format with `%f` or `%g` is made of. Asked once at login, only by
    /// such a format.
    pub fn base_names_and_guids(&self) -> Vec<(u32, Box<str>, Box<str>)> {
        let st = self.lock_state();
        st.msgs
            .iter()
            .map(|m| {
                let base = m.base();
                let guid = m.field('G').filter(|g| !g.is_empty()).unwrap_or(base);
                (m.uid, base.into(), guid.into())
            })
            .collect()
    }

    /// The POP3 order numbers the uidlist keeps (Dovecot's `O` field),
    /// ascending by UID; messages without one (or with one that is not a
    /// number) are not listed. Dovecot's POP3 server lists messages with
    /// an order number first, by that number, then the others by UID.
    pub fn pop3_orders(&self) -> Vec<(u32, u32)> {
        let st = self.lock_state();
        st.msgs
            .iter()
            .filter_map(|m| Some((m.uid, m.field('O')?.parse().ok()?)))
            .collect()
    }
}
