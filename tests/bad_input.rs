//! `xus fetch` on bad input: every case must fail with a clear message, in
//! bounded time, without a panic, and leave the target repository exactly as
//! it was (refs, HEAD, object files, shallow file, work tree).

mod util;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use util::cluster::text;
use util::fixtures::{self, CraftedFile, Entry, at, craft_info, decode_owned, torrent_file};
use util::*;
use xus::torrent::bencode::Owned;

const T: Duration = Duration::from_secs(60);

/// Everything about a repository that a failed fetch must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    refs: String,
    head: String,
    objects: Vec<PathBuf>,
    shallow: Option<String>,
    work_tree: BTreeMap<PathBuf, (String, bool)>,
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("prefix").to_owned());
            }
        }
    }
    out.sort();
    out
}

fn snapshot(repo: &Path) -> Snapshot {
    Snapshot {
        refs: git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]),
        head: std::fs::read_to_string(repo.join(".git/HEAD")).expect("HEAD"),
        objects: files_under(&repo.join(".git/objects")),
        shallow: std::fs::read_to_string(repo.join(".git/shallow")).ok(),
        work_tree: tree_contents(repo)
            .into_iter()
            .map(|(path, (data, exec))| (path, (String::from_utf8_lossy(&data).into_owned(), exec)))
            .collect(),
    }
}

/// A repository with some history, a branch and a checkout: the target.
fn target() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README", "already here\n");
    repo.write("src/main.c", "int main(void) { return 0; }\n");
    repo.commit("existing");
    git(repo.path(), &["branch", "other"]);
    repo
}

/// Runs `xus fetch SOURCE --repo TARGET EXTRA...`, expecting a clean failure
/// whose message contains every one of `needles`; returns stderr.
fn refused(target: &Path, source: &str, extra: &[&str], needles: &[&str]) -> String {
    let before = snapshot(target);
    let mut args = vec![
        "fetch",
        source,
        "--repo",
        target.to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = run_xus(&args, T);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let shown: String = source.chars().take(80).collect();
    // Exit statuses 1-5 are the documented error kinds (README, "Exit
    // statuses"); anything else is a crash or a signal.
    assert!(
        matches!(out.status.code(), Some(1..=5)),
        "fetch of {shown:?} did not fail cleanly ({}):\n{stderr}",
        out.status
    );
    eprintln!("exit status {:?} for {shown:?}", out.status.code());
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(stderr.contains("xus: error: "), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "fetch of {shown:?}: expected {needle:?} in the error:\n{stderr}"
        );
    }
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        snapshot(target),
        before,
        "fetch of {shown:?} changed the target"
    );
    eprintln!("{shown:?}: refused in {elapsed:?}: {}", stderr.trim());
    stderr
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write");
    path.to_str().expect("utf8").to_owned()
}

/// A real commit torrent's info dictionary, for editing.
fn real_info() -> (TestRepo, Vec<u8>) {
    let src = TestRepo::new();
    src.write("a.txt", "a\n");
    src.write("dir/b.bin", fixtures::Prng(1).bytes(100_000));
    let commit = src.commit("real");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("t.torrent");
    xus_ok(
        &[
            "torrent",
            &commit,
            "--repo",
            src.path().to_str().expect("utf8"),
            "-o",
            file.to_str().expect("utf8"),
        ],
        T,
    );
    let bytes = std::fs::read(&file).expect("torrent");
    let info = xus::torrent::format::info_from_torrent_file(&bytes)
        .expect("info")
        .to_vec();
    (src, info)
}

