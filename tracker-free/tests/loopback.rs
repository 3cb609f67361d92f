//! The crate against a real private DHT on 127.0.0.1: every node here is
//! bootstrapped from loopback only.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tracker_free::{Branch, Dht, DhtConfig, Head, HeadChoice, IndexDefault, InfoHash, TopicSecret};

const NODES: usize = 20;

fn network() -> (Vec<Dht>, DhtConfig) {
    let nodes = Dht::start_private_network(NODES, Ipv4Addr::LOCALHOST, true).expect("private DHT");
    let first = futures_lite::future::block_on(nodes[0].local_addr());
    let config = DhtConfig {
        bootstrap: Some(vec![first.to_string()]),
        bind: Some(Ipv4Addr::LOCALHOST),
        request_timeout: Duration::from_millis(200),
        ..DhtConfig::default()
    };
    config
        .require_loopback()
        .expect("test DHT is loopback only");
    (nodes, config)
}

fn head(byte: u8) -> Head {
    Head::new(vec![byte; 20], InfoHash([byte; 20]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_peer_is_found_by_another_node() {
    let (_nodes, config) = network();
    let seeder = Dht::start(&config).expect("seeder node");
    let reader = Dht::start(&config).expect("reader node");
    assert!(seeder.bootstrapped().await && reader.bootstrapped().await);
    let infohash = InfoHash([0xab; 20]);
    seeder.announce(infohash, 45678).await.expect("announce");
    let mut found = Vec::new();
    let mut stream = reader.peers(infohash);
    while let Some(batch) = stream.next().await {
        found.extend(batch);
    }
    assert!(
        found.contains(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 45678)),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_move_forward_and_survive_the_writer() {
    let (_nodes, config) = network();
    let secret = TopicSecret::generate().expect("key");
    let main = Branch::new("main").expect("branch");
    let first = {
        let writer = Dht::start(&config).expect("writer node");
        assert!(writer.bootstrapped().await);
        let first = writer
            .publish_head(&secret, &main, &head(1), 0)
            .await
            .expect("first publish");
        let second = writer
            .publish_head(&secret, &main, &head(2), 0)
            .await
            .expect("second publish");
        assert!(second.seq > first.seq);
        // Publishing the current head again changes nothing.
        let again = writer
            .publish_head(&secret, &main, &head(2), 0)
            .await
            .expect("same head");
        assert_eq!(again, second);
        first
    };
    // The writer is gone; a reader still gets the newest head.
    let reader = Dht::start(&config).expect("reader node");
    assert!(reader.bootstrapped().await);
    let mut lookup = reader.lookup_head(&secret.topic(), &main).await;
    let HeadChoice::New(newest) = lookup.choose(Some(&first)) else {
        panic!("no newer head: {lookup:?}");
    };
    assert_eq!(newest.head, head(2));
    assert!(lookup.refused.is_empty(), "{:?}", lookup.refused);
    // Another branch of the same topic is independent.
    let dev = Branch::new("dev").expect("branch");
    let mut other = reader.lookup_head(&secret.topic(), &dev).await;
    assert_eq!(other.choose(None), HeadChoice::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_both_finish_with_distinct_seqs() {
    let (_nodes, config) = network();
    let secret = TopicSecret::generate().expect("key");
    let main = Branch::new("main").expect("branch");
    let a = Dht::start(&config).expect("node a");
    let b = Dht::start(&config).expect("node b");
    assert!(a.bootstrapped().await && b.bootstrapped().await);
    let (one, two) = (head(1), head(2));
    let (ra, rb) = tokio::join!(
        a.publish_head(&secret, &main, &one, 0),
        b.publish_head(&secret, &main, &two, 0)
    );
    let (ra, rb) = (ra.expect("writer a"), rb.expect("writer b"));
    assert_ne!(ra.seq, rb.seq, "two different heads share a seq");
    let mut lookup = a.lookup_head(&secret.topic(), &main).await;
    let HeadChoice::New(winner) = lookup.choose(None) else {
        panic!("no head: {lookup:?}");
    };
    assert_eq!(winner.seq, ra.seq.max(rb.seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_index_gathers_every_branch_and_keeps_its_default() {
    let (_nodes, config) = network();
    let secret = TopicSecret::generate().expect("key");
    let main = Branch::new("main").expect("branch");
    let dev = Branch::new("dev").expect("branch");
    let writer = Dht::start(&config).expect("writer node");
    let reader = Dht::start(&config).expect("reader node");
    assert!(writer.bootstrapped().await && reader.bootstrapped().await);
    assert!(reader.lookup_index(&secret.topic()).await.is_empty());

    let first = writer
        .publish_index(
            &secret,
            std::slice::from_ref(&main),
            &IndexDefault::Keep(main.clone()),
            None,
        )
        .await
        .expect("first index");
    // A second publisher names another branch and another default: the
    // branch is added, the default stays the first one's.
    let second = writer
        .publish_index(
            &secret,
            std::slice::from_ref(&dev),
            &IndexDefault::Keep(dev.clone()),
            Some("http://m:1/"),
        )
        .await
        .expect("second index");
    assert!(second.seq > first.seq);
    // Publishing what is there only stores it again.
    let again = writer
        .publish_index(
            &secret,
            std::slice::from_ref(&main),
            &IndexDefault::Keep(main.clone()),
            Some("http://m:1/"),
        )
        .await
        .expect("same index");
    assert_eq!(again, second);

    let found = reader.lookup_index(&secret.topic()).await;
    let index = tracker_free::merge_indexes(&found).expect("an index");
    assert_eq!(index.branches(), [dev.clone(), main.clone()]);
    assert_eq!(index.default_branch(), &main);
    assert_eq!(index.master(), Some("http://m:1/"));
    // A topic's master sets the default whatever the index said.
    let set = writer
        .publish_index(&secret, &[], &IndexDefault::Set(dev.clone()), None)
        .await
        .expect("default set");
    assert_eq!(set.index.default_branch(), &dev);
    assert_eq!(set.index.branches().len(), 2);
    // The index lives beside the heads, not in place of one.
    let mut head_lookup = reader.lookup_head(&secret.topic(), &main).await;
    assert_eq!(head_lookup.choose(None), HeadChoice::NotFound);
}

/// A reader's lookup ends early once answers agree, but a minority of
/// nodes holding an older head never wins over the newer one the rest hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_minority_does_not_win_a_readers_lookup() {
    let stale_nodes = Dht::start_private_network(3, Ipv4Addr::LOCALHOST, true).expect("stale DHT");
    let fresh_nodes = Dht::start_private_network(12, Ipv4Addr::LOCALHOST, true).expect("fresh DHT");
    let first_of = |nodes: &[Dht]| futures_lite::future::block_on(nodes[0].local_addr());
    let config_from = |bootstrap: Vec<String>| DhtConfig {
        bootstrap: Some(bootstrap),
        bind: Some(Ipv4Addr::LOCALHOST),
        request_timeout: Duration::from_millis(200),
        ..DhtConfig::default()
    };
    let stale_config = config_from(vec![first_of(&stale_nodes).to_string()]);
    let fresh_config = config_from(vec![first_of(&fresh_nodes).to_string()]);
    let secret = TopicSecret::generate().expect("key");
    let main = Branch::new("main").expect("branch");
    let old = {
        let writer = Dht::start(&stale_config).expect("stale writer");
        assert!(writer.bootstrapped().await);
        writer
            .publish_head(&secret, &main, &head(1), 0)
            .await
            .expect("old head")
    };
    let new = {
        let writer = Dht::start(&fresh_config).expect("fresh writer");
        assert!(writer.bootstrapped().await);
        writer
            .publish_head(&secret, &main, &head(2), old.seq + 1)
            .await
            .expect("new head")
    };
    let both = config_from(vec![
        first_of(&stale_nodes).to_string(),
        first_of(&fresh_nodes).to_string(),
    ]);
    for _ in 0..5 {
        let reader = Dht::start(&both).expect("reader");
        assert!(reader.bootstrapped().await);
        let mut lookup = reader.resolve_head(&secret.topic(), &main).await;
        match lookup.choose(None) {
            HeadChoice::New(head) => assert_eq!(head.seq, new.seq, "the newest head wins"),
            other => panic!("no head: {other:?}"),
        }
    }
}
