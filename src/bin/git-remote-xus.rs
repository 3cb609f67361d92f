//! `git-remote-xus`: the remote helper Git runs for `xus://` URLs
//! (`git clone xus://TOPIC/BRANCH`). Git starts it as
//! `git-remote-xus <remote> <url>` with `$GIT_DIR` set, and talks to it
//! over stdin and stdout (see [`xus::commands::remote_helper`]).

use std::process::ExitCode;

use xus::commands::remote_helper::{self, HelperOptions};
use xus::topic::home::Home;

fn main() -> ExitCode {
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xus: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let remote = args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: git-remote-xus <remote> [<url>] (Git runs this for xus:// URLs)")
    })?;
    // Git passes the URL second; `git fetch xus://...` without a remote
    // name passes it as both.
    let url = args.next().unwrap_or(remote);
    let git_dir = std::env::var_os("GIT_DIR")
        .map(std::path::PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("GIT_DIR is not set: git-remote-xus is run by Git"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    remote_helper::run(
        HelperOptions {
            url,
            git_dir,
            home: Home::locate()?,
        },
        stdin,
        &mut stdout,
        &runtime,
    )
}

/// Warnings only, on stderr (Git shows the helper's stderr as is); `XUS_LOG`
/// overrides, as for `xus`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}