#[test]
fn garbage_and_truncated_torrent_files() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let garbage = write_file(d, "garbage.torrent", &fixtures::Prng(9).bytes(4096));
    refused(
        target.path(),
        &garbage,
        &[],
        &["is not a valid .torrent file"],
    );
    let empty = write_file(d, "empty.torrent", b"");
    refused(
        target.path(),
        &empty,
        &[],
        &["is not a valid .torrent file"],
    );

    let (_src, info) = real_info();
    let whole = torrent_file(&info);
    for len in [1, whole.len() / 2, whole.len() - 1] {
        let cut = write_file(d, "cut.torrent", &whole[..len]);
        refused(target.path(), &cut, &[], &["is not a valid .torrent file"]);
    }
    // Trailing bytes after the top-level dictionary.
    let mut trailing = whole.clone();
    trailing.extend_from_slice(b"junk");
    let trailing = write_file(d, "trailing.torrent", &trailing);
    refused(
        target.path(),
        &trailing,
        &[],
        &["is not a valid .torrent file"],
    );
    // A directory and a missing path are not torrents either.
    refused(
        target.path(),
        d.to_str().expect("utf8"),
        &[],
        &["Is a directory"],
    );
    refused(
        target.path(),
        "/nonexistent/x.torrent",
        &[],
        &["is not a magnet link, an infohash, a xus:// head or a readable .torrent file"],
    );
}

#[test]
fn bencode_that_is_not_a_commit_torrent() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases: [(&[u8], &str); 5] = [
        (b"d3:fooi1ee", "field `info`"),
        (b"d4:infoi1ee", "field `info`"),
        (b"le", "is not a valid .torrent file"),
        (b"d4:infod3:fooi1eee", "field `xus`"),
        (
            b"d4:infod3:xusd1:vi2eeee",
            "format version 2 is not supported",
        ),
    ];
    for (bytes, needle) in cases {
        let file = write_file(d, "x.torrent", bytes);
        refused(target.path(), &file, &[], &[needle]);
    }
}

#[test]
fn stock_non_xus_torrents() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let payload = d.join("payload");
    std::fs::create_dir(&payload).expect("mkdir");
    std::fs::write(payload.join("a.txt"), "a\n").expect("write");
    std::fs::write(payload.join("b.bin"), fixtures::Prng(2).bytes(70_000)).expect("write");
    let transmission = d.join("transmission.torrent");
    let mktorrent = d.join("mktorrent.torrent");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().expect("running a torrent creator");
        assert!(out.status.success(), "{cmd:?}: {out:?}");
    };
    run(std::process::Command::new("transmission-create")
        .arg("-o")
        .arg(&transmission)
        .arg(&payload));
    run(std::process::Command::new("mktorrent")
        .arg("-o")
        .arg(&mktorrent)
        .arg(&payload));
    for file in [&transmission, &mktorrent] {
        refused(
            target.path(),
            file.to_str().expect("utf8"),
            &[],
            &["not a valid xus commit torrent", "field `xus`"],
        );
    }
}

#[test]
fn malformed_magnets() {
    let target = target();
    let hex = "abababababababababababababababababababab";
    let long = format!("magnet:?xt=urn:btih:{hex}&dn={}", "a".repeat(20_000));
    let cases = [
        ("magnet:", "not a magnet link"),
        ("magnet:?", "no `xt=urn:btih:`"),
        ("magnet:?dn=x", "no `xt=urn:btih:`"),
        ("magnet:?xt=urn:btih:zz", "no `xt=urn:btih:`"),
        ("magnet:?xt=urn:btih:0123456789abcdef", "no `xt=urn:btih:`"),
        (
            "magnet:?xt=urn:btih:gggggggggggggggggggggggggggggggggggggggg",
            "no `xt=urn:btih:`",
        ),
        ("magnet:?xt=urn:sha1:abcdef&dn=x", "no `xt=urn:btih:`"),
        (
            &format!("magnet:?xt=urn:btih:{hex}&dn=%zz"),
            "not correctly percent-encoded",
        ),
        (
            &format!("magnet:?xt=urn:btih:{hex}&dn=%ff"),
            "not correctly percent-encoded",
        ),
        (
            &format!("magnet:?xt=urn:btih:{hex}&x.pe=nope"),
            "is not an ip:port address",
        ),
        (
            &format!("magnet:?xt=urn:btih:{hex}&x.pe=127.0.0.1:99999"),
            "is not an ip:port address",
        ),
        (&long, "over the 16384-byte limit"),
        (
            "magnet-ish-nonsense",
            "is not a magnet link, an infohash, a xus:// head or a readable .torrent file",
        ),
        // Well-formed, but names no peer to ask.
        (
            &format!("magnet:?xt=urn:btih:{hex}"),
            "no peer to ask for the metadata",
        ),
        (hex, "no peer to ask for the metadata"),
        // Long values inside the 16 KiB bound: the error quotes a prefix.
        (
            &format!("magnet:?xt=urn:btih:{hex}&x.pe={}", "9".repeat(12_000)),
            "is not an ip:port address",
        ),
        (
            &format!("magnet:?xt=urn:btih:{hex}&ws=ftp://{}", "w".repeat(12_000)),
            "ftp://www",
        ),
        (
            &"z".repeat(12_000),
            "is not a magnet link, an infohash, a xus:// head or a readable .torrent file",
        ),
    ];
    for (magnet, needle) in cases {
        let stderr = refused(target.path(), magnet, &["--no-dht"], &[needle]);
        assert!(
            stderr.len() < 1_000,
            "the error quotes a short prefix of the input, not all of it ({} bytes)",
            stderr.len()
        );
    }
}

