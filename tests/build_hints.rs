//! Re-using the parent's piece hashes changes nothing in the result.

mod util;

use util::*;
use xus::git::object::ObjectId;
use xus::torrent::format::{build, build_with_hints};

fn id(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex).expect("hex commit id")
}

#[test]
fn hinted_build_is_byte_identical() {
    let src = TestRepo::new();
    for i in 0..40 {
        src.write(
            format!("d{}/f{i}.txt", i % 4),
            vec![b'a' + (i % 26) as u8; 5000 + i * 997],
        );
    }
    let first = id(&src.commit("first"));
    // Same size change, then a size change, then a deletion.
    src.write("d1/f1.txt", vec![b'Z'; 5000 + 997]);
    let second = id(&src.commit("same size"));
    src.write("d2/f2.txt", "shorter");
    let third = id(&src.commit("size change"));
    std::fs::remove_file(src.path().join("d3/f3.txt")).expect("rm");
    let fourth = id(&src.commit("deletion"));

    let repo = git2::Repository::open(src.path()).expect("open");
    let mut previous = build(&repo, first).expect("build first");
    for commit in [second, third, fourth] {
        let plain = build(&repo, commit).expect("plain build");
        let hinted =
            build_with_hints(&repo, commit, std::slice::from_ref(&previous)).expect("hinted build");
        assert_eq!(plain.info_bytes, hinted.info_bytes, "commit {commit}");
        previous = hinted;
    }
}
