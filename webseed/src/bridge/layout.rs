//! Where a torrent's bytes live: pieces mapped onto files, and files onto BEP 19 URLs.
//!
//! Pure: no I/O, so the arithmetic that decides which bytes are fetched is tested on its own.

/// What the bridge needs to know of a torrent: the parts of its info dictionary that place
/// bytes, and its info hash.
///
/// The bridge trusts these fields to match the torrent the engine downloads; it does not check
/// piece hashes (the engine does, and drops a peer whose pieces fail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentLayout {
    /// The torrent's SHA-1 info hash; connections for any other are refused.
    pub info_hash: [u8; 20],
    /// The info dictionary's `name`: the top folder of a multi-file torrent (a commit id in
    /// xus), or the file name of a single-file one. Part of every webseed URL.
    pub name: String,
    /// The info dictionary's `piece length`, in bytes; at least 1.
    pub piece_length: u64,
    /// The files in torrent order: their bytes, concatenated, are the torrent's bytes.
    pub files: Vec<LayoutFile>,
}

/// One file of a [`TorrentLayout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutFile {
    /// Path components below the torrent's `name`, as in the info dictionary's `path` list.
    /// Empty only for the single file of a single-file torrent, which is `name` itself.
    pub path: Vec<String>,
    /// The file's length in bytes; zero-length files take no bytes and are never fetched.
    pub length: u64,
    /// The name bytes a checkout on disk holds, when they differ from `path`; `None` otherwise
    /// (every name is the UTF-8 of its `path` component).
    ///
    /// A xus torrent writes a Git name that is not UTF-8 with each invalid byte as `%XX` in
    /// `path` (`latin1-\xe9.txt` becomes `latin1-%E9.txt`). A static server over a checkout
    /// (nginx, a Git host's raw URLs) only has the file under its raw name, so the bridge asks
    /// for [`raw_url_for`] first and falls back to [`url_for`] (what `xus webseed` before
    /// raw names, and every stock client, use). Same number of components as `path`.
    pub raw_path: Option<Vec<Vec<u8>>>,
}

/// A run of bytes inside one file: part of a torrent byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index into [`TorrentLayout::files`].
    pub file: usize,
    /// Offset of the run inside that file.
    pub offset: u64,
    /// Length of the run; never zero.
    pub length: u64,
}

/// Returned by [`TorrentLayout::check`] when a layout cannot describe a real torrent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// `piece_length` is zero.
    #[error("the piece length is zero")]
    ZeroPieceLength,
    /// `name` is empty.
    #[error("the torrent name is empty")]
    EmptyName,
    /// A file with an empty path, or an empty path component, in a multi-file torrent.
    #[error("file {file} of torrent '{name}' has an empty path or path component")]
    EmptyPath {
        /// The torrent's name.
        name: String,
        /// The file's index.
        file: usize,
    },
    /// A [`LayoutFile::raw_path`] with another component count than `path`, or an empty
    /// component.
    #[error("file {file} of torrent '{name}' has a raw path that does not match its path")]
    RawPath {
        /// The torrent's name.
        name: String,
        /// The file's index.
        file: usize,
    },
    /// More pieces than a `u32` piece index can name, or a total length past `u64`.
    #[error("torrent '{name}' is too large for 32-bit piece indices")]
    TooLarge {
        /// The torrent's name.
        name: String,
    },
}

/// Returned by [`TorrentLayout::segments`] for a range that is not inside one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bytes {offset}+{length} of piece {piece} are outside the torrent")]
pub struct OutOfRange {
    /// The piece index asked for.
    pub piece: u32,
    /// The offset asked for, inside the piece.
    pub offset: u64,
    /// The length asked for.
    pub length: u64,
}