/// A port on 127.0.0.1 nothing listens on.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

/// A peer that accepts connections and never says a word.
fn silent_peer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    addr.to_string()
}

#[test]
fn infohash_no_peer_can_serve() {
    let target = target();
    let hex = "abababababababababababababababababababab";
    // Nothing listens: refused at once.
    let started = Instant::now();
    refused(
        target.path(),
        hex,
        &["--peer", &closed_port(), "--metadata-timeout", "3"],
        &[&format!("metadata of {hex}")],
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // A live xus seeder that does not have the torrent: refused at once.
    let src = TestRepo::new();
    src.write("x", "x\n");
    src.commit("x");
    let seeder = spawn_seed(src.path(), &[]);
    let magnet = format!("magnet:?xt=urn:btih:{hex}&x.pe={}", seeder.addr);
    let started = Instant::now();
    refused(
        target.path(),
        &magnet,
        &["--metadata-timeout", "3"],
        &[&format!("metadata of {hex}")],
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // A peer that accepts and stays silent: the metadata timeout ends it.
    let started = Instant::now();
    refused(
        target.path(),
        hex,
        &["--peer", &silent_peer(), "--metadata-timeout", "3"],
        &["no peer sent the metadata"],
    );
    let silent = started.elapsed();
    assert!(
        silent >= Duration::from_secs(3) && silent < Duration::from_secs(15),
        "metadata timeout of 3 s took {silent:?}"
    );
}

/// Crafts a `.torrent` of a commit of `trees` (the first is the root) that
/// lists `files`, in canonical v1 layout.
fn crafted_tree_torrent(trees: Vec<Vec<u8>>, files: &[CraftedFile]) -> (Vec<u8>, String) {
    let root = fixtures::object_id("tree", &trees[0]);
    let commit_raw = fixtures::raw_commit_of(&root, "crafted");
    let name = fixtures::object_id("commit", &commit_raw);
    let total: i64 = files.iter().map(|f| f.length).sum();
    let piece_length = xus::torrent::format::piece_length_for(total as u64);
    // Parsing checks lengths before the piece count: keep absurd totals cheap.
    let pieces = ((total as u64).div_ceil(piece_length) as usize).min(100_000);
    let info = craft_info(
        &name,
        &commit_raw,
        &trees,
        &[],
        files,
        piece_length as i64,
        pieces,
    );
    (torrent_file(&info), name)
}

/// What a case is, its raw trees, the files it lists, the expected error.
type TreeCase = (&'static str, Vec<Vec<u8>>, Vec<CraftedFile>, &'static str);

#[test]
fn trees_with_escaping_names_are_refused() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = b"#!/bin/sh\necho owned\n";
    let blob = fixtures::object_id("blob", data);
    let len = data.len() as i64;
    let hook_dir = fixtures::raw_tree(&[Entry::exec("post-checkout", &blob)]);
    let hook_dir_id = fixtures::object_id("tree", &hook_dir);
    let dotgit = fixtures::raw_tree(&[Entry::dir("hooks", &hook_dir_id)]);
    let dotgit_id = fixtures::object_id("tree", &dotgit);
    let file = |path: &[&[u8]]| CraftedFile::new(path, len);
    let mut cases: Vec<TreeCase> = vec![
        (
            "..",
            vec![fixtures::raw_tree(&[Entry::file("..", &blob)])],
            vec![file(&[b".."])],
            "unsafe path component \"..\"",
        ),
        (
            ".",
            vec![fixtures::raw_tree(&[Entry::file(".", &blob)])],
            vec![file(&[b"."])],
            "unsafe path component \".\"",
        ),
        (
            ".git hooks",
            vec![
                fixtures::raw_tree(&[Entry::dir(".git", &dotgit_id)]),
                dotgit.clone(),
                hook_dir.clone(),
            ],
            vec![file(&[b".git", b"hooks", b"post-checkout"])],
            "unsafe path component \".git\"",
        ),
        (
            ".GiT hooks",
            vec![
                fixtures::raw_tree(&[Entry::dir(".GiT", &dotgit_id)]),
                dotgit.clone(),
                hook_dir.clone(),
            ],
            vec![file(&[b".GiT", b"hooks", b"post-checkout"])],
            "unsafe path component \".GiT\"",
        ),
        (
            "absolute",
            vec![fixtures::raw_tree(&[Entry::file("/etc/passwd", &blob)])],
            vec![file(&[b"/etc/passwd"])],
            "unsafe path component \"/etc/passwd\"",
        ),
        (
            "slash",
            vec![fixtures::raw_tree(&[Entry::file("../../outside", &blob)])],
            vec![file(&[b"..", b"..", b"outside"])],
            "unsafe path component",
        ),
        (
            "backslash",
            vec![fixtures::raw_tree(&[Entry::file("..\\..\\outside", &blob)])],
            vec![file(&[b"..\\..\\outside"])],
            "unsafe path component",
        ),
        (
            "empty name",
            vec![fixtures::raw_tree(&[Entry::file("", &blob)])],
            vec![file(&[b""])],
            "unsafe path component \"\"",
        ),
        (
            "unknown mode",
            vec![fixtures::raw_tree(&[Entry::with_mode("20000", "x", &blob)])],
            vec![file(&[b"x"])],
            "unsupported tree entry mode \"20000\"",
        ),
        (
            "duplicate names",
            vec![
                [
                    fixtures::raw_tree(&[Entry::file("x", &blob)]),
                    fixtures::raw_tree(&[Entry::file("x", &blob)]),
                ]
                .concat(),
            ],
            vec![file(&[b"x"]), file(&[b"x"])],
            "duplicate name",
        ),
    ];
    // Every other spelling of `.git` that Git refuses (NTFS short name,
    // trailing dots and spaces, a data stream, HFS+'s ignored code points).
    for name in [
        "git~1",
        "GIT~1",
        ".git.",
        ".git ",
        ".git::$INDEX_ALLOCATION",
        ".g\u{200c}it",
    ] {
        cases.push((
            name,
            vec![
                fixtures::raw_tree(&[Entry::dir(name, &dotgit_id)]),
                dotgit.clone(),
                hook_dir.clone(),
            ],
            vec![file(&[name.as_bytes(), b"hooks", b"post-checkout"])],
            "unsafe path component",
        ));
    }
    // The same, one level down, behind an ordinary directory.
    let nested = fixtures::raw_tree(&[Entry::file("..", &blob)]);
    let nested_id = fixtures::object_id("tree", &nested);
    cases.push((
        "nested ..",
        vec![fixtures::raw_tree(&[Entry::dir("ok", &nested_id)]), nested],
        vec![file(&[b"ok", b".."])],
        "unsafe path component \"..\"",
    ));
    for (what, trees, files, needle) in cases {
        let (torrent, _) = crafted_tree_torrent(trees, &files);
        let path = write_file(d, "crafted.torrent", &torrent);
        eprintln!("case {what}");
        refused(
            target.path(),
            &path,
            &[],
            &["not a valid xus commit torrent", needle],
        );
    }
    // Nothing landed next to the target either.
    let parent = target.path().parent().expect("parent");
    assert!(!parent.join("outside").exists());
}

/// `docs/FORMAT.md` bounds symlink targets at 4096 bytes: a torrent that
/// carries a longer one is refused when parsed, before anything is written
/// (a checkout would fail with "File name too long" after the refs moved).
#[test]
fn a_symlink_target_over_the_limit_is_refused() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = b"content\n";
    let blob = fixtures::object_id("blob", data);
    let long = vec![b'a'; 5000];
    let link = fixtures::object_id("blob", &long);
    let tree = fixtures::raw_tree(&[Entry::link("l", &link), Entry::file("x", &blob)]);
    let root = fixtures::object_id("tree", &tree);
    let commit_raw = fixtures::raw_commit_of(&root, "long link");
    let name = fixtures::object_id("commit", &commit_raw);
    let len = data.len() as i64;
    let info = craft_info(
        &name,
        &commit_raw,
        &[tree],
        &[long],
        &[CraftedFile::new(&[b"x"], len)],
        xus::torrent::format::piece_length_for(len as u64) as i64,
        1,
    );
    let path = write_file(dir.path(), "long-link.torrent", &torrent_file(&info));
    refused(
        target.path(),
        &path,
        &[],
        &["not a valid xus commit torrent", "symlink target"],
    );
}

