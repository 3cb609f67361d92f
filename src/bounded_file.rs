//! Files read whole, but never more than a bound.
//!
//! A size check on the file's metadata is not enough: `/dev/zero`, a FIFO
//! or a file still growing reports a small length and then keeps giving
//! bytes. Every file xus reads whole from a path a user names (a `.torrent`,
//! `config.toml`, a master's config) goes through [`read`], which stops at
//! the bound whatever the metadata said.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// The bytes of `path`, refused once more than `limit` arrive.
pub fn read(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= limit,
        "{} is larger than {limit} bytes",
        path.display()
    );
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> anyhow::Result<String> {
    String::from_utf8(read(path, limit)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_stops_at_the_bound() {
        // Reports length 0, and never ends.
        let error = read(Path::new("/dev/zero"), 1 << 20).expect_err("refused");
        assert!(
            error.to_string().contains("larger than 1048576 bytes"),
            "{error:#}"
        );
    }

    #[test]
    fn a_file_within_the_bound_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").expect("write");
        assert_eq!(read(&path, 10).expect("read"), b"0123456789");
        assert!(read(&path, 9).is_err());
        assert_eq!(read_to_string(&path, 10).expect("text"), "0123456789");
    }
}
