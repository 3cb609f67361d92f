//! `xus completions` and `xus man` from the real binary: the scripts parse
//! in their shell, the man pages are roff and name the subcommands, and bad
//! input fails with a message that says what would have worked.

mod util;

use std::process::Command;
use std::time::Duration;

use util::*;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn bash_completions_parse_and_name_the_subcommands() {
    let script = xus_ok(&["completions", "bash"], TIMEOUT);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("xus.bash");
    std::fs::write(&file, &script).expect("writing the script");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("running bash -n");
    assert!(
        out.status.success(),
        "bash -n rejected the completion script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for word in ["seed", "fetch", "completions", "--repo"] {
        assert!(script.contains(word), "no {word:?} in:\n{script}");
    }
    assert!(
        script.contains("complete "),
        "no `complete` call in:\n{script}"
    );
}

#[test]
fn zsh_and_fish_completions_name_fetch() {
    for shell in ["zsh", "fish"] {
        let script = xus_ok(&["completions", shell], TIMEOUT);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        assert!(script.contains("fetch"), "{shell}: no fetch in:\n{script}");
    }
}

#[test]
fn elvish_and_powershell_completions_are_printed() {
    for shell in ["elvish", "powershell"] {
        let script = xus_ok(&["completions", shell], TIMEOUT);
        assert!(script.contains("fetch"), "{shell}: no fetch in:\n{script}");
    }
}

#[test]
fn an_unknown_shell_fails_naming_the_valid_ones() {
    let out = run_xus(&["completions", "tcsh"], TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tcsh was accepted:\n{stderr}");
    assert!(out.stdout.is_empty(), "printed a script for tcsh");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(stderr.contains(shell), "{shell} not named in:\n{stderr}");
    }
}

/// The title line of a roff page: after the apostrophe set-up (`.ie`/`.el`)
/// that the roff crate puts first, `.TH` must come before any section.
fn title_line(page: &str) -> &str {
    page.lines()
        .find(|line| line.starts_with(".TH") || line.starts_with(".SH"))
        .unwrap_or_else(|| panic!("no .TH or .SH in:\n{page}"))
}

#[test]
fn man_prints_the_top_level_page() {
    let page = xus_ok(&["man"], TIMEOUT);
    assert!(
        title_line(&page).starts_with(".TH xus 1 "),
        "no roff title first in:\n{page}"
    );
    assert!(page.lines().any(|line| line == ".SH NAME"), "{page}");
    // Subcommands are listed by their own page's name (roff escapes `-`).
    for sub in ["xus\\-seed(1)", "xus\\-fetch(1)", "xus\\-man(1)"] {
        assert!(page.contains(sub), "no {sub} in:\n{page}");
    }
    assert!(
        !page.contains("xus\\-help"),
        "a page for clap's help:\n{page}"
    );
}

#[test]
fn man_out_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet is created.
    let out_dir = dir.path().join("man").join("man1");
    let printed = xus_ok(
        &["man", "--out", out_dir.to_str().expect("utf-8 path")],
        TIMEOUT,
    );
    for name in [
        "xus.1",
        "xus-seed.1",
        "xus-fetch.1",
        "xus-topic-new.1",
        "xus-dht-serve.1",
        "xus-master-status.1",
    ] {
        let path = out_dir.join(name);
        let page = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{} not written: {err}\n{printed}", path.display()));
        let title = name.trim_end_matches(".1");
        assert!(
            title_line(&page).starts_with(&format!(".TH {title} 1 ")),
            "{name}: no roff title first in:\n{page}"
        );
        assert!(
            printed.contains(&format!("wrote {}", path.display())),
            "{name} not reported in:\n{printed}"
        );
    }
    let fetch = std::fs::read_to_string(out_dir.join("xus-fetch.1")).expect("xus-fetch.1");
    assert!(fetch.contains("stall\\-timeout"), "{fetch}");
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|name| name.contains("help")),
        "pages for clap's help subcommand: {names:?}"
    );
}

#[test]
fn man_out_into_a_file_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("writing a file");
    let out = run_xus(
        &["man", "--out", file.to_str().expect("utf-8 path")],
        TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "writing into a file succeeded");
    assert!(
        stderr.contains(&file.display().to_string()),
        "the path is not named in:\n{stderr}"
    );
}