/// Git refuses a `.gitmodules` that is a symbolic link (`git fsck`'s
/// `gitmodulesSymlink`: a checkout would read submodule settings from
/// wherever it points), also under the names NTFS would open as it; so does
/// xus, when it parses the torrent, before anything is written.
#[test]
fn a_symlinked_gitmodules_is_refused() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = b"content\n";
    let blob = fixtures::object_id("blob", data);
    let where_to = b"../../elsewhere".to_vec();
    let link = fixtures::object_id("blob", &where_to);
    for name in [".gitmodules", ".GitModules.", "gitmod~1"] {
        let tree = fixtures::raw_tree(&[Entry::link(name, &link), Entry::file("x", &blob)]);
        let root = fixtures::object_id("tree", &tree);
        let commit_raw = fixtures::raw_commit_of(&root, "symlinked gitmodules");
        let commit = fixtures::object_id("commit", &commit_raw);
        let len = data.len() as i64;
        let info = craft_info(
            &commit,
            &commit_raw,
            &[tree],
            std::slice::from_ref(&where_to),
            &[CraftedFile::new(&[b"x"], len)],
            xus::torrent::format::piece_length_for(len as u64) as i64,
            1,
        );
        let path = write_file(dir.path(), "gitmodules.torrent", &torrent_file(&info));
        eprintln!("case {name}");
        refused(
            target.path(),
            &path,
            &[],
            &["not a valid xus commit torrent", "symlinked .gitmodules"],
        );
    }
}

