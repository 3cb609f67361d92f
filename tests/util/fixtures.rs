//! Builders of tricky Git commits for the fixture corpus.
//!
//! Everything is written with the git CLI (fixed identity and clock, see
//! [`super::git_output`]), mostly object by object: blobs with `hash-object`,
//! trees from raw bytes sorted here the way Git sorts them, commits with
//! `commit-tree` or as raw objects. Objects that Git itself would refuse are
//! written with `--literally` and only where a test wants exactly that.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use xus::torrent::bencode::{self, Owned, Spanned};

use super::{TestRepo, git};

/// The id of the empty tree.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// A commit of the corpus and the repository holding it.
pub struct Fixture {
    /// What the commit exercises.
    pub name: &'static str,
    /// The source repository.
    pub repo: TestRepo,
    /// The commit id (hex).
    pub commit: String,
    /// Whether `git fsck --strict` is silent about the source. When it is
    /// not (a legitimately old-style object), the fetched copy must get
    /// exactly the same fsck report as the source instead.
    pub strict: bool,
}

/// Runs `git` in `dir` with `input` on stdin, with the same identity, clock
/// and isolation as [`super::git_output`]; panics on failure, returns stdout.
pub fn git_input(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running git");
    let mut stdin = child.stdin.take().expect("stdin");
    // Feed stdin from a thread: git may write output before reading it all.
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("waiting for git");
    feeder.join().expect("stdin feeder");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Writes an object of `kind` holding `data`; with `literally`, Git skips its
/// own checks (for objects that must be malformed). Returns the hex id.
pub fn write_object(repo: &Path, kind: &str, data: &[u8], literally: bool) -> String {
    let mut args = vec!["hash-object", "-t", kind, "-w", "--stdin"];
    if literally {
        args.push("--literally");
    }
    let out = git_input(repo, &args, data);
    String::from_utf8(out).expect("hex id").trim().to_owned()
}

/// Writes a blob.
pub fn blob(repo: &Path, data: &[u8]) -> String {
    write_object(repo, "blob", data, false)
}

/// One entry of a tree written by hand.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Octal mode as Git writes it (`40000`, `100644`, ...).
    pub mode: String,
    /// Raw name bytes.
    pub name: Vec<u8>,
    /// Hex id of the object.
    pub id: String,
}

impl Entry {
    fn new(mode: &str, name: impl AsRef<[u8]>, id: &str) -> Self {
        Self {
            mode: mode.to_owned(),
            name: name.as_ref().to_vec(),
            id: id.to_owned(),
        }
    }

    /// A regular file.
    pub fn file(name: impl AsRef<[u8]>, id: &str) -> Self {
        Self::new("100644", name, id)
    }

    /// An executable file.
    pub fn exec(name: impl AsRef<[u8]>, id: &str) -> Self {
        Self::new("100755", name, id)
    }

    /// A symlink (the blob holds the target).
    pub fn link(name: impl AsRef<[u8]>, id: &str) -> Self {
        Self::new("120000", name, id)
    }

    /// A subtree.
    pub fn dir(name: impl AsRef<[u8]>, id: &str) -> Self {
        Self::new("40000", name, id)
    }

    /// A submodule commit.
    pub fn gitlink(name: impl AsRef<[u8]>, id: &str) -> Self {
        Self::new("160000", name, id)
    }

    /// Any mode, written as given.
    pub fn with_mode(mode: &str, name: impl AsRef<[u8]>, id: &str) -> Self {
        Self::new(mode, name, id)
    }

    fn sort_key(&self) -> Vec<u8> {
        let mut key = self.name.clone();
        if self.mode == "40000" {
            key.push(b'/');
        }
        key
    }
}

/// The raw bytes of a tree holding `entries`, in Git's order (a subtree
/// sorts as if its name ended with `/`).
pub fn raw_tree(entries: &[Entry]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(Entry::sort_key);
    let mut out = Vec::new();
    for e in &sorted {
        out.extend_from_slice(e.mode.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&e.name);
        out.push(0);
        out.extend_from_slice(&hex_to_bytes(&e.id));
    }
    out
}

