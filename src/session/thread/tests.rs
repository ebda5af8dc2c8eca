use proptest::prelude::*;

use super::*;
use crate::proto::encode::{ThreadNode, thread_lists};

/// A message for the tests: sequence number = position + 1, date = `day`.
fn item(day: i64, subject: &str, id: &str, refs: &[&str]) -> Item {
    let (base, reply) = crate::mime::subject::base_subject(subject);
    Item {
        seq: 0,
        date: day * 86_400,
        subject: crate::mime::collate::casemap_key(&base),
        reply,
        message_id: (!id.is_empty()).then(|| id.to_string()),
        references: refs.iter().map(|r| r.to_string()).collect(),
    }
}

fn numbered(mut items: Vec<Item>) -> Vec<Item> {
    for (k, it) in items.iter_mut().enumerate() {
        it.seq = k as u32 + 1;
    }
    items
}

/// The wire form, with sequence numbers.
fn wire(items: &[Item], f: &Forest) -> String {
    let nodes: Vec<ThreadNode> = f
        .nodes
        .iter()
        .map(|n| ThreadNode {
            number: n.item.map(|i| items[i].seq),
            children: n.children.clone(),
        })
        .collect();
    let mut out = Vec::new();
    thread_lists(&mut out, &nodes, &f.roots);
    String::from_utf8_lossy(&out).into_owned()
}

fn refs(items: Vec<Item>) -> String {
    let items = numbered(items);
    wire(&items, &references(&items))
}

fn ordered(items: Vec<Item>) -> String {
    let items = numbered(items);
    wire(&items, &ordered_subject(&items))
}

#[test]
fn message_id_values() {
    let cases: [(&str, &[&str]); 8] = [
        ("<a@b>", &["a@b"]),
        (
            "  <a@b> (comment) <c@d>\r\n <e\r\n @f>",
            &["a@b", "c@d", "e@f"],
        ),
        ("<no-at> <@x> <x@> <ok@x>", &["ok@x"]),
        ("<a@b", &[]),
        ("<<a@b>", &["a@b"]),
        ("a@b", &[]),
        ("", &[]),
        ("<A@B> <a@b>", &["A@B", "a@b"]),
    ];
    for (v, want) in cases {
        assert_eq!(message_ids(v.as_bytes()), want, "{v:?}");
    }
}

#[test]
fn ordered_subject_threads() {
    // RFC 5256 §2.2 ORDEREDSUBJECT: by base subject, then sent date;
    // threads by the date of their first message; the first message is
    // the root, the others its children.
    let out = ordered(vec![
        item(5, "Beta", "", &[]),
        item(1, "Re: Alpha", "", &[]),
        item(3, "alpha", "", &[]),
        item(2, "Gamma", "", &[]),
        item(4, "[list] ALPHA (fwd)", "", &[]),
        item(6, "", "", &[]),
        item(0, "Re:", "", &[]),
        item(7, "Beta", "", &[]),
    ]);
    assert_eq!(out, "(7 6)(2 (3)(5))(4)(1 8)");
    // Equal dates fall back to sequence numbers.
    assert_eq!(
        ordered(vec![
            item(1, "x", "", &[]),
            item(1, "x", "", &[]),
            item(1, "y", "", &[])
        ]),
        "(1 2)(3)"
    );
    assert_eq!(ordered(vec![]), "");
}

#[test]
fn references_links_and_orders() {
    // A chain, a sibling and a late reply, sorted by date at each level.
    let out = refs(vec![
        item(1, "Hello", "<1@x>", &[]),
        item(3, "Re: Hello", "<2@x>", &["<1@x>"]),
        item(2, "Re: Hello", "<3@x>", &["<1@x>"]),
        item(4, "Re: Hello", "<4@x>", &["<1@x>", "<2@x>"]),
        item(0, "Other", "<5@x>", &[]),
    ]);
    assert_eq!(out, "(5)(1 (3)(2 4))");
}

#[test]
fn references_with_missing_parents() {
    // Two replies to a message not in the result: a dummy parent holds
    // them at the top level. One reply to another absent message: its
    // dummy is dropped and the reply stands alone. A dummy between two
    // messages is spliced away.
    let out = refs(vec![
        item(2, "Re: Gone", "<a@x>", &["<gone@x>"]),
        item(1, "Re: Gone", "<b@x>", &["<gone@x>"]),
        item(3, "Re: Lonely", "<c@x>", &["<absent@x>"]),
        item(4, "Root", "<r@x>", &[]),
        item(5, "Re: Root", "<d@x>", &["<r@x>", "<mid@x>"]),
    ]);
    assert_eq!(out, "((2)(1))(3)(4 5)");
}

