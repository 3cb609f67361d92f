//! `xus completions` and `xus man`: shell completion scripts and roff man
//! pages generated from the clap definitions, so they cannot drift from the
//! options the binary really accepts. Packagers run these at build time;
//! users can run them to install completions by hand.
//!
//! This is the one command module that takes a `clap::Command`: what it
//! documents is the command-line syntax itself. The caller passes the
//! command (`Cli::command()` in the binary), so tests can pass any other.
//!
//! Everything is rendered into memory first and then written: the
//! generators panic when their writer fails, and a closed pipe or a full
//! disk must be an error here, not a panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;

/// Writes the completion script of `shell` for `command`, completing the
/// program name `bin_name` (what the user types, `xus`).
pub fn completions(
    mut command: clap::Command,
    bin_name: &str,
    shell: Shell,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, bin_name, &mut script);
    out.write_all(&script)
        .with_context(|| format!("writing the {shell} completion script"))?;
    out.flush()
        .with_context(|| format!("writing the {shell} completion script"))
}

/// Writes the man page of `command` itself (no page for its subcommands),
/// as roff.
pub fn man_page(command: clap::Command, out: &mut dyn Write) -> anyhow::Result<()> {
    let page = render(&clap_mangen::Man::new(without_help_subcommand(command)));
    out.write_all(&page).context("writing the man page")?;
    out.flush().context("writing the man page")
}

/// Writes one man page per command into `dir` (created when missing):
/// `<name>.1` for `command`, `<name>-<sub>.1` for each visible subcommand,
/// nested ones as `<name>-<sub>-<subsub>.1`. Prints `wrote <path>` per page
/// to `out`. Pages already in `dir` are overwritten.
pub fn man_pages(command: clap::Command, dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the man page directory {}", dir.display()))?;
    let mut command = without_help_subcommand(command);
    // Building gives every subcommand its page name (`xus-topic-new`).
    command.build();
    let mut pages = Vec::new();
    collect_pages(&command, dir, &mut pages);
    for (path, page) in pages {
        std::fs::write(&path, page)
            .with_context(|| format!("writing the man page {}", path.display()))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(())
}

/// Clap's generated `help` subcommand is not a command of xus: no page for
/// it, nor a line in every SUBCOMMANDS section. The setting is global, so
/// nested subcommands lose theirs too.
fn without_help_subcommand(command: clap::Command) -> clap::Command {
    command.disable_help_subcommand(true)
}

/// A man page, as roff.
fn render(man: &clap_mangen::Man) -> Vec<u8> {
    let mut page = Vec::new();
    man.render(&mut page)
        .expect("rendering into a Vec<u8> cannot fail");
    page
}

/// The path and text of the page of `command` and of each of its visible
/// subcommands, depth first; `command` must be built.
fn collect_pages(command: &clap::Command, dir: &Path, pages: &mut Vec<(PathBuf, Vec<u8>)>) {
    let man = clap_mangen::Man::new(command.clone());
    pages.push((dir.join(man.get_filename()), render(&man)));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect_pages(sub, dir, pages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> clap::Command {
        clap::Command::new("demo")
            .version("1.0")
            .about("A demo")
            .subcommand(clap::Command::new("run").about("Run it"))
            .subcommand(
                clap::Command::new("group")
                    .about("A group")
                    .subcommand(clap::Command::new("add").about("Add one")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn man_pages_name_nested_subcommands_and_skip_help_and_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = Vec::new();
        man_pages(sample(), dir.path(), &mut out).expect("man pages");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["demo-group-add.1", "demo-group.1", "demo-run.1", "demo.1"]
        );
        let printed = String::from_utf8(out).expect("utf8");
        assert_eq!(printed.lines().count(), 4, "{printed}");
    }

    #[test]
    fn man_page_is_roff_without_a_help_subcommand() {
        let mut out = Vec::new();
        man_page(sample(), &mut out).expect("man page");
        let page = String::from_utf8(out).expect("utf8");
        // roff's apostrophe set-up comes first, then the title.
        let title = page
            .lines()
            .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"));
        assert_eq!(title, Some(".TH demo 1  \"demo 1.0\" "), "{page}");
        assert!(page.contains("demo\\-run(1)"), "{page}");
        assert!(!page.contains("demo\\-help"), "{page}");
        assert!(!page.contains("secret"), "{page}");
    }

    #[test]
    fn completions_name_the_binary() {
        let mut out = Vec::new();
        completions(sample(), "demo", Shell::Bash, &mut out).expect("completions");
        let script = String::from_utf8(out).expect("utf8");
        assert!(script.contains("_demo()"), "{script}");
    }
}
