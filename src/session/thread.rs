//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §2.2) over the
//! messages a search found.
//!
//! Pure: each message comes as an [`Item`] (its sent date, base subject
//! key, Message-ID and references, read by the caller from the header
//! digest with `session::sort::Headers`), and the result is a forest of
//! item indices and dummies, which the caller maps to sequence numbers or
//! UIDs and encodes.
//!
//! Threads can be as deep as the mailbox is long (a reply chain), so
//! nothing here recurses: trees are kept in an arena ([`Forest`]) and
//! walked with explicit stacks or level orders. Sent dates tie-break by
//! sequence number (RFC 5256 §2.2), so every order here is total and the
//! output does not depend on hash order.
use std::collections::HashMap;

/// One searched message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Item {
    /// Its sequence number (the tie-breaker of sent dates).
    pub seq: u32,
    /// The sent date, seconds since the epoch (see `sort::Headers`).
    pub date: i64,
    /// The base subject's collation key (RFC 5256 §2.1).
    pub subject: String,
    /// The subject marked a reply or forward.
    pub reply: bool,
    /// The first valid Message-ID, if any.
    pub message_id: Option<String>,
    /// The References ids, or else the first In-Reply-To id.
    pub references: Vec<String>,
}

/// A node: a message (an index into the items) or a dummy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub item: Option<usize>,
    pub children: Vec<usize>,
}

/// Threads: `roots` in order, each a tree of `nodes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forest {
    pub nodes: Vec<Node>,
    pub roots: Vec<usize>,
}

/// The valid message ids of a Message-ID, References or In-Reply-To
/// value, in order: `<...>` with an `@`, white space inside dropped (as
/// Dovecot reads them). Ids compare case-sensitively (RFC 5256 §2.2).
pub(crate) fn message_ids(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(open) = memchr::memchr(b'<', &value[i..]) {
        let start = i + open + 1;
        let rest = &value[start..];
        // The id runs to the next `>`, unless another `<` comes first.
        match rest.iter().position(|&c| c == b'>' || c == b'<') {
            Some(n) if rest[n] == b'>' => {
                let id: Vec<u8> = rest[..n]
                    .iter()
                    .copied()
                    .filter(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
                    .collect();
                let at = id.iter().position(|&c| c == b'@');
                if at.is_some_and(|a| a > 0 && a + 1 < id.len()) {
                    out.push(String::from_utf8_lossy(&id).into_owned());
                }
                i = start + n + 1;
            }
            Some(n) => i = start + n,
            None => break,
        }
    }
    out
}

/// The order of sent dates, ties by sequence number.
fn date_key(items: &[Item], i: usize) -> (i64, u32) {
    (items[i].date, items[i].seq)
}

/// THREAD=ORDEREDSUBJECT: messages grouped by base subject; the first
/// (by sent date) of each group is the root, the others its children in
/// date order; threads in the order of their first message's date.
pub(crate) fn ordered_subject(items: &[Item]) -> Forest {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[a]
            .subject
            .cmp(&items[b].subject)
            .then(date_key(items, a).cmp(&date_key(items, b)))
    });
    let mut f = Forest {
        nodes: (0..items.len())
            .map(|i| Node {
                item: Some(i),
                children: Vec::new(),
            })
            .collect(),
        roots: Vec::new(),
    };
    let mut k = 0;
    while k < order.len() {
        let root = order[k];
        let mut j = k + 1;
        while j < order.len() && items[order[j]].subject == items[root].subject {
            f.nodes[root].children.push(order[j]);
            j += 1;
        }
        f.roots.push(root);
        k = j;
    }
    f.roots.sort_by_key(|&r| date_key(items, r));
    f
}

/// The working tree of THREAD=REFERENCES: containers with parent links
/// (step 1 needs them for its loop checks).
struct Tree {
    nodes: Vec<Node>,
    parent: Vec<Option<usize>>,
}

