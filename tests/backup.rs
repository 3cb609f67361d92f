//! Backup remotes on their own (`xus::master::backup`): real repositories on
//! disk and a real smart-HTTP server (lighttpd + `git http-backend`).
//! Exact refs and clean object stores in both kinds of remote, lag counted
//! in refs and commits, an HTTP remote that goes down and catches up by
//! itself, refs never forced (a diverged branch, a ref the remote's own hook
//! declines), and restore's choice between unreachable, empty and full
//! remotes.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use util::git_http::GitHttpServer;
use util::*;
use xus::git::object::ObjectId;
use xus::master::backup::{self, Backups, RemoteStatus};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A bare repository with `main`, `dev` and a kept ref; returns main's tip.
fn master_repo(dir: &Path) -> String {
    let work = TestRepo::new();
    work.write("a", "one\n");
    let first = work.commit("first");
    work.write("a", "two\n");
    let main = work.commit("second");
    git(work.path(), &["branch", "dev", &first]);
    git(
        work.path(),
        &["update-ref", "refs/xus/rejected/main/x", &first],
    );
    git(
        Path::new("/"),
        &[
            "clone",
            "-q",
            "--mirror",
            work.path().to_str().expect("utf-8"),
            dir.to_str().expect("utf-8"),
        ],
    );
    main
}

fn id(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex).expect("commit id")
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `<root>/world.git`, empty, accepting pushes over smart HTTP.
fn http_world(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root).expect("mkdir");
    git(root, &["init", "-q", "--bare", "world.git"]);
    let repo = root.join("world.git");
    git(&repo, &["config", "http.receivepack", "true"]);
    repo
}

/// A new commit on `branch` of a bare repository (same tree, one parent).
fn commit_on(git_dir: &Path, branch: &str, message: &str) -> String {
    let parent = git(git_dir, &["rev-parse", branch]);
    let tree = git(git_dir, &["rev-parse", &format!("{parent}^{{tree}}")]);
    let commit = git(
        git_dir,
        &["commit-tree", &tree, "-p", &parent, "-m", message],
    );
    git(git_dir, &["update-ref", branch, &commit, &parent]);
    commit
}

/// Every ref of a repository on disk, name -> id.
fn show_ref(git_dir: &Path) -> BTreeMap<String, String> {
    parse_refs(&git(git_dir, &["show-ref"]), ' ')
}

/// Every ref a URL advertises (HEAD aside), name -> id, through the git CLI.
fn ls_remote(url: &str) -> BTreeMap<String, String> {
    parse_refs(&git(Path::new("/"), &["ls-remote", url]), '\t')
        .into_iter()
        .filter(|(name, _)| name != "HEAD")
        .collect()
}

fn parse_refs(listing: &str, separator: char) -> BTreeMap<String, String> {
    listing
        .lines()
        .map(|line| {
            let (oid, name) = line.split_once(separator).expect("<id> <ref>");
            (name.to_owned(), oid.to_owned())
        })
        .collect()
}

/// Polls the workers' status until `done` holds for it, or panics with it.
async fn status_until(
    backups: &Backups,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[RemoteStatus]) -> bool,
) -> Vec<RemoteStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = backups.status();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn in_sync(status: &[RemoteStatus]) -> bool {
    status
        .iter()
        .all(|s| s.refs_behind == 0 && s.last_error.is_none())
}

