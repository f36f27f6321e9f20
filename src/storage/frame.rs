//! frame: the record framing shared by the WAL and the data log.
//!
//! A frame is a header and a payload, written back to back with no padding:
//!
//! ```text
//! offset  size  field
//! 0       4     len      payload length in bytes, u32 little-endian, at most the reader's maximum
//! 4       4     crc      CRC-32 (IEEE, crc32fast) of the 4 `len` bytes then the payload, u32 LE
//! 8       len   payload  opaque bytes; the next frame starts at offset 8 + len
//! ```
//!
//! The checksum covers the length field as well as the payload. Over the payload alone, eight
//! zero bytes would be a valid empty frame (the CRC-32 of nothing is 0), so a file tail that a
//! crash left zero-filled (size extended, data blocks never written) would read back as a run of
//! empty records instead of a torn tail.
//!
//! [`scan`] walks a byte slice and classifies where its valid prefix ends: cleanly at the end,
//! at a torn tail (an incomplete or invalid frame with no valid frame after it: the interrupted
//! last write, safe to truncate), or at corruption (an invalid frame with a valid frame after
//! it: damage in the middle, never truncate). A damaged *last* frame is indistinguishable from a
//! torn write at this layer, so it is reported as a torn tail; the WAL layer treats any damage in
//! a sealed segment as corruption, which covers that case. [`FrameReader`] streams frames from an
//! [`io::Read`] for files larger than memory and reports damage as an error; its caller decides
//! between torn tail and corruption by looking further.
//!
//! No length read from disk is ever used to size an allocation before it is checked against the
//! maximum, and [`scan`] allocates nothing per frame: it returns ranges into the caller's slice.
//!
//! Knows bytes and offsets; nothing about what a payload means.

use std::fmt;
use std::io::{self, Read};
use std::ops::Range;

/// Bytes in a frame header: the length, then the checksum.
pub const HEADER_LEN: usize = 8;

/// The hard maximum payload length: 64 MiB, the largest record the layers above write, plus
/// 64 KiB for their own record envelope. [`encode`] refuses longer payloads and every reader
/// treats a longer length field as damage, whatever smaller maximum its caller asks for.
pub const MAX_FRAME_LEN: u32 = (64 << 20) + (64 << 10);

/// Why a frame could not be written or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// [`encode`] was given a payload longer than [`MAX_FRAME_LEN`].
    PayloadTooLarge {
        /// The payload's length in bytes.
        len: usize,
        /// The maximum in bytes.
        max: u32,
    },
    /// A frame's length field exceeds the reader's maximum (checked before allocating).
    LengthOverMax {
        /// Offset of the frame from where the reader started.
        offset: u64,
        /// The length the frame declares.
        len: u32,
        /// The reader's maximum.
        max: u32,
    },
    /// The input ended inside a frame's header or payload.
    Truncated {
        /// Offset of the incomplete frame from where the reader started.
        offset: u64,
    },
    /// A frame's stored checksum does not match its length and payload.
    ChecksumMismatch {
        /// Offset of the damaged frame from where the reader started.
        offset: u64,
    },
    /// [`FrameReader::next`] was called again after it returned an error.
    Stopped {
        /// Offset of the frame where the reader failed.
        offset: u64,
    },
    /// The underlying reader failed.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { len, max } => write!(
                f,
                "a record of {len} bytes cannot be framed: the maximum is {max} bytes"
            ),
            Self::LengthOverMax { offset, len, max } => write!(
                f,
                "the frame at byte {offset} declares {len} bytes, over the maximum of {max}; \
                 the log is damaged there"
            ),
            Self::Truncated { offset } => {
                write!(
                    f,
                    "the frame at byte {offset} is incomplete: the input ends inside it"
                )
            }
            Self::ChecksumMismatch { offset } => write!(
                f,
                "the frame at byte {offset} fails its checksum; the log is damaged there"
            ),
            Self::Stopped { offset } => write!(
                f,
                "the frame reader already failed at byte {offset} and cannot read past it"
            ),
            Self::Io(e) => write!(f, "reading frames failed: {e}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Appends one frame holding `payload` to `out`. Nothing is appended on error.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len <= MAX_FRAME_LEN)
        .ok_or(FrameError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_FRAME_LEN,
        })?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// What made the frame at a [`ScanEnd::Corrupt`] offset invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Fewer bytes remain than its header or its declared length needs.
    Incomplete,
    /// Its length field exceeds the maximum.
    LengthOverMax,
    /// Its stored checksum does not match its length and payload.
    ChecksumMismatch,
}

