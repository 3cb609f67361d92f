//! The one rule for every address xus dials: peers given with `--peer`, a
//! magnet's `x.pe`, peers found on the DHT, peers the engine learns by
//! itself (PEX; through librqbit's `outgoing_peer_filter`, see
//! `vendor/librqbit/XUS-PATCH.md`), a writer a master dials back, webseeds
//! and master URLs.
//!
//! Addresses come from strangers (a magnet pasted from a chat, a DHT
//! answer, a push request), so a dial is an action an attacker can ask
//! for: never the unspecified address, broadcast or multicast (which no
//! peer can hold and which reach things that are not peers), never port 0,
//! and never more than [`MAX_PEERS_PER_REQUEST`] peers from one request.
//! Under the test guard ([`LOOPBACK_ONLY_ENV`]) only loopback is dialled,
//! whatever names it.

use std::net::{IpAddr, SocketAddr};

/// Set to `1` by test harnesses: every dial (peers, webseeds, masters) and
/// every DHT setting that would leave 127.0.0.0/8 is refused, the public
/// DHT routers included.
pub const LOOPBACK_ONLY_ENV: &str = "XUS_LOOPBACK_ONLY";

/// The guard's first name, from when it covered the DHT alone; still read.
pub const LOOPBACK_ONLY_ENV_OLD: &str = "XUS_DHT_LOOPBACK_ONLY";

/// Most peers dialled from one request (a magnet's `x.pe` and `--peer`
/// together): a small cluster needs a handful, and a magnet listing
/// hundreds is a way to make xus knock on hundreds of doors.
pub const MAX_PEERS_PER_REQUEST: usize = 50;

/// Whether the test guard is on.
pub fn loopback_only() -> bool {
    [LOOPBACK_ONLY_ENV, LOOPBACK_ONLY_ENV_OLD]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| v == "1"))
}

/// Why an address is not dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// 0.0.0.0, `::` or port 0.
    #[error("not an address a peer can hold (unspecified address or port 0)")]
    Unspecified,
    /// 255.255.255.255 or a multicast group.
    #[error("a broadcast or multicast address")]
    Broadcast,
    /// Anything but loopback while the test guard is on.
    #[error("not a loopback address, and {LOOPBACK_ONLY_ENV}=1 is set")]
    NotLoopback,
    /// A URL that does not parse or names no host.
    #[error("not an http(s) URL with a host")]
    BadUrl,
}

/// Checks one peer address.
pub fn check_peer(addr: SocketAddr) -> Result<(), Refused> {
    if addr.port() == 0 {
        return Err(Refused::Unspecified);
    }
    check_ip(addr.ip(), loopback_only())
}

fn check_ip(ip: IpAddr, loopback_only: bool) -> Result<(), Refused> {
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        return Err(Refused::Unspecified);
    }
    let broadcast = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    if broadcast {
        return Err(Refused::Broadcast);
    }
    if loopback_only && !ip.is_loopback() {
        return Err(Refused::NotLoopback);
    }
    Ok(())
}

/// Checks the host of an HTTP URL (a webseed, a master). A name is allowed
/// (its addresses are the resolver's business), except under the test
/// guard, where only `localhost` and loopback literals pass.
pub fn check_url(url: &str) -> Result<(), Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refused::BadUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Refused::BadUrl);
    }
    let host = parsed.host_str().ok_or(Refused::BadUrl)?;
    let guard = loopback_only();
    // An IPv6 literal keeps its brackets in `host_str`.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) => check_ip(ip, guard),
        Err(_) if guard && !host.eq_ignore_ascii_case("localhost") => Err(Refused::NotLoopback),
        Err(_) => Ok(()),
    }
}

/// Most redirects one HTTP request follows.
pub const MAX_REDIRECTS: usize = 5;

/// The redirect rule of every HTTP client xus makes (webseeds, masters): a
/// URL passed [`check_url`] when it was given, and a redirect is a new
/// address the server picks, so each hop passes it too; at most
/// [`MAX_REDIRECTS`] hops.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match check_url(attempt.url().as_str()) {
            Ok(()) => attempt.follow(),
            Err(why) => {
                let error = format!("redirect to {} refused: {why}", attempt.url());
                attempt.error(error)
            }
        }
    })
}

/// The same rule for the webseed bridge, which knows no dial policy.
pub fn webseed_redirects() -> webseed::bridge::RedirectFilter {
    webseed::bridge::RedirectFilter::new(|url| check_url(url).is_ok())
}

/// The peers of one request that may be dialled: refused ones reported to
/// `refused`, duplicates dropped, at most [`MAX_PEERS_PER_REQUEST`] kept
/// (in the order given; the rest reported as over the limit).
pub fn admit_peers(
    peers: impl IntoIterator<Item = SocketAddr>,
    mut refused: impl FnMut(SocketAddr, String),
) -> Vec<SocketAddr> {
    let mut admitted: Vec<SocketAddr> = Vec::new();
    let mut over = 0usize;
    for peer in peers {
        if let Err(why) = check_peer(peer) {
            refused(peer, why.to_string());
        } else if admitted.contains(&peer) {
        } else if admitted.len() >= MAX_PEERS_PER_REQUEST {
            over += 1;
        } else {
            admitted.push(peer);
        }
    }
    if over > 0 {
        tracing::warn!(
            over,
            limit = MAX_PEERS_PER_REQUEST,
            "more peers than one request may name; the rest are not dialled"
        );
    }
    admitted
}

