//! Tables keyed by a message's base name that do not hold a copy of it.
//!
//! A base name is the start of the message's file name (before `:2,`), so
//! the name is already in memory once, in the file name the folder keeps.
//! A `HashMap<String, _>` keyed by it held a second (and, with the uidlist
//! records of a first scan, a third) copy: at 100,000 messages 100,000
//! small allocations, about 8 MB each time, and fresh memory is what a cold
//! SELECT pays for most on a VM whose host hands back pages lazily (see
//! `bench/RESULTS.md`). These tables store only the entry and its hash and
//! compare names by looking at the entry's own file name.
//!
//! Owns no state of the folder: it never decides which file a UID has,
//! only finds it. Built on `hashbrown::HashTable` (the table under std's
//! `HashMap`), which lets the caller say how an entry is hashed and
//! compared; std has no such interface.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::super::filename;

/// The hash of a base name in every table here (FxHash: the names are our
/// own directory's, see Cargo.toml).
pub(super) fn hash(base: &str) -> u64 {
    FxBuildHasher.hash_one(base)
}

/// The base name of a file name.
pub(super) fn base_of(fname: &str) -> &str {
    filename::split(fname).0
}

/// Base name -> UID, for the messages of a folder. An entry is the UID and
/// the name's hash; the name is looked up in the folder's messages (sorted
/// by UID) through `name_of`.
#[derive(Default)]
pub(super) struct ByBase {
    t: HashTable<(u64, u32)>,
}

impl ByBase {
    pub(super) fn reserve(&mut self, n: usize) {
        self.t.reserve(n, |e| e.0);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.t.len()
    }

    /// The UID of the message named `base`. `name_of(uid)` is that
    /// message's base name (`None`: no such message).
    pub(super) fn get<'a>(
        &self,
        base: &str,
        name_of: impl Fn(u32) -> Option<&'a str>,
    ) -> Option<u32> {
        let h = hash(base);
        self.t
            .find(h, |e| e.0 == h && name_of(e.1) == Some(base))
            .map(|e| e.1)
    }

    /// Records that `uid` is named `base`, replacing the entry another UID
    /// had for that name. `name_of` as for [`ByBase::get`], over the
    /// messages already entered (it is asked about those only).
    pub(super) fn insert<'a>(
        &mut self,
        base: &str,
        uid: u32,
        name_of: impl Fn(u32) -> Option<&'a str>,
    ) {
        let h = hash(base);
        match self.t.find_mut(h, |e| {
            e.0 == h && (e.1 == uid || name_of(e.1) == Some(base))
        }) {
            Some(e) => e.1 = uid,
            None => {
                self.t.insert_unique(h, (h, uid), |e| e.0);
            }
        }
    }

    /// Forgets that `uid` is named `base` (nothing if it is not).
    pub(super) fn remove(&mut self, base: &str, uid: u32) {
        let h = hash(base);
        if let Ok(e) = self.t.find_entry(h, |e| e.0 == h && e.1 == uid) {
            e.remove();
        }
    }
}

/// A value that is about one file, named by [`FileNamed::file_name`].
pub(super) trait FileNamed {
    fn file_name(&self) -> &str;
    fn base(&self) -> &str {
        base_of(self.file_name())
    }
}

/// Base name -> one value about a file of that base name, the name read
/// from the value's own file name.
pub(super) struct Names<T> {
    t: HashTable<T>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names {
            t: HashTable::new(),
        }
    }
}

impl<T: FileNamed> Names<T> {
    /// Room for `n` names without growing mid-scan (a rehash of 100,000
    /// entries was 3 % of a cold SELECT).
    pub(super) fn with_capacity(n: usize) -> Self {
        Names {
            t: HashTable::with_capacity(n),
        }
    }

    pub(super) fn entry(&mut self, base: &str) -> hashbrown::hash_table::Entry<'_, T> {
        self.t
            .entry(hash(base), |x| x.base() == base, |x| hash(x.base()))
    }

    /// Adds `v`, replacing (and returning) the value its base name had.
    pub(super) fn insert(&mut self, v: T) -> Option<T> {
        let h = hash(v.base());
        match self
            .t
            .entry(h, |x| x.base() == v.base(), |x| hash(x.base()))
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                Some(std::mem::replace(e.get_mut(), v))
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(v);
                None
            }
        }
    }

    pub(super) fn get(&self, base: &str) -> Option<&T> {
        self.t.find(hash(base), |x| x.base() == base)
    }

    pub(super) fn contains(&self, base: &str) -> bool {
        self.get(base).is_some()
    }

    pub(super) fn remove(&mut self, base: &str) -> Option<T> {
        self.t
            .find_entry(hash(base), |x| x.base() == base)
            .ok()
            .map(|e| e.remove().0)
    }

    pub(super) fn len(&self) -> usize {
        self.t.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
}

impl<T> IntoIterator for Names<T> {
    type Item = T;
    type IntoIter = hashbrown::hash_table::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.t.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the folder's messages: (UID, base name), by UID.
    fn name_in<'a>(msgs: &'a [(u32, &'a str)]) -> impl Fn(u32) -> Option<&'a str> {
        move |uid| {
            msgs.binary_search_by_key(&uid, |m| m.0)
                .ok()
                .map(|i| msgs[i].1)
        }
    }

    #[test]
    fn finds_inserts_replaces_and_removes_by_name() {
        let msgs = [(1, "a"), (2, "b"), (3, "c"), (7, "b")];
        let mut t = ByBase::default();
        t.insert("a", 1, name_in(&msgs));
        t.insert("b", 2, name_in(&msgs));
        t.insert("c", 3, name_in(&msgs));
        assert_eq!(t.get("a", name_in(&msgs)), Some(1));
        assert_eq!(t.get("b", name_in(&msgs)), Some(2));
        assert_eq!(t.get("d", name_in(&msgs)), None);
        // Another UID with the same name takes the entry over.
        t.insert("b", 7, name_in(&msgs));
        assert_eq!(t.len(), 3);
        assert_eq!(t.get("b", name_in(&msgs)), Some(7));
        // Removing by a UID that is not the entry's keeps it.
        t.remove("b", 2);
        assert_eq!(t.get("b", name_in(&msgs)), Some(7));
        t.remove("b", 7);
        assert_eq!(t.get("b", name_in(&msgs)), None);
        assert_eq!(t.len(), 2);
        // An entry whose message is gone is not found.
        assert_eq!(t.get("c", name_in(&msgs[..2])), None);
    }

    #[test]
    fn survives_growth_without_the_names() {
        // Growing rehashes from the stored hashes, not by asking for names.
        let names: Vec<String> = (0..5000).map(|i| format!("{i}.M{i}P1.host")).collect();
        let msgs: Vec<(u32, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u32 + 1, n.as_str()))
            .collect();
        let mut t = ByBase::default();
        for (uid, n) in &msgs {
            t.insert(n, *uid, name_in(&msgs));
        }
        for (uid, n) in &msgs {
            assert_eq!(t.get(n, name_in(&msgs)), Some(*uid), "{n}");
        }
        assert_eq!(base_of("1.M1P1.host:2,S"), "1.M1P1.host");
    }
}
