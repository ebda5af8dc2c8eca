//! The client's side of COMPRESS=DEFLATE (RFC 4978) for the blocking test clients: raw DEFLATE
//! (RFC 1951, no zlib header: what zlib calls wbits -15), every write sync-flushed as a client
//! must so the server can act on it. flate2 directly, not the server's async-compression
//! adaptor; the codec underneath is the same (zlib-rs), so the independent check of the bytes
//! on the wire is Python's C zlib (`tests/python/test_compress.py`).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// One connection's two DEFLATE streams.
pub struct Deflater {
    out: Compress,
    inn: Decompress,
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflater {
    pub fn new() -> Deflater {
        Deflater {
            out: Compress::new(Compression::default(), false),
            inn: Decompress::new(false),
        }
    }

    /// `data` deflated and sync-flushed: all the server needs to read it now.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let start = self.out.total_in();
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            let done = (self.out.total_in() - start) as usize;
            self.out
                .compress_vec(&data[done..], &mut out, FlushCompress::Sync)
                .expect("deflate");
            let done = (self.out.total_in() - start) as usize;
            // A sync flush is complete when it left output space unused.
            if done == data.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// What `data`, the next bytes from the server, inflates to.
    pub fn decompress(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let start = self.inn.total_in();
        let mut out = Vec::with_capacity(data.len() * 4 + 1024);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let (before_in, before_out) = (self.inn.total_in(), out.len());
            let done = (before_in - start) as usize;
            let status = self
                .inn
                .decompress_vec(&data[done..], &mut out, FlushDecompress::Sync)
                .map_err(|e| format!("inflate: {e}"))?;
            let done = (self.inn.total_in() - start) as usize;
            if status == Status::StreamEnd {
                return Ok(out);
            }
            if done == data.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if self.inn.total_in() == before_in && out.len() == before_out {
                return Err("inflate made no progress".into());
            }
        }
    }
}
