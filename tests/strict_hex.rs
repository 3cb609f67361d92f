//! Every entry point that reads hex reads it through the one strict decoder
//! (`xus-codec`): a sign (`+f`, which `u8::from_str_radix` read as `0f`),
//! `-0`, a space, a `0x` prefix, an odd length, a wrong length and non-ASCII
//! are refused everywhere; uppercase is refused where only lowercase is read
//! (what xus stored or prints itself) and read as the same value where people
//! or other programs write the text.
//!
//! Each case starts from a value the entry point accepts, so a refusal is the
//! spelling's fault, and the `+X` case replaces a pair `0X` that the old
//! decoder would have read as the very same byte.

use std::path::Path;

use tracker_free::{Branch, Head, InfoHash, SignedHead, TopicError, TopicKey, TopicSecret};
use xus::git::object::ObjectId;
use xus::topic::head_address::HeadAddress;
use xus::topic::home::Home;
use xus::topic::writer_key::{WriterKey, WriterKeyError, WriterSecret};
use xus::torrent::magnet::{Magnet, parse_info_hash};
use xus_codec::hex::Case;

/// Offset of the first byte below 0x10 in lowercase hex (a `0X` pair), if any.
fn low_pair(good: &str) -> Option<usize> {
    (0..good.len())
        .step_by(2)
        .find(|&i| good.as_bytes()[i] == b'0')
}

/// Misspellings of the lowercase hex `good`, each named: none is hex of an
/// even length in any case, nor, when `fixed` (keys, ids), of `good`'s length.
fn misspelled(good: &str, fixed: bool) -> Vec<(&'static str, String)> {
    assert!(good.len() >= 4 && good.len().is_multiple_of(2), "{good}");
    let at = low_pair(good).unwrap_or(0);
    let digit = &good[at + 1..at + 2];
    let swap = |with: &str| format!("{}{with}{}", &good[..at], &good[at + 2..]);
    let mut out = vec![
        ("a sign where a 0 was", swap(&format!("+{digit}"))),
        ("a minus sign", swap("-0")),
        ("a space", swap(&format!(" {digit}"))),
        ("a 0x prefix", format!("0x{}", &good[2..])),
        ("a digit short (odd)", good[..good.len() - 1].to_owned()),
        ("a digit over (odd)", format!("{good}0")),
        ("non-ASCII of the same byte length", swap("é")),
        ("a fullwidth digit", swap("０")),
        ("an Arabic-Indic digit pair", swap("٣")),
    ];
    if fixed {
        out.push(("a byte short", good[..good.len() - 2].to_owned()));
        out.push(("a byte over", format!("{good}00")));
    }
    out
}

/// [`misspelled`] for fixed-size values.
fn not_hex(good: &str) -> Vec<(&'static str, String)> {
    misspelled(good, true)
}

/// `good` in uppercase; the test is void unless that changes it.
fn upper(good: &str) -> String {
    assert!(good.bytes().any(|b| b.is_ascii_lowercase()), "{good}");
    good.to_ascii_uppercase()
}

/// The first of `candidates` whose hex has a `0X` pair and a letter.
fn pick<T>(candidates: impl IntoIterator<Item = T>, hex: impl Fn(&T) -> String) -> T {
    candidates
        .into_iter()
        .find(|c| {
            let h = hex(c);
            low_pair(&h).is_some() && h.bytes().any(|b| b.is_ascii_lowercase())
        })
        .expect("some candidate has a byte below 0x10")
}

fn seed(byte: u8) -> [u8; 32] {
    let mut seed = [byte; 32];
    seed[31] = 0x5a;
    seed
}

#[test]
fn writer_keys() {
    let key = pick((1..=255).map(seed), |s| {
        WriterSecret::from_hex(&xus_codec::hex::encode(s))
            .expect("seed")
            .public()
            .to_hex()
    });
    let key = WriterSecret::from_hex(&xus_codec::hex::encode(&key))
        .expect("seed")
        .public();
    let good = key.to_hex();
    assert_eq!(WriterKey::from_hex(&good), Ok(key));
    for (why, bad) in not_hex(&good) {
        assert!(
            matches!(
                WriterKey::from_hex(&bad),
                Err(WriterKeyError::BadHex { .. })
            ),
            "{why}: {bad:?} read as a writer key"
        );
        assert!(bad.parse::<WriterKey>().is_err(), "{why}: {bad:?} parsed");
    }
    // Writer keys are pasted into configurations: uppercase is the same key.
    assert_eq!(WriterKey::from_hex(&upper(&good)), Ok(key));
    // So are writer secrets (their file is read the same way).
    let secret = WriterSecret::from_hex(&"5a".repeat(32)).expect("secret");
    assert!(WriterSecret::from_hex(&format!("+a{}", "5a".repeat(31))).is_err());
    assert_eq!(
        WriterSecret::from_hex(&"5A".repeat(32)).map(|s| s.public()),
        Ok(secret.public())
    );
}