/// Writes a tree, letting Git check it.
pub fn tree(repo: &Path, entries: &[Entry]) -> String {
    write_object(repo, "tree", &raw_tree(entries), false)
}

/// 40 hex digits to 20 bytes.
pub fn hex_to_bytes(hex: &str) -> Vec<u8> {
    xus_codec::hex::decode_array::<20>(hex)
        .unwrap_or_else(|e| panic!("not an object id: {hex:?}: {e}"))
        .to_vec()
}

/// `git commit-tree TREE -p PARENT... -m MESSAGE`.
pub fn commit_tree(repo: &Path, tree: &str, parents: &[&str], message: &str) -> String {
    let mut args = vec!["commit-tree", tree];
    for p in parents {
        args.extend(["-p", p]);
    }
    args.extend(["-m", message]);
    git(repo, &args)
}

/// Makes `refs/heads/main` point at `commit` (so gc and clones keep it).
pub fn set_main(repo: &Path, commit: &str) {
    git(repo, &["update-ref", "refs/heads/main", commit]);
}

/// A fast deterministic byte stream (SplitMix64) for file contents.
pub struct Prng(pub u64);

impl Prng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn fixture(name: &'static str, repo: TestRepo, commit: String) -> Fixture {
    set_main(repo.path(), &commit);
    Fixture {
        name,
        repo,
        commit,
        strict: true,
    }
}

/// A small ordinary first commit to hang other commits on.
fn base_commit(repo: &Path) -> String {
    let readme = blob(repo, b"base\n");
    let t = tree(repo, &[Entry::file("README", &readme)]);
    commit_tree(repo, &t, &[], "base")
}

/// A commit carrying a (syntactically plausible, cryptographically
/// meaningless) OpenPGP signature in a `gpgsig` header, with a parent.
pub fn signed_commit() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let parent = base_commit(p);
    let readme = blob(p, b"signed\n");
    let t = tree(p, &[Entry::file("README", &readme)]);
    let raw = format!(
        "tree {t}\n\
         parent {parent}\n\
         author Test Author <author@example.invalid> 1767225600 +0000\n\
         committer Test Committer <committer@example.invalid> 1767225600 +0000\n\
         gpgsig -----BEGIN PGP SIGNATURE-----\n \n \
         iQIzBAABCAAdFiEEq1Uq5Vx6b0rQ3yQ5m3qPZ8W3m1cFAmlVkAAACgkQm3qPZ8W3\n \
         m1dV9Q/+KcGx7VxvQ3p1U2l8VQ0bJwF3n3l8kH5c0P9sS1mZQyH4Hq3bq3x2d8nE\n \
         =Xq9Z\n \
         -----END PGP SIGNATURE-----\n\
         \n\
         A signed commit\n\nwith a body.\n"
    );
    let commit = write_object(p, "commit", raw.as_bytes(), false);
    fixture("signed commit", repo, commit)
}

/// A commit with an `encoding` header and a message in that encoding, a
/// `mergetag` header (an embedded tag, continuation lines), an unknown
/// header, two parents, and a message without a final newline.
pub fn odd_headers_commit() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let first = base_commit(p);
    let other_blob = blob(p, b"other\n");
    let other_tree = tree(p, &[Entry::file("OTHER", &other_blob)]);
    let second = commit_tree(p, &other_tree, &[], "other root");
    let a = blob(p, b"caf\xe9\n");
    let t = tree(p, &[Entry::file("latin1.txt", &a)]);
    let mut raw = format!(
        "tree {t}\n\
         parent {first}\n\
         parent {second}\n\
         author Test Author <author@example.invalid> 1767225600 +0100\n\
         committer Test Committer <committer@example.invalid> 1767225600 -0130\n\
         encoding ISO-8859-1\n\
         x-xus-unknown-header some value\n \
         with a continuation line\n\
         mergetag object {second}\n \
         type commit\n \
         tag v1.0\n \
         tagger Test Tagger <tagger@example.invalid> 1767225600 +0000\n \
         \n \
         Release 1.0\n \
         -----BEGIN PGP SIGNATURE-----\n \
         \n \
         iQEzBAABCAAdFiEEfakefakefakefakefake=\n \
         =AbCd\n \
         -----END PGP SIGNATURE-----\n\
         \n"
    )
    .into_bytes();
    raw.extend_from_slice(b"Caf\xe9 au lait: message in Latin-1, no final newline");
    let commit = write_object(p, "commit", &raw, false);
    fixture("odd headers", repo, commit)
}

