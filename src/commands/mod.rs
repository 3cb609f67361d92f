//! One module per subcommand. Each takes plain options and an output writer
//! for results (stdout in the binary, a buffer in tests); logs go to stderr.

pub mod dht;
pub mod fetch;
pub mod follow;
pub mod master;
pub mod publish;
pub mod push;
pub mod seed;
pub mod topic;
pub mod torrent;
pub mod webseed;
pub mod writer;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