impl TorrentLayout {
    /// Checks the layout can be served: a non-zero piece length, a name, non-empty paths (one
    /// empty path allowed for a single-file torrent), raw paths that match them, and a piece
    /// count that fits a `u32`.
    ///
    /// # Errors
    ///
    /// The first [`LayoutError`] found.
    pub fn check(&self) -> Result<(), LayoutError> {
        if self.piece_length == 0 {
            return Err(LayoutError::ZeroPieceLength);
        }
        if self.name.is_empty() {
            return Err(LayoutError::EmptyName);
        }
        let single_file = self.files.len() == 1 && self.files[0].path.is_empty();
        if !single_file {
            let bad = self
                .files
                .iter()
                .position(|f| f.path.is_empty() || f.path.iter().any(String::is_empty));
            if let Some(file) = bad {
                return Err(LayoutError::EmptyPath {
                    name: self.name.clone(),
                    file,
                });
            }
        }
        let bad_raw = self.files.iter().position(|f| {
            f.raw_path
                .as_ref()
                .is_some_and(|raw| raw.len() != f.path.len() || raw.iter().any(Vec::is_empty))
        });
        if let Some(file) = bad_raw {
            return Err(LayoutError::RawPath {
                name: self.name.clone(),
                file,
            });
        }
        let too_large = || LayoutError::TooLarge {
            name: self.name.clone(),
        };
        let total = self
            .files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.length))
            .ok_or_else(too_large)?;
        if total.div_ceil(self.piece_length) > u64::from(u32::MAX) {
            return Err(too_large());
        }
        Ok(())
    }

    /// The sum of the file lengths (saturating, for unchecked layouts).
    #[must_use]
    pub fn total_length(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.length))
    }

    /// How many pieces the torrent has: the total length over the piece length, rounded up.
    /// Assumes a [checked](Self::check) layout (and answers 0 for a zero piece length).
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        if self.piece_length == 0 {
            return 0;
        }
        let count = self.total_length().div_ceil(self.piece_length);
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The length of piece `piece`: the piece length, except for a shorter last piece; `None`
    /// past the end.
    #[must_use]
    pub fn piece_size(&self, piece: u32) -> Option<u64> {
        piece_size(self.total_length(), self.piece_length, piece)
    }

    /// Where bytes `offset..offset + length` of piece `piece` live, file by file in order;
    /// zero-length files are skipped and an empty range maps to no segment.
    ///
    /// Indexes the file list on each call; the bridge keeps one index per torrent and maps each
    /// piece in logarithmic time.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] when the range does not fit inside the piece, or the piece does not exist.
    pub fn segments(
        &self,
        piece: u32,
        offset: u64,
        length: u64,
    ) -> Result<Vec<Segment>, OutOfRange> {
        FileStarts::new(self).segments(self, piece, offset, length)
    }
}

/// [`TorrentLayout::piece_size`] from the total length.
fn piece_size(total: u64, piece_length: u64, piece: u32) -> Option<u64> {
    let start = u64::from(piece).checked_mul(piece_length)?;
    (start < total).then(|| piece_length.min(total - start))
}

/// Each file's first byte in the torrent and the total length, computed once, so ranges map by
/// binary search and piece sizes in constant time.
///
/// Must be built from the same layout it is used with.
#[derive(Clone, Debug)]
pub(crate) struct FileStarts {
    starts: Vec<u64>,
    total: u64,
}

impl FileStarts {
    /// Indexes `layout`'s files.
    pub(crate) fn new(layout: &TorrentLayout) -> Self {
        let mut next = 0u64;
        let starts = layout
            .files
            .iter()
            .map(|f| {
                let start = next;
                next = next.saturating_add(f.length);
                start
            })
            .collect();
        Self {
            starts,
            total: next,
        }
    }

    /// [`TorrentLayout::piece_size`], without summing the files again.
    pub(crate) fn piece_size(&self, layout: &TorrentLayout, piece: u32) -> Option<u64> {
        piece_size(self.total, layout.piece_length, piece)
    }

