//! batch: the payload of one WAL frame, a commit group.
//!
//! ```text
//! [u32 LE length][commit record]   repeated, one per commit of the group, in timestamp order
//! ```
//!
//! A group larger than one frame is split at record boundaries into several frames
//! ([`frame_chunks`]), so every frame holds whole records and recovery applies a commit whole
//! or not at all. Knows lengths and bytes; what a record means is `wal::record`'s business.

// Under loom only `push_record` is built: the group-commit models queue records but write no
// frames.
#[cfg(not(loom))]
use crate::storage::frame::MAX_FRAME_LEN;

/// The largest encoded commit record a WAL frame can carry (with its length prefix).
#[cfg(not(loom))]
pub(crate) const MAX_RECORD_LEN: usize = MAX_FRAME_LEN as usize - 4;

/// Appends one commit record to a group. The caller keeps records within [`MAX_RECORD_LEN`]
/// (`txn::log` refuses a longer one before it takes a timestamp).
pub(crate) fn push_record(batch: &mut Vec<u8>, record: &[u8]) {
    let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
    batch.extend_from_slice(&len.to_le_bytes());
    batch.extend_from_slice(record);
}

/// Splits a WAL frame's payload into its commit records.
#[cfg(not(loom))]
pub(crate) fn split_batch(payload: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut records = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err("a commit record's length is cut short");
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err("a commit record is longer than its frame");
        }
        let (record, tail) = tail.split_at(len);
        records.push(record);
        rest = tail;
    }
    Ok(records)
}

/// Splits a group into runs of whole records, each at most a frame's payload.
#[cfg(not(loom))]
pub(crate) fn frame_chunks(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    chunks_of(batch, MAX_FRAME_LEN as usize)
}

/// [`frame_chunks`] with the frame's maximum as a parameter, so tests can use a small one.
#[cfg(not(loom))]
fn chunks_of(batch: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        while end < rest.len() {
            let Some(len) = rest.get(end..end + 4) else {
                break;
            };
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let next = end + 4 + len;
            // Records are kept under the maximum, so a chunk always takes at least one.
            if next > max && end > 0 {
                break;
            }
            end = next.min(rest.len());
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn group(records: &[&[u8]]) -> Vec<u8> {
        let mut batch = Vec::new();
        for r in records {
            push_record(&mut batch, r);
        }
        batch
    }

    #[test]
    fn a_group_splits_back_into_its_records() {
        let records: [&[u8]; 4] = [b"first", b"", b"third record", &[0, 1, 2, 255]];
        assert_eq!(split_batch(&group(&records)).unwrap(), records);
        assert_eq!(split_batch(&[]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn damaged_lengths_are_refused_with_a_reason() {
        let mut batch = group(&[b"abc"]);
        batch.truncate(2);
        assert_eq!(
            split_batch(&batch),
            Err("a commit record's length is cut short")
        );
        let mut batch = group(&[b"abc"]);
        batch.pop();
        assert_eq!(
            split_batch(&batch),
            Err("a commit record is longer than its frame")
        );
    }

    #[test]
    fn chunks_hold_whole_records_and_stay_under_the_maximum() {
        // Records of 4 + 6 bytes each; a 25-byte frame holds two of them.
        let records: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 6]).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let batch = group(&refs);
        let chunks: Vec<&[u8]> = chunks_of(&batch, 25).collect();
        assert_eq!(chunks.len(), 3);
        let mut rejoined = Vec::new();
        for chunk in &chunks {
            assert!(chunk.len() <= 25);
            rejoined.extend(split_batch(chunk).unwrap());
        }
        assert_eq!(rejoined, refs);
    }

    #[test]
    fn a_group_within_a_frame_is_one_chunk() {
        let batch = group(&[b"one", b"two"]);
        assert_eq!(frame_chunks(&batch).collect::<Vec<_>>(), [&batch[..]]);
        assert_eq!(frame_chunks(&[]).count(), 0);
    }
}
