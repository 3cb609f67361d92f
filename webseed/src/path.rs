//! Request paths: what a URL names, decided without I/O.
//!
//! BEP 19 clients build a file's URL as `<url-list entry>/<torrent name>/<path components>`, each
//! component percent-encoded UTF-8. With the torrent `name` set to the commit id, the server sees
//! `/<commit>/<path...>`; the torrent itself lives at `/<commit>.torrent`.
//!
//! Everything that could step outside a commit's tree is refused here, after decoding: empty
//! components (`//etc/passwd`, `/c//x`), `.` and `..` (also as `%2e%2e`), and components holding
//! `/` (`%2F`) or NUL. Sources are therefore never asked about such paths.
//!
//! A component may decode to bytes that are not UTF-8 (`latin1-%E9.txt`): that is how a static
//! server over a checkout, and a Git host, name a file whose name is not UTF-8, and clients that
//! know the raw name ask for it so. Such a path is a [`Target::RawFile`], checked by the same
//! rules on its bytes; the source decides what raw names it has.

use crate::commit::{CommitId, CommitIdError};

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/<commit>/<path...>`: one file of a commit's tree.
    File {
        /// The commit, normalised to lowercase.
        commit: CommitId,
        /// The decoded path components; never empty, each a plain file or directory name.
        path: Vec<String>,
    },
    /// `/<commit>/<path...>` where some component is not UTF-8 once decoded: one file of a
    /// commit's tree named by its raw name bytes.
    RawFile {
        /// The commit, normalised to lowercase.
        commit: CommitId,
        /// The decoded path components, at least one of them not UTF-8; never empty, each a
        /// plain file or directory name (the same checks as [`Target::File`]'s).
        path: Vec<Vec<u8>>,
    },
    /// `/<commit>.torrent`: the torrent of a commit.
    Torrent {
        /// The commit, normalised to lowercase.
        commit: CommitId,
    },
}

/// Why a request path names nothing the server can serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The request target is not an absolute path (`*`, or an authority form).
    #[error("the request path does not start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("path component {index} has a malformed percent-escape")]
    BadEscape {
        /// Zero-based component index (the commit is 0).
        index: usize,
    },
    /// The decoded bytes of the first component (the commit) are not UTF-8.
    #[error("path component {index} is not UTF-8 once decoded")]
    NotUtf8 {
        /// Zero-based component index (the commit is 0).
        index: usize,
    },
    /// An empty component, as in `//x` or a trailing `/`.
    #[error("path component {index} is empty")]
    Empty {
        /// Zero-based component index (the commit is 0).
        index: usize,
    },
    /// A `.` or `..` component, possibly percent-encoded.
    #[error("path component {index} is '.' or '..'")]
    Dot {
        /// Zero-based component index (the commit is 0).
        index: usize,
    },
    /// A component that decodes to something holding `/` or NUL.
    #[error("path component {index} holds '/' or NUL once decoded")]
    ForbiddenByte {
        /// Zero-based component index (the commit is 0).
        index: usize,
    },
    /// The first component is not a commit id.
    #[error(transparent)]
    Commit(#[from] CommitIdError),
    /// `/`, or a lone component that is neither `<commit>.torrent` nor followed by a file path.
    #[error("the path names no file")]
    NoFile,
}

impl PathError {
    /// Whether the request is malformed (400) rather than naming nothing (404).
    ///
    /// Traversal tricks and broken encodings are the client's error; a well-formed path that
    /// just does not name a commit file is "not found".
    pub fn is_bad_request(&self) -> bool {
        !matches!(self, Self::Commit(_) | Self::NoFile)
    }
}

/// Suffix that turns a commit id into the path of its torrent.
const TORRENT_SUFFIX: &str = ".torrent";