#[test]
fn name_that_is_not_the_commit_id() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_src, info) = real_info();
    for name in [
        "0000000000000000000000000000000000000000".to_owned(),
        "hello".to_owned(),
        String::new(),
        // The id, but in upper case.
        String::from_utf8_lossy(decode_owned(&info).encode().as_slice())
            .split("4:name40:")
            .nth(1)
            .expect("name")[..40]
            .to_uppercase(),
    ] {
        let mut value = decode_owned(&info);
        *at(&mut value, &["name"]) = Owned::bytes(&name);
        let path = write_file(
            dir.path(),
            "renamed.torrent",
            &torrent_file(&value.encode()),
        );
        refused(
            target.path(),
            &path,
            &[],
            &["is not the id of the commit it carries"],
        );
    }
}

#[test]
fn absurd_sizes() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_src, info) = real_info();
    let cases: [(i64, &str); 4] = [
        (1 << 50, "over the v1 limit"),
        (i64::MAX, "over the v1 limit"),
        (-1, "field `files.length`"),
        (i64::MIN, "field `files.length`"),
    ];
    for (length, needle) in cases {
        let mut value = decode_owned(&info);
        let Owned::List(files) = at(&mut value, &["files"]) else {
            panic!("files");
        };
        let Owned::Dict(first) = &mut files[1] else {
            panic!("file");
        };
        first.insert(b"length".to_vec(), Owned::Int(length));
        let path = write_file(dir.path(), "huge.torrent", &torrent_file(&value.encode()));
        refused(
            target.path(),
            &path,
            &[],
            &["not a valid xus commit torrent", needle],
        );
    }
    // A piece length other than the v1 rule's.
    let mut value = decode_owned(&info);
    *at(&mut value, &["piece length"]) = Owned::Int(1 << 30);
    let path = write_file(dir.path(), "pl.torrent", &torrent_file(&value.encode()));
    refused(target.path(), &path, &[], &["piece length"]);
    // Piece and weak lists of the wrong size.
    for key in [&["pieces"][..], &["xus", "weak"]] {
        let mut value = decode_owned(&info);
        let Owned::Bytes(b) = at(&mut value, key) else {
            panic!("bytes");
        };
        b.truncate(b.len() - 1);
        let path = write_file(dir.path(), "pieces.torrent", &torrent_file(&value.encode()));
        refused(target.path(), &path, &[], &["is missing or malformed"]);
    }
}

