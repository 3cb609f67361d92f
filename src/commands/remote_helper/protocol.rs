//! The lines Git and a remote helper exchange (gitremote-helpers(7)), read
//! and written without I/O policy: Git sends one command per line, `fetch`
//! and `push` in batches ended by a blank line, and a blank line (or the end
//! of input) to finish.

use std::io::BufRead;

use crate::git::object::ObjectId;

/// Longest command line read; Git's are a ref name or two long.
pub const MAX_LINE: usize = 64 * 1024;

/// Most refs in one `fetch` or `push` batch.
pub const MAX_BATCH: usize = 10_000;

/// One command from Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `capabilities`.
    Capabilities,
    /// `option <name> <value>`.
    Option {
        /// The option's name.
        name: String,
        /// Its value, as Git wrote it.
        value: String,
    },
    /// `list`, or `list for-push`.
    List {
        /// Git is about to push.
        for_push: bool,
    },
    /// A batch of `fetch <id> <ref>` lines.
    Fetch(Vec<FetchRef>),
    /// A batch of `push [+]<src>:<dst>` lines.
    Push(Vec<PushSpec>),
    /// A command this helper does not know (answered with an error).
    Unknown(String),
}

/// One `fetch` line: Git wants `id`, which `list` gave as `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRef {
    /// The object Git wants.
    pub id: ObjectId,
    /// The ref `list` named it by.
    pub name: String,
}

/// One `push` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSpec {
    /// A leading `+`: the user asked to force.
    pub force: bool,
    /// The local ref or expression; empty to delete `dst`.
    pub src: String,
    /// The remote ref to update.
    pub dst: String,
}

/// Why input from Git could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading stdin failed.
    #[error("reading Git's commands")]
    Io(#[from] std::io::Error),
    /// A line over [`MAX_LINE`] bytes.
    #[error("a command line from Git is over {MAX_LINE} bytes")]
    LineTooLong,
    /// Not UTF-8.
    #[error("a command line from Git is not UTF-8")]
    NotUtf8,
    /// A malformed `fetch` or `push` line.
    #[error("malformed line from Git: {0:?}")]
    Malformed(String),
    /// A batch over [`MAX_BATCH`] refs.
    #[error("a batch from Git holds more than {MAX_BATCH} refs")]
    BatchTooLarge,
}

/// Reads Git's commands one request at a time.
pub struct Requests<R> {
    input: R,
}

impl<R: BufRead> Requests<R> {
    /// Commands from `input` (the helper's stdin).
    pub fn new(input: R) -> Self {
        Self { input }
    }

