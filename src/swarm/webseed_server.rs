//! A webseed (BEP 19) served from the object database in the background of
//! a seed, and the base-URL rule every webseed and master URL follows.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use webseed::ServerOptions;

use crate::git::blobs::BlobSource;
use crate::swarm::webseed_source::GitWebseed;

/// Binds the webseed's TCP listener, naming the address when it fails.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the webseed to {listen}"))
}

/// `http://<addr>/`: the base URL of a server bound to `addr`.
pub fn local_url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

/// Checks a webseed base URL given by a user and gives it a trailing `/`.
///
/// BEP 19 clients append `<torrent name>/<path>` to the URL; without the
/// slash some would replace its last segment instead. The checks are the
/// server's own (absolute `http://` or `https://`, a host, no spaces or
/// control characters), made here so a bad URL is refused before anything
/// is printed or served.
///
/// # Errors
///
/// When the URL is not of that form.
pub fn base_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let plain = url.bytes().all(|b| b.is_ascii_graphic());
    match rest {
        Some(rest) if plain && !rest.is_empty() && !rest.starts_with('/') => {
            let mut url = url.to_owned();
            if !url.ends_with('/') {
                url.push('/');
            }
            Ok(url)
        }
        _ => anyhow::bail!(
            "webseed URL {url:?} is not an absolute http:// or https:// URL \
             (with a host, without spaces)"
        ),
    }
}

/// A webseed serving in the background of `xus seed`, until [`Self::stop`].
pub struct WebseedServer {
    /// What it serves; `xus seed` publishes each commit here once it seeds it.
    pub source: Arc<GitWebseed>,
    /// The base URL printed and put in magnets.
    pub url: String,
    /// Whether [`Self::url`] can be reached from elsewhere: not when it comes
    /// from an unspecified bind address (`0.0.0.0`) and no public URL was
    /// given, in which case magnets do not carry it.
    pub advertisable: bool,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), webseed::ServeError>>,
}

impl WebseedServer {
    /// Binds `listen` and serves `blobs` (shared with the BitTorrent engine,
    /// so both use one cache) for whatever gets published.
    ///
    /// # Errors
    ///
    /// An unusable `public_url`, or an address that cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        blobs: Arc<BlobSource>,
        public_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let public_url = public_url.map(base_url).transpose()?;
        let listener = bind(listen).await?;
        let addr = listener
            .local_addr()
            .context("reading the webseed's listening address")?;
        let source = Arc::new(GitWebseed::new(blobs));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServerOptions {
            public_url: public_url.clone(),
            ..ServerOptions::default()
        };
        let task = tokio::spawn(webseed::serve(
            listener,
            Arc::clone(&source),
            options,
            async move {
                // A dropped sender stops the server as well.
                let _ = stopped.await;
            },
        ));
        let advertisable = public_url.is_some() || !addr.ip().is_unspecified();
        Ok(Self {
            source,
            url: public_url.unwrap_or_else(|| local_url(addr)),
            advertisable,
            stop,
            task,
        })
    }

    /// Stops accepting, lets responses under way finish (within the
    /// server's grace period) and reports how the server ended.
    ///
    /// # Errors
    ///
    /// When the server had failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("the webseed task panicked")?
            .context("the webseed stopped")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_a_trailing_slash() {
        assert_eq!(
            base_url("http://127.0.0.1:8080").ok().as_deref(),
            Some("http://127.0.0.1:8080/")
        );
        assert_eq!(
            base_url("https://example.org/seed/").ok().as_deref(),
            Some("https://example.org/seed/")
        );
        for bad in [
            "example.org",
            "ftp://x",
            "http://",
            "http:///x",
            "http://a b",
        ] {
            assert!(base_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn local_urls_bracket_ipv6() {
        assert_eq!(
            local_url("[::1]:80".parse().expect("addr")),
            "http://[::1]:80/"
        );
    }
}