impl Defect {
    /// A short description, for corruption errors that carry a `&'static str` reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incomplete => "frame length runs past the end of the file",
            Self::LengthOverMax => "frame length is over the maximum",
            Self::ChecksumMismatch => "frame checksum mismatch",
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how the valid prefix of a scanned buffer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// The last valid frame ends exactly at the end of the buffer.
    Clean,
    /// An incomplete or invalid frame starts at `valid_up_to` and no valid frame starts anywhere
    /// after it: an interrupted last write (or a damaged last frame, which looks the same).
    /// Truncating the log to `valid_up_to` loses nothing that was completely written.
    TornTail {
        /// Offset in the buffer of the first byte after the last valid frame.
        valid_up_to: usize,
    },
    /// The frame at `offset` is invalid but a valid frame starts somewhere after it: the log was
    /// damaged in the middle. Truncating would drop records that were completely written.
    Corrupt {
        /// Offset in the buffer of the invalid frame.
        offset: usize,
        /// What is wrong with it.
        reason: Defect,
    },
}

/// The result of [`scan`]: the valid frames, in order, and how the valid prefix ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// For each valid frame: its offset in the buffer and its payload's range in the buffer.
    pub records: Vec<(usize, Range<usize>)>,
    /// Where and how the valid prefix ends.
    pub end: ScanEnd,
}

/// Walks the frames of `buf` from `start` and classifies the end of the valid prefix.
///
/// Payloads longer than `max_len` (itself capped at [`MAX_FRAME_LEN`]) count as damage.
///
/// Deciding between [`ScanEnd::TornTail`] and [`ScanEnd::Corrupt`] tries every later offset as
/// a frame start, until one holds a complete frame with a matching checksum. That costs up to
/// one checksum per byte after the bad frame, each over at most `min(max_len, remaining)` bytes:
/// quadratic in the damaged region in the worst case, but it runs only once an invalid frame has
/// been found, never on a healthy log. Most candidates are rejected after reading 8 bytes, since
/// a length read from arbitrary bytes is usually over the maximum or past the end of the buffer.
/// A payload that itself contains a valid frame can make a torn tail read as corruption; that
/// errs towards refusing to open, never towards dropping data.
///
/// # Panics
///
/// If `start > buf.len()`.
pub fn scan(buf: &[u8], start: usize, max_len: u32) -> Scan {
    assert!(start <= buf.len(), "scan starts past the end of the buffer");
    let max_len = max_len.min(MAX_FRAME_LEN);
    let mut records = Vec::new();
    let mut pos = start;
    while pos < buf.len() {
        match frame_at(buf, pos, max_len) {
            Ok(payload) => {
                records.push((pos, payload.clone()));
                pos = payload.end;
            }
            Err(reason) => {
                // Zeros hold no valid frame (the checksum covers the length), so an all-zero
                // rest, such as a preallocated tail, needs no search.
                let followed = buf[pos..].iter().any(|&b| b != 0)
                    && (pos + 1..buf.len()).any(|p| frame_at(buf, p, max_len).is_ok());
                let end = if followed {
                    ScanEnd::Corrupt {
                        offset: pos,
                        reason,
                    }
                } else {
                    ScanEnd::TornTail { valid_up_to: pos }
                };
                return Scan { records, end };
            }
        }
    }
    Scan {
        records,
        end: ScanEnd::Clean,
    }
}

/// Checks the frame starting at `buf[pos]` and returns its payload's range in `buf`.
fn frame_at(buf: &[u8], pos: usize, max_len: u32) -> Result<Range<usize>, Defect> {
    let rest = buf.get(pos..).unwrap_or_default();
    let (header, body) = rest
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(Defect::Incomplete)?;
    let (len, crc) = parse_header(*header);
    if len > max_len {
        return Err(Defect::LengthOverMax);
    }
    let payload = body.get(..len as usize).ok_or(Defect::Incomplete)?;
    if checksum(len, payload) != crc {
        return Err(Defect::ChecksumMismatch);
    }
    let payload_start = pos + HEADER_LEN;
    Ok(payload_start..payload_start + payload.len())
}

