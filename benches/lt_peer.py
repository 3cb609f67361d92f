#!/usr/bin/python3
"""A libtorrent peer on loopback for benchmarks.

  lt_peer.py seed TORRENT SAVE_PATH          -> prints "listening PORT", seeds until killed
  lt_peer.py get TORRENT SAVE_PATH PEER_ADDR -> downloads, prints "done SECONDS"

DHT, LSD, UPnP, NAT-PMP and uTP are off; everything stays on 127.0.0.1.
"""
import sys
import time

import libtorrent as lt


def session():
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "allow_multiple_connections_per_ip": True,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "alert_mask": 0,
    })
    return s


def add(s, torrent, save_path, seed_mode):
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    if seed_mode:
        params.flags |= lt.torrent_flags.seed_mode
    return s.add_torrent(params)


def main():
    mode, torrent, save_path = sys.argv[1:4]
    s = session()
    if mode == "seed":
        add(s, torrent, save_path, True)
        print("listening", s.listen_port(), flush=True)
        while True:
            time.sleep(1)
    elif mode == "get":
        host, port = sys.argv[4].rsplit(":", 1)
        start = time.monotonic()
        h = add(s, torrent, save_path, False)
        h.connect_peer((host, int(port)))
        while not h.status().is_seeding:
            time.sleep(0.02)
        print("done %.3f" % (time.monotonic() - start), flush=True)
    else:
        sys.exit("usage: lt_peer.py seed|get ...")


if __name__ == "__main__":
    main()