/// A length that passes every bound (512 GiB) but that the blob does not
/// have. Without peers the fetch stops at once; running it again with a
/// peer (a resume) must also end in bounded time: the stall timeout, not an
/// hour of hashing the zeros of a sparse staging file the first run left.
#[test]
fn plausible_but_false_length() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = b"tiny\n";
    let blob = fixtures::object_id("blob", data);
    let tree = fixtures::raw_tree(&[Entry::file("big", &blob)]);
    let length: i64 = 1 << 39;
    let (torrent, _) = crafted_tree_torrent(vec![tree], &[CraftedFile::new(&[b"big"], length)]);
    let path = write_file(dir.path(), "false.torrent", &torrent);
    let started = Instant::now();
    refused(target.path(), &path, &["--no-dht"], &["no peer is known"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    let xus_dir = target.path().join(".git/xus");
    let allocated = |what: &str| {
        use std::os::unix::fs::MetadataExt;
        let mut blocks = 0;
        for f in files_under(&xus_dir) {
            let meta = std::fs::metadata(xus_dir.join(&f)).expect("meta");
            eprintln!("{what}: {} is {} bytes long", f.display(), meta.len());
            blocks += meta.blocks() * 512;
        }
        assert!(
            blocks < 1 << 20,
            "{what}: {blocks} bytes allocated under .git/xus"
        );
    };
    allocated("after the first run");
    // Again, with a live peer that has nothing to give.
    let src = TestRepo::new();
    src.write("x", "x\n");
    src.commit("x");
    let seeder = spawn_seed(src.path(), &[]);
    let peer = seeder.addr.to_string();
    let started = Instant::now();
    refused(
        target.path(),
        &path,
        &["--peer", &peer, "--stall-timeout", "3"],
        &["no progress for 3 s"],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    allocated("after the second run");
}

/// A branch name Git refuses is bad input like any other: it must be refused
/// before anything enters the repository (today it is only checked after the
/// download, once the objects and `refs/xus/commits/<id>` are written).
#[test]
fn invalid_branch_name_changes_nothing() {
    let src = TestRepo::new();
    src.write("x", "x\n");
    src.commit("x");
    let seeder = spawn_seed(src.path(), &[]);
    let target = target();
    // What Git's check-ref-format --branch refuses, libgit2's ref rule or not.
    let long = format!("{}..", "x".repeat(5_000));
    for bad in [
        "bad..name",
        "HEAD",
        "-x",
        "@",
        "../x",
        "main.lock",
        "ma in",
        "ma@{in",
        "main/",
        "a:b",
        &long,
    ] {
        let stderr = refused(
            target.path(),
            &seeder.seeded[0].magnet,
            &[&format!("--branch={bad}")],
            &["is not a valid branch name"],
        );
        assert!(
            stderr.len() < 1_000,
            "the error quotes a short prefix of the name, not all of it:\n{stderr}"
        );
    }
}

/// `--checkout` into a bare repository cannot succeed: refused up front,
/// nothing written.
#[test]
fn checkout_into_bare_repository_changes_nothing() {
    let src = TestRepo::new();
    src.write("x", "x\n");
    src.commit("x");
    let seeder = spawn_seed(src.path(), &[]);
    let bare_dir = tempfile::tempdir().expect("tempdir");
    git(bare_dir.path(), &["init", "-q", "--bare"]);
    let before = files_under(&bare_dir.path().join("objects"));
    let out = run_xus(
        &[
            "fetch",
            &seeder.seeded[0].magnet,
            "--repo",
            bare_dir.path().to_str().expect("utf8"),
            "--checkout",
            "--listen",
            "127.0.0.1:0",
        ],
        T,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot check out into a bare repository"),
        "{stderr}"
    );
    assert_eq!(
        git(bare_dir.path(), &["for-each-ref"]),
        "",
        "refs were set although the fetch failed"
    );
    assert_eq!(files_under(&bare_dir.path().join("objects")), before);
}

/// A checkout that cannot succeed (a local change to a file the commit
/// changes) must fail before any ref a user sees moves: the branch, `HEAD`
/// and the work tree stay as they were; only the commit is kept.
#[test]
fn failed_checkout_moves_no_ref() {
    let src = TestRepo::new();
    src.write("f.txt", "first\n");
    let first = src.commit("first");
    src.write("f.txt", "second\n");
    let second = src.commit("second");
    let seeder = spawn_seed(src.path(), &[&first, &second]);
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let fetch = |magnet: &str| {
        run_xus(
            &[
                "fetch",
                magnet,
                "--repo",
                repo.to_str().expect("utf8"),
                "--branch",
                "main",
                "--checkout",
                "--listen",
                "127.0.0.1:0",
            ],
            T,
        )
    };
    let out = fetch(&seeder.seeded[0].magnet);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(repo.join("f.txt"), "edited here\n").expect("edit");

    let out = fetch(&seeder.seeded[1].magnet);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("checking out the fetched commit"),
        "{stderr}"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), first);
    assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        std::fs::read_to_string(repo.join("f.txt")).expect("read"),
        "edited here\n"
    );
    assert_eq!(
        git(&repo, &["rev-parse", &format!("refs/xus/commits/{second}")]),
        second,
        "the fetched commit is kept"
    );
    assert_fsck_clean(&repo);
}

