//! Writes many objects into Git as one pack, streamed.
//!
//! A fetch of a commit with thousands of files would otherwise write
//! thousands of loose objects, and libgit2 rescans the pack directory before
//! each one. A pack is also atomic: libgit2 indexes it and moves it into
//! place only when it is complete, so an interrupted import leaves nothing.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use git2::ObjectType;
use sha1::{Digest, Sha1};

/// Returned by [`PackWriter`] calls.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// libgit2 refused the pack.
    #[error("writing a pack into the object database")]
    Git(#[from] git2::Error),
    /// Reading an object's bytes, or writing the stream, failed.
    #[error("streaming an object into the pack")]
    Io(#[from] std::io::Error),
    /// More or fewer objects than announced in the header.
    #[error("pack announced {announced} objects but {written} were written")]
    Count {
        /// From the header.
        announced: u32,
        /// Actually written.
        written: u32,
    },
}

/// Streams objects into a pack that libgit2 indexes as it arrives.
pub struct PackWriter<'odb> {
    out: HashingWriter<git2::OdbPackwriter<'odb>>,
    announced: u32,
    written: u32,
}

/// Forwards writes and hashes them (the pack trailer is the SHA-1 of all
/// bytes before it).
struct HashingWriter<W> {
    inner: W,
    sha: Sha1,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'odb> PackWriter<'odb> {
    /// Starts a pack of exactly `count` objects.
    pub fn new(odb: &'odb git2::Odb<'_>, count: u32) -> Result<Self, PackError> {
        let mut out = HashingWriter {
            inner: odb.packwriter()?,
            sha: Sha1::new(),
        };
        out.write_all(b"PACK")?;
        out.write_all(&2u32.to_be_bytes())?;
        out.write_all(&count.to_be_bytes())?;
        Ok(Self {
            out,
            announced: count,
            written: 0,
        })
    }

    /// Adds an object of `len` bytes read from `data` (which must yield exactly that many).
    pub fn add(&mut self, kind: ObjectType, len: u64, data: impl Read) -> Result<(), PackError> {
        self.out.write_all(&entry_header(kind, len))?;
        let mut encoder = ZlibEncoder::new(&mut self.out, Compression::fast());
        let copied = std::io::copy(&mut data.take(len), &mut encoder)?;
        if copied != len {
            return Err(PackError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("object source gave {copied} of {len} bytes"),
            )));
        }
        encoder.finish()?;
        self.written += 1;
        Ok(())
    }

    /// Adds an object held in memory.
    pub fn add_bytes(&mut self, kind: ObjectType, data: &[u8]) -> Result<(), PackError> {
        self.add(kind, data.len() as u64, data)
    }

    /// Writes the trailer and lets libgit2 index and install the pack.
    pub fn finish(mut self) -> Result<(), PackError> {
        if self.written != self.announced {
            return Err(PackError::Count {
                announced: self.announced,
                written: self.written,
            });
        }
        let trailer: [u8; 20] = self.out.sha.finalize_reset().into();
        self.out.inner.write_all(&trailer)?;
        self.out.inner.commit()?;
        Ok(())
    }
}

/// The type-and-size header of a pack entry: type in bits 4..7 of the first
/// byte, size in 4 bits then 7 bits per byte, little end first.
fn entry_header(kind: ObjectType, len: u64) -> Vec<u8> {
    let code: u8 = match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Blob => 3,
        _ => 4, // tag; xus writes no other kind
    };
    let mut out = Vec::with_capacity(10);
    let mut byte = (code << 4) | (len & 0x0f) as u8;
    let mut rest = len >> 4;
    while rest > 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_encoding_matches_git() {
        // Values from Git's pack-format documentation arithmetic.
        assert_eq!(entry_header(ObjectType::Blob, 5), vec![0x35]);
        assert_eq!(entry_header(ObjectType::Blob, 16), vec![0xb0, 0x01]);
        assert_eq!(entry_header(ObjectType::Commit, 300), vec![0x9c, 0x12]);
    }

    #[test]
    fn objects_round_trip_through_a_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init_bare(dir.path()).expect("init");
        let odb = repo.odb().expect("odb");
        let mut pack = PackWriter::new(&odb, 2).expect("pack");
        pack.add_bytes(ObjectType::Blob, b"hello\n").expect("blob");
        let big = vec![7u8; 100_000];
        pack.add_bytes(ObjectType::Blob, &big).expect("big blob");
        pack.finish().expect("finish");
        odb.refresh().expect("refresh");
        let id = git2::Oid::hash_object(ObjectType::Blob, b"hello\n").expect("hash");
        assert_eq!(odb.read(id).expect("read").data(), b"hello\n");
        let id = git2::Oid::hash_object(ObjectType::Blob, &big).expect("hash");
        assert_eq!(odb.read(id).expect("read").data(), &big[..]);
    }
}