/// Executable and plain files, including one blob used with both modes.
pub fn executable_bits() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let script = blob(p, b"#!/bin/sh\necho hello\n");
    let data = blob(p, b"plain data\n");
    let bin = tree(
        p,
        &[
            Entry::exec("run.sh", &script),
            Entry::file("run.sh.txt", &script),
            Entry::exec("tool", &data),
        ],
    );
    let t = tree(
        p,
        &[
            Entry::dir("bin", &bin),
            Entry::file("data.txt", &data),
            Entry::exec("setup", &script),
        ],
    );
    let commit = commit_tree(p, &t, &[], "exec bits");
    fixture("executable bits", repo, commit)
}

/// Symlinks: to a file, to a directory, dangling, out of the tree (relative
/// and absolute), with a non-UTF-8 target, with a long target, nested.
pub fn symlinks() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let f = blob(p, b"target file\n");
    let long_target = "x/".repeat(1000) + "end";
    let link = |target: &[u8]| blob(p, target);
    let sub = tree(
        p,
        &[
            Entry::file("file", &f),
            Entry::link("up", &link(b"../file")),
            Entry::link("escape", &link(b"../../../../../../etc/passwd")),
        ],
    );
    let t = tree(
        p,
        &[
            Entry::file("file", &f),
            Entry::dir("sub", &sub),
            Entry::link("to-file", &link(b"file")),
            Entry::link("to-dir", &link(b"sub")),
            Entry::link("dangling", &link(b"does/not/exist")),
            Entry::link("absolute", &link(b"/etc/shadow")),
            Entry::link("latin1", &link(b"caf\xe9")),
            Entry::link("long", &link(long_target.as_bytes())),
        ],
    );
    let commit = commit_tree(p, &t, &[], "symlinks");
    fixture("symlinks", repo, commit)
}

/// A submodule: `.gitmodules` and a gitlink to a commit this repository
/// does not have.
pub fn submodule_gitlink() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let modules = blob(
        p,
        b"[submodule \"vendor/lib\"]\n\tpath = vendor/lib\n\turl = https://example.invalid/lib.git\n",
    );
    let keep = blob(p, b"vendored\n");
    let vendor = tree(
        p,
        &[
            Entry::gitlink("lib", "1234567890abcdef1234567890abcdef12345678"),
            Entry::file("NOTES", &keep),
        ],
    );
    let t = tree(
        p,
        &[
            Entry::file(".gitmodules", &modules),
            Entry::dir("vendor", &vendor),
        ],
    );
    let commit = commit_tree(p, &t, &[], "submodule");
    fixture("submodule gitlink", repo, commit)
}

/// Empty subtrees (which a checkout cannot even represent), at the root and
/// nested, next to a real file.
pub fn empty_subtrees() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    write_object(p, "tree", b"", false);
    let f = blob(p, b"not empty\n");
    let inner = tree(p, &[Entry::dir("nothing", EMPTY_TREE)]);
    let t = tree(
        p,
        &[
            Entry::dir("empty", EMPTY_TREE),
            Entry::dir("holds-empty", &inner),
            Entry::file("file", &f),
        ],
    );
    let commit = commit_tree(p, &t, &[], "empty subtrees");
    fixture("empty subtree", repo, commit)
}