/// Metadata that is invalid on its face must not leave a new repository
/// behind where there was none.
#[test]
fn invalid_torrent_creates_no_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("new-repo");
    let file = write_file(dir.path(), "x.torrent", b"d4:infod3:fooi1eee");
    let out = run_xus(
        &[
            "fetch",
            &file,
            "--repo",
            missing.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
        ],
        T,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not a valid xus commit torrent"),
        "{stderr}"
    );
    assert!(
        !missing.exists(),
        "a repository was created at {} for a torrent that was refused",
        missing.display()
    );
}

/// Error messages say each thing once and give the real numbers.
#[test]
fn error_messages_are_exact() {
    let target = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = write_file(dir.path(), "garbage.torrent", b"`garbage");
    let data = b"x";
    let blob = fixtures::object_id("blob", data);
    let (dotdot, _) = crafted_tree_torrent(
        vec![fixtures::raw_tree(&[Entry::file("..", &blob)])],
        &[CraftedFile::new(&[b".."], 1)],
    );
    let dotdot = write_file(dir.path(), "dotdot.torrent", &dotdot);
    let (huge, _) = crafted_tree_torrent(
        vec![fixtures::raw_tree(&[Entry::file("big", &blob)])],
        &[CraftedFile::new(&[b"big"], 1 << 50)],
    );
    let huge = write_file(dir.path(), "huge.torrent", &huge);
    let mut problems = Vec::new();
    for source in [&garbage, &dotdot, &huge] {
        let stderr = refused(target.path(), source, &[], &[]);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("xus: error: "))
            .expect("error line");
        let parts: Vec<&str> = line.split(": ").collect();
        if parts.windows(2).any(|w| w[0] == w[1]) {
            problems.push(format!("repeated cause: {line}"));
        }
        if source == &huge && !line.contains(&(1u64 << 50).to_string()) {
            problems.push(format!("size of 2^50 bytes not reported: {line}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
