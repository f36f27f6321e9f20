//! Tests of the record framing: round trips, truncation at every offset, garbage tails, bit flips.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;

/// Encodes `payloads` back to back; returns the log and each frame's start offset.
fn log_of(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut log = Vec::new();
    let mut starts = Vec::new();
    for payload in payloads {
        starts.push(log.len());
        encode(payload, &mut log).unwrap();
    }
    (log, starts)
}

fn payloads(buf: &[u8], scan: &Scan) -> Vec<Vec<u8>> {
    scan.records
        .iter()
        .map(|(_, r)| buf[r.clone()].to_vec())
        .collect()
}

/// Drains a `FrameReader`: the payloads read, then how it stopped. Reads the log twice, with
/// `next` and with `next_into` reusing one buffer, and checks that both read the same.
fn read_all(buf: &[u8], max_len: u32) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut reader = FrameReader::new(buf, max_len);
    let mut out = Vec::new();
    let stop = loop {
        match reader.next() {
            Ok(Some(payload)) => out.push(payload),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let mut reader = FrameReader::new(buf, max_len);
    let mut reused = Vec::new();
    let mut again = Vec::new();
    let stop_again = loop {
        match reader.next_into(&mut reused) {
            Ok(true) => again.push(reused.clone()),
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert_eq!(again, out, "next_into read other payloads than next");
    assert_eq!(format!("{stop_again:?}"), format!("{stop:?}"));
    (out, stop)
}

fn error_offset(e: &FrameError) -> Option<u64> {
    match e {
        FrameError::LengthOverMax { offset, .. }
        | FrameError::Truncated { offset }
        | FrameError::ChecksumMismatch { offset } => Some(*offset),
        _ => None,
    }
}

/// Independent of `frame_at`: does a complete frame with a matching checksum start at `p`?
fn naive_frame_at(buf: &[u8], p: usize) -> bool {
    let Some(header) = buf.get(p..p + 8) else {
        return false;
    };
    let len = u32::from_le_bytes(header[..4].try_into().unwrap());
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
    let Some(payload) = buf.get(p + 8..p + 8 + len as usize) else {
        return false;
    };
    len <= MAX_FRAME_LEN && crc32fast::hash(&[&header[..4], payload].concat()) == crc
}

fn arb_payloads(count: Range<usize>) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), count)
}

proptest! {
    #[test]
    fn round_trip(payload_list in arb_payloads(0..10)) {
        let (log, starts) = log_of(&payload_list);
        let scan = scan(&log, 0, MAX_FRAME_LEN);
        prop_assert_eq!(scan.end, ScanEnd::Clean);
        prop_assert_eq!(scan.records.iter().map(|(o, _)| *o).collect::<Vec<_>>(), starts);
        prop_assert_eq!(&payloads(&log, &scan), &payload_list);
        let (read, stop) = read_all(&log, MAX_FRAME_LEN);
        prop_assert!(stop.is_ok());
        prop_assert_eq!(read, payload_list);
    }

    #[test]
    fn truncation_at_every_offset_keeps_the_complete_prefix(
        payload_list in arb_payloads(1..6)
    ) {
        let (log, mut boundaries) = log_of(&payload_list);
        boundaries.push(log.len());
        for cut in 0..=log.len() {
            let whole = boundaries.iter().filter(|&&b| b <= cut).count() - 1;
            let valid_up_to = boundaries[whole];
            let buf = &log[..cut];
            let scan = scan(buf, 0, MAX_FRAME_LEN);
            prop_assert_eq!(&payloads(buf, &scan), &payload_list[..whole]);
            let (read, stop) = read_all(buf, MAX_FRAME_LEN);
            prop_assert_eq!(&read, &payload_list[..whole]);
            if cut == valid_up_to {
                prop_assert_eq!(scan.end, ScanEnd::Clean);
                prop_assert!(stop.is_ok());
            } else {
                prop_assert_eq!(scan.end, ScanEnd::TornTail { valid_up_to });
                let truncated = matches!(stop, Err(FrameError::Truncated { offset })
                    if offset == valid_up_to as u64);
                prop_assert!(truncated, "{stop:?} at cut {cut}");
            }
        }
    }

    #[test]
    fn garbage_after_the_last_frame_is_a_torn_tail(
        payload_list in arb_payloads(0..6),
        garbage in prop::collection::vec(any::<u8>(), 1..4096),
    ) {
        let (mut log, _) = log_of(&payload_list);
        let old_end = log.len();
        log.extend_from_slice(&garbage);
        let scan = scan(&log, 0, MAX_FRAME_LEN);
        let found = payloads(&log, &scan);
        prop_assert_eq!(&found[..payload_list.len()], &payload_list[..]);
        // A frame hidden in the garbage needs a matching CRC-32: possible, not guaranteed away.
        if !(old_end..log.len()).any(|p| naive_frame_at(&log, p)) {
            prop_assert_eq!(found.len(), payload_list.len());
            prop_assert_eq!(scan.end, ScanEnd::TornTail { valid_up_to: old_end });
        }
    }

    #[test]
    fn a_bit_flip_is_corruption_unless_in_the_last_frame(
        payload_list in arb_payloads(2..6),
        frame in any::<Index>(),
        bit in any::<Index>(),
    ) {
        let (mut log, mut boundaries) = log_of(&payload_list);
        boundaries.push(log.len());
        let k = frame.index(payload_list.len());
        let (start, end) = (boundaries[k], boundaries[k + 1]);
        let bit = bit.index((end - start) * 8);
        log[start + bit / 8] ^= 1 << (bit % 8);

        let scan = scan(&log, 0, MAX_FRAME_LEN);
        prop_assert_eq!(&payloads(&log, &scan), &payload_list[..k]);
        if k + 1 < payload_list.len() {
            let at_k = matches!(scan.end, ScanEnd::Corrupt { offset, .. } if offset == start);
            prop_assert!(at_k, "{:?}, frame {} at {}", scan.end, k, start);
        } else {
            prop_assert_eq!(scan.end, ScanEnd::TornTail { valid_up_to: start });
        }
        let (read, stop) = read_all(&log, MAX_FRAME_LEN);
        prop_assert_eq!(&read, &payload_list[..k]);
        let stop = stop.unwrap_err();
        prop_assert_eq!(error_offset(&stop), Some(start as u64));
        if bit >= 32 {
            prop_assert!(matches!(stop, FrameError::ChecksumMismatch { .. }), "{stop:?}");
        }
    }
}

