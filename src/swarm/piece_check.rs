//! Pieces of a torrent served straight from Git, checked against the
//! torrent's hashes the first time any byte of them is read.
//!
//! A seed used to hash every piece of every torrent at start (about 7 s per
//! GiB; minutes for a master holding many commits) only to learn what the
//! object database already guarantees. Instead the torrent starts as
//! complete, and a piece is hashed once, when a peer first asks for it: the
//! same protection (a corrupted object, a stale cached torrent is never
//! served) paid only for what is uploaded.

use std::sync::atomic::{AtomicU8, Ordering};

use sha1::{Digest, Sha1};

/// Not yet read.
const UNCHECKED: u8 = 0;
/// Hashed and matched: served without another look.
const GOOD: u8 = 1;
/// Not matching its hash: refused for the rest of the session.
const REFUSED: u8 = 2;

/// Why a piece is not served.
#[derive(Debug, thiserror::Error)]
pub enum PieceRefused {
    /// Its bytes do not hash to the torrent's piece hash.
    #[error(
        "piece {piece} of torrent {torrent} does not match its hash: a corrupted object or a stale cached torrent; it is not served"
    )]
    Mismatch {
        /// The piece index.
        piece: u32,
        /// The torrent, as its infohash.
        torrent: String,
    },
    /// Its bytes could not be read.
    #[error("piece {piece} of torrent {torrent} cannot be read, so it is not served: {reason}")]
    Unreadable {
        /// The piece index.
        piece: u32,
        /// The torrent, as its infohash.
        torrent: String,
        /// What the read said.
        reason: String,
    },
    /// Refused earlier in this session (reported then).
    #[error("piece {piece} of torrent {torrent} was refused earlier; it is not served")]
    RefusedEarlier {
        /// The piece index.
        piece: u32,
        /// The torrent, as its infohash.
        torrent: String,
    },
    /// A read outside the torrent (a bug in the caller, never peer input).
    #[error("read of {len} bytes at {offset} is outside torrent {torrent} ({total} bytes)")]
    OutOfRange {
        /// Offset in the torrent's byte stream.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The torrent's length.
        total: u64,
        /// The torrent, as its infohash.
        torrent: String,
    },
}

/// The piece layout and hashes of one torrent, and which pieces have been
/// checked.
pub struct FirstReadCheck {
    torrent: String,
    piece_length: u64,
    total_length: u64,
    hashes: Vec<[u8; 20]>,
    states: Vec<AtomicU8>,
}

impl FirstReadCheck {
    /// A check of the torrent `torrent` (its infohash, for messages) of
    /// `total_length` bytes in pieces of `piece_length` with these hashes;
    /// `None` when the layout and the hashes disagree.
    pub fn new(
        torrent: String,
        piece_length: u64,
        total_length: u64,
        hashes: Vec<[u8; 20]>,
    ) -> Option<Self> {
        let pieces = if total_length == 0 {
            0
        } else {
            total_length.checked_sub(1)? / piece_length.max(1) + 1
        };
        if piece_length == 0 || pieces != hashes.len() as u64 {
            return None;
        }
        let states = hashes.iter().map(|_| AtomicU8::new(UNCHECKED)).collect();
        Some(Self {
            torrent,
            piece_length,
            total_length,
            hashes,
            states,
        })
    }

