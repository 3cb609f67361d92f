#!/usr/bin/python3
"""libtorrent (python3-libtorrent 2.0) on a private DHT on 127.0.0.1, for xus interop tests.

Run with /usr/bin/python3 (the Debian bindings import only there).

  lt_dht.py nodes --count K [--bootstrap HOST:PORT]...
  lt_dht.py download --bootstrap HOST:PORT... --infohash HEX --save DIR [--timeout S]
  lt_dht.py get-item --bootstrap HOST:PORT... --key HEX --salt TEXT [--timeout S]

Protocol on stdout, one line each, flushed:
  node 127.0.0.1:<port>   (nodes) one per DHT node (its UDP port), once every node is up
  ready                   (nodes) after the last `node` line; then runs until killed or
                          until its stdin closes
  done                    (download) metadata received, every piece downloaded and verified
  item seq=<n> ih=<hex> form=<dict|string>
                          (get-item) the highest-seq item found: `dict` when libtorrent's one
                          decode already gave the head dictionary (BEP 46), `string` when the
                          value was a byte string holding it (xus heads before BEP 46 form)
  error <text>            then a non-zero exit (3 on timeout)
Alerts, progress and DHT statistics go to stderr.

Every session is confined to loopback: it listens and sends on 127.0.0.1 only (so its UDP
socket cannot reach any other address), `dht_bootstrap_nodes` is exactly the loopback nodes
given (never libtorrent's default router), and LSD, UPnP and NAT-PMP are off.

Loopback DHT notes (see /work/shared/INTEROP.md):
- Every node shares the IP 127.0.0.1, so the per-IP routing restrictions, the "dark
  internet" filter, the BEP 42 node-id preference and the per-IP query rate limit (5/s by
  default, then a 5-minute block) are all off or raised.
- Upstream `mainline` nodes dropped libtorrent's requests (2-byte transaction ids); xus's
  vendored `mainline` answers them, so `download` and `get-item` work on a DHT of
  `xus dht serve` nodes alone. `nodes` (libtorrent nodes that know each other directly)
  is kept for DHTs that mix in libtorrent nodes.
"""

import argparse
import os
import re
import signal
import sys
import threading
import time

import libtorrent as lt

START = time.monotonic()


def out(*words):
    print(*words, flush=True)


def log(*words):
    print("[lt-dht %.2f]" % (time.monotonic() - START), *words, file=sys.stderr, flush=True)


def fail(text, code=2):
    log("error:", text)
    out("error", text)
    sys.exit(code)


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host.startswith("127."):
        fail("refusing a non-loopback DHT node %r" % text)
    return (host, int(port))


def make_session(bootstrap):
    """A session whose only network is a loopback DHT joined through `bootstrap`."""
    if not bootstrap:
        fail("every DHT node needs --bootstrap 127.0.0.1:PORT (libtorrent's default is public)")
    for node in bootstrap:
        parse_addr(node)
    cat = lt.alert.category_t
    mask = (
        cat.error_notification
        | cat.status_notification
        | cat.storage_notification
        | cat.dht_notification
        | cat.dht_operation_notification
        | cat.peer_notification
        | cat.connect_notification
    )
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "outgoing_interfaces": "127.0.0.1",
            "enable_dht": True,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            # Replaces libtorrent's built-in default: only the loopback nodes given.
            "dht_bootstrap_nodes": ",".join(bootstrap),
            # Everything shares 127.0.0.1.
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_prefer_verified_node_ids": False,
            "dht_block_ratelimit": 1000000,
            "dht_block_timeout": 1,
            "dht_upload_rate_limit": 1 << 22,
            "dht_max_fail_count": 20,
            "allow_multiple_connections_per_ip": True,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "aio_threads": 1,
            "hashing_threads": 1,
            "alert_mask": int(mask),
            "alert_queue_size": 10000,
            "user_agent": "xus-interop-libtorrent/" + lt.__version__,
        }
    )
    for node in ses.get_settings()["dht_bootstrap_nodes"].split(","):
        parse_addr(node)  # fails on anything but 127.x: the default never survives
    return ses


def dht_port(ses, deadline):
    """The UDP port the session's DHT node listens on."""
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                kind = str(a.socket_type).lower()
                if kind.endswith("udp"):
                    return a.port
            elif isinstance(a, lt.listen_failed_alert):
                fail("listen failed: %s" % a.message())
    fail("no UDP listen socket within the deadline", 3)


