//! Request paths: what a URL names, decided without I/O.
//!
//! BEP 19 clients build a file's URL as `<url-list entry>/<torrent name>/<path components>`, each
//! component percent-encoded UTF-8. With the torrent `name` set to the commit id, the server sees
//! `/<commit>/<path...>`; the torrent itself lives at `/<commit>.torrent`.
//!
//! Everything that could step outside a commit's tree is refused here, after decoding: empty
//! components (`//etc/passwd`, `/c//x`), `.` and `..` (also as `%2e%2e`), and components holding
//! `/` (`%2F`) or NUL. Sources are therefore never asked about such paths.

use crate::commit::{CommitId, CommitIdError};

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/<commit>/<path...>`: one file of a commit's tree.
    File {
        /// The commit, normalised to lowercase.
        commit: CommitId,
        /// The decoded path components; never empty, each a plain file or directory name.
        path: Vec<String>,
    },
    /// `/<commit>.torrent`: the torrent of a commit.
    Torrent {
        /// The commit, normalised to lowercase.
        commit: CommitId,
    },
}

/// Why a request path names nothing the server can serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// The request target is not an absolute path (`*`, or an authority form).
    #[error("the request path does not start with '/'")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("path component {index} has a malformed percent-escape")]
    BadEscape {
        /// Zero-based component index (the commit is 0).
        index: usize,
    },
    /// The decoded bytes of a component are not UTF-8.
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
    pub(crate) fn is_bad_request(&self) -> bool {
        !matches!(self, Self::Commit(_) | Self::NoFile)
    }
}

/// Suffix that turns a commit id into the path of its torrent.
const TORRENT_SUFFIX: &str = ".torrent";

/// Parses the path part of a request target (no query) into what it names.
pub(crate) fn parse(raw: &str) -> Result<Target, PathError> {
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
    let path: Vec<String> = components.collect();
    if path.is_empty() {
        return match first.strip_suffix(TORRENT_SUFFIX) {
            Some(stem) => Ok(Target::Torrent {
                commit: CommitId::parse(stem)?,
            }),
            None => Err(PathError::NoFile),
        };
    }
    Ok(Target::File {
        commit: CommitId::parse(&first)?,
        path,
    })
}

/// Percent-decodes one component strictly and checks it is a plain name.
fn decode_component(segment: &str, index: usize) -> Result<String, PathError> {
    // Strict on purpose: a lenient decoder passes `%zz` through unchanged,
    // which makes two different URLs name the same file and hides client
    // bugs. A `+` in a path is a `+`.
    let bytes = xus_codec::percent::decode(segment).map_err(|_| PathError::BadEscape { index })?;
    let name = String::from_utf8(bytes).map_err(|_| PathError::NotUtf8 { index })?;
    if name.is_empty() {
        return Err(PathError::Empty { index });
    }
    if name == "." || name == ".." {
        return Err(PathError::Dot { index });
    }
    if name.contains(['/', '\0']) {
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
    fn refuses_bad_encodings() {
        assert_eq!(
            parse(&format!("/{C}/%ff")),
            Err(PathError::NotUtf8 { index: 1 })
        );
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
        fn accepted_components_are_plain(raw in "/[0-9a-f]{40}(/([a-z.%2eEfF0/]|%2[eEfF]|%00){0,6}){1,4}") {
            if let Ok(Target::File { path, .. }) = parse(&raw) {
                prop_assert!(!path.is_empty());
                for name in path {
                    prop_assert!(!name.is_empty() && name != "." && name != "..");
                    prop_assert!(!name.contains(['/', '\0']));
                }
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