    /// Makes sure every piece touching `len` bytes at `offset` (in the
    /// torrent's byte stream) has been checked, reading unchecked pieces
    /// whole through `read(offset, buf)`. A piece that fails is reported
    /// (once) and refused from then on.
    pub fn ensure_checked(
        &self,
        offset: u64,
        len: usize,
        mut read: impl FnMut(u64, &mut [u8]) -> anyhow::Result<()>,
    ) -> Result<(), PieceRefused> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.total_length);
        let Some(end) = end else {
            return Err(PieceRefused::OutOfRange {
                offset,
                len,
                total: self.total_length,
                torrent: self.torrent.clone(),
            });
        };
        if len == 0 {
            return Ok(());
        }
        let first = offset / self.piece_length;
        let last = (end - 1) / self.piece_length;
        let mut buf = Vec::new();
        for piece in first..=last {
            self.check_piece(piece as usize, &mut buf, &mut read)?;
        }
        Ok(())
    }

    fn check_piece(
        &self,
        index: usize,
        buf: &mut Vec<u8>,
        read: &mut impl FnMut(u64, &mut [u8]) -> anyhow::Result<()>,
    ) -> Result<(), PieceRefused> {
        let piece = index as u32;
        match self.states[index].load(Ordering::Acquire) {
            GOOD => return Ok(()),
            REFUSED => {
                return Err(PieceRefused::RefusedEarlier {
                    piece,
                    torrent: self.torrent.clone(),
                });
            }
            _ => {}
        }
        let start = index as u64 * self.piece_length;
        let length = self.piece_length.min(self.total_length - start);
        buf.resize(length as usize, 0);
        let outcome = match read(start, buf) {
            Err(error) => Err(PieceRefused::Unreadable {
                piece,
                torrent: self.torrent.clone(),
                reason: format!("{error:#}"),
            }),
            Ok(()) if Sha1::digest(&buf[..]).as_slice() != self.hashes[index] => {
                Err(PieceRefused::Mismatch {
                    piece,
                    torrent: self.torrent.clone(),
                })
            }
            Ok(()) => Ok(()),
        };
        let state = match &outcome {
            Ok(()) => GOOD,
            Err(PieceRefused::Mismatch { .. }) => REFUSED,
            // A failed read may pass later (a descriptor limit, a repack
            // under way): report it and try again on the next request.
            Err(refused) => {
                tracing::warn!("{refused}");
                return outcome;
            }
        };
        // Two readers may check the same piece at once; only the first to
        // settle it reports a refusal.
        let first = self.states[index]
            .compare_exchange(UNCHECKED, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if let Err(refused) = &outcome
            && first
        {
            tracing::error!("{refused}");
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_of(data: &[u8], piece_length: usize) -> FirstReadCheck {
        let hashes = data
            .chunks(piece_length)
            .map(|c| Sha1::digest(c).into())
            .collect();
        FirstReadCheck::new("t".into(), piece_length as u64, data.len() as u64, hashes)
            .expect("layout agrees")
    }

    #[test]
    fn good_pieces_are_read_once() {
        let data: Vec<u8> = (0..100u8).collect();
        let check = check_of(&data, 16);
        let reads = std::cell::Cell::new(0);
        let read = |offset: u64, buf: &mut [u8]| {
            reads.set(reads.get() + 1);
            buf.copy_from_slice(&data[offset as usize..offset as usize + buf.len()]);
            Ok(())
        };
        check
            .ensure_checked(10, 30, read)
            .expect("pieces 0..=2 match");
        assert_eq!(reads.get(), 3);
        check.ensure_checked(0, 100, read).expect("all match");
        assert_eq!(reads.get(), 7, "only the four unchecked pieces are read");
    }

    #[test]
    fn a_changed_byte_refuses_its_piece_only_and_for_good() {
        let data: Vec<u8> = (0..100u8).collect();
        let check = check_of(&data, 16);
        let mut served = data.clone();
        served[40] ^= 1;
        let read = |offset: u64, buf: &mut [u8]| {
            buf.copy_from_slice(&served[offset as usize..offset as usize + buf.len()]);
            Ok(())
        };
        assert!(matches!(
            check.ensure_checked(32, 16, read),
            Err(PieceRefused::Mismatch { piece: 2, .. })
        ));
        assert!(matches!(
            check.ensure_checked(40, 1, read),
            Err(PieceRefused::RefusedEarlier { piece: 2, .. })
        ));
        check
            .ensure_checked(48, 52, read)
            .expect("later pieces match");
    }

    #[test]
    fn an_unreadable_piece_is_refused_until_it_reads() {
        let data = [7u8; 20];
        let check = check_of(&data, 16);
        let outcome = check.ensure_checked(16, 4, |_, _| anyhow::bail!("object missing"));
        assert!(matches!(
            outcome,
            Err(PieceRefused::Unreadable { piece: 1, .. })
        ));
        check
            .ensure_checked(16, 4, |offset, buf| {
                buf.copy_from_slice(&data[offset as usize..offset as usize + buf.len()]);
                Ok(())
            })
            .expect("the object is back");
    }

    #[test]
    fn reads_outside_the_torrent_and_bad_layouts_are_refused() {
        let check = check_of(&[7u8; 20], 16);
        assert!(matches!(
            check.ensure_checked(18, 3, |_, _| Ok(())),
            Err(PieceRefused::OutOfRange { .. })
        ));
        assert!(matches!(
            check.ensure_checked(u64::MAX, 2, |_, _| Ok(())),
            Err(PieceRefused::OutOfRange { .. })
        ));
        assert!(FirstReadCheck::new("t".into(), 16, 20, vec![[0; 20]]).is_none());
        assert!(FirstReadCheck::new("t".into(), 0, 20, vec![[0; 20]; 2]).is_none());
        let empty = FirstReadCheck::new("t".into(), 16, 0, vec![]).expect("empty torrent");
        empty
            .ensure_checked(0, 0, |_, _| Ok(()))
            .expect("nothing to read");
    }
}
