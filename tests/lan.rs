//! Peers on one LAN segment find each other with no DHT and no address
//! given: local service discovery (BEP 14), multicast announces on
//! 239.192.152.143:6771 (issue 14, item 1); and a reader given one peer
//! learns the others from it: peer exchange (BEP 11, item 5).
//!
//! Each machine is its own network namespace with a veth cable to one
//! bridge ([`util::netns::Lan`]), so the announces cross a real segment and
//! the peers dial each other's real addresses; nothing leaves the test's
//! namespaces. xus runs there without the loopback test guard (which keeps
//! LSD off on the host, where multicast would reach the machine's real
//! network). Each test also runs its control: with `--no-lsd` the same
//! fetch finds nobody, so what found the peer was LSD.

mod util;

use std::time::{Duration, Instant};

use util::clients::Libtorrent;
use util::netns::Lan;
use util::*;

/// How long a fetch may look for the seed and download.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the control fetch (LSD off) waits for metadata before it
/// gives up: long enough that LSD, had it been on, would have found the
/// seed (it does in about a second).
const CONTROL_METADATA_TIMEOUT_S: &str = "10";

/// The commit of the PEX test: at [`SLOW_KIB_PER_S`] from the seed it
/// takes about half a minute.
const PEX_PAYLOAD: usize = 4 << 20;

/// The seed's upload cap in the PEX test.
const SLOW_KIB_PER_S: &str = "128";

/// What the late reader must receive from each of its two peers.
const PEX_SHARE: u64 = 256 << 10;

/// A repository with a small tree and one larger file.
fn lan_commit() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("README.md", "# on the LAN\n");
    repo.write("src/lib.rs", "pub fn lan() {}\n");
    repo.write("assets/map.bin", noise(3 << 20, 14));
    let commit = repo.commit("lan fixture");
    (repo, commit)
}

#[test]
fn two_machines_find_each_other_by_local_service_discovery() {
    let lan = Lan::new("lsd", 2);
    let homes = tempfile::tempdir().expect("tempdir");
    let (src, commit) = lan_commit();
    let (_seeder, magnet) = lan.seed(1, &homes.path().join("seed"), src.path(), &[]);
    let dst = tempfile::tempdir().expect("tempdir");
    let reader_home = homes.path().join("reader");
    let listen = format!("{}:0", lan.address(2));

    // The control first: LSD off, nothing else to go by.
    let control_repo = dst.path().join("control");
    let out = run_xus_with(
        lan.host(2)
            .xus(&reader_home)
            .args(["fetch", &magnet, "--repo"])
            .arg(&control_repo)
            .args([
                "--branch", "main", "--no-dht", "--no-lsd", "--listen", &listen,
            ])
            .args(["--metadata-timeout", CONTROL_METADATA_TIMEOUT_S]),
        FETCH_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "without LSD, DHT or a peer the fetch cannot find the seed, yet it succeeded:\n{stderr}"
    );

    let repo = dst.path().join("r");
    let started = Instant::now();
    let out = run_xus_with(
        lan.host(2)
            .xus(&reader_home)
            .args(["fetch", &magnet, "--repo"])
            .arg(&repo)
            .args(["--branch", "main", "--no-dht", "--listen", &listen]),
        FETCH_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "fetch over the LAN by LSD failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "xus fetch found the seed by LSD and fetched in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
}

#[test]
fn libtorrent_on_the_lan_finds_a_xus_seed_by_local_service_discovery() {
    let lan = Lan::new("lsd-lt", 2);
    let homes = tempfile::tempdir().expect("tempdir");
    let (src, commit) = lan_commit();
    let (_seeder, magnet) = lan.seed(1, &homes.path().join("seed"), src.path(), &[]);
    let work = tempfile::tempdir().expect("tempdir");
    let save = work.path().join("save");
    std::fs::create_dir(&save).expect("mkdir");

    let started = Instant::now();
    let mut lt = Libtorrent::download_by_lsd(
        lan.host(2),
        lan.address(2),
        &save,
        &magnet,
        &work.path().join("libtorrent.log"),
    );
    lt.wait_finished(FETCH_TIMEOUT);
    eprintln!(
        "libtorrent found the xus seed by LSD and downloaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let archive = git_archive(src.path(), &commit);
    assert_same_files(archive.path(), &save.join(&commit), false);
}

#[test]
fn a_reader_given_one_peer_learns_a_second_by_pex_and_fetches_from_both() {
    // LSD and the DHT off everywhere: the only way the late reader (host 3)
    // can hear of the seed (host 1) is the ut_pex message of the one peer
    // it is given, an early reader (host 2) still downloading from the seed.
    let lan = Lan::new("pex", 3);
    let homes = tempfile::tempdir().expect("tempdir");
    let src = TestRepo::new();
    src.write("README.md", "# exchanged\n");
    src.write("assets/world.bin", noise(PEX_PAYLOAD, 15));
    let commit = src.commit("pex fixture");

    // The seed uploads slowly, so the downloads outlast the 10 s librqbit
    // waits before its first ut_pex message.
    let (seed, magnet) = lan.seed(
        1,
        &homes.path().join("h1"),
        src.path(),
        &["--no-lsd", "--max-upload", SLOW_KIB_PER_S],
    );
    let dst = tempfile::tempdir().expect("tempdir");

    // The early reader dials the seed (librqbit tells its peers about the
    // peers it dialled) and stays to serve what it has.
    let early_port = 40_002;
    let early_listen = format!("{}:{early_port}", lan.address(2));
    let seed_addr = seed.addr.to_string();
    let mut early = lan.host(2).xus(&homes.path().join("h2"));
    early
        .args(["fetch", &magnet, "--repo"])
        .arg(dst.path().join("early"))
        .args([
            "--branch",
            "main",
            "--no-dht",
            "--no-lsd",
            "--listen",
            &early_listen,
        ])
        .args(["--peer", &seed_addr, "--seed-for", "120"]);
    let (_early, _early_lines) = spawn_with_lines(early, "xus fetch (early reader)");
    std::thread::sleep(Duration::from_secs(2));

    lan.count_received(3, 1);
    lan.count_received(3, 2);
    let repo = dst.path().join("late");
    let late_listen = format!("{}:0", lan.address(3));
    let started = Instant::now();
    let out = run_xus_with(
        lan.host(3)
            .xus(&homes.path().join("h3"))
            .args(["fetch", &magnet, "--repo"])
            .arg(&repo)
            .args([
                "--branch",
                "main",
                "--no-dht",
                "--no-lsd",
                "--listen",
                &late_listen,
            ])
            .args(["--peer", &early_listen]),
        FETCH_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "fetch given the early reader only failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (from_seed, from_early) = (lan.received(3, 1), lan.received(3, 2));
    eprintln!(
        "late reader: {PEX_PAYLOAD} bytes in {:.1} s; received {from_early} bytes from the \
         early reader it was given, {from_seed} from the seed it learnt by PEX",
        started.elapsed().as_secs_f64()
    );
    for (what, bytes) in [
        ("the seed (learnt by PEX)", from_seed),
        ("the early reader", from_early),
    ] {
        assert!(
            bytes >= PEX_SHARE,
            "the late reader received only {bytes} bytes from {what}: it should fetch from both"
        );
    }
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
}
