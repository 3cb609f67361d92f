//! `git-remote-xus`: the remote helper Git runs for `xus://` URLs
//! (`git clone xus://TOPIC/BRANCH`). Everything, printing included, lives in
//! [`xus::commands::remote_helper::main`].

fn main() -> std::process::ExitCode {
    xus::commands::remote_helper::main()
}
