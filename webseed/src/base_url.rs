//! The base URL a torrent's `url-list` points at: where clients reach this server.

use std::net::SocketAddr;

/// Normalises a configured public URL: it must be absolute `http://` or `https://` with no
/// spaces or control characters, and gets a trailing `/` so BEP 19 clients append the torrent
/// name to the folder rather than replace its last segment.
pub(crate) fn normalise_public(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let plain = url.bytes().all(|b| b.is_ascii_graphic());
    if rest.is_empty() || rest.starts_with('/') || !plain {
        return None;
    }
    let mut url = url.to_owned();
    if !url.ends_with('/') {
        url.push('/');
    }
    Some(url)
}

/// `http://<host>/` from the request's `Host` header, or from the listener's address when the
/// header is missing or is not a plain `host[:port]`.
///
/// The header is client-controlled and ends up inside a torrent, so anything that could smuggle
/// a path, credentials or odd bytes into the URL is refused rather than escaped.
pub(crate) fn from_host(host: Option<&str>, local: SocketAddr) -> String {
    match host {
        Some(host) if is_plain_host(host) => format!("http://{host}/"),
        _ => format!("http://{local}/"),
    }
}

/// Whether `text` is `reg-name-or-ipv4[:port]` or `[ipv6][:port]`.
fn is_plain_host(text: &str) -> bool {
    if text.is_empty() || text.len() > 260 {
        return false;
    }
    let (name_ok, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let ok = !inside.is_empty()
            && inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if after.is_empty() {
            (ok, None)
        } else {
            let Some(port) = after.strip_prefix(':') else {
                return false;
            };
            (ok, Some(port))
        }
    } else {
        let (name, port) = match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        (ok, port)
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
    });
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }

    #[test]
    fn uses_plain_hosts() {
        for host in [
            "example.org",
            "example.org:81",
            "10.0.0.1:6881",
            "[::1]:9000",
            "[fe80::1]",
            "my_host",
        ] {
            assert_eq!(from_host(Some(host), local()), format!("http://{host}/"));
        }
    }

    #[test]
    fn falls_back_to_the_listener() {
        for host in [
            None,
            Some(""),
            Some("a/b"),
            Some("user@host"),
            Some("host:"),
            Some("host:123456"),
            Some("host:80:81"),
            Some("[::1"),
            Some("[::1]x"),
            Some("[]"),
            Some("a b"),
            Some("évil"),
        ] {
            assert_eq!(
                from_host(host, local()),
                "http://127.0.0.1:8080/",
                "{host:?}"
            );
        }
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 1));
        assert_eq!(from_host(None, v6), "http://[::1]:1/");
    }

    #[test]
    fn public_urls() {
        assert_eq!(
            normalise_public("https://x.org").as_deref(),
            Some("https://x.org/")
        );
        assert_eq!(
            normalise_public("http://x.org/seed/").as_deref(),
            Some("http://x.org/seed/")
        );
        for bad in [
            "x.org",
            "ftp://x.org",
            "http://",
            "http:///x",
            "http://x .org",
            "http://x\n",
        ] {
            assert_eq!(normalise_public(bad), None, "{bad:?}");
        }
    }
}
