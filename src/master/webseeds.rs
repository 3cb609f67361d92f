//! One webseed for all of a master's topics: each topic's repository has
//! its own [`GitWebseed`]; a request goes to the one that published the
//! commit it names.

use std::sync::Arc;

use webseed::{ByteSource, CommitId, FileInfo};

use crate::swarm::webseed_source::{FileHandle, GitWebseed, WebseedSourceError};

/// Every topic's webseed behind one URL space (commit ids do not clash
/// between repositories, and a commit in two topics is the same bytes).
pub struct TopicWebseeds {
    topics: Vec<Arc<GitWebseed>>,
}

impl TopicWebseeds {
    /// Serves what each of `topics` publishes.
    pub fn new(topics: Vec<Arc<GitWebseed>>) -> Self {
        Self { topics }
    }

    /// The first topic's answer to `lookup` that finds a file, tagged with
    /// the topic's index for `read_at`.
    fn first_found(
        &self,
        lookup: impl Fn(&GitWebseed) -> Result<Option<FileInfo<FileHandle>>, WebseedSourceError>,
    ) -> Result<Option<FileInfo<(usize, FileHandle)>>, WebseedSourceError> {
        for (index, topic) in self.topics.iter().enumerate() {
            if let Some(found) = lookup(topic)? {
                return Ok(Some(FileInfo {
                    len: found.len,
                    etag: found.etag,
                    handle: (index, found.handle),
                }));
            }
        }
        Ok(None)
    }
}

impl ByteSource for TopicWebseeds {
    type Handle = (usize, FileHandle);
    type Error = WebseedSourceError;

    fn lookup(
        &self,
        commit: &CommitId,
        path: &[String],
    ) -> Result<Option<FileInfo<Self::Handle>>, Self::Error> {
        self.first_found(|topic| topic.lookup(commit, path))
    }

    fn lookup_raw(
        &self,
        commit: &CommitId,
        path: &[Vec<u8>],
    ) -> Result<Option<FileInfo<Self::Handle>>, Self::Error> {
        self.first_found(|topic| topic.lookup_raw(commit, path))
    }

    fn read_at(
        &self,
        file: &FileInfo<Self::Handle>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Self::Error> {
        let (index, handle) = &file.handle;
        let Some(topic) = self.topics.get(*index) else {
            return Ok(0);
        };
        let inner = FileInfo {
            len: file.len,
            etag: file.etag.clone(),
            handle: handle.clone(),
        };
        topic.read_at(&inner, offset, buf)
    }

    fn torrent(
        &self,
        commit: &CommitId,
        url_list: &[String],
    ) -> Result<Option<Vec<u8>>, Self::Error> {
        for topic in &self.topics {
            if let Some(bytes) = topic.torrent(commit, url_list)? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }
}