#[test]
fn topic_ids() {
    let topic = pick(
        (1..=255).map(|b| TopicSecret::from_seed(seed(b)).topic()),
        |t| t.to_hex(),
    );
    let good = topic.to_hex();
    assert_eq!(TopicKey::from_hex(&good), Ok(topic));
    for (why, bad) in not_hex(&good) {
        assert!(
            matches!(TopicKey::from_hex(&bad), Err(TopicError::BadHex { .. })),
            "{why}: {bad:?} read as a topic id"
        );
        assert!(
            TopicSecret::from_hex(&bad).is_err(),
            "{why}: {bad:?} read as a topic secret"
        );
    }
    // Topic ids are typed and arrive in other programs' BEP 46 links.
    assert_eq!(TopicKey::from_hex(&upper(&good)), Ok(topic));
}

/// Heads stored in a home are read back in exactly the form xus writes them.
#[test]
fn stored_heads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::at(dir.path().to_owned());
    let secret = TopicSecret::from_seed(seed(7));
    let topic = secret.topic();
    let branch = Branch::new("main").expect("branch");
    // A commit id of 0x0f bytes puts `0f` pairs in the value; pick a seq
    // whose signature has a byte below 0x10 too.
    let head = Head::new(vec![0x0f; 20], InfoHash([0xab; 20]));
    let signed = pick(
        (1..1000).map(|seq| secret.sign_head(&branch, &head, seq)),
        |h| xus_codec::hex::encode(&h.signature),
    );
    home.record_head(&signed).expect("record");
    let file = dir
        .path()
        .join("heads")
        .join(topic.to_hex())
        .join(xus_codec::hex::encode(branch.as_bytes()));
    let written = std::fs::read_to_string(&file).expect("the head file");
    let load = |text: &str| {
        std::fs::write(&file, text).expect("write the head file");
        home.seen_head(&topic, &branch)
    };
    assert_eq!(
        load(&written).expect("as written"),
        Some(signed.clone()),
        "{written}"
    );

    let value = xus_codec::hex::encode(&signed.value);
    let signature = xus_codec::hex::encode(&signed.signature);
    let seq = signed.seq.to_string();
    let mut crafted: Vec<(String, String)> = Vec::new();
    for (field, good) in [("value", &value), ("signature", &signature)] {
        let fixed = field == "signature";
        for (why, bad) in misspelled(good, fixed)
            .into_iter()
            .chain([("uppercase", upper(good))])
        {
            crafted.push((
                format!("{field}: {why}"),
                written.replace(&format!("{field} {good}\n"), &format!("{field} {bad}\n")),
            ));
        }
    }
    for bad in [format!("+{seq}"), format!("0{seq}"), format!(" {seq}")] {
        crafted.push((
            format!("seq {bad:?}"),
            written.replace(&format!("seq {seq}\n"), &format!("seq {bad}\n")),
        ));
    }
    for (why, text) in crafted {
        assert_ne!(text, written, "{why}: nothing was replaced");
        assert!(load(&text).is_err(), "{why}: a crafted head file loaded");
        assert_eq!(home.all_heads().expect("all heads"), vec![], "{why}");
    }

    // Directory and file names are lowercase hex too: another spelling of the
    // same topic or branch is not a file xus wrote, and is not republished.
    load(&written).expect("restored");
    assert_eq!(home.all_heads().expect("all heads"), vec![signed.clone()]);
    let topic_dir = file.parent().expect("topic dir").to_owned();
    let renamed = |from: &Path, to: &Path| {
        std::fs::rename(from, to).expect("rename");
        let found = home.all_heads().expect("all heads");
        std::fs::rename(to, from).expect("rename back");
        found
    };
    let upper_branch = topic_dir.join(upper(&xus_codec::hex::encode(branch.as_bytes())));
    assert_eq!(renamed(&file, &upper_branch), Vec::<SignedHead>::new());
    let upper_topic = topic_dir.with_file_name(upper(&topic.to_hex()));
    assert_eq!(renamed(&topic_dir, &upper_topic), Vec::<SignedHead>::new());
    assert_eq!(home.all_heads().expect("all heads"), vec![signed]);
}