#[test]
fn every_branch_and_kept_ref_reaches_a_disk_and_an_http_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("master.git");
    master_repo(&local);
    let http_root = dir.path().join("http");
    let http_repo = http_world(&http_root);
    let server = GitHttpServer::start(&http_root);
    // Not there yet: the worker creates it.
    let disk = dir.path().join("backup-disk").join("world.git");
    let urls = vec![utf8(&disk).to_owned(), server.url("world.git")];
    runtime().block_on(async {
        let backups = Backups::start(local.clone(), urls.clone(), Duration::from_secs(2));
        status_until(
            &backups,
            "both remotes in sync",
            Duration::from_secs(30),
            in_sync,
        )
        .await;
        let expected = show_ref(&local);
        assert_eq!(
            expected.keys().collect::<Vec<_>>(),
            [
                "refs/heads/dev",
                "refs/heads/main",
                "refs/xus/rejected/main/x"
            ]
        );
        assert_eq!(show_ref(&disk), expected);
        assert_eq!(ls_remote(&urls[1]), expected);
        assert_fsck_clean(&disk);
        assert_fsck_clean(&http_repo);

        // main moves on and a new branch appears: until told, the workers
        // (idle after a success) have not seen it, and the lag is counted.
        let third = commit_on(&local, "refs/heads/main", "third");
        git(&local, &["update-ref", "refs/heads/topic", &third]);
        for status in backups.status() {
            assert_eq!(status.refs_behind, 2, "{status:?}");
            // One commit on main, and topic's whole history of three.
            assert_eq!(status.commits_behind, 1 + 3, "{status:?}");
        }
        backups.notify();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut holding = Vec::new();
        while holding.len() < urls.len() {
            assert!(Instant::now() < deadline, "only {holding:?} hold main");
            holding = backups
                .wait_for("refs/heads/main", id(&third), Duration::from_secs(30))
                .await
                .expect("a remote holds the new main");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        holding.sort();
        let mut sorted = urls.clone();
        sorted.sort();
        assert_eq!(holding, sorted);
        let status = status_until(
            &backups,
            "both remotes in sync",
            Duration::from_secs(30),
            in_sync,
        )
        .await;
        for status in &status {
            assert_eq!(status.commits_behind, 0, "{status:?}");
            assert!(status.behind_since.is_none(), "{status:?}");
            assert!(status.refused.is_empty(), "{status:?}");
            assert!(status.last_success.is_some(), "{status:?}");
        }
        backups.stop().await;
    });
    let expected = show_ref(&local);
    assert_eq!(show_ref(&disk), expected);
    assert_eq!(ls_remote(&server.url("world.git")), expected);
    assert_fsck_clean(&disk);
    assert_fsck_clean(&http_repo);
}

#[test]
fn an_http_remote_that_was_down_catches_up_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("master.git");
    master_repo(&local);
    let http_root = dir.path().join("http");
    let http_repo = http_world(&http_root);
    let mut server = GitHttpServer::start(&http_root);
    let disk = dir.path().join("disk.git");
    let urls = vec![utf8(&disk).to_owned(), server.url("world.git")];
    runtime().block_on(async {
        let backups = Backups::start(local.clone(), urls.clone(), Duration::from_secs(2));
        status_until(
            &backups,
            "both remotes in sync",
            Duration::from_secs(30),
            in_sync,
        )
        .await;

        server.stop();
        let down_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let third = commit_on(&local, "refs/heads/main", "third");
        backups.notify();
        let asked = Instant::now();
        let holding = backups
            .wait_for("refs/heads/main", id(&third), Duration::from_secs(20))
            .await
            .expect("the disk remote holds the new main");
        assert_eq!(holding, vec![urls[0].clone()]);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "a remote that is down held up wait_for for {:?}",
            asked.elapsed()
        );
        let status = status_until(
            &backups,
            "the HTTP remote to fail",
            Duration::from_secs(20),
            |s| s[1].last_error.is_some(),
        )
        .await;
        let (disk_status, http_status) = (&status[0], &status[1]);
        assert_eq!(disk_status.refs_behind, 0, "{disk_status:?}");
        assert!(disk_status.behind_since.is_none(), "{disk_status:?}");
        assert_eq!(http_status.refs_behind, 1, "{http_status:?}");
        assert_eq!(http_status.commits_behind, 1, "{http_status:?}");
        let since = http_status.behind_since.expect("behind since");
        assert!(since + 1 >= down_at, "{http_status:?} (down at {down_at})");
        assert!(
            http_status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(&urls[1])),
            "the error names the remote: {http_status:?}"
        );

        // Back up: the worker's backoff (at most 2 s here) brings it back in
        // sync with no notify.
        server.start_again();
        status_until(
            &backups,
            "the HTTP remote to catch up by itself",
            Duration::from_secs(15),
            in_sync,
        )
        .await;
        backups.stop().await;
    });
    assert_eq!(ls_remote(&server.url("world.git")), show_ref(&local));
    assert_fsck_clean(&http_repo);
}

