//! Git's own commands on `xus://` URLs through `git-remote-xus`, against a
//! real topic master on a private loopback DHT:
//!
//! - the helper answers a transcript exactly as gitremote-helpers(7) says
//!   (capabilities, options, list, a fetch batch, blank lines);
//! - `git clone xus://TOPIC/main` checks out the head with its whole
//!   history (an update from nothing, built by the master), `git pull` brings
//!   the next one, `git push` by a listed writer reaches the master and both
//!   backups; a push that is not a fast-forward, or by an unlisted writer,
//!   gets Git's per-ref error and changes nothing; an unknown topic fails
//!   clearly;
//! - a head whose signature a DHT node forged is refused with its own error.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use util::cluster::*;
use util::dht::Machine;
use util::*;

/// The helper under test.
fn helper_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_git-remote-xus"))
}

/// Gives `machine` a `config.toml` that joins the cluster's DHT, as the
/// helper reads no flags.
fn join_dht(machine: &Machine, cluster: &Cluster) {
    join_net(machine, &cluster.net);
}

/// The same for any loopback DHT.
fn join_net(machine: &Machine, net: &util::dht::DhtNet) {
    let config = format!(
        "[dht]\nbootstrap = [\"{}\"]\nbind = \"127.0.0.1\"\nrequest_timeout_ms = {}\n",
        net.bootstrap(),
        util::dht::DHT_TIMEOUT_MS
    );
    std::fs::write(machine.path().join("config.toml"), config).expect("config.toml");
}