/// Splits a header into its length and checksum fields.
fn parse_header(header: [u8; HEADER_LEN]) -> (u32, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    (
        u32::from_le_bytes([l0, l1, l2, l3]),
        u32::from_le_bytes([c0, c1, c2, c3]),
    )
}

/// The stored checksum: CRC-32 of the length field's bytes, then the payload.
fn checksum(len: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Reads frames one at a time from an [`io::Read`], for logs larger than memory.
///
/// Offsets in its errors count from where `reader` was when the `FrameReader` was made. After an
/// error the reader is positioned inside the damaged frame, so every later call fails with
/// [`FrameError::Stopped`] rather than reading misaligned bytes as frames.
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    max_len: u32,
    /// Offset of the next frame; after an error, of the frame that failed.
    offset: u64,
    failed: bool,
}

impl<R: Read> FrameReader<R> {
    /// A reader of frames from `reader`, refusing payloads longer than `max_len` (itself capped
    /// at [`MAX_FRAME_LEN`]).
    pub fn new(reader: R, max_len: u32) -> Self {
        Self {
            reader,
            max_len: max_len.min(MAX_FRAME_LEN),
            offset: 0,
            failed: false,
        }
    }

    /// Offset of the next frame: the end of the valid prefix read so far. After an error, the
    /// offset of the frame that failed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame's payload, or `None` if the input ends exactly at a frame boundary.
    // An Iterator of Results would make "ended cleanly" and "stopped at damage" look alike to a
    // `for` loop or `collect`; `Result<Option<_>>` makes the caller handle both with `?`.
    pub fn next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut payload = Vec::new();
        Ok(self.next_into(&mut payload)?.then_some(payload))
    }

    /// [`FrameReader::next`] into `payload`, which is cleared first and keeps its capacity
    /// between frames: a reader of many frames allocates once rather than per frame. Returns
    /// `false` (and leaves `payload` empty) if the input ends exactly at a frame boundary. After
    /// an error `payload` holds part of the damaged frame.
    pub fn next_into(&mut self, payload: &mut Vec<u8>) -> Result<bool, FrameError> {
        payload.clear();
        if self.failed {
            return Err(FrameError::Stopped {
                offset: self.offset,
            });
        }
        let result = self.read_frame(payload);
        self.failed = result.is_err();
        result
    }

    fn read_frame(&mut self, payload: &mut Vec<u8>) -> Result<bool, FrameError> {
        let offset = self.offset;
        let mut header = [0; HEADER_LEN];
        match read_full(&mut self.reader, &mut header).map_err(FrameError::Io)? {
            0 => return Ok(false),
            HEADER_LEN => {}
            _ => return Err(FrameError::Truncated { offset }),
        }
        let (len, crc) = parse_header(header);
        if len > self.max_len {
            return Err(FrameError::LengthOverMax {
                offset,
                len,
                max: self.max_len,
            });
        }
        read_payload(&mut self.reader, len, payload).map_err(FrameError::Io)?;
        if payload.len() < len as usize {
            return Err(FrameError::Truncated { offset });
        }
        if checksum(len, payload) != crc {
            return Err(FrameError::ChecksumMismatch { offset });
        }
        self.offset += HEADER_LEN as u64 + u64::from(len);
        Ok(true)
    }

    /// The underlying reader, positioned after the last frame read (or inside a damaged one).
    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// Reads up to `len` bytes into the empty `payload`. The buffer grows with the bytes actually
/// read instead of reserving `len` first, so a damaged length under the maximum costs what the
/// input holds (or what earlier frames already needed), not what it claims.
fn read_payload(reader: &mut impl Read, len: u32, payload: &mut Vec<u8>) -> io::Result<()> {
    reader.take(u64::from(len)).read_to_end(payload)?;
    Ok(())
}

/// Fills `buf` unless the input ends first; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
