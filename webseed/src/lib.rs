//! An HTTP webseed server: serves the files of published commits to BitTorrent clients.
//!
//! BEP 19 lets a torrent list web servers (its `url-list`) that clients fetch pieces from with
//! plain HTTP `Range` requests, alongside or instead of peers. When a commit's torrent is named
//! after the commit id, clients ask for `/<commit>/<path>`; this crate answers those requests,
//! and `/<commit>.torrent`, from any [`ByteSource`]. It knows nothing of Git: the core
//! implements the trait over the object database and decides which commits are published.
//!
//! What the server guarantees a source: calls run on the blocking pool, at most
//! [`ServerOptions::max_concurrent_reads`] at once; paths are decoded and checked (no `..`, no
//! empty or `/`-holding components) before any call; bodies are read in bounded chunks, so a
//! huge range costs a few hundred KiB of memory per response.
//!
//! The other direction lives in [`bridge`]: a loopback "webseed peer" that lets an engine without
//! webseed support (librqbit) download from webseeds, by speaking the peer wire protocol to it.
//!
//! ```
//! use std::{convert::Infallible, sync::Arc};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use webseed::{ByteSource, CommitId, FileInfo, ServerOptions};
//!
//! /// One commit with one file, `hello.txt`.
//! struct Hello;
//!
//! const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
//! const TEXT: &[u8] = b"hello, world\n";
//!
//! impl ByteSource for Hello {
//!     type Handle = ();
//!     type Error = Infallible;
//!
//!     fn lookup(&self, commit: &CommitId, path: &[String]) -> Result<Option<FileInfo<()>>, Infallible> {
//!         let found = commit.as_str() == COMMIT && path == ["hello.txt"];
//!         Ok(found.then(|| FileInfo { len: TEXT.len() as u64, etag: "b1".into(), handle: () }))
//!     }
//!
//!     fn read_at(&self, _: &FileInfo<()>, offset: u64, buf: &mut [u8]) -> Result<usize, Infallible> {
//!         let rest = &TEXT[offset as usize..];
//!         let n = rest.len().min(buf.len());
//!         buf[..n].copy_from_slice(&rest[..n]);
//!         Ok(n)
//!     }
//!
//!     fn torrent(&self, _: &CommitId, _: &[String]) -> Result<Option<Vec<u8>>, Infallible> {
//!         Ok(None)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(webseed::serve(
//!     listener,
//!     Arc::new(Hello),
//!     ServerOptions::default(),
//!     async { stopped.await.unwrap_or(()) },
//! ));
//!
//! let mut client = tokio::net::TcpStream::connect(address).await?;
//! let request = format!(
//!     "GET /{COMMIT}/hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=7-\r\nConnection: close\r\n\r\n"
//! );
//! client.write_all(request.as_bytes()).await?;
//! let mut response = String::new();
//! client.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 206"));
//! assert!(response.contains("content-range: bytes 7-12/13"));
//! assert!(response.ends_with("\r\n\r\nworld\n"));
//!
//! let _ = stop.send(());
//! server.await??;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod base_url;
mod blocking;
mod body;
pub mod bridge;
mod commit;
mod conditional;
mod limit;
mod path;
mod range;
mod server;
mod source;

pub use commit::{CommitId, CommitIdError};

/// The request parsers and the file-answer rule, public for the
/// `webseed_request` fuzz target only (it checks these very functions, not
/// copies of them); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::conditional::{none_match, quote, range_applies};
    pub use crate::path::{PathError, Target, parse as parse_path};
    pub use crate::range::{ByteRange, RangeHeader, Resolved};
    pub use crate::server::file_answer::{FileAnswer, file_answer, requested_range};
}
pub use server::{ClientAddr, ServeError, ServerOptions, serve, serve_routes, serve_with_routes};
pub use source::{ByteSource, FileInfo};