#[test]
fn a_ref_the_remote_declines_is_reported_and_the_others_land() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("master.git");
    let main = master_repo(&local);
    let http_root = dir.path().join("http");
    let http_repo = http_world(&http_root);
    // The host protects dev: receive-pack says `ng refs/heads/dev`, the push
    // as a whole succeeds.
    let hook = http_repo.join("hooks").join("update");
    std::fs::write(
        &hook,
        "#!/bin/sh\nif [ \"$1\" = refs/heads/dev ]; then echo 'dev is frozen' >&2; exit 1; fi\n",
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = GitHttpServer::start(&http_root);
    let url = server.url("world.git");
    runtime().block_on(async {
        let backups = Backups::start(local.clone(), vec![url.clone()], Duration::from_secs(1));
        let holding = backups
            .wait_for("refs/heads/main", id(&main), Duration::from_secs(30))
            .await
            .expect("main lands");
        assert_eq!(holding, vec![url.clone()]);
        let status = status_until(
            &backups,
            "dev to be reported",
            Duration::from_secs(30),
            |s| !s[0].refused.is_empty(),
        )
        .await;
        let status = &status[0];
        assert_eq!(
            status.refused,
            vec!["refs/heads/dev".to_owned()],
            "{status:?}"
        );
        assert_eq!(status.refs_behind, 1, "{status:?}");
        assert!(status.behind_since.is_some(), "{status:?}");
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("refs/heads/dev") && e.contains("declined")),
            "{status:?}"
        );
        backups.stop().await;
    });
    let mut expected = show_ref(&local);
    expected.remove("refs/heads/dev");
    assert_eq!(ls_remote(&url), expected);
    assert_fsck_clean(&http_repo);
}

#[test]
fn a_diverged_remote_is_reported_and_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("master.git");
    let main = master_repo(&local);
    // The backup already holds main at a commit the master never had.
    let remote = dir.path().join("backup.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", remote.to_str().expect("utf-8")],
    );
    let other = TestRepo::new();
    other.write("z", "elsewhere\n");
    let foreign = other.commit("foreign");
    git(
        other.path(),
        &[
            "push",
            "-q",
            remote.to_str().expect("utf-8"),
            "HEAD:refs/heads/main",
        ],
    );
    let healthy = dir.path().join("healthy.git");
    let urls = vec![
        remote.to_str().expect("utf-8").to_owned(),
        healthy.to_str().expect("utf-8").to_owned(),
    ];
    let rt = runtime();
    rt.block_on(async {
        let backups = Backups::start(local.clone(), urls.clone(), Duration::from_secs(1));
        let holding = backups
            .wait_for("refs/heads/main", id(&main), Duration::from_secs(30))
            .await
            .expect("the healthy remote holds main");
        assert_eq!(holding, vec![urls[1].clone()]);
        // dev and the kept ref still reach the diverged remote.
        wait_for(
            "dev on the diverged remote",
            Duration::from_secs(30),
            || {
                (git_output(&remote, &["rev-parse", "--verify", "-q", "refs/heads/dev"])
                    .status
                    .success()
                    && git_output(
                        &remote,
                        &["rev-parse", "--verify", "-q", "refs/xus/rejected/main/x"],
                    )
                    .status
                    .success())
                .then_some(())
            },
        );
        let status = backups.status();
        let diverged = &status[0];
        assert_eq!(
            diverged.refused,
            vec!["refs/heads/main".to_owned()],
            "{diverged:?}"
        );
        assert_eq!(diverged.refs_behind, 1, "{diverged:?}");
        assert!(
            diverged
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("not a fast-forward")),
            "{diverged:?}"
        );
        assert_eq!(status[1].refs_behind, 0, "{:?}", status[1]);
        assert!(status[1].behind_since.is_none());
        backups.stop().await;
    });
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/main"]),
        foreign,
        "overwritten"
    );
    assert_fsck_clean(&healthy);
}

