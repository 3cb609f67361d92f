//! Writes objects into Git as a pack with its index, both written here.
//!
//! A fetch of a commit with thousands of files would otherwise write
//! thousands of loose objects (libgit2 rescans the pack directory before each
//! one), and libgit2's pack indexer re-inflates and re-hashes every byte it
//! is given. Every object xus writes was already verified (blobs hashed from
//! the staging file, trees and commit hashed when the metadata was parsed),
//! so the index is built from the ids already known: one deflate, one CRC
//! and one write per byte. Incompressible blobs are stored, not deflated.
//!
//! The pack and its index are written under temporary names and renamed into
//! place, pack first: Git only sees a pack once its index exists, so an
//! interrupted import leaves nothing behind but a temporary file. The writer
//! locks that file while it works, so a killed writer's leftovers can be told
//! from a live one's and removed ([`crate::git::pack_leftovers`], which runs
//! before every new pack).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::ZlibEncoder;
use flate2::{Compress, Compression, FlushCompress, Status};
use git2::ObjectType;
use sha1::{Digest, Sha1};

use crate::git::object::ObjectId;

/// Blobs at least this large are stored without compression when a sample
/// of them does not shrink.
const SAMPLE_THRESHOLD: u64 = 1 << 20;
/// How much of a large blob is test-compressed.
const SAMPLE_BYTES: usize = 64 * 1024;

/// How temporary pack names start (`tmp_xus_<pid>_<n>.pack`); Git ignores
/// them, and [`crate::git::pack_leftovers`] looks for them.
pub const TEMP_PACK_PREFIX: &str = "tmp_xus_";

