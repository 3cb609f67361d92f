//! Names of a topic's branch head, as users type them:
//! `xus://TOPIC/BRANCH` (TOPIC = 64-hex topic id or a local topic name) and
//! BEP 46's `magnet:?xs=urn:btpk:<64 hex key>&s=<hex salt>`.

use anyhow::Context;
use tracker_free::{Branch, TopicKey};

use crate::topic::home::Home;
use crate::torrent::magnet::MAX_MAGNET_LEN;

use xus_codec::quote::short as quote;

/// A branch head to resolve on the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadAddress {
    /// Whose head.
    pub topic: TopicKey,
    /// Which branch (the DHT salt).
    pub branch: Branch,
}

impl HeadAddress {
    /// `Ok(None)` when `text` is not a head address at all (so the caller
    /// tries other forms); an error when it is one but is malformed.
    pub fn parse(text: &str, home: &Home) -> anyhow::Result<Option<Self>> {
        if !text.starts_with("xus://") && !text.starts_with("magnet:?") {
            return Ok(None);
        }
        // Errors quote a short prefix: the text may be anything a user or
        // another program passed, of any length.
        let quoted = quote(text);
        anyhow::ensure!(
            text.len() <= MAX_MAGNET_LEN,
            "{quoted:?}: a head address of {} bytes is over the {MAX_MAGNET_LEN}-byte limit",
            text.len()
        );
        if let Some(rest) = text.strip_prefix("xus://") {
            let (topic, branch) = rest
                .split_once('/')
                .with_context(|| format!("{quoted:?}: expected xus://TOPIC/BRANCH"))?;
            let topic = home
                .resolve_topic(topic)
                .with_context(|| format!("{quoted:?}: unknown topic {:?}", quote(topic)))?;
            let branch = Branch::new(branch).with_context(|| format!("{quoted:?}"))?;
            return Ok(Some(Self { topic, branch }));
        }
        let Some(query) = text.strip_prefix("magnet:?") else {
            return Ok(None);
        };
        let mut key = None;
        let mut salt = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("xs", v)) => {
                    if let Some(hex) = v.strip_prefix("urn:btpk:") {
                        key = Some(hex);
                    }
                }
                Some(("s", v)) => salt = Some(v),
                _ => {}
            }
        }
        let Some(key) = key else { return Ok(None) };
        let topic =
            TopicKey::from_hex(key).with_context(|| format!("{quoted:?}: bad urn:btpk key"))?;
        let salt = salt.with_context(|| {
            format!("{quoted:?}: xus heads are salted with the branch name; add &s=<hex branch>")
        })?;
        // Either case: BEP 46 links come from other programs and from
        // people, and only the salt bytes matter afterwards (`magnet()`
        // writes lowercase). No sign, space or odd digit.
        let salt = xus_codec::hex::decode_case(salt, xus_codec::hex::Case::Either)
            .ok()
            .filter(|s| s.len() <= 64)
            .with_context(|| format!("{quoted:?}: s= is not hex of at most 64 bytes"))?;
        let branch = String::from_utf8(salt).context("the salt is not a UTF-8 branch name")?;
        let branch = Branch::new(&branch).with_context(|| format!("{quoted:?}"))?;
        Ok(Some(Self { topic, branch }))
    }

    /// `xus://<topic hex>/<branch>`.
    pub fn url(&self) -> String {
        format!("xus://{}/{}", self.topic, self.branch)
    }

    /// The BEP 46 magnet link of this head.
    pub fn magnet(&self) -> String {
        let salt = crate::hex::encode(self.branch.as_bytes());
        format!("magnet:?xs=urn:btpk:{}&s={salt}", self.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_to_the_same_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_owned());
        let secret = home.create_topic("world").expect("topic");
        let by_name = HeadAddress::parse("xus://world/feature/x", &home)
            .expect("parses")
            .expect("is a head");
        assert_eq!(by_name.branch.as_str(), "feature/x");
        assert_eq!(by_name.topic, secret.topic());
        let by_url = HeadAddress::parse(&by_name.url(), &home)
            .expect("url")
            .expect("head");
        let by_magnet = HeadAddress::parse(&by_name.magnet(), &home)
            .expect("magnet")
            .expect("head");
        assert_eq!(by_url, by_name);
        assert_eq!(by_magnet, by_name);
    }

    #[test]
    fn other_sources_are_not_heads_and_bad_heads_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_owned());
        for other in ["magnet:?xt=urn:btih:00", "0123", "file.torrent"] {
            assert_eq!(
                HeadAddress::parse(other, &home).expect("not an error"),
                None
            );
        }
        let key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
        for bad in [
            "xus://nobody/main".to_string(),
            "xus://world".to_string(),
            format!("xus://{key}/"),
            format!("magnet:?xs=urn:btpk:{key}"),
            format!("magnet:?xs=urn:btpk:{key}&s=zz"),
            format!("magnet:?xs=urn:btpk:{key}&s=+d61696e"),
            format!("magnet:?xs=urn:btpk:{key}&s=6d61696"),
            "magnet:?xs=urn:btpk:1234&s=6d61696e".to_string(),
        ] {
            assert!(HeadAddress::parse(&bad, &home).is_err(), "{bad}");
        }
        // A 120 KB BEP 46 magnet is refused at the door, and the error
        // quotes a short prefix, not the whole input.
        let huge = format!(
            "magnet:?xs=urn:btpk:{key}&s=6d61696e&x={}",
            "a".repeat(120_000)
        );
        let error = format!(
            "{:#}",
            HeadAddress::parse(&huge, &home).expect_err("over the limit")
        );
        assert!(error.contains("over the 16384-byte limit"), "{error}");
        assert!(error.len() < 300, "{} bytes of error", error.len());
        let long_bad = format!("magnet:?xs=urn:btpk:{}&s=6d", "g".repeat(1000));
        let error = format!(
            "{:#}",
            HeadAddress::parse(&long_bad, &home).expect_err("bad key")
        );
        assert!(error.len() < 400, "{error}");
    }
}