#[test]
fn an_empty_payload_round_trips() {
    let (log, _) = log_of(&[vec![], b"x".to_vec(), vec![]]);
    assert_eq!(log[..4], [0; 4]);
    let scan = scan(&log, 0, MAX_FRAME_LEN);
    assert_eq!(scan.end, ScanEnd::Clean);
    assert_eq!(scan.records[0], (0, 8..8));
    assert_eq!(payloads(&log, &scan), [vec![], b"x".to_vec(), vec![]]);
    assert_eq!(read_all(&log, MAX_FRAME_LEN).0, payloads(&log, &scan));
    assert_eq!(read_all(&log[..8], 0).0, [Vec::<u8>::new()]);
}

#[test]
fn a_zero_filled_tail_is_torn_not_empty_frames() {
    let (mut log, _) = log_of(&[b"one".to_vec()]);
    let old_end = log.len();
    log.resize(old_end + 4096, 0);
    let scan = scan(&log, 0, MAX_FRAME_LEN);
    assert_eq!(scan.records.len(), 1);
    assert_eq!(
        scan.end,
        ScanEnd::TornTail {
            valid_up_to: old_end
        }
    );
    let (_, stop) = read_all(&log, MAX_FRAME_LEN);
    assert!(matches!(
        stop,
        Err(FrameError::ChecksumMismatch { offset: 11 })
    ));
}

#[test]
fn a_huge_length_is_refused_before_allocating() {
    let mut log = vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
    log.extend_from_slice(&[7; 16]);
    let (read, stop) = read_all(&log, MAX_FRAME_LEN);
    assert!(read.is_empty());
    assert!(matches!(
        stop,
        Err(FrameError::LengthOverMax {
            offset: 0,
            len: u32::MAX,
            max: MAX_FRAME_LEN
        })
    ));
    assert_eq!(
        scan(&log, 0, MAX_FRAME_LEN).end,
        ScanEnd::TornTail { valid_up_to: 0 }
    );
    encode(b"after", &mut log).unwrap();
    let scan = scan(&log, 0, MAX_FRAME_LEN);
    let reason = Defect::LengthOverMax;
    assert_eq!(scan.end, ScanEnd::Corrupt { offset: 0, reason });
}

#[test]
fn a_damaged_length_under_the_maximum_costs_only_what_the_input_holds() {
    let mut log = MAX_FRAME_LEN.to_le_bytes().to_vec();
    log.extend_from_slice(&[0; 4 + 100]);
    let mut reader = FrameReader::new(&log[..], MAX_FRAME_LEN);
    assert!(matches!(
        reader.next(),
        Err(FrameError::Truncated { offset: 0 })
    ));
    assert!(matches!(
        reader.next(),
        Err(FrameError::Stopped { offset: 0 })
    ));
    let mut payload = Vec::new();
    read_payload(&mut &log[8..], MAX_FRAME_LEN, &mut payload).unwrap();
    assert_eq!(payload.len(), 100);
    assert!(payload.capacity() < 64 << 10, "{}", payload.capacity());
}

#[test]
fn a_caller_maximum_below_the_hard_one_is_enforced() {
    let (mut log, _) = log_of(&[vec![1; 100]]);
    assert_eq!(scan(&log, 0, 50).end, ScanEnd::TornTail { valid_up_to: 0 });
    let (_, stop) = read_all(&log, 50);
    assert!(matches!(
        stop,
        Err(FrameError::LengthOverMax {
            len: 100,
            max: 50,
            ..
        })
    ));
    encode(&[2; 10], &mut log).unwrap();
    let scan = scan(&log, 0, 50);
    let reason = Defect::LengthOverMax;
    assert_eq!(scan.end, ScanEnd::Corrupt { offset: 0, reason });
    assert_eq!(FrameReader::new(&log[..], u32::MAX).max_len, MAX_FRAME_LEN);
}

#[test]
fn encode_refuses_a_payload_over_the_maximum() {
    let mut out = vec![9];
    let payload = vec![0; MAX_FRAME_LEN as usize + 1];
    let err = encode(&payload, &mut out).unwrap_err();
    assert!(matches!(
        err,
        FrameError::PayloadTooLarge {
            max: MAX_FRAME_LEN,
            ..
        }
    ));
    assert_eq!(out, [9]);
    assert!(err
        .to_string()
        .starts_with("a record of 67174401 bytes cannot be framed"));
}

#[test]
fn a_scan_can_start_at_any_frame() {
    let (log, starts) = log_of(&[b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
    let scan = scan(&log, starts[1], MAX_FRAME_LEN);
    assert_eq!(scan.end, ScanEnd::Clean);
    assert_eq!(payloads(&log, &scan), [b"bb".to_vec(), b"ccc".to_vec()]);
    assert_eq!(scan.records[0].0, starts[1]);
}
