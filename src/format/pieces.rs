//! Hashes a byte stream into pieces: SHA-1 for BitTorrent, the rolling weak
//! checksum for scavenging.

use sha1::{Digest, Sha1};

use crate::weak;

/// Consumes the torrent's byte stream in any chunking and yields, per piece,
/// its SHA-1 and weak checksum.
pub struct PieceHasher {
    piece_length: u64,
    filled: u64,
    sha: Sha1,
    weak: weak::Streaming,
    hashes: Vec<[u8; 20]>,
    weaks: Vec<u32>,
}

impl PieceHasher {
    /// Starts hashing pieces of `piece_length` bytes.
    pub fn new(piece_length: u64) -> Self {
        Self {
            piece_length,
            filled: 0,
            sha: Sha1::new(),
            weak: weak::Streaming::default(),
            hashes: Vec::new(),
            weaks: Vec::new(),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.piece_length - self.filled) as usize;
            let take = room.min(data.len());
            self.sha.update(&data[..take]);
            self.weak.update(&data[..take]);
            self.filled += take as u64;
            data = &data[take..];
            if self.filled == self.piece_length {
                self.finish_piece();
            }
        }
    }

    fn finish_piece(&mut self) {
        let sha = std::mem::take(&mut self.sha);
        self.hashes.push(sha.finalize().into());
        self.weaks.push(self.weak.digest());
        self.weak = weak::Streaming::default();
        self.filled = 0;
    }

    /// Ends the stream; a partial last piece counts as a piece.
    pub fn finish(mut self) -> (Vec<[u8; 20]>, Vec<u32>) {
        if self.filled > 0 {
            self.finish_piece();
        }
        (self.hashes, self.weaks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_matter() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = PieceHasher::new(16384);
        whole.update(&data);
        let mut parts = PieceHasher::new(16384);
        for chunk in data.chunks(777) {
            parts.update(chunk);
        }
        let (a, wa) = whole.finish();
        let (b, wb) = parts.finish();
        assert_eq!(a.len(), 7);
        assert_eq!((a, wa.clone()), (b, wb));
        assert_eq!(wa[6], weak::checksum(&data[6 * 16384..]));
    }
}