/// BEP 46 links: the `urn:btpk:` topic id and the `s=` salt.
#[test]
fn head_address_salts_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::at(dir.path().to_owned());
    let topic = pick(
        (1..=255).map(|b| TopicSecret::from_seed(seed(b)).topic()),
        |t| t.to_hex(),
    )
    .to_hex();
    let branch = "feature/é";
    let salt = xus_codec::hex::encode(branch.as_bytes());
    let link = |key: &str, salt: &str| format!("magnet:?xs=urn:btpk:{key}&s={salt}");
    let parse = |text: &str| HeadAddress::parse(text, &home);
    let good = parse(&link(&topic, &salt))
        .expect("parses")
        .expect("a head");
    assert_eq!(good.branch.as_str(), branch);
    for (why, bad) in misspelled(&salt, false) {
        assert!(
            parse(&link(&topic, &bad)).is_err(),
            "{why}: salt {bad:?} accepted"
        );
    }
    for (why, bad) in not_hex(&topic) {
        assert!(
            parse(&link(&bad, &salt)).is_err(),
            "{why}: key {bad:?} accepted"
        );
    }
    // Links from other programs may be uppercase: the same head.
    let shouted = parse(&link(&upper(&topic), &upper(&salt)))
        .expect("parses")
        .expect("a head");
    assert_eq!(shouted, good);
    assert_eq!(
        parse(&good.magnet()).expect("own link").expect("a head"),
        good
    );
}

/// Infohashes in magnets, and object ids.
#[test]
fn infohashes_and_object_ids() {
    let mut bytes = [0xab; 20];
    bytes[3] = 0x0f;
    let id = ObjectId(bytes);
    let good = id.to_hex();
    assert_eq!(
        parse_info_hash(&good),
        Some(xus::torrent::info_hash::InfoHash(bytes))
    );
    assert_eq!(ObjectId::from_hex(&good), Some(id));
    let magnet = |hash: &str| format!("magnet:?xt=urn:btih:{hash}");
    assert_eq!(
        Magnet::parse(&magnet(&good)).map(|m| m.info_hash),
        Ok(xus::torrent::info_hash::InfoHash(bytes))
    );
    for (why, bad) in not_hex(&good) {
        assert_eq!(parse_info_hash(&bad), None, "{why}: infohash {bad:?}");
        assert_eq!(
            xus::torrent::info_hash::InfoHash::from_hex(&bad),
            None,
            "{why}: stored infohash {bad:?}"
        );
        assert_eq!(ObjectId::from_hex(&bad), None, "{why}: object id {bad:?}");
        assert_eq!(
            ObjectId::from_hex_case(&bad, Case::Either),
            None,
            "{why}: object id {bad:?}"
        );
        assert!(
            Magnet::parse(&magnet(&bad)).is_err(),
            "{why}: magnet {bad:?}"
        );
    }
    // A sign that arrives percent-encoded, or as a form-encoded `+`, is no
    // better.
    let at = low_pair(&good).expect("a 0f pair");
    let escaped = format!("{}%2B{}", &good[..at], &good[at + 1..]);
    assert!(Magnet::parse(&magnet(&escaped)).is_err(), "{escaped}");
    let escape_with_sign = format!("{}%+f{}", &good[..at], &good[at + 2..]);
    assert!(
        Magnet::parse(&magnet(&escape_with_sign)).is_err(),
        "{escape_with_sign}"
    );

    // Magnets are written by other clients and typed: uppercase is the same
    // infohash. Object ids are what Git and xus print: lowercase only.
    let shouted = upper(&good);
    assert_eq!(
        xus::torrent::info_hash::InfoHash::from_hex(&shouted),
        None,
        "infohashes xus stores are lowercase"
    );
    assert_eq!(
        parse_info_hash(&shouted),
        Some(xus::torrent::info_hash::InfoHash(bytes))
    );
    assert_eq!(
        Magnet::parse(&magnet(&shouted)).map(|m| m.info_hash),
        Ok(xus::torrent::info_hash::InfoHash(bytes))
    );
    assert_eq!(ObjectId::from_hex(&shouted), None);
    assert_eq!(ObjectId::from_hex_case(&shouted, Case::Either), Some(id));
}
