//! `xus::git::object::parse_tree` and `commit_tree` on arbitrary bytes.
//!
//! Invariants: no panic; an accepted tree is exactly its entries written back
//! (`<mode> <name>\0<20-byte id>`), with safe, distinct names; an accepted
//! commit names the tree its first line spells.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use xus::git::object::{check_name, commit_tree, parse_tree};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse_tree(data) {
        let mut rebuilt = Vec::with_capacity(data.len());
        let mut names = HashSet::new();
        for e in &entries {
            assert!(check_name(e.name).is_ok(), "unsafe name accepted");
            assert!(names.insert(e.name), "duplicate name accepted");
            rebuilt.extend_from_slice(e.mode);
            rebuilt.push(b' ');
            rebuilt.extend_from_slice(e.name);
            rebuilt.push(0);
            rebuilt.extend_from_slice(&e.id.0);
        }
        assert_eq!(rebuilt, data, "entries do not write back to the tree");
    }
    if let Ok(id) = commit_tree(data) {
        assert!(data.starts_with(b"tree ") && data.get(45) == Some(&b'\n'));
        assert!(
            data[5..45].eq_ignore_ascii_case(id.to_hex().as_bytes()),
            "commit_tree returned an id its header does not spell"
        );
    }
});
