//! Feeds arbitrary bytes through the framer, in reads cut where the input
//! says, and every framed command through the parser. Checks that nothing
//! panics, that the framer never holds more than its caps allow, and that
//! how the stream is cut into reads does not change the frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nestbox::proto::frame::{Frame, FrameLimits, Framer};
use nestbox::proto::parse::parse_command;

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

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, the rest is the stream.
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
});
