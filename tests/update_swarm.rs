//! Update torrents in a real swarm on a private loopback DHT: a reader
//! holding an older head downloads only the update (several commits, a
//! rename, a changed binary), a reader several heads behind uses the update
//! from its commit, a forged update changes nothing and falls back to the
//! commit torrent, and `--no-updates` takes the commit torrent. libtorrent
//! downloads an update torrent from xus (it is a plain torrent) and seeds
//! one that xus applies. Every repository is `git fsck` clean afterwards.

mod util;

use std::time::Duration;

use util::clients::{Libtorrent, LtSource};
use util::dht::{DhtNet, Machine};
use util::*;

const STEP: Duration = Duration::from_secs(180);

/// The `bytes: update U, commit C, webseed W, metadata M` line of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bytes {
    update: u64,
    commit: u64,
    webseed: u64,
    metadata: u64,
}

fn bytes_line(stderr: &str) -> Bytes {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bytes: "))
        .unwrap_or_else(|| panic!("no bytes line in {stderr}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().expect("number"))
        .collect();
    assert_eq!(n.len(), 4, "{line}");
    Bytes {
        update: n[0],
        commit: n[1],
        webseed: n[2],
        metadata: n[3],
    }
}

struct World {
    net: DhtNet,
    owner: Machine,
    topic: String,
    repo: TestRepo,
    seed: Option<Seeder>,
}

impl World {
    /// An owner with one commit, seeding it (`--rescan 1` picks up heads).
    fn start() -> (Self, String) {
        let net = DhtNet::start(16);
        let owner = Machine::new();
        let topic = owner.new_topic("world");
        let repo = TestRepo::new();
        repo.write("game/engine.bin", noise(400_000, 1));
        repo.write("maps/level1.txt", text(4000, "level one"));
        repo.write("README", "hello\n");
        let first = repo.commit("first");
        let mut extra = vec!["--rescan".to_owned(), "1".to_owned()];
        extra.extend(net.flags());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let seed = spawn_seed_with(owner.xus(), repo.path(), &extra);
        let world = Self {
            net,
            owner,
            topic,
            repo,
            seed: Some(seed),
        };
        world.publish();
        (world, first)
    }

    /// Runs `xus ARGS` with this world's DHT flags.
    fn run(&self, machine: &Machine, args: &[&str]) -> (String, String) {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.net.flags());
        self.run_plain(machine, &all)
    }

    /// Runs `xus ARGS` as given.
    fn run_plain(
        &self,
        machine: &Machine,
        args: &[impl AsRef<std::ffi::OsStr>],
    ) -> (String, String) {
        let out = run_xus_with(machine.xus().args(args), STEP);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "xus failed\nstdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    /// Publishes the owner's `main`; returns the stdout.
    fn publish(&self) -> String {
        let repo = self.repo.path().display().to_string();
        self.run(
            &self.owner,
            &["publish", "--repo", &repo, "--branch", "main"],
        )
        .0
    }

    /// Fetches the head into `dest`; returns the stderr.
    fn fetch(&self, reader: &Machine, dest: &std::path::Path, extra: &[&str]) -> String {
        let url = format!("xus://{}/main", self.topic);
        let dest = dest.display().to_string();
        let mut args = vec!["fetch", url.as_str(), "--repo", &dest];
        args.extend_from_slice(extra);
        self.run(reader, &args).1
    }
}

fn text(lines: usize, tag: &str) -> String {
    (0..lines).map(|i| format!("{tag} line {i}\n")).collect()
}

/// Three commits: a rename with an edit, a changed binary, a new file.
fn three_commits(repo: &TestRepo) -> Vec<String> {
    let mut commits = Vec::new();
    std::fs::rename(
        repo.path().join("maps/level1.txt"),
        repo.path().join("maps/level-one.txt"),
    )
    .expect("rename");
    let mut level = text(4000, "level one");
    level.push_str("a bridge\n");
    repo.write("maps/level-one.txt", level);
    commits.push(repo.commit("rename the level"));
    let mut engine = noise(400_000, 1);
    engine.splice(1000..1000, noise(64, 2));
    repo.write("game/engine.bin", engine);
    commits.push(repo.commit("relink the engine"));
    repo.write("maps/level2.txt", text(500, "level two"));
    commits.push(repo.commit("a second level"));
    commits
}

#[test]
fn a_reader_holding_an_older_head_downloads_only_the_update() {
    let (world, first) = World::start();
    let reader = Machine::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let clone = dir.path().join("clone");
    let stderr = world.fetch(&reader, &clone, &["--branch", "main"]);
    assert_eq!(bytes_line(&stderr).update, 0, "nothing to update from");
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), first, "HEAD is main");
    let fallback_dir = tempfile::tempdir().expect("tempdir");
    let fallback = fallback_dir.path().join("clone");
    world.fetch(&Machine::new(), &fallback, &["--branch", "main"]);

    let commits = three_commits(&world.repo);
    let last = commits.last().expect("commits").clone();
    let published = world.publish();
    assert!(
        published
            .lines()
            .any(|l| l.starts_with(&format!("update {first}.."))),
        "publish made the update: {published}"
    );

    let stderr = world.fetch(&reader, &clone, &["--branch", "main"]);
    assert!(stderr.contains("update verified"), "{stderr}");
    let by_update = bytes_line(&stderr);
    assert!(by_update.update > 0, "{by_update:?}");
    assert_eq!((by_update.commit, by_update.webseed), (0, 0), "{stderr}");
    assert_eq!(git(&clone, &["rev-parse", "refs/heads/main"]), last);
    assert_eq!(
        git(&clone, &["rev-list", "--count", "main"]),
        "4",
        "the commits between came too"
    );
    assert_fsck_clean(&clone);
    // The change is ~64 bytes of noise, a line and a small file: the update
    // is a few KB where the commit torrent would move the whole binary.
    assert!(by_update.update < 20_000, "{by_update:?}");

    // The commit torrent alone cannot show that `last` descends from
    // `first` (the commits between are not in it): the branch stays, the
    // commit is kept, and the error says why.
    let url = format!("xus://{}/main", world.topic);
    let fallback_path = fallback.display().to_string();
    let mut args: Vec<String> = [
        "fetch",
        &url,
        "--repo",
        &fallback_path,
        "--branch",
        "main",
        "--no-updates",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(world.net.flags());
    let out = run_xus_with(Machine::new().xus().args(&args), STEP);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot be told"), "{stderr}");
    assert_eq!(git(&fallback, &["rev-parse", "main"]), first);
    assert_eq!(
        git(
            &fallback,
            &["rev-parse", &format!("refs/xus/commits/{last}")]
        ),
        last
    );

    // The commit torrent reused what the reader had and patched the binary
    // from its older version, but still moved far more than the update.
    let by_commit = bytes_line(&stderr);
    assert_eq!(by_commit.update, 0, "{stderr}");
    assert!(
        by_commit.commit > by_update.update,
        "{by_commit:?} {by_update:?}"
    );
    // --force moves the branch without proof.
    world.fetch(
        &Machine::new(),
        &fallback,
        &["--no-updates", "--branch", "main", "--force"],
    );
    assert_eq!(git(&fallback, &["rev-parse", "main"]), last);
    assert_fsck_clean(&fallback);
}

#[test]
fn a_reader_heads_behind_uses_its_update_and_a_forged_update_falls_back() {
    let (world, first) = World::start();
    let reader = Machine::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let clone = dir.path().join("clone");
    world.fetch(&reader, &clone, &["--branch", "main"]);

    // Two heads later the head's chain still starts at `first`: the reader
    // applies both links.
    world.repo.write("maps/level1.txt", text(4001, "level one"));
    world.repo.commit("second");
    world.publish();
    world.repo.write("README", "hello again\n");
    let third = world.repo.commit("third");
    world.publish();
    let stderr = world.fetch(&reader, &clone, &["--branch", "main"]);
    assert!(stderr.contains(&format!("from commit {first}")), "{stderr}");
    assert_eq!(stderr.matches("update applied").count(), 2, "{stderr}");
    assert!(stderr.contains("update verified"), "{stderr}");
    assert_eq!(git(&clone, &["rev-parse", "main"]), third);
    assert_fsck_clean(&clone);

    // A forged update: the publisher's stored payload is damaged before the
    // head lists it (its torrent is computed from the damaged bytes, so
    // peers serve it and its pieces verify). The reader rebuilds nothing
    // from it, writes nothing, and takes the commit torrent instead.
    world.repo.write("maps/level1.txt", text(4002, "level one"));
    let fourth = world.repo.commit("fourth");
    let repo = world.repo.path().display().to_string();
    let torrent_file = dir.path().join("forged.torrent").display().to_string();
    world.run_plain(
        &world.owner,
        &[
            "torrent",
            "--repo",
            &repo,
            "--from",
            &third,
            "--output",
            &torrent_file,
            &fourth,
        ],
    );
    let stored = world
        .repo
        .path()
        .join(".git/xus/updates")
        .join(format!("{third}..{fourth}.xup"));
    let mut payload = std::fs::read(&stored).expect("stored update");
    let last = payload.len() - 1;
    payload[last] ^= 0x5a;
    std::fs::write(&stored, payload).expect("damage");
    world.publish();
    let stderr = world.fetch(&reader, &clone, &["--branch", "main"]);
    assert!(stderr.contains("not used"), "{stderr}");
    assert!(!stderr.contains("update verified"), "{stderr}");
    let bytes = bytes_line(&stderr);
    assert!(bytes.update > 0 && bytes.commit > 0, "{bytes:?}");
    assert_eq!(git(&clone, &["rev-parse", "main"]), fourth);
    assert_no_quarantine(&clone);
    assert_fsck_clean(&clone);
}

#[test]
fn libtorrent_downloads_an_update_from_xus_and_xus_applies_one_libtorrent_seeds() {
    let (mut world, first) = World::start();
    let reader = Machine::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let clone = dir.path().join("clone");
    world.fetch(&reader, &clone, &["--branch", "main"]);
    let last = three_commits(&world.repo).pop().expect("commits");
    world.publish();
    let repo = world.repo.path().display().to_string();
    let torrent_file = dir.path().join("update.torrent");
    let (stdout, _) = world.run_plain(
        &world.owner,
        &[
            "torrent",
            "--repo",
            &repo,
            "--from",
            &first,
            "--output",
            &torrent_file.display().to_string(),
            &last,
        ],
    );
    let infohash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("infohash "))
        .expect("infohash line")
        .to_owned();
    let name = format!("{first}..{last}.xup");
    let payload = std::fs::read(world.repo.path().join(".git/xus/updates").join(&name))
        .expect("stored update");

    // libtorrent downloads it from the xus seed, byte for byte.
    let seed_addr = world.seed.as_ref().expect("seed").addr;
    let lt_dir = tempfile::tempdir().expect("tempdir");
    let mut lt = Libtorrent::download(
        lt_dir.path(),
        LtSource::Torrent(&torrent_file),
        &[seed_addr],
        &lt_dir.path().join("download.log"),
    );
    assert_eq!(lt.wait_finished(STEP), infohash);
    assert_eq!(
        std::fs::read(lt_dir.path().join(&name)).expect("downloaded"),
        payload
    );

    // With the xus seed gone, libtorrent alone seeds the update, and the
    // reader applies it (there is no commit torrent to fall back to).
    world.seed.take();
    let seed_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(seed_dir.path().join(&name), &payload).expect("payload");
    let lt_seed = Libtorrent::seed(
        seed_dir.path(),
        &torrent_file,
        &seed_dir.path().join("seed.log"),
    );
    let peer = lt_seed.addr.to_string();
    let stderr = world.fetch(&reader, &clone, &["--branch", "main", "--peer", &peer]);
    assert!(
        stderr.contains("update applied"),
        "{stderr}\n{}",
        lt_seed.log_tail()
    );
    assert_eq!(git(&clone, &["rev-parse", "main"]), last);
    assert_fsck_clean(&clone);
}

