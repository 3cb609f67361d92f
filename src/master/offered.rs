//! Info dictionaries writers uploaded ahead of their pushes
//! ([`crate::topic::metadata_offer`]), held until the push that names them
//! takes them: the master then needs no connection to the writer for the
//! metadata. Bounded in age and in bytes, whatever writers send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::torrent::info_hash::InfoHash;

/// How long an upload waits for its push: a push follows its uploads at
/// once, and a retried push finds them still here.
pub(crate) const OFFER_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Most bytes held at once; the oldest go first.
pub(crate) const OFFERED_BYTES: usize = 256 * 1024 * 1024;

/// When an info dictionary was uploaded, and its bytes.
type Entry = (Instant, Arc<[u8]>);

/// The uploaded info dictionaries, by infohash.
#[derive(Default)]
pub(crate) struct Offered {
    entries: Mutex<HashMap<InfoHash, Entry>>,
}

impl Offered {
    /// Keeps `info` (whose SHA-1 the caller checked is `info_hash`).
    pub(crate) fn put(&self, info_hash: InfoHash, info: Arc<[u8]>) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (at, _)| now.duration_since(*at) < OFFER_LIFETIME);
        entries.insert(info_hash, (now, info));
        let mut held: usize = entries.values().map(|(_, info)| info.len()).sum();
        while held > OFFERED_BYTES {
            let Some((&oldest, _)) = entries.iter().min_by_key(|(_, (at, _))| *at) else {
                break;
            };
            if let Some((_, info)) = entries.remove(&oldest) {
                held -= info.len();
            }
        }
    }

    /// The info dictionary uploaded for `info_hash`, if it is still here.
    pub(crate) fn get(&self, info_hash: InfoHash) -> Option<Arc<[u8]>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&info_hash)
            .filter(|(at, _)| at.elapsed() < OFFER_LIFETIME)
            .map(|(_, info)| info.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_once_over_the_byte_bound() {
        let offered = Offered::default();
        let big: Arc<[u8]> = vec![0u8; OFFERED_BYTES / 2].into();
        for n in 0..3u8 {
            offered.put(InfoHash([n; 20]), big.clone());
        }
        assert!(offered.get(InfoHash([0; 20])).is_none());
        assert!(offered.get(InfoHash([1; 20])).is_some());
        assert!(offered.get(InfoHash([2; 20])).is_some());
    }
}
