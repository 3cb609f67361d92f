//! One rolling pass over an old blob that finds wanted pieces in it: the weak
//! checksum from the metadata picks candidate windows, the piece's SHA-1
//! confirms them.
//!
//! The pass costs one checksum roll and one bit test per byte; the hash map
//! of wanted sums is consulted only when the bit is set, so scanning stays
//! fast however many pieces are wanted.

use std::collections::{BTreeMap, HashMap};

use sha1::{Digest, Sha1};

use crate::torrent::format::CommitTorrent;
use crate::torrent::weak::Rolling;

/// For each wanted piece found in `old`, the offset where its bytes start.
/// Pieces of several files may be asked for at once: the pass is the same.
pub fn find_pieces(torrent: &CommitTorrent, pieces: &[usize], old: &[u8]) -> Vec<(usize, usize)> {
    // Group by piece length (full pieces, plus maybe the short last one).
    let mut by_length: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &piece in pieces {
        let (_, len) = torrent.piece_span(piece);
        by_length.entry(len).or_default().push(piece);
    }
    let mut found = Vec::new();
    for (len, group) in by_length {
        let Ok(len) = usize::try_from(len) else {
            continue;
        };
        if len == 0 || old.len() < len {
            continue;
        }
        find_of_length(torrent, &group, len, old, &mut found);
    }
    found
}

/// [`find_pieces`] for pieces that all have length `len`.
fn find_of_length(
    torrent: &CommitTorrent,
    pieces: &[usize],
    len: usize,
    old: &[u8],
    found: &mut Vec<(usize, usize)>,
) {
    let mut by_weak: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut filter = WeakFilter::for_count(pieces.len());
    for &piece in pieces {
        let Some(&weak) = torrent.weak.get(piece) else {
            continue;
        };
        filter.insert(weak);
        by_weak.entry(weak).or_default().push(piece);
    }
    let mut remaining: usize = by_weak.values().map(Vec::len).sum();
    let mut rolling = Rolling::new(&old[..len]);
    let mut at = 0usize;
    while remaining > 0 {
        let digest = rolling.digest();
        if filter.may_contain(digest)
            && let Some(candidates) = by_weak.get_mut(&digest)
            && !candidates.is_empty()
        {
            let sha: [u8; 20] = Sha1::digest(&old[at..at + len]).into();
            // Every wanted piece with these exact bytes is found at once.
            candidates.retain(|&p| {
                let same = torrent.piece_hashes.get(p) == Some(&sha);
                if same {
                    found.push((p, at));
                    remaining -= 1;
                }
                !same
            });
        }
        if at + len >= old.len() {
            break;
        }
        rolling.roll(old[at], old[at + len]);
        at += 1;
    }
}

/// A one-hash Bloom filter over weak sums, sized to keep false hits to about
/// one window in sixty-four.
struct WeakFilter {
    bits: Vec<u64>,
    shift: u32,
}

impl WeakFilter {
    /// A filter for `count` sums: 64 bits per sum, 2^12 to 2^22 bits.
    fn for_count(count: usize) -> Self {
        let bits = count
            .saturating_mul(64)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 22);
        Self {
            bits: vec![0; bits / 64],
            shift: 32 - bits.trailing_zeros(),
        }
    }

    /// Which bit a sum maps to (Fibonacci hashing: the weak sum's own bits
    /// are far from uniform).
    fn slot(&self, weak: u32) -> usize {
        (weak.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    fn insert(&mut self, weak: u32) {
        let slot = self.slot(weak);
        self.bits[slot / 64] |= 1 << (slot % 64);
    }

    fn may_contain(&self, weak: u32) -> bool {
        let slot = self.slot(weak);
        self.bits[slot / 64] & (1 << (slot % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_never_misses_an_inserted_sum() {
        for count in [0, 1, 100, 1 << 20] {
            let mut filter = WeakFilter::for_count(count);
            let sums: Vec<u32> = (0..1000u32)
                .map(|i| i.wrapping_mul(2_654_435_761))
                .collect();
            for &s in &sums {
                filter.insert(s);
            }
            assert!(sums.iter().all(|&s| filter.may_contain(s)));
        }
    }

    #[test]
    fn filter_rejects_most_other_sums() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        };
        let mut filter = WeakFilter::for_count(1000);
        for _ in 0..1000 {
            filter.insert(next());
        }
        let hits = (0..100_000).filter(|_| filter.may_contain(next())).count();
        assert!(hits < 100_000 / 32, "{hits} false hits in 100000");
    }
}