/// File and directory names that are not UTF-8, next to names that are
/// (and names that look like the escapes xus uses).
pub fn non_utf8_names() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let a = blob(p, b"latin-1 name\n");
    let b = blob(p, b"invalid bytes\n");
    let c = blob(p, b"in a non-UTF-8 directory\n");
    let d = blob(p, b"percent\n");
    let inner = tree(
        p,
        &[Entry::file(b"\xc3\x28", &c), Entry::file("ok.txt", &c)],
    );
    let t = tree(
        p,
        &[
            Entry::file(b"caf\xe9.txt", &a),
            Entry::file("café.txt", &a),
            Entry::exec(b"\xff\xfe\xfd", &b),
            Entry::dir(b"d\x80r", &inner),
            Entry::file("100%.txt", &d),
            Entry::file("%41%42", &d),
            Entry::file("new\nline and space", &d),
        ],
    );
    let commit = commit_tree(p, &t, &[], "non-UTF-8 names");
    fixture("non-UTF-8 names", repo, commit)
}

/// An empty file between non-empty ones (and one last).
pub fn empty_file() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let empty = blob(p, b"");
    let a = blob(p, &Prng(1).bytes(40_000));
    let b = blob(p, &Prng(2).bytes(30_000));
    let t = tree(
        p,
        &[
            Entry::file("a", &a),
            Entry::file("b-empty", &empty),
            Entry::file("c", &b),
            Entry::file("z-empty", &empty),
        ],
    );
    let commit = commit_tree(p, &t, &[], "empty file");
    fixture("empty file", repo, commit)
}

/// A commit whose files hold no bytes at all (empty files, a symlink, an
/// empty directory, a gitlink): its torrent carries the commit file.
pub fn zero_byte_payload() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let parent = base_commit(p);
    write_object(p, "tree", b"", false);
    let empty = blob(p, b"");
    let target = blob(p, b"empty-1");
    let sub = tree(
        p,
        &[
            Entry::file("empty-2", &empty),
            Entry::exec("empty-exec", &empty),
        ],
    );
    let t = tree(
        p,
        &[
            Entry::file("empty-1", &empty),
            Entry::link("link", &target),
            Entry::dir("sub", &sub),
            Entry::dir("void", EMPTY_TREE),
        ],
    );
    let commit = commit_tree(p, &t, &[&parent], "only empty files");
    fixture("zero-byte payload", repo, commit)
}

/// A commit of the empty tree.
pub fn empty_root_tree() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    write_object(p, "tree", b"", false);
    let commit = commit_tree(p, EMPTY_TREE, &[], "nothing at all");
    fixture("empty root tree", repo, commit)
}

/// Directories nested `depth` deep (`d/d/d/...`), a file at every level.
pub fn deep_nesting(depth: usize) -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let mut current = tree(p, &[Entry::file("bottom", &blob(p, b"bottom\n"))]);
    for level in (1..depth).rev() {
        let f = blob(p, format!("level {level}\n").as_bytes());
        current = tree(p, &[Entry::dir("d", &current), Entry::file("f", &f)]);
    }
    let t = tree(p, &[Entry::dir("d", &current)]);
    let commit = commit_tree(p, &t, &[], "deep");
    fixture("deep nesting", repo, commit)
}

/// One tree of `count` small distinct files (plus a few subdirectories).
pub fn many_files(count: usize) -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    // One fast-import stream instead of `count` processes.
    let mut stream = Vec::new();
    let mut rng = Prng(7);
    for i in 0..count {
        let len = (rng.next_u64() % 1500) as usize;
        let mut data = format!("file {i}\n").into_bytes();
        data.extend(rng.bytes(len));
        stream
            .extend_from_slice(format!("blob\nmark :{}\ndata {}\n", i + 1, data.len()).as_bytes());
        stream.extend_from_slice(&data);
        stream.push(b'\n');
    }
    stream.extend_from_slice(
        b"commit refs/heads/main\n\
          committer Test Committer <committer@example.invalid> 1767225600 +0000\n\
          data 10\nmany files\n",
    );
    for i in 0..count {
        let path = if i % 1000 == 999 {
            format!("sub{}/file-{i:05}", i / 1000)
        } else {
            format!("file-{i:05}")
        };
        let mode = if i % 97 == 0 { "100755" } else { "100644" };
        stream.extend_from_slice(format!("M {mode} :{} {path}\n", i + 1).as_bytes());
    }
    stream.extend_from_slice(b"\n");
    git_input(p, &["fast-import", "--quiet"], &stream);
    let commit = git(p, &["rev-parse", "refs/heads/main"]);
    fixture("many files", repo, commit)
}

