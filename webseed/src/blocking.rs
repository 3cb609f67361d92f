//! Running source calls on Tokio's blocking pool, a bounded number at a time.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Span;

/// Runs synchronous closures on the blocking pool, at most `max` at once across all requests.
///
/// Without the bound, a burst of requests would start one pool thread each (up to Tokio's 512)
/// and every one would hold a chunk buffer; with it, extra requests wait their turn.
#[derive(Clone, Debug)]
pub(crate) struct Blocking {
    permits: Arc<Semaphore>,
}

/// Returned by [`Blocking::run`] when the closure did not return.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlockingError {
    /// The closure panicked (the panic is also reported by the runtime).
    #[error("a blocking source call panicked or was cancelled")]
    Join(#[source] tokio::task::JoinError),
}

impl Blocking {
    /// A runner allowing `max` closures at once (`max` is at least 1, checked by the caller).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Waits for a free slot, then runs `call` on the blocking pool inside the current span.
    pub(crate) async fn run<T, F>(&self, call: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the blocking-call semaphore is never closed");
        let span = Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(call)
        })
        .await
        .map_err(BlockingError::Join)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn never_runs_more_than_max_at_once() {
        let blocking = Blocking::new(3);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (blocking, running, peak) = (blocking.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                blocking
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            assert!(matches!(task.await, Ok(Ok(()))));
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_crash() {
        let blocking = Blocking::new(1);
        let result = blocking.run(|| panic!("boom")).await;
        assert!(matches!(result, Err(BlockingError::Join(_))));
        // The slot was given back.
        assert!(matches!(blocking.run(|| 7).await, Ok(7)));
    }
}