/// Returned by [`PackWriter`] calls.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading an object's bytes, or writing the pack, failed.
    #[error("writing a pack in {dir}")]
    Io {
        /// The pack directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object source gave fewer bytes than announced.
    #[error("object {id} gave {got} of its {expected} bytes")]
    Short {
        /// The object.
        id: ObjectId,
        /// Bytes read.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
}

/// Streams objects into `objects/pack/` as one pack plus index.
pub struct PackWriter {
    dir: PathBuf,
    tmp_pack: PathBuf,
    /// `None` only once `finish` has taken it.
    out: Option<Counting<BufWriter<File>>>,
    entries: Vec<(ObjectId, u32, u64)>,
    /// One deflate stream per level, reset between objects: a new stream
    /// allocates and clears a few hundred KiB, which for a history of
    /// thousands of small objects cost more than compressing them.
    fast: Compress,
    stored: Compress,
    /// Input and output chunks, reused.
    input: Vec<u8>,
    output: Vec<u8>,
}

/// Counts, hashes (pack trailer) and CRCs (per entry) what passes through.
struct Counting<W> {
    inner: W,
    written: u64,
    sha: Sha1,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl PackWriter {
    /// Starts a pack of exactly `count` objects in the repository whose
    /// `.git` directory is `git_dir`, first removing what killed imports left.
    pub fn new(git_dir: &Path, count: u32) -> Result<Self, PackError> {
        let dir = git_dir.join("objects").join("pack");
        let io = |source| PackError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        match crate::git::pack_leftovers::remove_abandoned(git_dir) {
            Ok((removed, bytes)) if !removed.is_empty() => {
                tracing::info!(
                    count = removed.len(),
                    bytes,
                    "removed temporary packs of killed imports"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not look for abandoned temporary packs"),
        }
        // Created under a name the sweep ignores, locked, and only then
        // renamed to its `.pack` name: a sweep (of another writer in this
        // process, or another process) never sees an unlocked live pack.
        let staging = dir.join(format!(
            "{TEMP_PACK_PREFIX}{}_{}.new",
            std::process::id(),
            unique_suffix()
        ));
        let tmp_pack = staging.with_extension("pack");
        let file = File::create(&staging).map_err(io)?;
        // Held until the pack is renamed into place (or this writer dies):
        // it is what tells a live temporary pack from an abandoned one. A
        // file system without locks leaves the pack unlocked, and the sweep
        // then also fails to lock it and keeps it.
        let renamed = match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
                "{} is locked by another writer",
                staging.display()
            ))),
            _ => std::fs::rename(&staging, &tmp_pack),
        };
        if let Err(error) = renamed {
            let _ = std::fs::remove_file(&staging);
            return Err(io(error));
        }
        let mut out = Counting {
            inner: BufWriter::with_capacity(1 << 20, file),
            written: 0,
            sha: Sha1::new(),
            crc: crc32fast::Hasher::new(),
        };
        let mut header = b"PACK".to_vec();
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        out.write_all(&header).map_err(io)?;
        Ok(Self {
            dir,
            tmp_pack,
            out: Some(out),
            entries: Vec::with_capacity(count as usize),
            fast: Compress::new(Compression::fast(), true),
            stored: Compress::new(Compression::none(), true),
            input: vec![0; CHUNK],
            output: vec![0; CHUNK + CHUNK / 8 + 64],
        })
    }

    /// Adds object `id` (already verified by the caller) of `len` bytes read
    /// from `data`.
    pub fn add(
        &mut self,
        id: ObjectId,
        kind: ObjectType,
        len: u64,
        mut data: impl Read,
    ) -> Result<(), PackError> {
        let io = self.io_error();
        let out = open_output(&mut self.out).map_err(&io)?;
        // Decide on compression from the first bytes of large objects.
        let mut head = vec![0u8; SAMPLE_BYTES.min(len as usize)];
        data.read_exact(&mut head).map_err(|_| PackError::Short {
            id,
            got: 0,
            expected: len,
        })?;
        let compress = if len >= SAMPLE_THRESHOLD && !compresses(&head) {
            &mut self.stored
        } else {
            &mut self.fast
        };
        compress.reset();
        let offset = begin_entry(out, kind, len).map_err(&io)?;
        deflate(compress, &head, false, &mut self.output, out).map_err(&io)?;
        let mut rest = len - head.len() as u64;
        loop {
            let want = usize::try_from(rest).unwrap_or(usize::MAX).min(CHUNK);
            let got = read_full(&mut data, &mut self.input[..want]).map_err(&io)?;
            rest -= got as u64;
            let last = got < want || rest == 0;
            deflate(compress, &self.input[..got], last, &mut self.output, out).map_err(&io)?;
            if got < want {
                return Err(PackError::Short {
                    id,
                    got: len - rest,
                    expected: len,
                });
            }
            if last {
                break;
            }
        }
        self.entries.push((id, end_entry(out), offset));
        Ok(())
    }

    /// Adds objects held in memory, deflated on every core (one thread per
    /// core, each with its own deflate stream, into memory) and then written
    /// in order: a history of thousands of objects is otherwise bound by one
    /// core's deflate.
    pub fn add_all(&mut self, objects: &[(ObjectId, ObjectType, &[u8])]) -> Result<(), PackError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(objects.len().div_ceil(64).max(1));
        let per_thread = objects.len().div_ceil(threads).max(1);
        let deflated: Vec<Vec<Vec<u8>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = objects
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut fast = Compress::new(Compression::fast(), true);
                        let mut stored = Compress::new(Compression::none(), true);
                        let mut output = vec![0; CHUNK + CHUNK / 8 + 64];
                        chunk
                            .iter()
                            .map(|(_, _, data)| {
                                let compress = if data.len() as u64 >= SAMPLE_THRESHOLD
                                    && !compresses(&data[..SAMPLE_BYTES])
                                {
                                    &mut stored
                                } else {
                                    &mut fast
                                };
                                compress.reset();
                                let mut out = Vec::with_capacity(data.len() / 2 + 64);
                                deflate(compress, data, true, &mut output, &mut out).map(|()| out)
                            })
                            .collect::<std::io::Result<Vec<Vec<u8>>>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("a deflate thread panicked")))
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .map_err(|source| PackError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        for ((id, kind, data), zdata) in objects.iter().zip(deflated.into_iter().flatten()) {
            self.add_deflated(*id, *kind, data.len() as u64, &zdata)?;
        }
        Ok(())
    }

    /// Adds an object whose zlib stream is `deflated`.
    fn add_deflated(
        &mut self,
        id: ObjectId,
        kind: ObjectType,
        len: u64,
        deflated: &[u8],
    ) -> Result<(), PackError> {
        let io = self.io_error();
        let out = open_output(&mut self.out).map_err(&io)?;
        let offset = begin_entry(out, kind, len).map_err(&io)?;
        out.write_all(deflated).map_err(&io)?;
        self.entries.push((id, end_entry(out), offset));
        Ok(())
    }

    /// Wraps an I/O error with the pack directory.
    fn io_error(&self) -> impl Fn(std::io::Error) -> PackError + use<> {
        let dir = self.dir.clone();
        move |source| PackError::Io {
            dir: dir.clone(),
            source,
        }
    }

    /// Adds an object held in memory.
    pub fn add_bytes(
        &mut self,
        id: ObjectId,
        kind: ObjectType,
        data: &[u8],
    ) -> Result<(), PackError> {
        self.add(id, kind, data.len() as u64, data)
    }

    /// Writes the trailer and the index, and moves both into place.
    pub fn finish(mut self) -> Result<(), PackError> {
        let io = self.io_error();
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io(std::io::Error::other("pack already finished")))?;
        let trailer: [u8; 20] = out.sha.finalize_reset().into();
        out.inner.write_all(&trailer).map_err(&io)?;
        let file = out.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(&io)?;
        // `file` (and its lock) lives until both renames are done.

        let name = ObjectId(trailer).to_hex();
        let tmp_idx = self.tmp_pack.with_extension("idx");
        let mut idx = File::create(&tmp_idx).map_err(&io)?;
        idx.write_all(&index_bytes(&mut self.entries, &trailer))
            .map_err(&io)?;
        idx.sync_all().map_err(&io)?;
        drop(idx);
        std::fs::rename(&self.tmp_pack, self.dir.join(format!("pack-{name}.pack"))).map_err(&io)?;
        std::fs::rename(&tmp_idx, self.dir.join(format!("pack-{name}.idx"))).map_err(&io)?;
        drop(file);
        Ok(())
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // After finish() the temporary names no longer exist.
        let _ = std::fs::remove_file(&self.tmp_pack);
        let _ = std::fs::remove_file(self.tmp_pack.with_extension("idx"));
    }
}