def dht_stats(ses, wait=2.0):
    """A one-line summary of the session's routing table and running lookups."""
    ses.post_dht_stats()
    end = time.monotonic() + wait
    while time.monotonic() < end:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_stats_alert):
                nodes = sum(b["num_nodes"] for b in a.routing_table)
                spare = sum(b["num_replacements"] for b in a.routing_table)
                lookups = ["%s(outstanding=%s responses=%s timeouts=%s)" % (
                    l.get("type"), l.get("outstanding_requests"), l.get("responses"),
                    l.get("timeouts")) for l in a.active_requests]
                return "routing nodes=%d replacements=%d buckets=%d lookups=%s" % (
                    nodes, spare, len(a.routing_table), lookups)
    return "no dht_stats_alert"


def exit_when_stdin_closes():
    def watch():
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except Exception:
            pass
        log("stdin closed; exiting")
        # os._exit: the sessions' destructors would only wait on their timers.
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def run_nodes(args):
    exit_when_stdin_closes()
    deadline = time.monotonic() + 60
    sessions = []
    ports = []
    for _ in range(args.count):
        ses = make_session(args.bootstrap)
        sessions.append(ses)
        ports.append(dht_port(ses, deadline))
    # Mainline nodes never answer libtorrent: the libtorrent nodes must know each other.
    for i, ses in enumerate(sessions):
        for j, port in enumerate(ports):
            if i != j:
                ses.add_dht_node(("127.0.0.1", port))
    # Up = every node has heard back from at least half of the others.
    want = max(1, (args.count - 1) // 2) if args.count > 1 else 0
    while True:
        for ses in sessions:
            ses.post_dht_stats()
        pending = set(range(len(sessions)))
        got = {}
        end = time.monotonic() + 5
        while pending and time.monotonic() < end:
            for i in list(pending):
                for a in sessions[i].pop_alerts():
                    if isinstance(a, lt.dht_stats_alert):
                        got[i] = sum(b["num_nodes"] for b in a.routing_table)
                        pending.discard(i)
            time.sleep(0.05)
        sizes = [got.get(i, 0) for i in range(len(sessions))]
        if min(sizes) >= want:
            log("routing table sizes", sizes)
            break
        if time.monotonic() > deadline:
            fail("libtorrent nodes did not learn each other: routing table sizes %s" % sizes, 3)
        time.sleep(0.2)
    for port in ports:
        out("node 127.0.0.1:%d" % port)
    out("ready")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    last = time.monotonic()
    while True:
        time.sleep(0.5)
        for ses in sessions:
            for a in ses.pop_alerts():
                if args.verbose:
                    log(a.what(), a.message())
        if args.verbose and time.monotonic() - last > 5:
            last = time.monotonic()
            for i, ses in enumerate(sessions):
                log("node %d (%d):" % (i, ports[i]), dht_stats(ses, 0.5))


def run_download(args):
    deadline = START + args.timeout
    ses = make_session(args.bootstrap)
    port = dht_port(ses, deadline)
    log("download session: dht/peer port %d, libtorrent %s" % (port, lt.__version__))
    atp = lt.parse_magnet_uri("magnet:?xt=urn:btih:%s" % args.infohash)
    atp.save_path = args.save
    h = ses.add_torrent(atp)
    peers_seen = set()
    replies = 0
    last_log = 0.0
    last_announce = 0.0
    while True:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_reply_alert):
                replies += 1
                log(a.what(), a.message())
            elif isinstance(a, (lt.peer_connect_alert, lt.peer_disconnected_alert)):
                peers_seen.add(str(a.endpoint))
                log(a.what(), a.message())
            elif isinstance(a, (lt.metadata_received_alert, lt.torrent_finished_alert,
                                lt.dht_bootstrap_alert, lt.torrent_error_alert,
                                lt.file_error_alert, lt.metadata_failed_alert)):
                log(a.what(), a.message())
        st = h.status()
        if st.errc.value() != 0:
            fail("torrent error: %s" % st.errc.message())
        now = time.monotonic()
        if now - last_log >= 1.0:
            last_log = now
            log("state=%s metadata=%s progress=%.3f peers=%d list=%d dht_replies=%d" % (
                st.state, st.has_metadata, st.progress, st.num_peers, st.list_peers, replies))
        # A torrent announces to the DHT when added and then every 15 minutes;
        # ask again every few seconds until a peer turns up.
        if st.num_peers == 0 and now - last_announce >= 3.0:
            last_announce = now
            h.force_dht_announce()
        if st.has_metadata and st.is_seeding:
            h.flush_cache()
            h.pause()
            ses.remove_torrent(h)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if ses.wait_for_alert(200) is not None:
                    if any(isinstance(a, lt.torrent_removed_alert) for a in ses.pop_alerts()):
                        break
            log("downloaded %d payload bytes" % st.total_payload_download)
            out("done")
            return
        if now > deadline:
            log(dht_stats(ses))
            log("peers seen: %s" % sorted(peers_seen))
            fail("timed out after %.0f s: state=%s metadata=%s progress=%.3f peers seen=%d "
                 "dht replies=%d" % (args.timeout, st.state, st.has_metadata, st.progress,
                                     len(peers_seen), replies), 3)