/// `git` as a user of `machine` runs it: the helper on `PATH`, xus's home
/// and the loopback guard set.
fn git_as(machine: &Machine, dir: &Path, args: &[&str]) -> Output {
    let helper_dir = helper_bin().parent().expect("bin dir");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![helper_dir.to_owned()];
    paths.extend(std::env::split_paths(&path));
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("PATH", std::env::join_paths(paths).expect("PATH"))
        .env("XUS_HOME", machine.path())
        .env("XUS_LOOPBACK_ONLY", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("running git")
}

fn ok_git(machine: &Machine, dir: &Path, args: &[&str]) -> String {
    let out = git_as(machine, dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// `git commit -qam MESSAGE` in a clone, as a person would.
fn commit_all(repo: &Path, message: &str) {
    git(
        repo,
        &[
            "-c",
            "user.name=w",
            "-c",
            "user.email=w@x",
            "commit",
            "-qam",
            message,
        ],
    );
}

/// A master with one writer whose history of three commits is pushed; the
/// last commit is returned.
fn cluster_with_a_commit() -> (Cluster, Writer, String) {
    let writer = Writer::new(None);
    writer.write("data/blob.bin", noise(300_000, 3));
    writer.write("README", "one\n");
    writer.commit("one");
    writer.write("README", "two\n");
    writer.commit("two");
    writer.write("README", "hello\n");
    let first = writer.commit("first");
    let mut cluster = Cluster::new(&[&writer]);
    cluster.start_master();
    assert_eq!(pushed(&writer.push(&cluster.url())), first);
    (cluster, writer, first)
}

#[test]
fn the_helper_answers_a_transcript_as_gitremote_helpers_says() {
    let (mut cluster, _writer, first) = cluster_with_a_commit();
    let reader = Machine::new();
    join_dht(&reader, &cluster);
    let repo = tempfile::tempdir().expect("tempdir");
    git(repo.path(), &["init", "-q", "--bare"]);
    let url = format!("xus://{}/main", cluster.topic);
    let mut child = Command::new(helper_bin())
        .args(["origin", &url])
        .env("GIT_DIR", repo.path())
        .env("XUS_HOME", reader.path())
        .env("XUS_LOOPBACK_ONLY", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning git-remote-xus");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut answer = |request: &str, lines: usize| -> Vec<String> {
        stdin.write_all(request.as_bytes()).expect("write");
        stdin.flush().expect("flush");
        (0..lines)
            .map(|_| {
                let mut line = String::new();
                stdout.read_line(&mut line).expect("read");
                line
            })
            .collect()
    };
    assert_eq!(
        answer("capabilities\n", 4),
        ["option\n", "fetch\n", "push\n", "\n"]
    );
    assert_eq!(answer("option progress false\n", 1), ["ok\n"]);
    assert_eq!(answer("option verbosity 1\n", 1), ["ok\n"]);
    assert_eq!(
        answer("option depth x\n", 1),
        ["error depth \"x\" is not a number of commits\n"]
    );
    assert_eq!(
        answer("option depth 0\n", 1),
        ["error depth \"0\" is not a number of commits\n"]
    );
    assert_eq!(answer("option followtags true\n", 1), ["unsupported\n"]);
    assert_eq!(
        answer("list\n", 3),
        [
            format!("{first} refs/heads/main\n"),
            "@refs/heads/main HEAD\n".to_owned(),
            "\n".to_owned()
        ]
    );
    // The fetched pack is kept from `git gc` until Git has moved its
    // refs: `lock <.keep file>`, which Git deletes; the helper deletes any
    // other `.keep` it made when Git closes its input.
    let fetched = answer(&format!("fetch {first} refs/heads/main\n\n"), 2);
    let keep = fetched[0]
        .strip_prefix("lock ")
        .map(|path| Path::new(path.trim_end()).to_owned())
        .unwrap_or_else(|| panic!("a lock line first: {fetched:?}"));
    assert_eq!(fetched[1], "\n");
    assert!(
        keep.extension().is_some_and(|e| e == "keep")
            && keep.exists()
            && keep.with_extension("pack").exists(),
        "{}",
        keep.display()
    );
    assert_eq!(
        git(repo.path(), &["cat-file", "-t", &first]),
        "commit",
        "the fetch put the commit in $GIT_DIR"
    );
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keeps: Vec<_> = std::fs::read_dir(repo.path().join("objects/pack"))
        .expect("pack dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "keep"))
        .collect();
    assert!(keeps.is_empty(), "no .keep left: {keeps:?}");
    assert_fsck_clean(repo.path());
    cluster.stop_master();
}

#[test]
fn git_clone_pull_and_push_work_on_a_topic() {
    let (mut cluster, writer, first) = cluster_with_a_commit();
    let url = format!("xus://{}/main", cluster.topic);

    // A listed writer clones, commits and pushes with Git alone.
    let cloner = &writer.machine;
    join_dht(cloner, &cluster);
    let work = tempfile::tempdir().expect("tempdir");
    ok_git(cloner, work.path(), &["clone", &url, "clone"]);
    let clone = work.path().join("clone");
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), first);
    assert_eq!(git(&clone, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        git(&clone, &["log", "--format=%H %s"]),
        git(&writer.repo, &["log", "--format=%H %s", "main"]),
        "the clone holds the whole history"
    );
    assert!(!clone.join(".git/shallow").exists(), "not a shallow clone");
    let keeps = std::fs::read_dir(clone.join(".git/objects/pack"))
        .expect("pack dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "keep"))
        .count();
    assert_eq!(keeps, 0, "Git and the helper removed the pack locks");
    assert_eq!(
        std::fs::read(clone.join("data/blob.bin")).expect("checked out"),
        noise(300_000, 3)
    );
    assert_fsck_clean(&clone.join(".git"));

    std::fs::write(clone.join("README"), "hello again\n").expect("write");
    commit_all(&clone, "second");
    let second = git(&clone, &["rev-parse", "HEAD"]);
    ok_git(cloner, &clone, &["push", "-q", "origin", "main"]);
    assert_eq!(
        git(&clone, &["rev-parse", "refs/remotes/origin/main"]),
        second,
        "Git moved its remote-tracking ref"
    );
    wait_for("both backups to hold the pushed commit", STEP, || {
        (rev(&cluster.file_backup, "refs/heads/main").as_deref() == Some(second.as_str()))
            .then_some(())
    });

    // Another machine pulls the writer's push.
    let reader = Machine::new();
    join_dht(&reader, &cluster);
    let other = tempfile::tempdir().expect("tempdir");
    ok_git(&reader, other.path(), &["clone", "-q", &url, "clone"]);
    let reader_clone = other.path().join("clone");
    assert_eq!(git(&reader_clone, &["rev-parse", "HEAD"]), second);
    std::fs::write(clone.join("README"), "third\n").expect("write");
    commit_all(&clone, "third");
    let third = git(&clone, &["rev-parse", "HEAD"]);
    ok_git(cloner, &clone, &["push", "-q", "origin", "main"]);
    ok_git(&reader, &reader_clone, &["pull", "--ff-only"]);
    assert_eq!(git(&reader_clone, &["rev-parse", "HEAD"]), third);
    assert_eq!(
        std::fs::read_to_string(reader_clone.join("README")).expect("read"),
        "third\n"
    );
    assert_fsck_clean(&reader_clone.join(".git"));

    // `--depth`: Git's shallow clone, and `xus fetch --depth 0` (whole).
    let shallow = tempfile::tempdir().expect("tempdir");
    ok_git(
        &reader,
        shallow.path(),
        &["clone", "-q", "--depth", "2", &url, "clone"],
    );
    let shallow_clone = shallow.path().join("clone");
    assert_eq!(git(&shallow_clone, &["rev-list", "--count", "HEAD"]), "2");
    assert!(shallow_clone.join(".git/shallow").exists());
    assert_fsck_clean(&shallow_clone.join(".git"));
    // `git fetch --unshallow` brings the rest of the history (the history
    // torrent and the chain, from the swarm) and drops the boundary.
    ok_git(&reader, &shallow_clone, &["fetch", "-q", "--unshallow"]);
    assert_eq!(
        git(&shallow_clone, &["rev-list", "--count", "HEAD"]),
        git(&clone, &["rev-list", "--count", &third]),
        "the whole history after --unshallow"
    );
    assert!(!shallow_clone.join(".git/shallow").exists());
    assert_fsck_clean(&shallow_clone.join(".git"));
    let whole = tempfile::tempdir().expect("tempdir");
    let out = run_xus_with(
        reader
            .xus()
            .args(["fetch", &url, "--depth", "0", "--bare", "--repo"])
            .arg(whole.path())
            .args(cluster.net.flags()),
        STEP,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        git(whole.path(), &["rev-list", "--count", &third]),
        git(&clone, &["rev-list", "--count", &third]),
        "xus fetch --depth 0 brings every ancestor"
    );
    assert_fsck_clean(whole.path());

    // A commit that does not descend from the branch, forced: Git's
    // per-ref error names where the master keeps it; the branch stays.
    git(&clone, &["reset", "-q", "--hard", &second]);
    std::fs::write(clone.join("README"), "diverged\n").expect("write");
    commit_all(&clone, "diverged");
    let out = git_as(cloner, &clone, &["push", "origin", "+main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("main -> main")
            && stderr.contains("non-fast-forward")
            && stderr.contains("refs/xus/rejected/"),
        "Git's per-ref error names the kept ref: {stderr}"
    );
    assert_eq!(
        rev(&cluster.data(), "refs/heads/main").as_deref(),
        Some(third.as_str())
    );

    // A writer the master does not list is refused the same way.
    let stranger_key = run_xus_with(reader.xus().args(["writer", "new"]), STEP);
    assert!(stranger_key.status.success());
    std::fs::write(reader_clone.join("README"), "stranger\n").expect("write");
    commit_all(&reader_clone, "stranger");
    let out = git_as(&reader, &reader_clone, &["push", "origin", "main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("main -> main") && stderr.contains("refused by the master"),
        "Git's per-ref error: {stderr}"
    );
    assert_eq!(
        rev(&cluster.data(), "refs/heads/main").as_deref(),
        Some(third.as_str())
    );

    // An unknown topic fails clearly, before any object moves.
    let unpublished = Machine::new().new_topic("never-published");
    let nowhere = format!("xus://{unpublished}/main");
    let out = git_as(&reader, other.path(), &["clone", "-q", &nowhere, "nowhere"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no head of"),
        "{}",
        text(&out.stderr)
    );
    cluster.stop_master();

    // With the master gone, the swarm still carries the history: the
    // reader's `xus seed` serves the history torrent the heads list and
    // the updates after it, on a DHT the master never knew.
    let elsewhere = util::dht::DhtNet::start(8);
    let mut seed_args = vec!["--republish", "1"];
    let flags = elsewhere.flags();
    seed_args.extend(flags.iter().map(String::as_str));
    let _seed = spawn_seed_with(reader.xus(), &reader_clone, &seed_args);
    let newcomer = Machine::new();
    join_net(&newcomer, &elsewhere);
    let fresh = tempfile::tempdir().expect("tempdir");
    let out = wait_for("a clone from the reader's seed alone", STEP, || {
        let out = git_as(&newcomer, fresh.path(), &["clone", "-v", &url, "clone"]);
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(fresh.path().join("clone"));
        }
        out.status.success().then_some(out)
    });
    let stderr = text(&out.stderr);
    assert!(stderr.contains("history torrent"), "{stderr}");
    let fresh_clone = fresh.path().join("clone");
    assert_eq!(
        git(&fresh_clone, &["log", "--format=%H %s"]),
        git(&clone, &["log", "--format=%H %s", &third]),
        "the whole history, with no master"
    );
    assert!(!fresh_clone.join(".git/shallow").exists());
    assert_fsck_clean(&fresh_clone.join(".git"));
}

#[test]
fn git_clone_of_a_topic_brings_every_branch() {
    let (mut cluster, writer, first) = cluster_with_a_commit();

    // The writer names the topic by an alias of config.toml.
    let cloner = &writer.machine;
    join_dht(cloner, &cluster);
    let mut config = std::fs::read_to_string(cloner.path().join("config.toml")).expect("config");
    config.push_str(&format!("[aliases]\nworld = \"{}\"\n", cluster.topic));
    std::fs::write(cloner.path().join("config.toml"), config).expect("config.toml");
    let work = tempfile::tempdir().expect("tempdir");
    ok_git(
        cloner,
        work.path(),
        &["clone", "-q", "xus://world/", "clone"],
    );
    let clone = work.path().join("clone");
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), first);
    assert_eq!(git(&clone, &["symbolic-ref", "HEAD"]), "refs/heads/main");

    // A new branch pushed through the topic's URL gets a head, and the
    // topic's index names it.
    git(&clone, &["checkout", "-q", "-b", "dev"]);
    std::fs::write(clone.join("README"), "on dev\n").expect("write");
    commit_all(&clone, "dev work");
    let dev = git(&clone, &["rev-parse", "HEAD"]);
    ok_git(cloner, &clone, &["push", "-q", "origin", "dev"]);
    wait_for("both backups to hold the new branch", STEP, || {
        (rev(&cluster.file_backup, "refs/heads/dev").as_deref() == Some(dev.as_str())).then_some(())
    });

    // Another machine clones the topic: every branch, main checked out.
    let reader = Machine::new();
    join_dht(&reader, &cluster);
    let topic_url = format!("xus://{}/", cluster.topic);
    // Outside any repository, as `git ls-remote` is often run.
    let listed = wait_for("the index to name both branches", STEP, || {
        let out = git_as(&reader, work.path(), &["ls-remote", &topic_url]);
        let listed = text(&out.stdout);
        listed.contains("refs/heads/dev").then_some(listed)
    });
    assert!(
        listed.contains(&format!("{first}\tHEAD"))
            && listed.contains(&format!("{first}\trefs/heads/main"))
            && listed.contains(&format!("{dev}\trefs/heads/dev")),
        "{listed}"
    );
    let other = tempfile::tempdir().expect("tempdir");
    ok_git(&reader, other.path(), &["clone", "-q", &topic_url, "clone"]);
    let reader_clone = other.path().join("clone");
    assert_eq!(
        git(&reader_clone, &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
    assert_eq!(git(&reader_clone, &["rev-parse", "HEAD"]), first);
    assert_eq!(git(&reader_clone, &["rev-parse", "origin/dev"]), dev);
    assert_eq!(
        git(&reader_clone, &["log", "--format=%H %s", "origin/dev"]),
        git(&clone, &["log", "--format=%H %s", "dev"]),
        "the other branch comes with its history"
    );
    assert_fsck_clean(&reader_clone.join(".git"));

    // With the master down, a push fails per ref and changes nothing.
    cluster.stop_master();
    git(&clone, &["checkout", "-q", "main"]);
    std::fs::write(clone.join("README"), "while the master is down\n").expect("write");
    commit_all(&clone, "unreachable");
    let out = git_as(cloner, &clone, &["push", "origin", "main"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("main -> main") && stderr.contains("the master"),
        "Git's per-ref error says the master was not reached: {stderr}"
    );
    assert_eq!(
        git(&clone, &["rev-parse", "refs/remotes/origin/main"]),
        first,
        "Git did not move its remote-tracking ref"
    );
    assert_eq!(
        rev(&cluster.file_backup, "refs/heads/main").as_deref(),
        Some(first.as_str())
    );

    // With the master down and no seed, a fresh clone finds the head but
    // no peer: it says what it waited for, and for how long, and stops.
    let stranded = Machine::new();
    join_dht(&stranded, &cluster);
    let mut config = std::fs::read_to_string(stranded.path().join("config.toml")).expect("config");
    config.push_str("[fetch]\nmetadata_timeout_secs = 3\n");
    std::fs::write(stranded.path().join("config.toml"), config).expect("config.toml");
    let nowhere = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let out = git_as(
        &stranded,
        nowhere.path(),
        &["clone", "-q", &topic_url, "clone"],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no peer sent the metadata of") && stderr.contains("within 3 s"),
        "a distinct, bounded error: {stderr}"
    );
    assert!(
        stderr.contains("no update from"),
        "the unreachable master is named: {stderr}"
    );
    assert!(started.elapsed() < STEP, "bounded by the configured wait");
    assert!(
        !nowhere.path().join("clone").exists(),
        "Git removed the failed clone"
    );

    // The reader's `xus seed` keeps the topic listable on a DHT where no
    // publisher ever wrote: it stores the head it serves and the branch
    // index it recorded when it cloned.
    let elsewhere = util::dht::DhtNet::start(8);
    let mut seed_args = vec!["--republish", "1"];
    let flags = elsewhere.flags();
    seed_args.extend(flags.iter().map(String::as_str));
    let _seed = spawn_seed_with(reader.xus(), &reader_clone, &seed_args);
    let newcomer = Machine::new();
    join_net(&newcomer, &elsewhere);
    let listed = wait_for("the seed to store the index and head", STEP, || {
        let out = git_as(&newcomer, work.path(), &["ls-remote", &topic_url]);
        let listed = text(&out.stdout);
        listed.contains("refs/heads/main").then_some(listed)
    });
    assert!(listed.contains(&format!("{first}\tHEAD")), "{listed}");
}

/// A `git fast-import` stream of `count` commits on `main`, each changing
/// one to three files of mixed sizes (text that grows, binaries that are
/// replaced, files that move), so bases by path, by name and none all occur.
fn generated_history(count: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for i in 0..count {
        let mut files: Vec<(String, Vec<u8>)> = vec![(
            format!("notes/{}.txt", i % 37),
            format!("entry {i}\n").repeat(1 + i % 50).into_bytes(),
        )];
        if i % 7 == 0 {
            files.push((
                format!("assets/{}.bin", i % 5),
                noise(4096 + 97 * i, i as u64),
            ));
        }
        if i % 11 == 0 {
            files.push((
                format!("moved/{i}/readme.md"),
                format!("moved at {i}\n").into_bytes(),
            ));
        }
        stream.extend_from_slice(b"commit refs/heads/main\n");
        let stamp = 1_700_000_000 + i as u64 * 60;
        stream.extend_from_slice(
            format!("committer Gen <gen@example.invalid> {stamp} +0000\n").as_bytes(),
        );
        let message = format!("commit {i}\n");
        stream.extend_from_slice(format!("data {}\n{message}", message.len()).as_bytes());
        for (path, data) in files {
            stream.extend_from_slice(
                format!("M 100644 inline {path}\ndata {}\n", data.len()).as_bytes(),
            );
            stream.extend_from_slice(&data);
            stream.push(b'\n');
        }
        stream.push(b'\n');
    }
    stream
}

#[test]
fn a_thousand_commit_history_clones_exactly() {
    let writer = Writer::new(None);
    let mut cluster = Cluster::new(&[&writer]);
    // The master restores the history from its first backup remote.
    std::fs::create_dir_all(&cluster.file_backup).expect("mkdir");
    git(
        &cluster.file_backup,
        &["init", "-q", "--bare", "-b", "main"],
    );
    let out = util::fixtures::git_input(
        &cluster.file_backup,
        &["fast-import", "--quiet"],
        &generated_history(1000),
    );
    assert!(out.is_empty(), "{}", text(&out));
    cluster.start_master();
    let reader = Machine::new();
    join_dht(&reader, &cluster);
    let work = tempfile::tempdir().expect("tempdir");
    let url = format!("xus://{}/main", cluster.topic);
    ok_git(&reader, work.path(), &["clone", "-q", &url, "clone"]);
    let clone = work.path().join("clone");
    assert_eq!(
        git(&clone, &["rev-list", "--all"]),
        git(&cluster.file_backup, &["rev-list", "--all"]),
        "the clone holds exactly the source's history"
    );
    assert_eq!(git(&clone, &["rev-list", "--count", "HEAD"]), "1000");
    assert_eq!(
        git(&clone, &["rev-parse", "HEAD^{tree}"]),
        git(&cluster.file_backup, &["rev-parse", "main^{tree}"])
    );
    assert_fsck_clean(&clone.join(".git"));
    assert!(!clone.join(".git/shallow").exists());
    cluster.stop_master();
}

/// A DHT node that forges heads (a valid value under a random signature):
/// `git clone` refuses it with its own error, names the bad signature, and
/// leaves nothing behind.
#[test]
fn a_forged_head_is_refused_through_git() {
    let owner = Machine::new();
    let topic = owner.new_topic("forged");
    let mut value = b"d6:commit20:".to_vec();
    value.extend_from_slice(&[7u8; 20]);
    value.extend_from_slice(b"2:ih20:");
    value.extend_from_slice(&[9u8; 20]);
    value.push(b'e');
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/forging_dht_node.py");
    let mut child = Command::new(util::clients::SYSTEM_PYTHON)
        .arg(&driver)
        .args([topic.as_str(), "main", &xus::hex::encode(&value)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", driver.display()));
    let stdout = child.stdout.take().expect("stdout");
    let _guard = ChildGuard {
        child,
        name: "forging DHT node".into(),
    };
    let mut lines = util::clients::Lines::new("forging_dht_node.py", stdout);
    let node = lines.expect(
        "its address",
        Duration::from_secs(30),
        String::new,
        |line| line.strip_prefix("dht ").map(str::to_owned),
    );
    assert!(node.starts_with("127.0.0.1:"), "{node}");
    let reader = Machine::new();
    std::fs::write(
        reader.path().join("config.toml"),
        format!(
            "[dht]\nbootstrap = [\"{node}\"]\nbind = \"127.0.0.1\"\nrequest_timeout_ms = 300\n"
        ),
    )
    .expect("config.toml");
    let work = tempfile::tempdir().expect("tempdir");
    let url = format!("xus://{topic}/main");
    let out = git_as(&reader, work.path(), &["clone", "-q", &url, "clone"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("was refused") && stderr.contains("bad signature"),
        "a distinct error naming the forged signature: {stderr}"
    );
    assert!(!work.path().join("clone").exists(), "nothing left behind");
}