/// The URLs of one request that may be fetched from; refused ones reported.
pub fn admit_urls(urls: Vec<String>, mut refused: impl FnMut(&str, String)) -> Vec<String> {
    urls.into_iter()
        .filter(|url| match check_url(url) {
            Ok(()) => true,
            Err(why) => {
                refused(url, why.to_string());
                false
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn no_one_lives_at_unspecified_broadcast_or_multicast() {
        for bad in [
            "0.0.0.0:6881",
            "[::]:6881",
            "[::ffff:0.0.0.0]:6881",
            "127.0.0.1:0",
        ] {
            assert_eq!(
                check_ip_port(bad, false),
                Err(Refused::Unspecified),
                "{bad}"
            );
        }
        for bad in [
            "255.255.255.255:6881",
            "224.0.0.1:6881",
            "239.255.255.250:1900",
            "[ff02::1]:6881",
            "[::ffff:224.0.0.1]:6881",
        ] {
            assert_eq!(check_ip_port(bad, false), Err(Refused::Broadcast), "{bad}");
        }
        for good in ["10.0.0.1:6881", "[2001:db8::1]:6881", "127.0.0.1:6881"] {
            assert_eq!(check_ip_port(good, false), Ok(()), "{good}");
        }
    }

    #[test]
    fn the_guard_keeps_only_loopback() {
        assert_eq!(check_ip_port("127.0.0.2:6881", true), Ok(()));
        assert_eq!(check_ip_port("[::1]:6881", true), Ok(()));
        assert_eq!(
            check_ip_port("10.0.0.1:6881", true),
            Err(Refused::NotLoopback)
        );
        assert_eq!(
            check_ip_port("[::ffff:10.0.0.1]:6881", true),
            Err(Refused::NotLoopback)
        );
    }

    fn check_ip_port(text: &str, guard: bool) -> Result<(), Refused> {
        let a = addr(text);
        if a.port() == 0 {
            return Err(Refused::Unspecified);
        }
        check_ip(a.ip(), guard)
    }

    #[test]
    fn one_request_dials_at_most_fifty_distinct_peers() {
        let many = (1..=700u16).map(|port| addr(&format!("127.0.0.1:{port}")));
        let twice = [addr("127.0.0.1:1"), addr("0.0.0.0:1")];
        let mut refused = Vec::new();
        let admitted = admit_peers(twice.into_iter().chain(many), |peer, _| refused.push(peer));
        assert_eq!(admitted.len(), MAX_PEERS_PER_REQUEST);
        assert_eq!(admitted[0], addr("127.0.0.1:1"));
        assert_eq!(admitted[1], addr("127.0.0.1:2"), "the duplicate is dropped");
        assert_eq!(refused, vec![addr("0.0.0.0:1")]);
    }

    #[test]
    fn urls_are_checked_by_their_host() {
        // The process may run with the guard on (tests do): check both
        // ways through `check_ip`, and the URL parsing here.
        assert_eq!(check_url("ftp://127.0.0.1/"), Err(Refused::BadUrl));
        assert_eq!(check_url("not a url"), Err(Refused::BadUrl));
        assert_eq!(check_url("http://0.0.0.0:8080/"), Err(Refused::Unspecified));
        assert_eq!(check_url("http://[ff02::1]/"), Err(Refused::Broadcast));
        assert_eq!(check_url("http://127.0.0.1:8080/ws/"), Ok(()));
        assert_eq!(check_url("http://localhost:8080/"), Ok(()));
    }

    /// A one-request HTTP server on loopback answering `response`; returns
    /// its base URL.
    fn answer_once(response: &'static str) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        url
    }

    #[test]
    fn redirects_pass_the_dial_rule_at_every_hop() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = reqwest::Client::builder()
            .redirect(redirect_policy())
            .build()
            .expect("client");
        let get = |url: String| runtime.block_on(client.get(url).send());

        // To an address no peer can hold: refused, never dialled.
        let to_nowhere = answer_once(
            "HTTP/1.1 302 Found\r\nLocation: http://0.0.0.0:9/x\r\nContent-Length: 0\r\n\r\n",
        );
        let error = get(to_nowhere).expect_err("a redirect to 0.0.0.0 is refused");
        assert!(
            format!("{error:?}").contains("redirect to http://0.0.0.0:9/x refused"),
            "{error:?}"
        );

        // To an allowed address: followed.
        let target = answer_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let hop = format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n");
        let to_loopback = answer_once(Box::leak(hop.into_boxed_str()));
        let response = get(to_loopback).expect("a redirect to loopback is followed");
        assert_eq!(response.status(), 200);
    }
}
