//! One module per subcommand: thin adapters that take plain options, call
//! the library and print. Each takes an output writer for results (stdout
//! in the binary, a buffer in tests); fetch reports and logs go to stderr.
//! Only this layer (and `main`) writes to the terminal.

pub mod dht;
pub mod docs;
pub mod failure;
pub mod fetch;
pub mod follow;
pub mod gc;
pub mod master;
pub mod publish;
pub mod push;
pub mod remote_helper;
pub mod report;
pub mod seed;
pub mod status;
pub mod topic;
pub mod torrent;
pub mod verify;
pub mod webseed;
pub mod writer;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a daemon calls it before it announces itself (`listening`,
/// `master http ...`), so a SIGTERM sent right after that line is a clean
/// stop rather than the default death by signal. Must be called inside the
/// runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                // No signal handling at all: stop on Ctrl-C as tokio sees it.
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
