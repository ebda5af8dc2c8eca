//! The bodies of the grammar's fuzz targets (`fuzz/fuzz_targets/`), here so
//! that `cargo test` runs them too, in a smoke mode on the stable toolchain
//! (cargo-fuzz needs nightly, which CI does not have): a seed corpus of
//! real commands and a few thousand deterministic mutations of it.
//!
//! - [`frame_parse`]: arbitrary bytes through the framer, in reads cut
//!   where the input says, and every framed command through the parser.
//!   Nothing panics, the framer never holds more than its caps allow, and
//!   how the stream is cut into reads does not change the frames.
//! - [`parse_oracle`] (with imap-codec, the `oracle` feature or tests):
//!   wherever imap-codec reads one of the commands it covers, the runtime
//!   parser reads the same value (`parse`'s module doc: one grammar at
//!   runtime, imap-codec as its oracle).
//!
//! Owns nothing the server runs; never used outside tests and fuzzing.

use super::frame::{Frame, FrameLimits, Framer};
use super::parse::parse_command;

const LIMITS: FrameLimits = FrameLimits {
    max_line: 256,
    max_literal: 1024,
};
const MAX_COMMAND: u64 = 4096;

fn framer() -> Framer {
    let mut f = Framer::new(LIMITS);
    f.set_max_command(MAX_COMMAND);
    f
}

/// See the module doc. The first byte picks the read size, the rest is the
/// stream.
pub fn frame_parse(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).max(1);

    let mut whole = framer();
    whole.push(stream);
    let want: Vec<Frame> = std::iter::from_fn(|| whole.next_frame()).collect();

    let mut f = framer();
    let mut got = Vec::new();
    for chunk in stream.chunks(cut) {
        f.push(chunk);
        while let Some(frame) = f.next_frame() {
            if let Frame::Command { bytes, .. } = &frame {
                let _ = parse_command(bytes);
            }
            got.push(frame);
        }
        assert!(f.buffered() as u64 <= MAX_COMMAND + LIMITS.max_line as u64 + 1);
    }
    assert_eq!(got, want);

    // The parser on its own, on unframed input.
    let _ = parse_command(stream);
}

/// See the module doc: `data` is one command as the framer delivers it.
#[cfg(any(test, feature = "oracle"))]
pub fn parse_oracle(data: &[u8]) {
    use super::parse::codec;
    let ours = parse_command(data);
    let Some((name, sub)) = codec::names(data) else {
        return;
    };
    if !codec::routed(&name, sub.as_deref()) {
        return;
    }
    if let Some(theirs) = codec::decode(data) {
        let ours = ours.unwrap_or_else(|e| {
            panic!(
                "imap-codec reads {:?} as {theirs:?}; we refuse it: {e:?}",
                String::from_utf8_lossy(data)
            )
        });
        assert_eq!(
            codec::normalise(theirs),
            codec::normalise(ours),
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commands as clients send them, and some broken ones.
    const SEEDS: &[&[u8]] = &[
        b"a CAPABILITY\r\n",
        b"a LOGIN bob \"sec ret\"\r\n",
        b"a LOGIN {3}\r\nbob {6}\r\nsecret\r\n",
        b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
        b"a ENABLE CONDSTORE UTF8=ACCEPT\r\n",
        b"a ID (\"name\" \"x\")\r\n",
        b"a SELECT INBOX (CONDSTORE)\r\n",
        b"a FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.512>)\r\n",
        b"a UID FETCH 1,3:5 (BODYSTRUCTURE BINARY[1.2]<5.10> MODSEQ) (CHANGEDSINCE 7)\r\n",
        b"a FETCH 2 (BODY[1.2.MIME] BODY[TEXT] RFC822.SIZE ENVELOPE)\r\n",
        b"a STORE 1:3 +FLAGS.SILENT (\\Seen $Junk)\r\n",
        b"a UID STORE 4 (UNCHANGEDSINCE 9) FLAGS ()\r\n",
        b"a UID EXPUNGE 3:1,7,*\r\n",
        b"a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM x (SUBJECT {3}\r\nabc) UNSEEN\r\n",
        b"a UID SEARCH OLDER 60 NOT DELETED $\r\n",
        b"a APPEND Sent (\\Seen) \"03-Dec-2026 10:00:00 +0000\" {5+}\r\nhello\r\n",
        b"a APPEND INBOX {3}\r\nabc {2}\r\nde\r\n",
        b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\") RETURN (CHILDREN STATUS (MESSAGES))\r\n",
        b"a STATUS \"Entw&APw-rfe\" (MESSAGES UIDNEXT SIZE APPENDLIMIT)\r\n",
        b"a COPY 1:2 Archive\r\n",
        b"a UID MOVE $ Trash\r\n",
        b"a IDLE\r\nDONE\r\n",
        b"a1\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"* NOOP\r\n",
        b"a SEARCH ((((((((((ALL))))))))))\r\n",
    ];

    /// xorshift64: deterministic, so a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Each seed, and mutations of it: bytes replaced, dropped, doubled,
    /// cut short, and pieces of other seeds spliced in.
    fn corpus(rounds: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut out: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.to_vec()).collect();
        const BYTES: &[u8] = b" ()[]<>{}\"\\*$%:,.+-~0123456789\r\nAzUIDFLAGSBODY\x00\xff";
        for _ in 0..rounds {
            let mut v = SEEDS[rng.below(SEEDS.len())].to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(v.len() + 1);
                match rng.below(5) {
                    0 if at < v.len() => v[at] = BYTES[rng.below(BYTES.len())],
                    1 if at < v.len() => {
                        v.remove(at);
                    }
                    2 => v.insert(at, BYTES[rng.below(BYTES.len())]),
                    3 => v.truncate(at),
                    _ => {
                        let other = SEEDS[rng.below(SEEDS.len())];
                        let from = rng.below(other.len());
                        let to = from + rng.below(other.len() - from + 1);
                        v.splice(at..at, other[from..to].iter().copied());
                    }
                }
            }
            out.push(v);
        }
        out
    }

    #[test]
    fn frame_parse_smoke() {
        for (i, input) in corpus(4000).iter().enumerate() {
            // A read size from the input's own index: every cut is tried.
            let mut data = vec![(i % 64) as u8];
            data.extend_from_slice(input);
            frame_parse(&data);
        }
    }

    #[test]
    fn parse_oracle_smoke() {
        let mut compared = 0;
        for input in corpus(6000) {
            parse_oracle(&input);
            compared += usize::from(super::super::parse::codec::decode(&input).is_some());
        }
        // The corpus must reach the oracle, or this test says nothing.
        // (About 3 % of the mutations stay commands imap-codec reads.)
        assert!(compared > 150, "only {compared} inputs compared");
    }
}
