//! Backup remotes on their own (`xus::master::backup`): real repositories on
//! disk and a real smart-HTTP server (lighttpd + `git http-backend`).
//! What the master end-to-end tests do not reach: a remote whose branch went
//! elsewhere is never overwritten, and restore's choice between unreachable,
//! empty and full remotes.

mod util;

use std::path::Path;
use std::time::Duration;

use util::git_http::GitHttpServer;
use util::*;
use xus::gitobj::ObjectId;
use xus::master::backup::{self, Backups};

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