/// Parses the path part of a request target (no query) into what it names.
pub fn parse(raw: &str) -> Result<Target, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if rest.is_empty() {
        return Err(PathError::NoFile);
    }
    let mut components = Vec::new();
    for (index, segment) in rest.split('/').enumerate() {
        components.push(decode_component(segment, index)?);
    }
    let mut components = components.into_iter();
    // `split` always yields at least one item.
    let first = components.next().unwrap_or_default();
    let first = String::from_utf8(first).map_err(|_| PathError::NotUtf8 { index: 0 })?;
    let path: Vec<Vec<u8>> = components.collect();
    if path.is_empty() {
        return match first.strip_suffix(TORRENT_SUFFIX) {
            Some(stem) => Ok(Target::Torrent {
                commit: CommitId::parse(stem)?,
            }),
            None => Err(PathError::NoFile),
        };
    }
    let commit = CommitId::parse(&first)?;
    // UTF-8 names stay strings, the common case every source handles; the
    // bytes go back unchanged when any component is not UTF-8.
    let utf8: Result<Vec<String>, _> = path.iter().map(|c| String::from_utf8(c.clone())).collect();
    Ok(match utf8 {
        Ok(path) => Target::File { commit, path },
        Err(_) => Target::RawFile { commit, path },
    })
}