    /// [`TorrentLayout::segments`], by binary search.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] when the range does not fit inside the piece, or the piece does not exist.
    pub(crate) fn segments(
        &self,
        layout: &TorrentLayout,
        piece: u32,
        offset: u64,
        length: u64,
    ) -> Result<Vec<Segment>, OutOfRange> {
        let out_of_range = OutOfRange {
            piece,
            offset,
            length,
        };
        let size = self.piece_size(layout, piece).ok_or(out_of_range)?;
        let end_in_piece = offset.checked_add(length).ok_or(out_of_range)?;
        if end_in_piece > size {
            return Err(out_of_range);
        }
        let mut position = u64::from(piece) * layout.piece_length + offset;
        let end = position + length;
        // The last file starting at or before `position`; zero-length files share a start with
        // their successor and are skipped by the length check below.
        let mut file = self.starts.partition_point(|&start| start <= position);
        file = file.saturating_sub(1);
        let mut segments = Vec::new();
        while position < end {
            let Some((start, info)) = self.starts.get(file).zip(layout.files.get(file)) else {
                // Unreachable for a layout this index was built from: `end` is in the torrent.
                return Err(out_of_range);
            };
            let file_end = start + info.length;
            if position < file_end {
                let run = file_end.min(end) - position;
                segments.push(Segment {
                    file,
                    offset: position - start,
                    length: run,
                });
                position += run;
            }
            file += 1;
        }
        Ok(segments)
    }
}

/// The BEP 19 URL of a file: `base`, a `/` if it lacks one, then `name` and each `path`
/// component, percent-encoded as UTF-8.
///
/// For a single-file torrent (`path` empty) BEP 19 says a `base` ending in `/` gets `name`
/// appended and any other `base` is the file's own URL, so it is returned unchanged.
#[must_use]
pub fn url_for(base: &str, name: &str, path: &[String]) -> String {
    url_of(base, name, path)
}

/// As [`url_for`], with path components given as raw bytes (a [`LayoutFile::raw_path`]), each
/// byte outside RFC 3986's unreserved set written `%XX`: the byte `0xE9` becomes `%E9`, which
/// is what nginx or lighttpd over a checkout, and a Git host's raw URLs, serve.
#[must_use]
pub fn raw_url_for(base: &str, name: &str, path: &[Vec<u8>]) -> String {
    url_of(base, name, path)
}

