//! Interoperability with stock BitTorrent clients, all on 127.0.0.1:
//! libtorrent (python3-libtorrent), aria2c and Transmission 3.00 download a
//! commit from `xus seed` and must end up with exactly the files of
//! `git archive`; `xus fetch` downloads from libtorrent seeding a plain
//! checkout and must rebuild the exact commit.
//!
//! A client that is not installed fails its test with the Debian package to
//! install (see `.ci/run`); nothing is skipped. Drivers: `util::clients` and
//! `tests/drivers/lt_peer.py`.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use util::clients::*;
use util::*;

/// Deadline for one download.
const TRANSFER: Duration = Duration::from_secs(120);

/// Size of the file that spans many pieces (> 1 MiB, not a multiple of the
/// 16 KiB piece length the payload gets).
const BIG_FILE: usize = 1_500_000 + 4_321;

/// The path of the file with a non-ASCII UTF-8 name.
const UTF8_NAME: &str = "docs/naïve café – 日本語.txt";

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A commit with several files: nested subdirectories, an executable, a
/// file over 1 MiB spanning many pieces and a file with a non-ASCII UTF-8
/// name (no symlinks or submodules, which are not torrent files).
fn interop_commit() -> (TestRepo, String) {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.write(
        "README.md",
        "# interop fixture\n\nServed by xus, fetched by others.\n",
    );
    repo.write("src/main.rs", "fn main() {\n    println!(\"xus\");\n}\n");
    repo.write("src/net/peer.rs", noise(1, 20_000));
    repo.write("tools/run.sh", "#!/bin/sh\necho \"xus interop\"\n");
    let script = repo.path().join("tools/run.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    repo.write("assets/big.bin", noise(2, BIG_FILE));
    repo.write(UTF8_NAME, "Grüße, こんにちは\n");
    let commit = repo.commit("interop fixture");
    let listing = git(repo.path(), &["ls-tree", "-r", "-z", &commit]);
    assert!(
        listing.contains("100755 blob") && listing.contains(UTF8_NAME),
        "fixture is not what the tests expect:\n{listing}"
    );
    (repo, commit)
}

/// `xus torrent COMMIT -o PATH`; returns the infohash.
fn write_torrent(repo: &Path, commit: &str, path: &Path) -> String {
    let out = xus_ok(
        &[
            "torrent",
            commit,
            "--repo",
            repo.to_str().expect("utf8"),
            "-o",
            path.to_str().expect("utf8"),
        ],
        Duration::from_secs(120),
    );
    assert!(out.contains(&format!("commit {commit}")), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("infohash "))
        .unwrap_or_else(|| panic!("no infohash line in {out}"))
        .trim()
        .to_owned()
}

/// Asserts a client saved exactly one entry, `<commit>/`, under `root`, and
/// that it holds exactly the files of `git archive`.
fn assert_download(root: &Path, commit: &str, archive: &Path, check_exec: bool) {
    let entries: Vec<String> = std::fs::read_dir(root)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        vec![commit.to_owned()],
        "the client left other entries than <commit>/ in {}",
        root.display()
    );
    assert_same_files(archive, &root.join(commit), check_exec);
}

