//! The base subject of RFC 5256 §2.1, which SORT SUBJECT and both THREAD
//! algorithms compare: the subject with its reply and forward markers,
//! list tags (`[blob]`) and surrounding white space taken away.
//!
//! ```text
//! subject         = *subj-leader [subj-middle] *subj-trailer
//! subj-refwd      = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
//! subj-blob       = "[" *BLOBCHAR "]" *WSP
//! subj-fwd        = subj-fwd-hdr subject subj-fwd-trl
//! subj-fwd-hdr    = "[fwd:"
//! subj-fwd-trl    = "]"
//! subj-leader     = (*subj-blob subj-refwd) / WSP
//! subj-middle     = *subj-blob (subj-base / subj-fwd)
//! subj-base       = NONWSP *(*WSP NONWSP)
//! subj-trailer    = "(fwd)" / WSP
//! BLOBCHAR        = %x01-5a / %x5c / %x5e-ff
//! ```
//!
//! The literal words match in any case. Every piece of the grammar is
//! ASCII, so the steps cut a UTF-8 string only at character boundaries.
//! Pure; the caller decodes RFC 2047 words first (step 1's first half) and
//! compares the result with [`super::collate`].

/// The base subject of an (already RFC 2047 decoded) subject, and whether
/// the subject marked a reply or forward: a `subj-refwd` leader, a
/// `(fwd)` trailer or the `[fwd: ...]` form was taken away (RFC 5256
/// §2.2 step 5 prefers a thread's original message by that mark).
pub(crate) fn base_subject(decoded: &str) -> (String, bool) {
    // (1) Tabs and line breaks become spaces; runs of spaces become one.
    let mut s = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let mut reply = false;
    let mut t: &str = &s;
    loop {
        // (2) Trailers: `(fwd)` and white space, as often as they occur.
        loop {
            if let Some(rest) = t.strip_suffix(' ') {
                t = rest;
            } else if t.len() >= 5 && t.as_bytes()[t.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                t = &t[..t.len() - 5];
                reply = true;
            } else {
                break;
            }
        }
        // (5) Repeat (3) and (4) until neither applies.
        loop {
            // (3) Leaders: white space, or blobs followed by re/fw/fwd.
            let mut changed = false;
            loop {
                if let Some(rest) = t.strip_prefix(' ') {
                    t = rest;
                } else if let Some(n) = refwd_leader(t.as_bytes()) {
                    t = &t[n..];
                    reply = true;
                } else {
                    break;
                }
                changed = true;
            }
            // (4) One blob, unless nothing would be left after it.
            if let Some(n) = blob(t.as_bytes(), 0) {
                if n < t.len() {
                    t = &t[n..];
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // (6) `[fwd: ...]`: unwrap and start over from (2).
        let b = t.as_bytes();
        if b.len() >= 6 && b[..5].eq_ignore_ascii_case(b"[fwd:") && b[b.len() - 1] == b']' {
            t = &t[5..t.len() - 1];
            reply = true;
            continue;
        }
        break;
    }
    (t.to_string(), reply)
}

/// `subj-blob` at `b[i..]`: its length (trailing white space included).
fn blob(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let close = b[i + 1..]
        .iter()
        .position(|&c| c == b']' || c == b'[' || c == 0)?;
    if b[i + 1 + close] != b']' {
        return None;
    }
    let mut j = i + 1 + close + 1;
    while matches!(b.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    Some(j - i)
}

/// `*subj-blob subj-refwd` at the start of `b`: its length.
fn refwd_leader(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(n) = blob(b, i) {
        i += n;
    }
    let word = |w: &[u8], at: usize| {
        b.get(at..at + w.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(w))
    };
    // "re" / "fw" ["d"]
    if word(b"re", i) {
        i += 2;
    } else if word(b"fwd", i) {
        i += 3;
    } else if word(b"fw", i) {
        i += 2;
    } else {
        return None;
    }
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if let Some(n) = blob(b, i) {
        if b.get(i + n) == Some(&b':') {
            return Some(i + n + 1);
        }
    }
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        let cases = [
            ("", "", false),
            ("   ", "", false),
            ("Hello", "Hello", false),
            ("Re: Hello", "Hello", true),
            ("RE:Hello", "Hello", true),
            ("re: Re: RE: fw: Fwd: FW: Hello", "Hello", true),
            ("Re : Hello", "Hello", true),
            ("Re[2]: Hello", "Hello", true),
            ("Re [list] : Hello", "Hello", true),
            ("Re [list] x: Hello", "Re [list] x: Hello", false),
            ("Re [list]: Hello", "Hello", true),
            ("[list] Re: Hello", "Hello", true),
            ("[list] [other] Re: Hello", "Hello", true),
            ("[list] Hello", "Hello", false),
            ("[list] [other] Hello", "Hello", false),
            ("[only a blob]", "[only a blob]", false),
            ("[a] [b]", "[b]", false),
            ("Hello (fwd)", "Hello", true),
            ("Hello (FWD) (fwd)  ", "Hello", true),
            ("Hello(fwd)", "Hello", true),
            ("[Fwd: Hello]", "Hello", true),
            ("[fwd: Re: [list] Hello (fwd)]", "Hello", true),
            ("Re: [fwd: [fwd: Hello]]", "Hello", true),
            ("[fwd: ]", "", true),
            ("Hello\tworld\r\n  again", "Hello world again", false),
            ("Rebecca", "Rebecca", false),
            ("Re", "Re", false),
            ("Fwd Hello", "Fwd Hello", false),
            ("Réponse: Grüße", "Réponse: Grüße", false),
            ("Re: Grüße [x]", "Grüße [x]", true),
            ("[ünï] Re: Grüße", "Grüße", true),
            ("Re: (fwd)", "", true),
            ("[x] Re: [y]", "[y]", true),
            ("[x][y] z", "z", false),
            ("[[x] z", "[[x] z", false),
        ];
        for (input, want, reply) in cases {
            assert_eq!(base_subject(input), (want.to_string(), reply), "{input:?}");
        }
    }

    proptest::proptest! {
        /// Extraction never panics, never grows the subject, yields no
        /// white space at either end, and is idempotent.
        #[test]
        fn well_behaved(s in "([Rr][Ee]|[Ff][Ww][Dd]?|\\[|\\]|:| |\\t|\\(fwd\\)|[a-zé]){0,20}") {
            let (b, _) = base_subject(&s);
            proptest::prop_assert!(b.len() <= s.len());
            proptest::prop_assert!(!b.starts_with(' ') && !b.ends_with(' '));
            proptest::prop_assert_eq!(base_subject(&b).0, b.clone());
        }
    }
}
