//! A text exposition encoded once and held compressed, and the HTTP bodies that serve it: with
//! gzip as it is (plus the few lines added per scrape), without gzip inflated on the fly.
//!
//! The large part of a scrape, the GitLab families, changes once per collection; the exporter's
//! own metrics change per scrape. The large part is kept as a raw DEFLATE stream that ends on a
//! sync flush (byte-aligned, not final), so a scrape appends its own lines as a second DEFLATE
//! stream with the final block, and wraps both in one gzip member whose CRC-32 is combined from
//! the two parts. A gzip scrape therefore compresses a few kilobytes, not the whole exposition,
//! and the plain text of a big instance never has to be held in memory.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hyper::body::{Body, Frame, SizeHint};

/// Text is compressed in chunks of this size.
const CHUNK: usize = 64 << 10;
/// A plain body is produced in frames of at most this size.
const FRAME: usize = 256 << 10;
/// The 10-byte gzip header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Text compressed as a raw DEFLATE stream ending on a sync flush.
#[derive(Clone)]
pub struct Compressed {
    deflate: Bytes,
    crc: crc32fast::Hasher,
    len: u64,
}

impl fmt::Debug for Compressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressed")
            .field("compressed_bytes", &self.deflate.len())
            .field("text_bytes", &self.len)
            .finish()
    }
}

impl Compressed {
    /// Compresses whatever `write` writes, chunk by chunk, without holding the whole text. A
    /// writer error (none is expected: the compressor never fails) ends the text where it
    /// happened.
    pub fn encode(write: impl FnOnce(&mut Compressor) -> fmt::Result) -> Compressed {
        let mut compressor = Compressor {
            pending: String::with_capacity(CHUNK + 1024),
            deflate: Compress::new(Compression::fast(), false),
            out: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        let _ = write(&mut compressor);
        compressor.finish()
    }

    /// Length of the text.
    pub fn text_len(&self) -> u64 {
        self.len
    }

    /// Length of the compressed stream.
    #[cfg(test)]
    pub fn compressed_len(&self) -> usize {
        self.deflate.len()
    }

    /// A gzip body: this text followed by `tail`.
    pub fn gzip_body(&self, tail: &str) -> ExpositionBody {
        let mut deflate = Compress::new(Compression::fast(), false);
        let mut last = Vec::with_capacity(tail.len() / 2 + 64);
        deflate_all(
            &mut deflate,
            tail.as_bytes(),
            &mut last,
            FlushCompress::Finish,
        );
        let mut crc = self.crc.clone();
        let mut tail_crc = crc32fast::Hasher::new();
        tail_crc.update(tail.as_bytes());
        crc.combine(&tail_crc);
        let total = self.len + tail.len() as u64;
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32.
        trailer.extend_from_slice(&((total & 0xffff_ffff) as u32).to_le_bytes());
        ExpositionBody::chunks([
            Bytes::from_static(&GZIP_HEADER),
            self.deflate.clone(),
            Bytes::from(last),
            Bytes::from(trailer),
        ])
    }

    /// A plain body: this text, inflated as it is sent, followed by `tail`.
    pub fn plain_body(&self, tail: String) -> ExpositionBody {
        self.plain_body_in_frames(tail, FRAME)
    }

    fn plain_body_in_frames(&self, tail: String, frame: usize) -> ExpositionBody {
        let remaining = self.len + tail.len() as u64;
        ExpositionBody(Inner::Inflating {
            input: self.deflate.clone(),
            inflate: Box::new(Decompress::new(false)),
            text_len: self.len,
            frame,
            tail: Some(Bytes::from(tail)),
            remaining,
        })
    }
}

/// The `fmt::Write` that [`Compressed::encode`] hands to its writer.
pub struct Compressor {
    pending: String,
    deflate: Compress,
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl fmt::Write for Compressor {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.pending.push_str(s);
        if self.pending.len() >= CHUNK {
            self.flush(FlushCompress::None);
        }
        Ok(())
    }
}

impl Compressor {
    fn flush(&mut self, mode: FlushCompress) {
        self.crc.update(self.pending.as_bytes());
        self.len += self.pending.len() as u64;
        deflate_all(
            &mut self.deflate,
            self.pending.as_bytes(),
            &mut self.out,
            mode,
        );
        self.pending.clear();
    }

    fn finish(mut self) -> Compressed {
        // A sync flush ends the stream on a byte boundary without a final block, so that more
        // DEFLATE blocks can follow.
        self.flush(FlushCompress::Sync);
        self.out.shrink_to_fit();
        Compressed {
            deflate: Bytes::from(self.out),
            crc: self.crc,
            len: self.len,
        }
    }
}

/// Compresses all of `input` into `out`, growing it as needed, then flushes as `mode` says.
fn deflate_all(deflate: &mut Compress, input: &[u8], out: &mut Vec<u8>, mode: FlushCompress) {
    let start = deflate.total_in();
    loop {
        let consumed = (deflate.total_in() - start) as usize;
        out.reserve(((input.len() - consumed) / 2).max(4096));
        let status = deflate.compress_vec(&input[consumed..], out, mode);
        let all_in = (deflate.total_in() - start) as usize == input.len();
        // zlib's rule: a flush is complete when the call left output space unused.
        let room_left = out.len() < out.capacity();
        match status {
            // Compressing into a Vec with spare capacity does not fail.
            Err(_) | Ok(Status::StreamEnd) => return,
            Ok(_) if all_in && room_left && !matches!(mode, FlushCompress::Finish) => return,
            Ok(_) => {}
        }
    }
}

/// The body of a metrics answer: a few chunks, or a compressed text inflated frame by frame.
/// Its exact length is known up front, so the answer carries a `Content-Length`.
#[derive(Debug)]
pub struct ExpositionBody(Inner);

#[derive(Debug)]
enum Inner {
    Chunks(VecDeque<Bytes>),
    Inflating {
        input: Bytes,
        inflate: Box<Decompress>,
        text_len: u64,
        frame: usize,
        tail: Option<Bytes>,
        remaining: u64,
    },
}

impl ExpositionBody {
    /// A body of the given chunks, in order.
    pub fn chunks(chunks: impl IntoIterator<Item = Bytes>) -> ExpositionBody {
        ExpositionBody(Inner::Chunks(
            chunks.into_iter().filter(|c| !c.is_empty()).collect(),
        ))
    }