/// The pack being written, unless `finish` took it.
fn open_output<W>(out: &mut Option<Counting<W>>) -> std::io::Result<&mut Counting<W>> {
    out.as_mut()
        .ok_or_else(|| std::io::Error::other("pack already finished"))
}

/// Starts an entry: restarts its CRC and writes its header; returns where
/// it starts, for the index.
fn begin_entry<W: Write>(
    out: &mut Counting<W>,
    kind: ObjectType,
    len: u64,
) -> std::io::Result<u64> {
    let offset = out.written;
    out.crc = crc32fast::Hasher::new();
    out.write_all(&entry_header(kind, len))?;
    Ok(offset)
}

/// Ends an entry; returns its CRC, for the index.
fn end_entry<W>(out: &mut Counting<W>) -> u32 {
    std::mem::take(&mut out.crc).finalize()
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Bytes read and deflated at a time.
const CHUNK: usize = 64 * 1024;

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(data: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Feeds `input` to `compress` and writes what it produces to `out`
/// through the scratch buffer `output`; with `finish`, ends the zlib
/// stream.
fn deflate(
    compress: &mut Compress,
    mut input: &[u8],
    finish: bool,
    output: &mut [u8],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::None
    };
    loop {
        let (before_in, before_out) = (compress.total_in(), compress.total_out());
        let status = compress
            .compress(input, output, flush)
            .map_err(std::io::Error::other)?;
        let consumed = (compress.total_in() - before_in) as usize;
        let produced = (compress.total_out() - before_out) as usize;
        out.write_all(&output[..produced])?;
        input = &input[consumed..];
        match status {
            Status::StreamEnd => return Ok(()),
            _ if !finish && input.is_empty() => return Ok(()),
            Status::BufError if consumed == 0 && produced == 0 => {
                return Err(std::io::Error::other("deflate made no progress"));
            }
            _ => {}
        }
    }
}

/// Whether deflate shrinks `sample` by at least a tenth.
fn compresses(sample: &[u8]) -> bool {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
    if encoder.write_all(sample).is_err() {
        return true;
    }
    encoder
        .finish()
        .map(|out| out.len() * 10 < sample.len() * 9)
        .unwrap_or(true)
}

/// A version 2 pack index for `entries` (id, CRC32, offset).
fn index_bytes(entries: &mut [(ObjectId, u32, u64)], pack_checksum: &[u8; 20]) -> Vec<u8> {
    entries.sort_by_key(|(id, _, _)| *id);
    let mut out = Vec::with_capacity(1072 + entries.len() * 28 + 40);
    out.extend_from_slice(&[0xff, b't', b'O', b'c']);
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (id, _, _) in entries.iter() {
        fanout[id.0[0] as usize] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        out.extend_from_slice(&running.to_be_bytes());
    }
    for (id, _, _) in entries.iter() {
        out.extend_from_slice(&id.0);
    }
    for (_, crc, _) in entries.iter() {
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, _, offset) in entries.iter() {
        if *offset < 0x8000_0000 {
            out.extend_from_slice(&(*offset as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
            large.push(*offset);
        }
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum);
    let checksum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&checksum);
    out
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
        assert_eq!(entry_header(ObjectType::Blob, 5), vec![0x35]);
        assert_eq!(entry_header(ObjectType::Blob, 16), vec![0xb0, 0x01]);
        assert_eq!(entry_header(ObjectType::Commit, 300), vec![0x9c, 0x12]);
    }

    #[test]
    fn objects_round_trip_through_a_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init_bare(dir.path()).expect("init");
        let small = b"hello\n".to_vec();
        let text = b"compressible line\n".repeat(200_000);
        let mut x = 1u64;
        let noise: Vec<u8> = (0..3 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let many: Vec<Vec<u8>> = (1..300u32)
            .map(|i| {
                format!("object {i}\n")
                    .repeat(1 + i as usize % 40)
                    .into_bytes()
            })
            .collect();
        let empty = Vec::new();
        let mut blobs = vec![&small, &text, &noise, &empty];
        // Streamed one by one, then a batch deflated on every core.
        let count = (blobs.len() + many.len()) as u32;
        let mut pack = PackWriter::new(repo.path(), count).expect("pack");
        for blob in &blobs {
            let id = ObjectId::for_object("blob", blob);
            pack.add_bytes(id, ObjectType::Blob, blob).expect("add");
        }
        let batch: Vec<_> = many
            .iter()
            .map(|b| {
                (
                    ObjectId::for_object("blob", b),
                    ObjectType::Blob,
                    b.as_slice(),
                )
            })
            .collect();
        pack.add_all(&batch).expect("add all");
        pack.finish().expect("finish");
        blobs.extend(many.iter());
        let odb = repo.odb().expect("odb");
        odb.refresh().expect("refresh");
        for blob in blobs {
            let id = ObjectId::for_object("blob", blob).to_git();
            assert_eq!(odb.read(id).expect("read").data(), &blob[..]);
        }
        // Git itself agrees the pack and index are sound.
        let verify = std::process::Command::new("git")
            .args(["verify-pack", "-v"])
            .arg(
                std::fs::read_dir(dir.path().join("objects/pack"))
                    .expect("pack dir")
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|e| e == "idx"))
                    .expect("an index"),
            )
            .output()
            .expect("git verify-pack");
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}