#[test]
fn references_merges_subjects() {
    // Step 5: a reply whose parent is unknown joins the thread of its
    // subject's original; two originals with one subject get a dummy;
    // a later one joins that dummy; an empty subject never merges.
    let out = refs(vec![
        item(1, "Topic", "<1@x>", &[]),
        item(2, "Re: Topic", "<2@x>", &[]),
        item(3, "Same", "<3@x>", &[]),
        item(4, "Same", "<4@x>", &[]),
        item(5, "same", "<5@x>", &[]),
        item(6, "", "<6@x>", &[]),
        item(7, "", "<7@x>", &[]),
    ]);
    assert_eq!(out, "(1 2)((3)(4)(5))(6)(7)");
    // A reply seen first: the original still heads the thread (the
    // table prefers the non-reply), and replies to replies stay apart.
    let out = refs(vec![
        item(1, "Re: Topic", "<1@x>", &[]),
        item(2, "Topic", "<2@x>", &[]),
        item(3, "Re: Topic", "<3@x>", &[]),
    ]);
    assert_eq!(out, "(2 (1)(3))");
    // A dummy-headed thread takes in a message of the same subject.
    let out = refs(vec![
        item(1, "Re: Party", "<1@x>", &["<p@x>"]),
        item(2, "Re: Party", "<2@x>", &["<p@x>"]),
        item(3, "Party", "<3@x>", &[]),
    ]);
    assert_eq!(out, "((1)(2)(3))");
}

#[test]
fn references_odd_headers() {
    // Duplicate Message-IDs: the first message keeps it. A loop of
    // references links nothing twice. References beat In-Reply-To (the
    // caller picks one; see `Item::references`).
    let out = refs(vec![
        item(1, "A", "<dup@x>", &[]),
        item(2, "B", "<dup@x>", &[]),
        item(3, "Re: A", "<3@x>", &["<dup@x>"]),
        item(4, "C", "<l1@x>", &["<l2@x>"]),
        item(5, "D", "<l2@x>", &["<l1@x>"]),
        item(6, "E", "<self@x>", &["<self@x>"]),
    ]);
    assert_eq!(out, "(1 3)(2)(5 4)(6)");
}

#[test]
fn references_keeps_first_parent_from_references() {
    // Step 1A keeps a parent once set (a later, truncated References
    // does not move it); step 1B sets the message's own parent from its
    // last reference, whatever was there.
    let out = refs(vec![
        item(1, "A", "<a@x>", &[]),
        item(2, "B", "<b@x>", &[]),
        item(3, "C", "<c@x>", &["<a@x>", "<x@x>"]),
        item(4, "D", "<d@x>", &["<b@x>", "<x@x>", "<c@x>"]),
    ]);
    // x's parent is a (first seen; d's References do not move it), the
    // dummy x is spliced away, d hangs under c, b stays alone.
    assert_eq!(out, "(1 3 4)(2)");
}

fn arb_items() -> impl Strategy<Value = Vec<Item>> {
    let one = (
        0i64..5,
        "(Re: )?[ab]{0,1}",
        proptest::option::of(0u8..8),
        proptest::collection::vec(0u8..10, 0..4),
    )
        .prop_map(|(day, subj, id, rs)| {
            let id = id.map(|i| format!("<{i}@x>")).unwrap_or_default();
            let rs: Vec<String> = rs.iter().map(|r| format!("<{r}@x>")).collect();
            let rs: Vec<&str> = rs.iter().map(String::as_str).collect();
            item(day, &subj, &id, &rs)
        });
    proptest::collection::vec(one, 0..25).prop_map(numbered)
}

/// Every message exactly once; dummies only at the top with two or more
/// children; siblings in date order; every node reachable once.
fn check(items: &[Item], f: &Forest, dummies_ok: bool) -> Result<(), TestCaseError> {
    let mut seen = vec![0u32; items.len()];
    let mut stack: Vec<(usize, bool)> = f.roots.iter().map(|&r| (r, true)).collect();
    let mut visited = vec![false; f.nodes.len()];
    while let Some((n, top)) = stack.pop() {
        prop_assert!(!visited[n], "node {n} reached twice");
        visited[n] = true;
        let node = &f.nodes[n];
        match node.item {
            Some(i) => seen[i] += 1,
            None => {
                prop_assert!(dummies_ok && top && node.children.len() >= 2);
            }
        }
        let key = |c: usize| {
            let mut c = c;
            while f.nodes[c].item.is_none() {
                c = f.nodes[c].children[0];
            }
            let i = f.nodes[c].item.unwrap_or(0);
            (items[i].date, items[i].seq)
        };
        for w in node.children.windows(2) {
            prop_assert!(key(w[0]) <= key(w[1]));
        }
        stack.extend(node.children.iter().map(|&c| (c, false)));
    }
    prop_assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
    Ok(())
}

proptest! {
    #[test]
    fn references_output_is_a_forest_of_all_messages(items in arb_items()) {
        let f = references(&items);
        check(&items, &f, true)?;
        let w = wire(&items, &f);
        prop_assert_eq!(w.matches('(').count(), w.matches(')').count());
    }

    #[test]
    fn ordered_subject_output_is_two_levels(items in arb_items()) {
        let f = ordered_subject(&items);
        check(&items, &f, false)?;
        for &r in &f.roots {
            for &c in &f.nodes[r].children {
                prop_assert!(f.nodes[c].children.is_empty());
                prop_assert_eq!(&items[f.nodes[c].item.unwrap_or(0)].subject, &items[f.nodes[r].item.unwrap_or(0)].subject);
            }
        }
    }
}