    /// Collects the whole body (for tests and small answers).
    #[cfg(test)]
    pub fn into_bytes(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(frame) = self.next_frame() {
            out.extend_from_slice(&frame);
        }
        out
    }

    fn next_frame(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            Inner::Chunks(chunks) => chunks.pop_front(),
            Inner::Inflating {
                input,
                inflate,
                text_len,
                frame,
                tail,
                remaining,
            } => {
                // The inflater may have read all its input and still hold output: go by the
                // text's length, not by the input consumed.
                let text_left = text_len.saturating_sub(inflate.total_out());
                if text_left > 0 {
                    let consumed = (inflate.total_in() as usize).min(input.len());
                    let mut out = Vec::with_capacity((*frame).min(text_left as usize));
                    let inflated =
                        inflate.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
                    if inflated.is_ok() && !out.is_empty() {
                        *remaining = remaining.saturating_sub(out.len() as u64);
                        return Some(Bytes::from(out));
                    }
                    // Only a corrupt stream (never produced here) stops short; the answer then
                    // ends early and the client sees the length mismatch.
                    tracing::error!(text_left, "compressed exposition ended early");
                    *text_len = inflate.total_out();
                }
                let tail = tail.take()?;
                *remaining = remaining.saturating_sub(tail.len() as u64);
                Some(tail)
            }
        }
    }

    fn remaining(&self) -> u64 {
        match &self.0 {
            Inner::Chunks(chunks) => chunks.iter().map(|c| c.len() as u64).sum(),
            Inner::Inflating { remaining, .. } => *remaining,
        }
    }
}

impl Body for ExpositionBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(
            self.get_mut()
                .next_frame()
                .map(|data| Ok(Frame::data(data))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;
    use std::io::Read as _;

    fn sample(lines: usize) -> String {
        (0..lines)
            .map(|i| format!("gitlab_project_commits{{project_id=\"{i}\",project=\"group/project-{i:06}\"}} {}\n", i * 7))
            .collect()
    }

    fn compressed(text: &str) -> Compressed {
        Compressed::encode(|w| {
            // Written in uneven pieces, as an encoder does.
            for piece in text.split_inclusive('\n') {
                w.write_str(piece)?;
            }
            Ok(())
        })
    }

    /// The gzip body is one valid gzip member holding the text and the tail, for small and
    /// large texts (many compression chunks) and an empty one.
    #[test]
    fn gzip_body_is_the_text_and_the_tail() {
        for text in [String::new(), sample(3), sample(40_000)] {
            let c = compressed(&text);
            assert_eq!(c.text_len(), text.len() as u64);
            let body = c.gzip_body("# own metrics\nx 1\n# EOF\n");
            let expected_len = body.remaining();
            let bytes = body.into_bytes();
            assert_eq!(bytes.len() as u64, expected_len);
            let mut decoded = String::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_string(&mut decoded)
                .unwrap();
            assert_eq!(decoded, format!("{text}# own metrics\nx 1\n# EOF\n"));
            // And the system's gzip agrees (CRC and length checked).
            let mut gunzip = std::process::Command::new("gzip")
                .args(["-d", "-c"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = gunzip.stdin.take().unwrap();
            let input = bytes.clone();
            // Written from another thread: gzip writes while it reads.
            let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
            let out = gunzip.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout.len(), decoded.len());
        }
    }

    /// The plain body inflates to the text and the tail, frame by frame, with an exact length.
    #[test]
    fn plain_body_is_the_text_and_the_tail() {
        let text = sample(60_000);
        let c = compressed(&text);
        assert!(c.compressed_len() < text.len() / 4, "compresses");
        let body = c.plain_body("tail\n".to_owned());
        assert_eq!(body.size_hint().exact(), Some(text.len() as u64 + 5));
        let bytes = body.into_bytes();
        assert_eq!(String::from_utf8(bytes).unwrap(), format!("{text}tail\n"));
    }

    /// Texts come out whole whatever the frame size, even one that does not line up with the
    /// inflater's 32 KiB window (which then holds output between calls).
    #[test]
    fn plain_body_is_exact_in_odd_frames() {
        let text = sample(8_000);
        for frame in [1_000, 100_003, FRAME] {
            for len in [0, 1, 99_999, 100_004, 250_001, text.len()] {
                let c = compressed(&text[..len]);
                let body = c.plain_body_in_frames("tail".to_owned(), frame);
                assert_eq!(body.size_hint().exact(), Some(len as u64 + 4));
                let bytes = body.into_bytes();
                assert_eq!(bytes.len(), len + 4, "frame {frame}, length {len}");
                assert_eq!(&bytes[..len], &text.as_bytes()[..len]);
            }
        }
    }

    #[test]
    fn chunks_skip_empty_ones() {
        let body = ExpositionBody::chunks([
            Bytes::from_static(b"a"),
            Bytes::new(),
            Bytes::from_static(b"bc"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.into_bytes(), b"abc");
    }
}
