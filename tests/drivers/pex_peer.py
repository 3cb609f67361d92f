#!/usr/bin/python3
"""A BitTorrent peer that only talks PEX (BEP 11), for xus's dial-policy test.

  pex_peer.py --infohash HEX --port P --control-port C --list HOST:PORT... [--exit-after S]

Listens on 127.0.0.1:P. To the first peer that connects it answers the
handshake for HEX (extension protocol on, BEP 10), reads that peer's
extended handshake for its ut_pex id, announces ut_pex itself, then sends one
ut_pex message whose `added` lists every --list address (IPv4) plus
127.0.0.1:C, a second listener of its own: the control. It then keeps the
connection open, answering nothing, until killed or --exit-after seconds
(default 60) have passed: a test may start it detached.

Protocol on stdout, one line each, flushed:
  listening               both listeners are up
  pex sent                the ut_pex message went out
  control dialled         a connection reached the control listener (proof the
                          PEX message was read and acted on)
  error <text>            then exit 1
Needs nothing but the Python standard library.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import threading


def out(line):
    print(line, flush=True)


def fail(text):
    out("error " + text)
    sys.exit(1)


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            fail("peer closed the connection after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(value)


def ut_pex_id(payload):
    """The number a BEP 10 handshake dict gives `ut_pex` under `m` (a plain scan:
    the dict is the peer's, its `m` entries are `<len>:<name>i<n>e`)."""
    key = b"6:ut_pexi"
    at = payload.find(key)
    if at < 0:
        return None
    end = payload.index(b"e", at + len(key))
    return int(payload[at + len(key):end])


def compact(addresses):
    packed = b""
    for address in addresses:
        host, _, port = address.rpartition(":")
        packed += socket.inet_aton(host) + struct.pack(">H", int(port))
    return packed


def watch_control(listener):
    listener.accept()
    out("control dialled")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--infohash", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control-port", type=int, required=True)
    p.add_argument("--list", nargs="+", default=[])
    p.add_argument("--exit-after", type=int, default=60)
    args = p.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(args.exit_after)
    info_hash = bytes.fromhex(args.infohash)
    if len(info_hash) != 20:
        fail("--infohash must be 40 hex digits")

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(4)
    control = socket.socket()
    control.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    control.bind(("127.0.0.1", args.control_port))
    control.listen(4)
    threading.Thread(target=watch_control, args=(control,), daemon=True).start()
    out("listening")

    conn, _ = listener.accept()
    theirs = recv_exact(conn, 68)
    if theirs[28:48] != info_hash:
        fail("handshake for another torrent: %s" % theirs[28:48].hex())
    if not theirs[25] & 0x10:
        fail("the peer does not speak the extension protocol")
    reserved = bytearray(8)
    reserved[5] |= 0x10
    conn.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + info_hash + b"-PX0001-pexpexpexpex")

    # Read messages until the peer's extended handshake (id 20, extended id 0).
    their_pex = None
    while their_pex is None:
        (length,) = struct.unpack(">I", recv_exact(conn, 4))
        if length == 0:
            continue
        body = recv_exact(conn, length)
        if body[0] == 20 and body[1] == 0:
            their_pex = ut_pex_id(body[2:])
            if their_pex is None:
                fail("the peer's extended handshake has no ut_pex: %r" % body[2:])

    ours = bencode({b"m": {b"ut_pex": 1}, b"v": b"pex_peer"})
    conn.sendall(struct.pack(">IBB", len(ours) + 2, 20, 0) + ours)
    listed = args.list + ["127.0.0.1:%d" % args.control_port]
    pex = bencode({b"added": compact(listed), b"added.f": bytes(len(listed))})
    conn.sendall(struct.pack(">IBB", len(pex) + 2, 20, their_pex) + pex)
    out("pex sent")
    # Keep the connection (and so the swarm) alive; drain what the peer sends.
    while conn.recv(65536):
        pass
    threading.Event().wait()


if __name__ == "__main__":
    main()
