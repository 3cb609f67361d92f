#!/usr/bin/python3
"""A libtorrent (python3-libtorrent 2.0) peer for xus interop tests, on 127.0.0.1 unless
--listen names another address (inside a test's own network namespace).

Run with /usr/bin/python3 (the Debian bindings import only there).

  lt_peer.py download --save DIR (--torrent FILE | --magnet URI) [--peer IP:PORT]... [--timeout S]
             [--listen IP] [--lsd] [--utp-only]
  lt_peer.py seed --save DIR --torrent FILE [--seed-mode] [--timeout S]

Protocol on stdout, one line each, flushed:
  listening <port>        the session accepts peers on 127.0.0.1:<port> (or --listen's address)
  seeding <infohash>      (seed) every piece checked: ready to serve
  transports tcp=<n> utp=<n>  (download, just before finished) peers seen over each transport
  finished <infohash>     (download) every piece downloaded and verified, storage flushed
  error <text>            then a non-zero exit
Alerts and progress go to stderr. The process exits by itself after --timeout seconds
(status 3), so it never outlives a test that lost track of it. --seed-mode trusts
the files and hashes each piece on first upload instead of all at start
(libtorrent's seed_mode flag; benches/seed_start.py compares it with xus). --lsd turns
on local service discovery (BEP 14: multicast announces on the LAN), off otherwise.
--utp-only speaks to peers over uTP (BEP 29) only: no TCP connection either way.
"""

import argparse
import signal
import sys
import time

import libtorrent as lt


def out(*words):
    print(*words, flush=True)


def log(*words):
    print("[lt %.2f]" % (time.monotonic() - START), *words, file=sys.stderr, flush=True)


START = time.monotonic()


def make_session(listen="127.0.0.1", lsd=False, utp_only=False):
    cat = lt.alert.category_t
    mask = (
        cat.error_notification
        | cat.peer_notification
        | cat.status_notification
        | cat.storage_notification
        | cat.connect_notification
    )
    # Everything on loopback (or the test namespace's address); nothing
    # that could reach beyond it.
    return lt.session(
        {
            "listen_interfaces": listen + ":0",
            "outgoing_interfaces": listen,
            "enable_dht": False,
            "enable_lsd": lsd,
            "enable_upnp": False,
            "enable_natpmp": False,
            "dht_bootstrap_nodes": "",
            "allow_multiple_connections_per_ip": True,
            "enable_outgoing_utp": utp_only,
            "enable_incoming_utp": utp_only,
            "enable_outgoing_tcp": not utp_only,
            "enable_incoming_tcp": not utp_only,
            "alert_mask": int(mask),
            "user_agent": "xus-interop-libtorrent/" + lt.__version__,
        }
    )


def parse_peer(text):
    host, _, port = text.rpartition(":")
    return (host, int(port))


# Connections made, ip:port -> "tcp" | "utp" (from libtorrent's alert text:
# the Debian bindings expose no uTP flag on peer_info).
SEEN_PEERS = {}


def note_connection(a):
    if isinstance(a, (lt.peer_connect_alert, lt.incoming_connection_alert)):
        text = a.message()
        key = str(getattr(a, "endpoint", getattr(a, "ip", "?")))
        SEEN_PEERS[key] = "utp" if "uTP" in text else "tcp"


def drain(ses):
    for a in ses.pop_alerts():
        note_connection(a)
        log(a.what(), a.message())


def fail(text, code=2):
    out("error", text)
    sys.exit(code)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["download", "seed"])
    p.add_argument("--save", required=True)
    p.add_argument("--torrent")
    p.add_argument("--magnet")
    p.add_argument("--peer", action="append", default=[])
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--seed-mode", action="store_true")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--lsd", action="store_true")
    p.add_argument("--utp-only", action="store_true")
    args = p.parse_args()
    if (args.torrent is None) == (args.magnet is None):
        fail("give exactly one of --torrent and --magnet")
    if args.mode == "seed" and args.torrent is None:
        fail("seed needs --torrent")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline = START + args.timeout
    ses = make_session(args.listen, args.lsd, args.utp_only)
    if args.magnet is not None:
        atp = lt.parse_magnet_uri(args.magnet)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save
    if args.seed_mode:
        atp.flags |= lt.torrent_flags.seed_mode
    peers = [parse_peer(x) for x in args.peer]
    if peers:
        atp.peers = list(atp.peers) + peers
    h = ses.add_torrent(atp)
    for peer in peers:
        h.connect_peer(peer)
    info_hash = str(h.info_hashes().v1)
    out("listening", ses.listen_port())

    reported = False
    last_log = 0.0
    while True:
        drain(ses)
        st = h.status()
        if st.errc.value() != 0:
            fail("torrent error: %s (file %d)" % (st.errc.message(), st.error_file))
        now = time.monotonic()
        if now - last_log >= 1.0:
            last_log = now
            log(
                "state=%s progress=%.4f done=%d/%d peers=%d down=%d up=%d"
                % (
                    st.state,
                    st.progress,
                    st.total_wanted_done,
                    st.total_wanted,
                    st.num_peers,
                    st.total_payload_download,
                    st.total_payload_upload,
                )
            )
        checking = st.state in (
            lt.torrent_status.checking_files,
            lt.torrent_status.checking_resume_data,
        )
        if args.mode == "seed" and not reported and not checking and st.has_metadata:
            if not st.is_seeding:
                fail(
                    "only %d of %d bytes under %s verify against the torrent"
                    % (st.total_wanted_done, st.total_wanted, args.save)
                )
            out("seeding", info_hash)
            reported = True
        if args.mode == "download" and st.is_seeding:
            h.flush_cache()
            h.pause()
            ses.remove_torrent(h)
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if ses.wait_for_alert(200) is not None:
                    alerts = ses.pop_alerts()
                    for a in alerts:
                        note_connection(a)
                        log(a.what(), a.message())
                    if any(isinstance(a, lt.torrent_removed_alert) for a in alerts):
                        break
            log("downloaded %d payload bytes" % st.total_payload_download)
            kinds = list(SEEN_PEERS.values())
            out("transports", "tcp=%d" % kinds.count("tcp"), "utp=%d" % kinds.count("utp"))
            out("finished", info_hash)
            return
        if now > deadline:
            fail("timed out after %.0f s in state %s" % (args.timeout, st.state), 3)
        ses.wait_for_alert(100)


if __name__ == "__main__":
    main()
