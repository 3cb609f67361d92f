//! One module per subcommand: thin adapters that take plain options, call
//! the library and print. Each takes an output writer for results (stdout
//! in the binary, a buffer in tests); fetch reports and logs go to stderr.
//! Only this layer (and `main`) writes to the terminal.

pub mod dht;
pub mod fetch;
pub mod follow;
pub mod master;
pub mod publish;
pub mod push;
pub mod report;
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