impl Tree {
    fn add(&mut self, item: Option<usize>) -> usize {
        self.nodes.push(Node {
            item,
            children: Vec::new(),
        });
        self.parent.push(None);
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or one of its descendants (walks up from `a`).
    fn is_within(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(a);
        while let Some(c) = cur {
            if c == b {
                return true;
            }
            cur = self.parent[c];
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.parent[child].take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// Makes `parent` the parent of `child` unless that makes a loop.
    fn link(&mut self, parent: usize, child: usize) {
        if self.is_within(parent, child) {
            return;
        }
        self.parent[child] = Some(parent);
        self.nodes[parent].children.push(child);
    }
}

/// The sort key of a node for steps 4 and 6: its message's sent date, or
/// its first child's for a dummy (whose children are sorted by then).
fn node_key(nodes: &[Node], items: &[Item], n: usize) -> (i64, u32) {
    let mut n = n;
    loop {
        match nodes[n].item {
            Some(i) => return date_key(items, i),
            None => match nodes[n].children.first() {
                Some(&c) => n = c,
                None => return (i64::MAX, u32::MAX),
            },
        }
    }
}

/// Nodes reachable from `roots`, parents before children (level order).
fn level_order(nodes: &[Node], roots: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = roots.to_vec();
    let mut k = 0;
    while k < order.len() {
        let n = order[k];
        order.extend_from_slice(&nodes[n].children);
        k += 1;
    }
    order
}

/// THREAD=REFERENCES (RFC 5256 §2.2), steps 1 to 6.
pub(crate) fn references(items: &[Item]) -> Forest {
    let mut t = Tree {
        nodes: Vec::with_capacity(items.len() * 2),
        parent: Vec::with_capacity(items.len() * 2),
    };
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(items.len() * 2);
    let mut own = Vec::with_capacity(items.len());
    // (1) Containers for every message, in mailbox order (so a duplicate
    // Message-ID stays with its first message; the others get a unique
    // one, that is, none in the table).
    for (i, it) in items.iter().enumerate() {
        let c = match it.message_id.as_deref() {
            Some(id) => match ids.get(id) {
                Some(&c) if t.nodes[c].item.is_none() => {
                    t.nodes[c].item = Some(i);
                    c
                }
                Some(_) => t.add(Some(i)),
                None => {
                    let c = t.add(Some(i));
                    ids.insert(id, c);
                    c
                }
            },
            None => t.add(Some(i)),
        };
        own.push(c);
        // (1A) Link the references in order, parent before child, not
        // changing an existing parent, never making a loop. Ids not
        // (yet) seen become dummies.
        let mut prev: Option<usize> = None;
        for r in &it.references {
            let rc = match ids.get(r.as_str()) {
                Some(&rc) => rc,
                None => {
                    let rc = t.add(None);
                    ids.insert(r, rc);
                    rc
                }
            };
            if let Some(p) = prev {
                if p != rc && t.parent[rc].is_none() {
                    t.link(p, rc);
                }
            }
            prev = Some(rc);
        }
        // (1B) The last reference is the message's parent, whatever parent
        // an earlier message's References gave it.
        t.unlink(c);
        if let Some(p) = prev {
            t.link(p, c);
        }
    }
    // (2) The messages without a parent are the roots.
    let mut roots: Vec<usize> = (0..t.nodes.len())
        .filter(|&n| t.parent[n].is_none())
        .collect();
    let mut nodes = t.nodes;

    // (3) Prune dummies, deepest first so that a dummy's children are
    // final when it is spliced away: an empty dummy goes; one with
    // children is replaced by them, except at the top level where only a
    // dummy with a single child is.
    for n in level_order(&nodes, &roots).into_iter().rev() {
        let list = std::mem::take(&mut nodes[n].children);
        nodes[n].children = prune(&nodes, list, false);
    }
    roots = prune(&nodes, roots, true);

    // (4) Top level by sent date; a dummy by its first child's, its
    // children sorted first.
    for &r in &roots {
        if nodes[r].item.is_none() {
            let mut ch = std::mem::take(&mut nodes[r].children);
            ch.sort_by_key(|&c| node_key(&nodes, items, c));
            nodes[r].children = ch;
        }
    }
    roots.sort_by_key(|&r| node_key(&nodes, items, r));

    // (5) Merge threads with the same base subject.
    let subject_of = |nodes: &[Node], n: usize| -> Option<usize> {
        match nodes[n].item {
            Some(i) => Some(i),
            None => nodes[n].children.first().and_then(|&c| nodes[c].item),
        }
    };
    // (5B) One thread per subject: a dummy is preferred, then a thread
    // whose subject does not mark a reply or forward.
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &r in &roots {
        let Some(i) = subject_of(&nodes, r) else {
            continue;
        };
        let subj = items[i].subject.as_str();
        if subj.is_empty() {
            continue;
        }
        match table.get(subj) {
            None => {
                table.insert(subj, r);
            }
            Some(&old) => {
                let old_dummy = nodes[old].item.is_none();
                let cur_dummy = nodes[r].item.is_none();
                let old_reply = nodes[old].item.is_some_and(|x| items[x].reply);
                let cur_reply = nodes[r].item.is_some_and(|x| items[x].reply);
                if !old_dummy && (cur_dummy || (old_reply && !cur_reply)) {
                    table.insert(subj, r);
                }
            }
        }
    }
    // (5C) Merge each other thread into the table's. Where the threads
    // end up at the top level does not matter: step 6 sorts it again.
    let mut root = vec![false; nodes.len()];
    for &r in &roots {
        root[r] = true;
    }
    let mut made = Vec::new();
    for &r in &roots {
        if !root[r] {
            // Merged into a new dummy below already.
            continue;
        }
        let Some(subj) = subject_of(&nodes, r)
            .map(|i| items[i].subject.as_str())
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let Some(&t) = table.get(subj).filter(|&&t| t != r) else {
            continue;
        };
        let t_dummy = nodes[t].item.is_none();
        let r_dummy = nodes[r].item.is_none();
        let r_reply = nodes[r].item.is_some_and(|x| items[x].reply);
        let t_reply = nodes[t].item.is_some_and(|x| items[x].reply);
        root[r] = false;
        if t_dummy && r_dummy {
            let mut ch = std::mem::take(&mut nodes[r].children);
            nodes[t].children.append(&mut ch);
        } else if t_dummy || (r_reply && !t_reply) {
            nodes[t].children.push(r);
        } else {
            // Both are messages: a new dummy holds them, in the table's
            // place (so later threads of the subject join it).
            nodes.push(Node {
                item: None,
                children: vec![t, r],
            });
            let d = nodes.len() - 1;
            root[t] = false;
            root.push(true);
            table.insert(subj, d);
            made.push(d);
        }
    }
    let mut roots: Vec<usize> = roots.into_iter().chain(made).filter(|&r| root[r]).collect();

    // (6) Every set of siblings by sent date, deepest first; a dummy by
    // its first child.
    for n in level_order(&nodes, &roots).into_iter().rev() {
        if nodes[n].children.len() > 1 {
            let mut ch = std::mem::take(&mut nodes[n].children);
            ch.sort_by_key(|&c| node_key(&nodes, items, c));
            nodes[n].children = ch;
        }
    }
    roots.sort_by_key(|&r| node_key(&nodes, items, r));
    Forest { nodes, roots }
}

/// Step 3 for one list of siblings (whose own children are pruned).
fn prune(nodes: &[Node], list: Vec<usize>, top: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        let n = &nodes[c];
        if n.item.is_some() {
            out.push(c);
        } else if n.children.is_empty() {
            // An empty dummy: gone.
        } else if !top || n.children.len() == 1 {
            out.extend_from_slice(&n.children);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