#[test]
fn wait_for_names_every_remote_when_none_can_be_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("master.git");
    let main = master_repo(&local);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let urls = vec![
        format!("http://127.0.0.1:{closed}/git/a.git"),
        format!("http://127.0.0.1:{closed}/git/b.git"),
    ];
    runtime().block_on(async {
        let backups = Backups::start(local, urls.clone(), Duration::from_secs(1));
        let error = backups
            .wait_for("refs/heads/main", id(&main), Duration::from_secs(3))
            .await
            .expect_err("nothing can hold it");
        let message = format!("{error:#}");
        for url in &urls {
            assert!(message.contains(url), "{message}");
        }
        let status = backups.status();
        assert!(
            status
                .iter()
                .all(|s| s.refs_behind == 3 && s.behind_since.is_some()),
            "{status:?}"
        );
        backups.stop().await;
    });
}

#[test]
fn restore_takes_the_first_readable_remote_that_has_refs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("master.git");
    let main = master_repo(&source);
    let http_root = dir.path().join("http");
    std::fs::create_dir_all(&http_root).expect("mkdir");
    git(
        &http_root,
        &[
            "clone",
            "-q",
            "--mirror",
            source.to_str().expect("utf-8"),
            "full.git",
        ],
    );
    git(&http_root, &["init", "-q", "--bare", "empty.git"]);
    let server = GitHttpServer::start(&http_root);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let unreachable = format!("http://127.0.0.1:{closed}/git/full.git");
    let missing_disk = dir.path().join("unmounted").join("world.git");
    let missing_disk = missing_disk.to_str().expect("utf-8").to_owned();

    let target = dir.path().join("restored.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", target.to_str().expect("utf-8")],
    );
    let remotes = vec![
        unreachable.clone(),
        missing_disk.clone(),
        server.url("empty.git"),
        server.url("full.git"),
    ];
    let restored = backup::restore(&target, &remotes)
        .expect("restores")
        .expect("from the full remote");
    assert_eq!(restored.remote, server.url("full.git"));
    let names: Vec<&str> = restored.refs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "refs/heads/dev",
            "refs/heads/main",
            "refs/xus/rejected/main/x"
        ]
    );
    assert_eq!(git(&target, &["rev-parse", "refs/heads/main"]), main);
    let expected = show_ref(&source);
    let got: BTreeMap<String, String> = restored
        .refs
        .iter()
        .map(|(name, oid)| (name.clone(), oid.to_hex()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(show_ref(&target), expected);
    assert_eq!(git(&target, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_fsck_clean(&target);

    // Every readable remote empty: a new topic.
    let fresh = dir.path().join("fresh.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", fresh.to_str().expect("utf-8")],
    );
    let none = backup::restore(&fresh, &[unreachable.clone(), server.url("empty.git")])
        .expect("an empty remote is readable");
    assert!(none.is_none());

    // Nothing readable: an error naming each remote, so the master does not
    // start empty over a history it could not see.
    let error = backup::restore(&fresh, &[unreachable.clone(), missing_disk.clone()])
        .expect_err("nothing readable");
    let message = format!("{error:#}");
    assert!(
        message.contains(&unreachable) && message.contains(&missing_disk),
        "{message}"
    );
}