fn url_of<C: AsRef<[u8]>>(base: &str, name: &str, path: &[C]) -> String {
    if path.is_empty() && !base.ends_with('/') {
        return base.to_owned();
    }
    let mut url = String::with_capacity(base.len() + name.len() + 64);
    url.push_str(base);
    if !url.ends_with('/') {
        url.push('/');
    }
    // RFC 3986's unreserved set only: `/`, `%`, `?` and `#` inside a name
    // must not change what the URL names.
    xus_codec::percent::encode_into(name.as_bytes(), b"", &mut url);
    for component in path {
        url.push('/');
        xus_codec::percent::encode_into(component.as_ref(), b"", &mut url);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, length: u64) -> LayoutFile {
        LayoutFile {
            path: path.split('/').map(str::to_owned).collect(),
            length,
            raw_path: None,
        }
    }

    /// Files of 10, 0, 7 and 5 bytes in pieces of 8: pieces 0..8, 8..16, 16..22 (short).
    fn layout() -> TorrentLayout {
        TorrentLayout {
            info_hash: [1; 20],
            name: "t".into(),
            piece_length: 8,
            files: vec![
                file("a", 10),
                file("empty", 0),
                file("dir/b", 7),
                file("c", 5),
            ],
        }
    }

    fn seg(file: usize, offset: u64, length: u64) -> Segment {
        Segment {
            file,
            offset,
            length,
        }
    }

    #[test]
    fn counts_pieces_and_the_short_last_one() {
        let layout = layout();
        assert_eq!(layout.check(), Ok(()));
        assert_eq!(layout.total_length(), 22);
        assert_eq!(layout.piece_count(), 3);
        assert_eq!(layout.piece_size(0), Some(8));
        assert_eq!(layout.piece_size(2), Some(6));
        assert_eq!(layout.piece_size(3), None);
        let exact = TorrentLayout {
            files: vec![file("a", 16)],
            ..layout
        };
        assert_eq!(exact.piece_count(), 2);
        assert_eq!(exact.piece_size(1), Some(8));
    }

    #[test]
    fn ranges_map_across_files_and_skip_empty_ones() {
        let layout = layout();
        assert_eq!(layout.segments(0, 0, 8), Ok(vec![seg(0, 0, 8)]));
        // Bytes 8..16: the end of `a`, nothing of `empty`, most of `dir/b`.
        assert_eq!(
            layout.segments(1, 0, 8),
            Ok(vec![seg(0, 8, 2), seg(2, 0, 6)])
        );
        // Bytes 10..12 start exactly at `empty` and `dir/b`.
        assert_eq!(layout.segments(1, 2, 2), Ok(vec![seg(2, 0, 2)]));
        // The short last piece: the last byte of `dir/b`, then all of `c`.
        assert_eq!(
            layout.segments(2, 0, 6),
            Ok(vec![seg(2, 6, 1), seg(3, 0, 5)])
        );
        assert_eq!(layout.segments(2, 5, 1), Ok(vec![seg(3, 4, 1)]));
        assert_eq!(layout.segments(2, 6, 0), Ok(vec![]));
    }

    #[test]
    fn ranges_outside_a_piece_are_refused() {
        let layout = layout();
        for (piece, offset, length) in
            [(2, 0, 7), (2, 6, 1), (0, 1, 8), (3, 0, 1), (0, u64::MAX, 2)]
        {
            assert_eq!(
                layout.segments(piece, offset, length),
                Err(OutOfRange {
                    piece,
                    offset,
                    length
                })
            );
        }
    }

    #[test]
    fn leading_and_trailing_empty_files_take_no_bytes() {
        let layout = TorrentLayout {
            files: vec![file("e1", 0), file("a", 3), file("e2", 0), file("e3", 0)],
            ..layout()
        };
        assert_eq!(layout.piece_count(), 1);
        assert_eq!(layout.segments(0, 0, 3), Ok(vec![seg(1, 0, 3)]));
        let empty = TorrentLayout {
            files: vec![file("e", 0)],
            ..layout
        };
        assert_eq!(empty.piece_count(), 0);
        assert!(empty.segments(0, 0, 0).is_err());
    }

    #[test]
    fn check_refuses_unservable_layouts() {
        let zero = TorrentLayout {
            piece_length: 0,
            ..layout()
        };
        assert_eq!(zero.check(), Err(LayoutError::ZeroPieceLength));
        assert_eq!(zero.piece_count(), 0);
        let unnamed = TorrentLayout {
            name: String::new(),
            ..layout()
        };
        assert_eq!(unnamed.check(), Err(LayoutError::EmptyName));
        let mut empty_component = layout();
        empty_component.files[2].path = vec!["dir".into(), String::new()];
        assert!(matches!(
            empty_component.check(),
            Err(LayoutError::EmptyPath { file: 2, .. })
        ));
        let huge = TorrentLayout {
            piece_length: 1,
            files: vec![file("a", u64::from(u32::MAX) + 1)],
            ..layout()
        };
        assert!(matches!(huge.check(), Err(LayoutError::TooLarge { .. })));
        let single = TorrentLayout {
            files: vec![LayoutFile {
                path: vec![],
                length: 3,
                raw_path: None,
            }],
            ..layout()
        };
        assert_eq!(single.check(), Ok(()));
        let mut short_raw = layout();
        short_raw.files[2].raw_path = Some(vec![b"dir".to_vec()]);
        assert!(matches!(
            short_raw.check(),
            Err(LayoutError::RawPath { file: 2, .. })
        ));
        let mut empty_raw = layout();
        empty_raw.files[2].raw_path = Some(vec![b"dir".to_vec(), Vec::new()]);
        assert!(matches!(
            empty_raw.check(),
            Err(LayoutError::RawPath { file: 2, .. })
        ));
        let mut good_raw = layout();
        good_raw.files[2].raw_path = Some(vec![b"d\x80r".to_vec(), b"b".to_vec()]);
        assert_eq!(good_raw.check(), Ok(()));
    }

    #[test]
    fn urls_follow_bep19() {
        let path = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            url_for("http://h/", "abc", &path("dir/f.txt")),
            "http://h/abc/dir/f.txt"
        );
        assert_eq!(
            url_for("http://h/seed", "abc", &path("x")),
            "http://h/seed/abc/x"
        );
        assert_eq!(
            url_for("http://h/", "n m", &path("café x/a+b%?#&=~-._")),
            "http://h/n%20m/caf%C3%A9%20x/a%2Bb%25%3F%23%26%3D~-._"
        );
        // Single-file torrents: a folder URL gets the name, a file URL is used as is.
        assert_eq!(url_for("http://h/d/", "f.bin", &[]), "http://h/d/f.bin");
        assert_eq!(url_for("http://h/f.bin", "f.bin", &[]), "http://h/f.bin");
    }

    #[test]
    fn raw_urls_escape_each_name_byte() {
        let raw = |p: &[&[u8]]| p.iter().map(|c| c.to_vec()).collect::<Vec<_>>();
        // The byte itself, as a checkout on disk and a Git host name the file.
        assert_eq!(
            raw_url_for("http://h/", "abc", &raw(&[b"d\x80r", b"latin1-\xe9.txt"])),
            "http://h/abc/d%80r/latin1-%E9.txt"
        );
        // What the torrent's UTF-8 path gives for the same file.
        let torrent = vec!["d%80r".to_owned(), "latin1-%E9.txt".to_owned()];
        assert_eq!(
            url_for("http://h/", "abc", &torrent),
            "http://h/abc/d%2580r/latin1-%25E9.txt"
        );
        // UTF-8 names give the same URL either way.
        assert_eq!(
            raw_url_for("http://h/", "abc", &raw(&["café x/%?".as_bytes()])),
            url_for("http://h/", "abc", &["café x/%?".to_owned()])
        );
        assert_eq!(
            raw_url_for("http://h/f.bin", "f.bin", &[]),
            "http://h/f.bin"
        );
    }

    proptest! {
        #[test]
        fn segments_tile_every_piece(
            lengths in proptest::collection::vec(0u64..40, 1..8),
            piece_length in 1u64..50,
        ) {
            let layout = TorrentLayout {
                info_hash: [0; 20],
                name: "t".into(),
                piece_length,
                files: lengths
                    .iter()
                    .enumerate()
                    .map(|(i, &length)| LayoutFile {
                        path: vec![format!("f{i}")],
                        length,
                        raw_path: None,
                    })
                    .collect(),
            };
            let starts = FileStarts::new(&layout);
            let mut next = (0usize, 0u64);
            let mut covered = 0;
            for piece in 0..layout.piece_count() {
                let size = layout.piece_size(piece).unwrap_or(0);
                let segments = starts.segments(&layout, piece, 0, size);
                prop_assert_eq!(&segments, &layout.segments(piece, 0, size));
                for segment in segments.unwrap_or_default() {
                    // Segments continue exactly where the previous one stopped.
                    if segment.file != next.0 {
                        prop_assert_eq!(next.1, layout.files[next.0].length);
                        prop_assert!(layout.files[next.0 + 1..segment.file].iter().all(|f| f.length == 0));
                        prop_assert_eq!(segment.offset, 0);
                    } else {
                        prop_assert_eq!(segment.offset, next.1);
                    }
                    prop_assert!(segment.length > 0);
                    prop_assert!(segment.offset + segment.length <= layout.files[segment.file].length);
                    next = (segment.file, segment.offset + segment.length);
                    covered += segment.length;
                }
            }
            prop_assert_eq!(covered, layout.total_length());
        }
    }
}
