#!/usr/bin/env python3
"""A DHT node that lies about other nodes: every BEP 5 query it gets is
answered with a `nodes` list naming the given addresses (say multicast,
broadcast, 0.0.0.0, an address off loopback) and one loopback control node.
The control answers every query the same way and prints `control queried`
the first time: proof that the querier read the list, and so that every
address it did not send to was refused, not missed.

Usage: lying_dht_node.py --port P --control-port C --list IP:PORT...
       [--exit-after SECS]
Prints `listening` once both sockets are bound, `answered` after its first
answer. Loopback only (run it in a network namespace of its own).
"""

import argparse
import os
import socket
import sys
import threading
import time

from krpc_bencode import decode, encode


def compact(address):
    host, port = address.rsplit(":", 1)
    return os.urandom(20) + socket.inet_aton(host) + int(port).to_bytes(2, "big")


def serve(sock, nodes, first_line):
    node_id = os.urandom(20)
    said = False
    while True:
        data, addr = sock.recvfrom(65536)
        try:
            message, _ = decode(data)
            if message.get(b"y") != b"q":
                continue
            reply = {b"id": node_id, b"nodes": nodes}
            if message.get(b"q") in (b"get", b"get_peers"):
                reply[b"token"] = b"tok"
            answer = {b"t": message[b"t"], b"y": b"r", b"r": reply}
            sock.sendto(encode(answer), addr)
            if not said:
                print(first_line, flush=True)
                said = True
        except (ValueError, KeyError, IndexError, TypeError):
            continue


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--list", nargs="+", required=True)
    parser.add_argument("--exit-after", type=float, default=30)
    args = parser.parse_args()
    control = "127.0.0.1:%d" % args.control_port
    nodes = b"".join(compact(a) for a in args.list + [control])
    liar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    liar.bind(("127.0.0.1", args.port))
    checker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    checker.bind(("127.0.0.1", args.control_port))
    threading.Thread(target=serve, args=(checker, nodes, "control queried"), daemon=True).start()
    threading.Thread(target=serve, args=(liar, nodes, "answered"), daemon=True).start()
    print("listening", flush=True)
    time.sleep(args.exit_after)
    sys.exit(0)


if __name__ == "__main__":
    main()