/// Percent-decodes one component strictly and checks it is a plain name.
fn decode_component(segment: &str, index: usize) -> Result<Vec<u8>, PathError> {
    // Strict on purpose: a lenient decoder passes `%zz` through unchanged,
    // which makes two different URLs name the same file and hides client
    // bugs. A `+` in a path is a `+`.
    let name = xus_codec::percent::decode(segment).map_err(|_| PathError::BadEscape { index })?;
    if name.is_empty() {
        return Err(PathError::Empty { index });
    }
    if name == b"." || name == b".." {
        return Err(PathError::Dot { index });
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(PathError::ForbiddenByte { index });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";

    fn file(path: &[&str]) -> Target {
        Target::File {
            commit: CommitId::parse(C).expect("valid test commit"),
            path: path.iter().map(|&s| s.to_owned()).collect(),
        }
    }

    #[test]
    fn parses_files() {
        assert_eq!(parse(&format!("/{C}/README.md")), Ok(file(&["README.md"])));
        assert_eq!(
            parse(&format!("/{C}/a/b/c.txt")),
            Ok(file(&["a", "b", "c.txt"]))
        );
        assert_eq!(parse(&format!("/{C}/caf%C3%A9%20x")), Ok(file(&["café x"])));
        assert_eq!(parse(&format!("/{C}/caf%c3%a9")), Ok(file(&["café"])));
        // Dots inside names are fine; only whole "." and ".." components are refused.
        assert_eq!(parse(&format!("/{C}/...")), Ok(file(&["..."])));
        assert_eq!(
            parse(&format!("/{C}/.git/x..y")),
            Ok(file(&[".git", "x..y"]))
        );
    }

    #[test]
    fn uppercase_commit_is_normalised() {
        let upper = C.to_ascii_uppercase();
        assert_eq!(parse(&format!("/{upper}/x")), Ok(file(&["x"])));
    }

    #[test]
    fn parses_torrents() {
        let commit = CommitId::parse(C).expect("valid test commit");
        assert_eq!(
            parse(&format!("/{C}.torrent")),
            Ok(Target::Torrent { commit })
        );
        assert!(matches!(parse("/abc.torrent"), Err(PathError::Commit(_))));
    }

    #[test]
    fn refuses_traversal() {
        let cases = [
            (format!("/{C}/../x"), PathError::Dot { index: 1 }),
            (format!("/{C}/%2e%2e/x"), PathError::Dot { index: 1 }),
            (format!("/{C}/%2E./x"), PathError::Dot { index: 1 }),
            (format!("/{C}/./x"), PathError::Dot { index: 1 }),
            (format!("/{C}/a/.."), PathError::Dot { index: 2 }),
            (format!("/{C}/a%2fb"), PathError::ForbiddenByte { index: 1 }),
            (format!("/{C}/a%2Fb"), PathError::ForbiddenByte { index: 1 }),
            (format!("/{C}/a%00"), PathError::ForbiddenByte { index: 1 }),
            (format!("/{C}//x"), PathError::Empty { index: 1 }),
            (format!("/{C}/x/"), PathError::Empty { index: 2 }),
            ("//etc/passwd".to_owned(), PathError::Empty { index: 0 }),
        ];
        for (path, expected) in cases {
            let got = parse(&path);
            assert_eq!(got, Err(expected), "{path}");
            assert!(got.is_err_and(|e| e.is_bad_request()), "{path}");
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_raw_files() {
        let commit = CommitId::parse(C).expect("valid test commit");
        let raw = |path: &[&[u8]]| Target::RawFile {
            commit: commit.clone(),
            path: path.iter().map(|c| c.to_vec()).collect(),
        };
        // The byte itself (either case of hex), as a checkout on disk names the file.
        assert_eq!(
            parse(&format!("/{C}/latin1-%E9.txt")),
            Ok(raw(&[b"latin1-\xe9.txt"]))
        );
        assert_eq!(
            parse(&format!("/{C}/latin1-%e9.txt")),
            Ok(raw(&[b"latin1-\xe9.txt"]))
        );
        assert_eq!(
            parse(&format!("/{C}/d%80r/ok.txt")),
            Ok(raw(&[b"d\x80r", b"ok.txt"]))
        );
        // The torrent's `%XX` text, sent as `%25XX`, is a UTF-8 name.
        assert_eq!(
            parse(&format!("/{C}/latin1-%25E9.txt")),
            Ok(file(&["latin1-%E9.txt"]))
        );
        // Raw names get the same checks.
        assert_eq!(
            parse(&format!("/{C}/%ff/..")),
            Err(PathError::Dot { index: 2 })
        );
        assert_eq!(
            parse(&format!("/{C}/%ff%2F")),
            Err(PathError::ForbiddenByte { index: 1 })
        );
        assert_eq!(
            parse(&format!("/{C}/%ff%00")),
            Err(PathError::ForbiddenByte { index: 1 })
        );
        assert_eq!(
            parse(&format!("/{C}/%ff//x")),
            Err(PathError::Empty { index: 2 })
        );
        // The commit must be UTF-8 (and hex).
        assert_eq!(parse("/%ff/x"), Err(PathError::NotUtf8 { index: 0 }));
        assert_eq!(parse("/%ff.torrent"), Err(PathError::NotUtf8 { index: 0 }));
    }

    #[test]
    fn refuses_bad_encodings() {
        for bad in ["%", "%4", "%zz", "a%g0"] {
            assert_eq!(
                parse(&format!("/{C}/{bad}")),
                Err(PathError::BadEscape { index: 1 }),
                "{bad}"
            );
        }
    }

    #[test]
    fn not_found_shapes() {
        for path in [
            format!("/{C}"),
            "/".to_owned(),
            "/favicon.ico".to_owned(),
            "/x/y".to_owned(),
        ] {
            let got = parse(&path);
            assert!(
                got.as_ref().is_err_and(|e| !e.is_bad_request()),
                "{path}: {got:?}"
            );
        }
        assert_eq!(parse("*"), Err(PathError::NotAbsolute));
    }

    proptest! {
        #[test]
        fn never_panics(raw in "\\PC*") {
            let _ = parse(&raw);
        }

        /// Whatever is accepted is a plain relative name: no traversal can come out of it.
        #[test]
        fn accepted_components_are_plain(raw in "/[0-9a-f]{40}(/([a-z.%2eEfF0/]|%2[eEfF]|%00|%[8-9a-fA-F][0-9a-fA-F]){0,6}){1,4}") {
            let path = match parse(&raw) {
                Ok(Target::File { path, .. }) => path.into_iter().map(String::into_bytes).collect(),
                Ok(Target::RawFile { path, .. }) => {
                    prop_assert!(path.iter().any(|c| std::str::from_utf8(c).is_err()));
                    path
                }
                _ => Vec::new(),
            };
            for name in path {
                prop_assert!(!name.is_empty() && name != b"." && name != b"..");
                prop_assert!(!name.contains(&b'/') && !name.contains(&0));
            }
        }

        /// Encoding any name byte by byte and parsing it gives the name back.
        #[test]
        fn round_trips_encoded_names(name in "[^/\\x00]{1,20}") {
            prop_assume!(name != "." && name != "..");
            let mut encoded = String::new();
            for byte in name.bytes() {
                xus_codec::percent::push_escape(byte, &mut encoded);
            }
            prop_assert_eq!(parse(&format!("/{C}/{encoded}")), Ok(file(&[&name])));
        }
    }
}
