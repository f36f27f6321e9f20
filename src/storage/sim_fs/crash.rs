//! What a crash does to each pending operation, and the seeded generator that decides it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{InodeId, Pending, SECTOR};
use crate::storage::vfs::to_u64;
use crate::sync::Arc;

/// What a crash does to one pending operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Kept,
    Dropped,
    Torn,
    Garbled,
}

impl Fate {
    pub(super) fn draw(rng: &mut SplitMix64, op: &Pending) -> Self {
        match op {
            Pending::Append { .. } => {
                [Self::Kept, Self::Dropped, Self::Torn, Self::Garbled][rng.below(4)]
            }
            Pending::SetLen { .. } | Pending::Dir { .. } => {
                [Self::Kept, Self::Dropped][rng.below(2)]
            }
        }
    }

    pub(super) fn apply(
        self,
        op: &Pending,
        images: &mut BTreeMap<InodeId, Arc<Vec<u8>>>,
        names: &mut BTreeMap<PathBuf, InodeId>,
        rng: &mut SplitMix64,
    ) {
        if self == Self::Dropped {
            return;
        }
        match op {
            Pending::Append {
                inode,
                offset,
                data,
            } => {
                let image = Arc::make_mut(images.entry(*inode).or_default());
                let kept = if self == Self::Torn {
                    &data[..rng.below(data.len())]
                } else {
                    data
                };
                write_at(image, *offset, kept);
                if self == Self::Garbled {
                    garble(image, *offset, data.len(), rng);
                }
            }
            Pending::SetLen { inode, len } => {
                Arc::make_mut(images.entry(*inode).or_default()).resize(*len, 0);
            }
            Pending::Dir { op, .. } => op.apply(names),
        }
    }
}

/// Writes `data` at `offset`, zero-filling any gap: a dropped earlier append leaves a hole.
pub(super) fn write_at(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

/// Replaces with random bytes the part of `image[start..start + len]` in each of a random
/// non-empty set of the sectors it overlaps.
pub(super) fn garble(image: &mut [u8], start: usize, len: usize, rng: &mut SplitMix64) {
    let end = start + len;
    let first = start / SECTOR;
    let last = (end - 1) / SECTOR;
    let forced = first + rng.below(last - first + 1);
    for sector in first..=last {
        if sector == forced || rng.below(2) == 0 {
            let lo = start.max(sector * SECTOR);
            let hi = end.min((sector + 1) * SECTOR);
            rng.fill(&mut image[lo..hi]);
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever here so that crash seeds
/// stay reproducible.
#[derive(Debug)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (the modulo bias is below 2^-50 for our sizes); 0 if `n` is 0.
    pub(super) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % to_u64(n)).unwrap_or(0)
    }

    pub(super) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}
