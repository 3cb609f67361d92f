//! What this master uploaded over the last hour, sampled once a minute:
//! the status page draws it (`GET /`) and `/status` gives the samples. Only
//! the master's own share is seen: bytes to peers over BitTorrent and
//! bytes of webseed answers over HTTP.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// How often a sample is taken.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Samples kept: one hour of them, plus the one an hour ago.
const KEPT: usize = 61;

/// Totals since the master started, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct UploadSample {
    /// Unix seconds.
    pub(crate) time: u64,
    /// Bytes sent to peers over BitTorrent.
    pub(crate) peers: u64,
    /// Bytes of commit files sent as webseed answers.
    pub(crate) webseed: u64,
}

/// The last hour of samples, oldest first.
#[derive(Debug, Default)]
pub(crate) struct UploadHistory {
    samples: Mutex<VecDeque<UploadSample>>,
}

impl UploadHistory {
    /// Keeps `sample`, dropping what is more than an hour older.
    pub(crate) fn record(&self, sample: UploadSample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back(sample);
        while samples.len() > KEPT {
            samples.pop_front();
        }
    }

    /// The samples kept, oldest first, then `now` (so the chart reaches the
    /// present between two samples).
    pub(crate) fn with_now(&self, now: UploadSample) -> Vec<UploadSample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<UploadSample> = samples.iter().copied().collect();
        if all.last().is_none_or(|last| last.time < now.time) {
            all.push(now);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: u64) -> UploadSample {
        UploadSample {
            time,
            peers: time * 10,
            webseed: 0,
        }
    }

    #[test]
    fn an_hour_is_kept_and_now_comes_last() {
        let history = UploadHistory::default();
        for minute in 0..100 {
            history.record(at(minute * 60));
        }
        let all = history.with_now(at(99 * 60 + 30));
        assert_eq!(all.len(), KEPT + 1);
        assert_eq!(all[0].time, 39 * 60);
        assert_eq!(all[KEPT].time, 99 * 60 + 30);
        // A sample taken this very second is not repeated.
        assert_eq!(history.with_now(at(99 * 60)).len(), KEPT);
    }
}