/// Whether the fixture's executable came out executable (for the log).
fn exec_bit(root: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(root.join("tools/run.sh"))
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Copies a directory tree, keeping permissions (no symlinks expected).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        assert!(!kind.is_symlink(), "unexpected symlink {:?}", entry.path());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn report(test: &str, started: Instant) {
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn libtorrent_downloads_a_commit_from_xus_seed() {
    require_libtorrent();
    let started = Instant::now();
    let (src, commit) = interop_commit();
    let archive = git_archive(src.path(), &commit);
    let seeder = spawn_seed(src.path(), &[&commit]);
    let seeded = seeder.seeded[0].clone();
    assert_eq!(seeded.commit, commit);

    let work = tempfile::tempdir().expect("tempdir");
    let save = work.path().join("save");
    std::fs::create_dir(&save).expect("mkdir");
    // Only the magnet: libtorrent learns the seeder from its `x.pe` and the
    // metadata from the seeder (BEP 9).
    let mut lt = Libtorrent::download(
        &save,
        LtSource::Magnet(&seeded.magnet),
        &[],
        &work.path().join("libtorrent.log"),
    );
    let info_hash = lt.wait_finished(TRANSFER);
    assert_eq!(info_hash, seeded.info_hash);
    drop(seeder);

    // libtorrent honours BEP 47 `attr` "x".
    assert_download(&save, &commit, archive.path(), true);
    report("libtorrent <- xus seed", started);
}

/// uTP (BEP 29): libtorrent with TCP off both ways still downloads from a
/// xus seed, which listens on uTP beside TCP on the same port.
#[test]
fn libtorrent_over_utp_only_downloads_a_commit_from_xus_seed() {
    require_libtorrent();
    let started = Instant::now();
    let (src, commit) = interop_commit();
    let archive = git_archive(src.path(), &commit);
    let seeder = spawn_seed(src.path(), &[&commit]);
    let seeded = seeder.seeded[0].clone();

    let work = tempfile::tempdir().expect("tempdir");
    let save = work.path().join("save");
    std::fs::create_dir(&save).expect("mkdir");
    let mut lt = Libtorrent::download_utp_only(
        &save,
        LtSource::Magnet(&seeded.magnet),
        &work.path().join("libtorrent.log"),
    );
    let (info_hash, (tcp, utp)) = lt.wait_finished_with_transports(TRANSFER);
    assert_eq!(info_hash, seeded.info_hash);
    assert_eq!(
        (tcp, utp),
        (0, 1),
        "libtorrent should have had the seed as its one peer, over uTP"
    );
    drop(seeder);
    assert_download(&save, &commit, archive.path(), true);
    report("libtorrent (uTP only) <- xus seed", started);
}

#[test]
fn aria2c_downloads_a_commit_from_xus_seed() {
    require_program("aria2c", "aria2");
    let started = Instant::now();
    let (src, commit) = interop_commit();
    let archive = git_archive(src.path(), &commit);
    let work = tempfile::tempdir().expect("tempdir");
    let torrent = work.path().join("commit.torrent");
    let info_hash = write_torrent(src.path(), &commit, &torrent);
    let dl = work.path().join("downloads");
    std::fs::create_dir(&dl).expect("mkdir");

    // aria2c takes no peer address: it listens, and xus dials it.
    let mut aria = Aria2::download(&torrent, &dl, &work.path().join("aria2.log"));
    let peer = aria.addr.to_string();
    let seeder = spawn_seed(src.path(), &[&commit, "--peer", &peer]);
    assert_eq!(seeder.seeded[0].info_hash, info_hash);
    aria.wait_success(TRANSFER);
    drop(seeder);

    // aria2c ignores BEP 47 attributes: no exec bits.
    eprintln!(
        "aria2c exec bit on tools/run.sh: {}",
        exec_bit(&dl.join(&commit))
    );
    assert_download(&dl, &commit, archive.path(), false);
    report("aria2c <- xus seed", started);
}

#[test]
fn transmission_downloads_a_commit_from_xus_seed() {
    require_program("transmission-daemon", "transmission-daemon");
    require_program("transmission-remote", "transmission-cli");
    let started = Instant::now();
    let (src, commit) = interop_commit();
    let archive = git_archive(src.path(), &commit);
    let work = tempfile::tempdir().expect("tempdir");
    let torrent = work.path().join("commit.torrent");
    let info_hash = write_torrent(src.path(), &commit, &torrent);
    let dl = work.path().join("downloads");
    std::fs::create_dir(&dl).expect("mkdir");

    let mut tr = Transmission::start(&work.path().join("transmission"));
    tr.add(&torrent, &dl, &info_hash);
    // Transmission never dials 127.0.0.1 peers: xus dials it, right away.
    // Transmission then stays silent for about 10.7 s (until its first
    // rechoke), which xus must sit out (see the silent-peer test below).
    let peer = tr.peer_addr.to_string();
    let seeder = spawn_seed(src.path(), &[&commit, "--peer", &peer]);
    assert_eq!(seeder.seeded[0].info_hash, info_hash);
    tr.wait_complete(&info_hash, TRANSFER);
    tr.stop(&info_hash);
    drop(seeder);

    // Transmission 3.00 ignores BEP 47 attributes: no exec bits.
    eprintln!(
        "Transmission exec bit on tools/run.sh: {}",
        exec_bit(&dl.join(&commit))
    );
    assert_download(&dl, &commit, archive.path(), false);
    report("Transmission <- xus seed", started);
}

#[test]
fn xus_fetch_downloads_from_libtorrent_seeding_a_checkout() {
    require_libtorrent();
    let started = Instant::now();
    let (src, commit) = interop_commit();
    let archive = git_archive(src.path(), &commit);
    let work = tempfile::tempdir().expect("tempdir");
    let torrent = work.path().join("commit.torrent");
    let info_hash = write_torrent(src.path(), &commit, &torrent);

    // A plain checkout, no Git at all, where libtorrent expects the files.
    let save = work.path().join("seed");
    copy_tree(archive.path(), &save.join(&commit));
    let lt = Libtorrent::seed(&save, &torrent, &work.path().join("libtorrent.log"));

    let dst = work.path().join("fetched");
    let out = run_xus(
        &[
            "fetch",
            torrent.to_str().expect("utf8"),
            "--repo",
            dst.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--peer",
            &lt.addr.to_string(),
            "--branch",
            "main",
            "--checkout",
        ],
        TRANSFER,
    );
    assert!(
        out.status.success(),
        "xus fetch from libtorrent failed ({})\nstdout: {}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lt.log_tail()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("fetched {commit} {info_hash}")),
        "{stdout}"
    );
    assert_eq!(git(&dst, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&dst);
    assert_same_files(archive.path(), &dst, true);
    report("xus fetch <- libtorrent", started);
}

/// A one-file commit, for the tests that speak the wire protocol themselves.
fn small_commit() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("data.bin", noise(3, 100_000));
    let commit = repo.commit("small");
    (repo, commit)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    xus_codec::hex::decode(hex).expect("hex")
}

/// Accepts one connection on `listener` within `timeout`.
fn accept_within(listener: &TcpListener, timeout: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// Reads the 68-byte BitTorrent handshake and checks its infohash.
fn read_handshake(stream: &mut TcpStream, info_hash: &str) {
    let mut hs = [0u8; 68];
    stream.read_exact(&mut hs).expect("reading the handshake");
    assert_eq!(
        &hs[..20],
        b"\x13BitTorrent protocol",
        "not a BitTorrent handshake"
    );
    assert_eq!(hs[28..48].to_vec(), hex_bytes(info_hash), "wrong infohash");
}

/// The tests that drive aria2c and Transmission rest on this: for a torrent
/// it already has whole, `xus seed --peer ADDR` dials ADDR (librqbit 9.1
/// does, once; it does not retry when that first attempt fails).
#[test]
fn xus_seed_dials_the_peers_it_is_given() {
    let (src, commit) = small_commit();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seeder = spawn_seed(src.path(), &[&commit, "--peer", &addr]);
    let mut stream = accept_within(&listener, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("xus seed --peer {addr} never dialed {addr}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    read_handshake(&mut stream, &seeder.seeded[0].info_hash);
}

/// What Transmission 3.00 does to a seeder that dials it right after the
/// torrent was added: handshake, then (after its extension handshake)
/// silence for about 10.7 s until it says `interested`. BEP 3 keep-alives
/// come every two minutes, so a peer may legitimately be silent far longer.
/// librqbit's default peer read timeout (10 s) dropped such a peer, and a
/// complete torrent never dials it again; xus raises the timeout.
#[test]
fn xus_seed_keeps_a_peer_that_is_silent_for_15_s() {
    let (src, commit) = small_commit();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seeder = spawn_seed(src.path(), &[&commit, "--peer", &addr]);
    let info_hash = seeder.seeded[0].info_hash.clone();
    let mut stream = accept_within(&listener, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("xus seed --peer {addr} never dialed {addr}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    read_handshake(&mut stream, &info_hash);
    let mut hs = b"\x13BitTorrent protocol".to_vec();
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(&hex_bytes(&info_hash));
    hs.extend_from_slice(b"-XT0001-silentpeer01");
    stream.write_all(&hs).expect("sending the handshake");

    // Say nothing for 15 s, reading whatever xus sends meanwhile.
    let connected = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    while connected.elapsed() < Duration::from_secs(15) {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "xus seed closed the connection after {:.1} s of silence from its peer",
                connected.elapsed().as_secs_f64()
            ),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!(
                "connection to xus seed failed after {:.1} s of silence: {e}",
                connected.elapsed().as_secs_f64()
            ),
        }
    }

    // Now behave like Transmission: interested, then ask for a block.
    stream
        .write_all(&[0, 0, 0, 1, 2])
        .expect("sending interested (xus seed has dropped the connection)");
    let mut request = vec![0, 0, 0, 13, 6];
    request.extend_from_slice(&0u32.to_be_bytes());
    request.extend_from_slice(&0u32.to_be_bytes());
    request.extend_from_slice(&16_384u32.to_be_bytes());
    stream
        .write_all(&request)
        .expect("sending a request (xus seed has dropped the connection)");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // Skip what arrived before (bitfield, unchoke, ...), then wait for the block.
    let mut skipped = std::io::Cursor::new(pending);
    let mut chained = (&mut skipped).chain(&mut stream);
    loop {
        let mut len = [0u8; 4];
        chained
            .read_exact(&mut len)
            .expect("xus seed closed the connection instead of sending the block");
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        chained.read_exact(&mut body).expect("reading a message");
        if body.first() == Some(&7) {
            assert_eq!(body.len(), 9 + 16_384, "piece message of the wrong size");
            break;
        }
    }
}