/// A file of `size` pseudo-random bytes between two small files, so that
/// pieces straddle file boundaries at both ends.
pub fn large_file(size: usize) -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    // Random bytes do not compress: do not spend time trying.
    git(p, &["config", "core.compression", "0"]);
    let big = blob(p, &Prng(42).bytes(size));
    let a = blob(p, &Prng(43).bytes(12_345));
    let z = blob(p, &Prng(44).bytes(54_321));
    let t = tree(
        p,
        &[
            Entry::file("a-small", &a),
            Entry::file("big.bin", &big),
            Entry::file("z-small", &z),
        ],
    );
    let commit = commit_tree(p, &t, &[], "large file");
    fixture("large file", repo, commit)
}

/// A real merge commit made by `git merge`, whose parents the target lacks.
pub fn merge_commit() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    repo.write("shared.txt", "base\n");
    repo.write("left.txt", "left base\n");
    repo.write("right.txt", "right base\n");
    repo.commit("base");
    git(p, &["checkout", "-q", "-b", "side"]);
    repo.write("right.txt", "right changed on side\n");
    repo.write("side/new.txt", "only on side\n");
    repo.commit("side");
    git(p, &["checkout", "-q", "main"]);
    repo.write("left.txt", "left changed on main\n");
    repo.commit("main");
    git(p, &["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
    let commit = git(p, &["rev-parse", "HEAD"]);
    fixture("merge commit", repo, commit)
}

/// Old-style file mode `100664` (written by Git before 2005; `git fsck`
/// warns `badFilemode`, checkouts treat it as `100644`).
pub fn old_file_mode() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let a = blob(p, b"group writable, 2005 style\n");
    let b = blob(p, b"ordinary\n");
    let raw = raw_tree(&[
        Entry::with_mode("100664", "old-mode", &a),
        Entry::file("new-mode", &b),
    ]);
    // Git's own checks refuse to write this mode, as they should for new trees.
    let t = write_object(p, "tree", &raw, true);
    let commit = commit_tree(p, &t, &[], "old file mode");
    let mut fx = fixture("old file mode", repo, commit);
    fx.strict = false;
    fx
}

/// One blob under many paths and one subtree under two names: the torrent
/// lists each path, the metadata each tree once.
pub fn shared_objects() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let same = blob(p, &Prng(5).bytes(20_000));
    let other = blob(p, b"other\n");
    let sub = tree(
        p,
        &[Entry::file("copy-1", &same), Entry::file("copy-2", &same)],
    );
    let t = tree(
        p,
        &[
            Entry::dir("one", &sub),
            Entry::dir("two", &sub),
            Entry::file("copy-3", &same),
            Entry::file("other", &other),
        ],
    );
    let commit = commit_tree(p, &t, &[], "shared objects");
    fixture("shared objects", repo, commit)
}

/// Two commits, the second a child of the first that changes one of
/// `files` files of `file_size` pseudo-random bytes each.
pub fn related_commits(files: usize, file_size: usize) -> (TestRepo, String, String) {
    let repo = TestRepo::new();
    let p = repo.path();
    let blobs: Vec<String> = (0..files)
        .map(|i| blob(p, &Prng(100 + i as u64).bytes(file_size)))
        .collect();
    let entries: Vec<Entry> = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| Entry::file(format!("file-{i}"), b))
        .collect();
    let first = commit_tree(p, &tree(p, &entries), &[], "first");
    let mut changed = entries.clone();
    changed[files / 2].id = blob(p, &Prng(999).bytes(file_size));
    let second = commit_tree(p, &tree(p, &changed), &[&first], "second");
    set_main(p, &second);
    (repo, first, second)
}

// ---------------------------------------------------------------------------
// Crafted metadata: info dictionaries a hostile or broken peer could send.