def dict_from_alert_message(message):
    """The string values of the top-level dict libtorrent rendered in a
    dht_mutable_item_alert's message (`... [ { 'ih': '<hex>', ... } ]`), as bytes;
    None when the item holds no dict (the lookup found nothing). libtorrent renders
    a binary string as hex and a printable one as text."""
    start = message.find("[ {")
    if start < 0:
        return None
    found = {}
    for key, text in re.findall(r"^ '([^']*)': '([^']*)'", message[start:], re.MULTILINE):
        if len(text) % 2 == 0 and re.fullmatch(r"[0-9a-f]*", text):
            found[key.encode()] = bytes.fromhex(text)
        else:
            found[key.encode()] = text.encode()
    return found or None


def run_get_item(args):
    deadline = START + args.timeout
    key = bytes.fromhex(args.key)
    if len(key) != 32:
        fail("--key must be 32 bytes of hex")
    salt = args.salt.encode()
    ses = make_session(args.bootstrap)
    dht_port(ses, deadline)
    best = None  # (seq, value)
    first_found = None
    last_get = 0.0
    while True:
        now = time.monotonic()
        if now - last_get >= 2.0:
            last_get = now
            ses.dht_get_mutable_item(key, salt)
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_mutable_item_alert):
                # The bindings give `item` only when `v` is a byte string (bytes or
                # str); for any other value (a BEP 46 dict) they raise, and the
                # alert's message carries libtorrent's own decoding of it.
                try:
                    value = a.item
                except RuntimeError:
                    value = dict_from_alert_message(a.message())
                log("mutable item: seq=%d authoritative=%s salt=%r value=%r" % (
                    a.seq, a.authoritative, a.salt, value))
                if bytes(a.key) != key:
                    log("(for another key: ignored)")
                    continue
                # A BEP 46 head is a dict already; an older xus head is a byte
                # string holding the bencoded dict; an empty value is libtorrent
                # saying the lookup found nothing.
                if isinstance(value, str):
                    value = value.encode("latin-1")
                if isinstance(value, dict) or (isinstance(value, bytes) and len(value) > 0):
                    if best is None or a.seq > best[0]:
                        best = (a.seq, value)
                    if first_found is None:
                        first_found = time.monotonic()
                elif value:
                    fail("item value is neither a dict nor a byte string: %r" % (value,))
            elif isinstance(a, (lt.dht_bootstrap_alert, lt.dht_put_alert)):
                log(a.what(), a.message())
        # Keep listening a few seconds after the first find, for higher seqs.
        if first_found is not None and time.monotonic() - first_found >= 3.0:
            break
        if time.monotonic() > deadline:
            log(dht_stats(ses))
            fail("no mutable item for key %s salt %r within %.0f s" % (args.key, args.salt,
                                                                      args.timeout), 3)
    seq, value = best
    form = "dict"
    if isinstance(value, bytes):
        form = "string"
        value = lt.bdecode(value)
    if not isinstance(value, dict):
        fail("item value is not a dict: %r" % (value,))
    # The bindings may give keys and byte strings as str or bytes.
    ih = value.get(b"ih", value.get("ih"))
    if isinstance(ih, str):
        ih = ih.encode("latin-1")
    if not isinstance(ih, bytes) or len(ih) != 20:
        fail("`ih` is not 20 bytes: %r" % (ih,))
    out("item seq=%d ih=%s form=%s" % (seq, ih.hex(), form))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["nodes", "download", "get-item"])
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--infohash")
    p.add_argument("--save")
    p.add_argument("--key")
    p.add_argument("--salt", default="")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.mode == "nodes":
        if args.count < 1 or not args.bootstrap:
            fail("nodes needs --count >= 1 and --bootstrap")
        run_nodes(args)
    elif args.mode == "download":
        if not args.bootstrap or not args.infohash or not args.save:
            fail("download needs --bootstrap, --infohash and --save")
        run_download(args)
    else:
        if not args.bootstrap or not args.key:
            fail("get-item needs --bootstrap and --key")
        run_get_item(args)


if __name__ == "__main__":
    main()
