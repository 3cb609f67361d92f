#!/usr/bin/env python3
"""A DHT node that lies: it answers BEP 5 queries like any node, and every
BEP 44 `get` with a mutable item for the given key whose signature is
forged (random bytes). Readers must refuse it, say so, and change nothing.

Usage: forging_dht_node.py TOPIC_KEY_HEX SALT VALUE_HEX
Prints `dht 127.0.0.1:PORT` once listening; exits when stdin closes.
Loopback only.
"""

import os
import socket
import sys
import threading

from krpc_bencode import decode, encode


def main():
    key = bytes.fromhex(sys.argv[1])
    salt = sys.argv[2].encode()
    value = bytes.fromhex(sys.argv[3])
    node_id = os.urandom(20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print("dht 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    while True:
        data, addr = sock.recvfrom(65536)
        try:
            message, _ = decode(data)
            if message.get(b"y") != b"q":
                continue
            query = message.get(b"q")
            reply = {b"id": node_id, b"nodes": b""}
            if query in (b"get", b"get_peers"):
                reply[b"token"] = b"forged"
            if query == b"get":
                reply.update({b"k": key, b"seq": 2_000_000_000_000_000, b"salt": salt,
                              b"sig": os.urandom(64), b"v": value})
            answer = {b"t": message[b"t"], b"y": b"r", b"r": reply,
                      b"ip": socket.inet_aton(addr[0]) + addr[1].to_bytes(2, "big")}
            sock.sendto(encode(answer), addr)
        except (ValueError, KeyError, IndexError, TypeError):
            continue


if __name__ == "__main__":
    main()