/// An owned copy of a decoded bencode value (re-encodes canonically).
pub fn to_owned(value: &Spanned<'_>) -> Owned {
    match &value.value {
        bencode::Value::Int(i) => Owned::Int(*i),
        bencode::Value::Bytes(b) => Owned::Bytes(b.to_vec()),
        bencode::Value::List(items) => Owned::List(items.iter().map(to_owned).collect()),
        bencode::Value::Dict(entries) => Owned::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.to_vec(), to_owned(v)))
                .collect(),
        ),
    }
}

/// Decodes canonical bencode into an editable value.
pub fn decode_owned(bytes: &[u8]) -> Owned {
    to_owned(&bencode::decode(bytes, bencode::Limits::default()).expect("valid bencode"))
}

/// The value at a path of dictionary keys, for editing.
pub fn at<'a>(value: &'a mut Owned, path: &[&str]) -> &'a mut Owned {
    let mut current = value;
    for key in path {
        let Owned::Dict(entries) = current else {
            panic!("not a dictionary at {key:?}");
        };
        current = entries
            .get_mut(key.as_bytes())
            .unwrap_or_else(|| panic!("no key {key:?}"));
    }
    current
}

/// A `.torrent` file around raw info dictionary bytes.
pub fn torrent_file(info: &[u8]) -> Vec<u8> {
    let mut out = b"d4:info".to_vec();
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// A file entry of a crafted info dictionary.
#[derive(Debug, Clone)]
pub struct CraftedFile {
    /// Path components as listed.
    pub path: Vec<Vec<u8>>,
    /// Length as listed.
    pub length: i64,
    /// Whether `attr` is `x`.
    pub exec: bool,
}

impl CraftedFile {
    /// A non-executable file.
    pub fn new(path: &[&[u8]], length: i64) -> Self {
        Self {
            path: path.iter().map(|c| c.to_vec()).collect(),
            length,
            exec: false,
        }
    }
}

/// An info dictionary laid out exactly like v1 (keys, order, types), from
/// parts chosen by the caller: nothing is checked, so every part can lie.
/// `pieces` is the piece count to list (zeroed hashes and weak sums).
pub fn craft_info(
    name: &str,
    commit_raw: &[u8],
    trees: &[Vec<u8>],
    links: &[Vec<u8>],
    files: &[CraftedFile],
    piece_length: i64,
    pieces: usize,
) -> Vec<u8> {
    let files = files
        .iter()
        .map(|f| {
            let mut entry = std::collections::BTreeMap::new();
            if f.exec {
                entry.insert(b"attr".to_vec(), Owned::bytes("x"));
            }
            entry.insert(b"length".to_vec(), Owned::Int(f.length));
            entry.insert(
                b"path".to_vec(),
                Owned::List(f.path.iter().map(Owned::bytes).collect()),
            );
            Owned::Dict(entry)
        })
        .collect();
    bencode::dict([
        ("files", Owned::List(files)),
        ("name", Owned::bytes(name)),
        ("piece length", Owned::Int(piece_length)),
        ("pieces", Owned::Bytes(vec![0; 20 * pieces])),
        (
            "xus",
            bencode::dict([
                ("commit", Owned::bytes(commit_raw)),
                (
                    "links",
                    Owned::List(links.iter().map(Owned::bytes).collect()),
                ),
                (
                    "trees",
                    Owned::List(trees.iter().map(Owned::bytes).collect()),
                ),
                ("v", Owned::Int(1)),
                ("weak", Owned::Bytes(vec![0; 4 * pieces])),
            ]),
        ),
    ])
    .encode()
}

/// The hex id Git gives `data` as an object of `kind`.
pub fn object_id(kind: &str, data: &[u8]) -> String {
    xus::git::object::ObjectId::for_object(kind, data).to_hex()
}

/// A raw commit object of `tree` with the fixed test identity.
pub fn raw_commit_of(tree: &str, message: &str) -> Vec<u8> {
    format!(
        "tree {tree}\n\
         author Test Author <author@example.invalid> 1767225600 +0000\n\
         committer Test Committer <committer@example.invalid> 1767225600 +0000\n\
         \n{message}\n"
    )
    .into_bytes()
}