/// Writes the raw tree `entries` (mode, name, id; in Git's order) into
/// `repo` without any check, as a hostile publisher could.
fn raw_tree(repo: &git2::Repository, entries: &[(&str, &[u8], git2::Oid)]) -> git2::Oid {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(id.as_bytes());
    }
    repo.odb()
        .expect("odb")
        .write(git2::ObjectType::Tree, &bytes)
        .expect("tree")
}

/// Issue 15 item 3, end to end: a `.git` spelling inside an update
/// torrent's trees. The owner's history is A, then B whose tree holds
/// `.GIT/config` (written with Git's plumbing, which does not check), then
/// C, clean again. xus refuses to build the update from A to C (it would
/// carry B's tree), so the test plants a hand-made one in the owner's
/// update store, which `xus publish` lists and `xus seed` serves. A reader
/// at A downloads it, refuses it for the name before writing anything
/// (B's trees never reach its repository), and takes C's commit torrent,
/// which cannot prove C descends from A without B: `main` stays at A.
#[test]
fn an_update_carrying_a_dot_git_tree_is_refused_before_anything_is_written() {
    use xus::git::object::ObjectId;
    use xus::torrent::update::payload::{self, Frame};
    use xus::torrent::update::{ObjectKind, UpdateStore};

    let (world, first) = World::start();
    let reader = Machine::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let clone = dir.path().join("clone");
    world.fetch(&reader, &clone, &["--branch", "main"]);

    let repo = git2::Repository::open(world.repo.path()).expect("owner's repository");
    let a = repo
        .find_commit(git2::Oid::from_str(&first).expect("A"))
        .expect("A");
    let a_tree = a.tree().expect("A's tree");
    let evil = repo.blob(b"[core]\n\thooksPath = /tmp\n").expect("blob");
    let dot_git = raw_tree(&repo, &[("100644", b"config", evil)]);
    let mut b_entries: Vec<(&str, &[u8], git2::Oid)> = vec![("40000", b".GIT", dot_git)];
    let names: Vec<(String, Vec<u8>, git2::Oid)> = a_tree
        .iter()
        .map(|e| {
            (
                format!("{:o}", e.filemode()),
                e.name_bytes().to_vec(),
                e.id(),
            )
        })
        .collect();
    b_entries.extend(names.iter().map(|(m, n, i)| (m.as_str(), n.as_slice(), *i)));
    let b_tree = raw_tree(&repo, &b_entries);
    let when = git2::Signature::new(
        "Owner",
        "owner@example.com",
        &git2::Time::new(1_700_000_000, 0),
    )
    .expect("signature");
    let b = repo
        .commit(
            None,
            &when,
            &when,
            "B: a .GIT directory",
            &repo.find_tree(b_tree).expect("B's tree"),
            &[&a],
        )
        .expect("B");
    let readme = repo.blob(b"hello, clean again\n").expect("blob");
    let mut c_tree = repo.treebuilder(Some(&a_tree)).expect("builder");
    c_tree.insert("README", readme, 0o100644).expect("README");
    let c_tree = c_tree.write().expect("C's tree");
    let b_commit = repo.find_commit(b).expect("B");
    let c = repo
        .commit(
            None,
            &when,
            &when,
            "C: clean again",
            &repo.find_tree(c_tree).expect("C's tree"),
            &[&b_commit],
        )
        .expect("C");
    git(
        world.repo.path(),
        &["reset", "-q", "--hard", &c.to_string()],
    );

    let id = |oid: git2::Oid| ObjectId::from_hex(&oid.to_string()).expect("id");
    let (a_id, c_id) = (id(a.id()), id(c));
    let building = run_xus_with(
        world
            .owner
            .xus()
            .args(["torrent", "--repo"])
            .arg(world.repo.path())
            .args([
                "--from",
                &first,
                "--output",
                &dir.path().join("refused.torrent").display().to_string(),
                &c.to_string(),
            ]),
        STEP,
    );
    assert!(
        !building.status.success()
            && String::from_utf8_lossy(&building.stderr).contains("\".GIT\""),
        "xus built an update carrying a .GIT tree: {}",
        String::from_utf8_lossy(&building.stderr)
    );

    // The hand-made update: every object of B and C that A lacks, each
    // compressed alone, the commit C last.
    let odb = repo.odb().expect("odb");
    let carried = [
        (ObjectKind::Blob, evil),
        (ObjectKind::Tree, dot_git),
        (ObjectKind::Tree, b_tree),
        (ObjectKind::Commit, b),
        (ObjectKind::Blob, readme),
        (ObjectKind::Tree, c_tree),
        (ObjectKind::Commit, c),
    ];
    let raw: Vec<Vec<u8>> = carried
        .iter()
        .map(|(_, oid)| odb.read(*oid).expect("object").data().to_vec())
        .collect();
    let frames: Vec<Vec<u8>> = raw
        .iter()
        .map(|data| zstd::bulk::compress(data, 3).expect("compresses"))
        .collect();
    let objects: Vec<Frame<'_>> = carried
        .iter()
        .zip(raw.iter().zip(&frames))
        .map(|(&(kind, oid), (data, frame))| Frame {
            kind,
            id: id(oid),
            size: data.len() as u64,
            base: None,
            frame,
        })
        .collect();
    let forged = payload::encode(a_id, c_id, &objects).expect("encodes");
    UpdateStore::of(&world.repo.path().join(".git"))
        .save(a_id, c_id, &forged)
        .expect("planted");
    let published = world.publish();
    assert!(published.contains(&c.to_string()), "{published}");

    // The commit torrent brings C alone: without B, C cannot be proven a
    // fast-forward of A, so `main` stays and C is kept aside.
    let url = format!("xus://{}/main", world.topic);
    let out = run_xus_with(
        reader
            .xus()
            .args(["fetch", &url, "--branch", "main", "--repo"])
            .arg(&clone)
            .args(world.net.flags()),
        STEP,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let refused = stderr
        .lines()
        .find(|l| l.contains("not used"))
        .unwrap_or_else(|| panic!("the update was not refused: {stderr}"));
    assert!(
        refused.contains("unsafe path component \".GIT\""),
        "the reason names the entry: {refused}"
    );
    assert!(!stderr.contains("update verified"), "{stderr}");
    assert!(stderr.contains("cannot be told"), "{stderr}");
    assert_eq!(git(&clone, &["rev-parse", "main"]), first);
    assert_eq!(
        git(&clone, &["rev-parse", &format!("refs/xus/commits/{c}")]),
        c.to_string()
    );
    let reader_repo = git2::Repository::open(&clone).expect("reader's repository");
    for (what, oid) in [("B's tree", b_tree), (".GIT", dot_git), ("B", b)] {
        assert!(
            !reader_repo.odb().expect("odb").exists(oid),
            "{what} ({oid}) reached the reader's repository"
        );
    }
    assert_no_quarantine(&clone);
    assert_fsck_clean(&clone);
}

/// `--json` on a fetch through the DHT and an update torrent: the head and
/// update events, each a JSON line on stdout with the documented fields.
#[test]
fn a_fetch_through_an_update_reports_json_events() {
    let (world, first) = World::start();
    let reader = Machine::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let clone = dir.path().join("clone");
    world.fetch(&reader, &clone, &["--branch", "main"]);
    let last = three_commits(&world.repo).pop().expect("commits");
    world.publish();
    let url = format!("xus://{}/main", world.topic);
    let dest = clone.display().to_string();
    let (stdout, _) = world.run(
        &reader,
        &["--json", "fetch", &url, "--repo", &dest, "--branch", "main"],
    );
    let mut events = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let name = value["event"].as_str().expect("event").to_owned();
        events.insert(name, value);
    }
    for name in [
        "head_resolved",
        "update_plan",
        "update_applied",
        "update_verified",
        "transferred",
        "fetched",
    ] {
        assert!(events.contains_key(name), "no {name} in\n{stdout}");
    }
    assert_eq!(events["head_resolved"]["url"], url.as_str());
    assert_eq!(events["head_resolved"]["commit"], last.as_str());
    assert!(events["head_resolved"]["seq"].as_i64().is_some());
    assert_eq!(events["update_plan"]["from"], first.as_str());
    assert!(
        events["update_applied"]["objects"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert_eq!(events["update_verified"]["commit"], last.as_str());
    assert!(
        events["transferred"]["update"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert_eq!(events["transferred"]["commit"], 0);
    assert_eq!(events["fetched"]["commit"], last.as_str());
    assert_eq!(git(&clone, &["rev-parse", "main"]), last);
    assert_fsck_clean(&clone);
}

/// No update quarantine (`.git/xus/quarantine-*`) is left in `repo`.
fn assert_no_quarantine(repo: &std::path::Path) {
    let left: Vec<String> = repo
        .join(".git/xus")
        .read_dir()
        .expect("state dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("quarantine-"))
        .collect();
    assert!(left.is_empty(), "quarantines left: {left:?}");
}