    /// The next request; `None` at the blank line or end of input that
    /// ends the session.
    ///
    /// # Errors
    ///
    /// See [`ProtocolError`].
    pub fn next_request(&mut self) -> Result<Option<Request>, ProtocolError> {
        let Some(line) = self.line()? else {
            return Ok(None);
        };
        if line.is_empty() {
            return Ok(None);
        }
        let (command, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        Ok(Some(match command {
            "capabilities" if rest.is_empty() => Request::Capabilities,
            "option" => {
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                Request::Option {
                    name: name.to_owned(),
                    value: value.to_owned(),
                }
            }
            "list" if rest.is_empty() => Request::List { for_push: false },
            "list" if rest == "for-push" => Request::List { for_push: true },
            "fetch" => Request::Fetch(self.batch(&line, "fetch ", parse_fetch)?),
            "push" => Request::Push(self.batch(&line, "push ", parse_push)?),
            _ => Request::Unknown(line),
        }))
    }

    /// The batch that starts with `first`: every following line with the
    /// same `prefix`, up to the blank line that ends it.
    fn batch<T>(
        &mut self,
        first: &str,
        prefix: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, ProtocolError> {
        let mut items = Vec::new();
        let mut line = first.to_owned();
        loop {
            let item = line
                .strip_prefix(prefix)
                .and_then(parse)
                .ok_or_else(|| ProtocolError::Malformed(xus_codec::quote::short(&line)))?;
            if items.len() == MAX_BATCH {
                return Err(ProtocolError::BatchTooLarge);
            }
            items.push(item);
            match self.line()? {
                None => return Ok(items),
                Some(next) if next.is_empty() => return Ok(items),
                Some(next) => line = next,
            }
        }
    }

    /// One line without its `\n`; `None` at the end of input.
    fn line(&mut self) -> Result<Option<String>, ProtocolError> {
        let mut bytes = Vec::new();
        let read = std::io::Read::take(&mut self.input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut bytes)?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        } else if bytes.len() > MAX_LINE {
            return Err(ProtocolError::LineTooLong);
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ProtocolError::NotUtf8)
    }
}

/// `<40 hex> <ref>`.
fn parse_fetch(rest: &str) -> Option<FetchRef> {
    let (id, name) = rest.split_once(' ')?;
    let id = ObjectId::from_hex_case(id, xus_codec::hex::Case::Either)?;
    (!name.is_empty() && !name.contains(' ')).then(|| FetchRef {
        id,
        name: name.to_owned(),
    })
}

/// `[+]<src>:<dst>`, `<dst>` not empty.
fn parse_push(rest: &str) -> Option<PushSpec> {
    let (force, spec) = match rest.strip_prefix('+') {
        Some(spec) => (true, spec),
        None => (false, rest),
    };
    let (src, dst) = spec.split_once(':')?;
    (!dst.is_empty()).then(|| PushSpec {
        force,
        src: src.to_owned(),
        dst: dst.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str) -> Result<Vec<Request>, ProtocolError> {
        let mut requests = Requests::new(input.as_bytes());
        let mut out = Vec::new();
        while let Some(request) = requests.next_request()? {
            out.push(request);
        }
        Ok(out)
    }

    #[test]
    fn a_session_reads_as_git_writes_it() {
        let a = "a".repeat(40);
        let b = "B".repeat(40);
        let input = format!(
            "capabilities\noption progress true\noption verbosity 1\nlist\n\
             fetch {a} refs/heads/main\nfetch {b} refs/heads/dev\n\n\
             list for-push\npush refs/heads/main:refs/heads/main\npush +HEAD:refs/heads/x\n\
             push :refs/heads/gone\n\nfrobnicate now\n\nnever read\n"
        );
        let requests = all(&input).expect("parses");
        assert_eq!(
            requests,
            vec![
                Request::Capabilities,
                Request::Option {
                    name: "progress".into(),
                    value: "true".into()
                },
                Request::Option {
                    name: "verbosity".into(),
                    value: "1".into()
                },
                Request::List { for_push: false },
                Request::Fetch(vec![
                    FetchRef {
                        id: ObjectId::from_hex(&a).expect("hex"),
                        name: "refs/heads/main".into()
                    },
                    FetchRef {
                        id: ObjectId::from_hex(&b.to_lowercase()).expect("hex"),
                        name: "refs/heads/dev".into()
                    },
                ]),
                Request::List { for_push: true },
                Request::Push(vec![
                    PushSpec {
                        force: false,
                        src: "refs/heads/main".into(),
                        dst: "refs/heads/main".into()
                    },
                    PushSpec {
                        force: true,
                        src: "HEAD".into(),
                        dst: "refs/heads/x".into()
                    },
                    PushSpec {
                        force: false,
                        src: String::new(),
                        dst: "refs/heads/gone".into()
                    },
                ]),
                Request::Unknown("frobnicate now".into()),
            ]
        );
    }

    #[test]
    fn a_batch_ends_at_the_end_of_input_too() {
        let a = "a".repeat(40);
        let requests = all(&format!("fetch {a} refs/heads/main")).expect("parses");
        assert_eq!(requests.len(), 1);
    }

    #[test]
    fn malformed_and_oversized_lines_are_refused() {
        let a = "a".repeat(40);
        for bad in [
            format!("fetch {} refs/heads/main\n\n", &a[..39]),
            format!("fetch {a}\n\n"),
            format!("fetch {a} refs/heads/main\npush a:b\n\n"),
            "push refs/heads/main\n\n".to_owned(),
            "push main:\n\n".to_owned(),
            format!("option {}\n", "x".repeat(MAX_LINE + 10)),
        ] {
            assert!(all(&bad).is_err(), "{bad:.80}");
        }
        let not_utf8 = b"option \xff\xfe x\n";
        let mut requests = Requests::new(&not_utf8[..]);
        assert!(matches!(
            requests.next_request(),
            Err(ProtocolError::NotUtf8)
        ));
    }
}
