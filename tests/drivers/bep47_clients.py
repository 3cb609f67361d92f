#!/usr/bin/python3
"""What stock BitTorrent clients write to disk for BEP 47 symlink entries.

Builds two multi-file v1 torrents by hand (no tracker, 16 KiB pieces):
  bep47-good: a.txt, dir/b.bin, dir/empty (0 bytes), dir/link-up and link-to-a
              (both `attr: l`, `symlink path: ["a.txt"]`)
  bep47-evil: a.txt, dir/b.bin, evil (`symlink path: ["..", "..", "etc", "passwd"]`)
seeds both with libtorrent on 127.0.0.1, downloads each with libtorrent,
Transmission, aria2c and qbittorrent-nox into a fresh directory nested three
levels deep (so an escaping link would land where it is seen), and prints one
JSON line per (client, torrent) with what is on disk. tests/stock_symlinks.rs
pins the result: xus's commit-torrent format does not use BEP 47 symlinks
because of it (docs/FORMAT.md, "Symlinks and BEP 47").

Loopback only: DHT, LSD, PeX, UPnP/NAT-PMP and uTP are off in every client,
no torrent has a tracker, and the seed dials each downloader (Transmission
3.00 never dials 127.0.0.0/8 peers; aria2c cannot be given a peer).

Usage: /usr/bin/python3 bep47_clients.py WORKDIR   (needs python3-libtorrent)
  WORKDIR must be empty or absent; everything, clients' HOME included, lives
  under it.
Env:   BEP47_CLIENTS  comma list (default libtorrent,transmission,aria2,qbittorrent)
       BEP47_TIMEOUT  seconds per download (default 60)
       BEP47_DEADLINE seconds for the whole run (default 600)
Output: JSON lines on stdout: one "env" (client versions), one "seed" per
  torrent, one "result" per (client, torrent); a summary on stderr.
  Exit status 0 when every download was attempted, 2 when the harness failed.
  Every client process started is killed on exit, also on errors and SIGTERM.
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback
import urllib.parse
import uuid

import libtorrent as lt

TIMEOUT = float(os.environ.get("BEP47_TIMEOUT", "60"))
DEADLINE = int(os.environ.get("BEP47_DEADLINE", "600"))
CLIENTS = [c.strip() for c in
           os.environ.get("BEP47_CLIENTS", "libtorrent,transmission,aria2,qbittorrent").split(",")
           if c.strip()]
PIECE = 16384
LO = "127.0.0.1"

BASE = None         # the work directory (argv[1])
CHILD_ENV = None    # environment of every client process (HOME under BASE)
PROCS = []          # every client process started, for cleanup()


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------- processes

def spawn(argv, **kw):
    """Starts a client process, recorded for cleanup()."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=CHILD_ENV, **kw)
    PROCS.append(proc)
    return proc


def stop_proc(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cleanup():
    for proc in PROCS:
        try:
            stop_proc(proc, grace=5)
        except Exception:  # noqa: BLE001
            try:
                proc.kill()
            except OSError:
                pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def on_alarm(_signum, _frame):
    raise HarnessError("the whole run took longer than BEP47_DEADLINE=%ds" % DEADLINE)


# ---------------------------------------------------------------- bencode

def bencode(x):
    if isinstance(x, bool):
        raise TypeError("bool")
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(i) for i in x) + b"e"
    if isinstance(x, dict):
        items = sorted(((k.encode() if isinstance(k, str) else k), v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(x))


# ---------------------------------------------------------------- payload + torrents

A_DATA = b"hello\n"
B_DATA = bytes((i * 131 + 7) & 0xFF for i in range(40 * 1024))

# (path in the torrent, "file" | "link", bytes | BEP 47 symlink path components)
TORRENTS = {
    "good": {
        "name": "bep47-good",
        "entries": [
            ("a.txt", "file", A_DATA),
            ("dir/b.bin", "file", B_DATA),
            # control: a plain zero-length regular file (does the client create empty files?)
            ("dir/empty", "file", b""),
            # BEP 47: "symlink path" is the target relative to the torrent's root directory.
            ("dir/link-up", "link", ["a.txt"]),
            ("link-to-a", "link", ["a.txt"]),
        ],
    },
    "evil": {
        "name": "bep47-evil",
        "entries": [
            ("a.txt", "file", A_DATA),
            ("dir/b.bin", "file", B_DATA),
            ("evil", "link", ["..", "..", "etc", "passwd"]),
        ],
    },
}


def build_torrent(spec):
    files, blob = [], b""
    for path, kind, data in spec["entries"]:
        comps = path.split("/")
        if kind == "file":
            files.append({"length": len(data), "path": comps})
            blob += data
        else:
            files.append({"attr": "l", "length": 0, "path": comps, "symlink path": data})
    pieces = b"".join(hashlib.sha1(blob[i:i + PIECE]).digest() for i in range(0, len(blob), PIECE))
    info = {"files": files, "name": spec["name"], "piece length": PIECE, "pieces": pieces}
    return bencode({"info": info}), hashlib.sha1(bencode(info)).hexdigest()


def build_payload(root, spec):
    """The regular files only: the seed's libtorrent creates the links itself."""
    top = os.path.join(root, spec["name"])
    for path, kind, data in spec["entries"]:
        if kind == "file":
            p = os.path.join(top, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)


# ---------------------------------------------------------------- helpers

def free_port():
    for _ in range(50):
        t = socket.socket()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((LO, 0))
            port = t.getsockname()[1]
            u.bind((LO, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise HarnessError("no free port")


def sha1_file(p):
    with open(p, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def passwd_fingerprint():
    st = os.stat("/etc/passwd")
    return [sha1_file("/etc/passwd"), st.st_mtime_ns, st.st_size]


def walk(top):
    """Every path under top (relative), with kind/size/target; symlinks not followed."""
    out = {}
    if not os.path.lexists(top):
        return out
    for dirpath, dirnames, filenames in os.walk(top):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "symlink->" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = "file:%d" % st.st_size
            else:
                out[rel] = "other"
    return dict(sorted(out.items()))


def observe_entry(root, dl, path, kind, data):
    p = os.path.join(root, path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return {"kind": "missing"}
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(p)
        dl_real = os.path.realpath(dl)
        return {
            "kind": "symlink",
            "target": os.readlink(p),
            "resolves_inside_dl": real == dl_real or real.startswith(dl_real + os.sep),
            "resolves_to_existing": os.path.exists(p),
            "resolves_to": os.path.relpath(real, os.path.realpath(root)),
        }
    if stat.S_ISREG(st.st_mode):
        o = {"kind": "file", "size": st.st_size}
        if kind == "file":
            o["content_ok"] = sha1_file(p) == hashlib.sha1(data).hexdigest()
        return o
    if stat.S_ISDIR(st.st_mode):
        return {"kind": "dir"}
    return {"kind": "other"}


def version_of(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL, env=CHILD_ENV)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return "unavailable: %s" % e


def tail_lines(path, pred, limit=20):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip("\n") for l in f if pred(l)]
    except FileNotFoundError:
        return []
    return lines[-limit:]


# ---------------------------------------------------------------- libtorrent

def lt_settings(port):
    return {
        "listen_interfaces": "%s:%d" % (LO, port),
        "outgoing_interfaces": LO,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "allow_multiple_connections_per_ip": True,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_tcp": True,
        "enable_outgoing_tcp": True,
        "alert_mask": lt.alert.category_t.all_categories,
        "min_reconnect_time": 1,
    }


ERROR_ALERTS = ("file_error_alert", "torrent_error_alert", "metadata_failed_alert",
                "add_torrent_alert", "storage_moved_failed_alert", "fastresume_rejected_alert",
                "hash_failed_alert", "file_rename_failed_alert", "listen_failed_alert")


def lt_collect(ses, sink):
    for a in ses.pop_alerts():
        name = type(a).__name__
        if name in ERROR_ALERTS:
            err = getattr(a, "error", None)
            if name == "add_torrent_alert" and (err is None or err.value() == 0):
                continue
            sink.append("%s: %s" % (name, a.message()))


def lt_parsed_files(ti):
    """The file list as libtorrent parsed it (symlink targets after its sanitizing)."""
    fs = ti.files()
    out = []
    for i in range(fs.num_files()):
        e = {"path": fs.file_path(i), "size": fs.file_size(i)}
        if fs.file_flags(i) & lt.file_storage.flag_symlink:
            e["symlink"] = fs.symlink(i)
        out.append(e)
    return out


class Seed:
    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.ses = lt.session(lt_settings(self.port))
        self.handles = {}

    def add(self, key, tfile, ih):
        ti = lt.torrent_info(tfile)
        rec = {"kind": "seed", "torrent": key, "infohash": ih,
               "infohash_libtorrent": str(ti.info_hashes().v1),
               "parsed_files": lt_parsed_files(ti)}
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = self.root
        h = self.ses.add_torrent(atp)
        self.handles[key] = h
        errs = []
        t0 = time.time()
        while time.time() - t0 < 30:
            lt_collect(self.ses, errs)
            s = h.status()
            if s.is_seeding or s.errc.value() != 0:
                break
            time.sleep(0.2)
        lt_collect(self.ses, errs)
        s = h.status()
        rec.update(seeding=bool(s.is_seeding), state=str(s.state),
                   error=s.errc.message() if s.errc.value() else None, alerts=errs,
                   seed_dir=walk(os.path.join(self.root, TORRENTS[key]["name"])))
        return rec

    def dial(self, key, port):
        lt_collect(self.ses, [])
        h = self.handles.get(key)
        if h is not None and port:
            try:
                h.connect_peer((LO, port))
            except Exception:  # noqa: BLE001
                pass

    def close(self):
        for h in self.handles.values():
            h.pause()
        self.ses.pause()
        self.handles = {}
        self.ses = None


class LibtorrentClient:
    name = "libtorrent"

    def __init__(self, cfg, dl, seed_port):
        self.dl, self.seed_port = dl, seed_port
        self.port = free_port()
        self.errors = []
        self.ses = None
        self.h = None

    def start(self):
        self.ses = lt.session(lt_settings(self.port))

    def add(self, tfile, ih):
        try:
            ti = lt.torrent_info(tfile)
        except Exception as e:  # noqa: BLE001
            self.errors.append("torrent_info: %s" % e)
            return "rejected: %s" % e
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = self.dl
        atp.peers = [(LO, self.seed_port)]
        self.h = self.ses.add_torrent(atp)
        return "added"

    def poll(self):
        lt_collect(self.ses, self.errors)
        if self.h is None:
            return {"done": False, "fatal": True}
        s = self.h.status()
        if s.errc.value():
            msg = "status error: %s (file %d)" % (s.errc.message(), s.error_file)
            if msg not in self.errors:
                self.errors.append(msg)
        try:
            self.h.connect_peer((LO, self.seed_port))
        except Exception:  # noqa: BLE001
            pass
        return {"done": bool(s.is_seeding), "progress": round(s.progress, 4),
                "state": str(s.state), "fatal": False}

    def stop(self):
        if self.ses is not None:
            lt_collect(self.ses, self.errors)
            if self.h is not None:
                self.h.pause()
            self.ses.pause()
            self.h = self.ses = None


# ---------------------------------------------------------------- Transmission

class TransmissionClient:
    name = "transmission"

    def __init__(self, cfg, dl, seed_port):
        self.cfg, self.dl = cfg, dl
        self.port = free_port()
        self.rpc = free_port()
        self.proc = None
        self.sid = ""
        self.tid = None
        self.errors = []
        self.log = os.path.join(cfg, "daemon.log")

    def start(self):
        settings = {
            "bind-address-ipv4": LO, "bind-address-ipv6": "::1",
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
            "port-forwarding-enabled": False, "utp-enabled": False,
            "peer-port": self.port, "peer-port-random-on-start": False,
            "rpc-enabled": True, "rpc-bind-address": LO, "rpc-port": self.rpc,
            "rpc-authentication-required": False, "rpc-whitelist-enabled": True,
            "rpc-whitelist": "127.0.0.1", "rpc-host-whitelist-enabled": False,
            "download-dir": self.dl, "incomplete-dir-enabled": False,
            "watch-dir-enabled": False, "blocklist-enabled": False,
            "start-added-torrents": True, "script-torrent-done-enabled": False,
            "message-level": 2, "ratio-limit-enabled": False,
        }
        with open(os.path.join(self.cfg, "settings.json"), "w") as f:
            json.dump(settings, f, indent=1)
        with open(os.path.join(self.cfg, "stderr.txt"), "w") as err:
            self.proc = spawn(["transmission-daemon", "-f", "-g", self.cfg, "-e", self.log],
                              stdout=subprocess.DEVNULL, stderr=err)
        t0 = time.time()
        while time.time() - t0 < 20:
            try:
                self.call("session-get")
                return
            except Exception:  # noqa: BLE001
                if self.proc.poll() is not None:
                    raise HarnessError("transmission-daemon exited rc=%s" % self.proc.returncode)
                time.sleep(0.3)
        raise HarnessError("transmission RPC did not come up within 20 s")

    def call(self, method, args=None):
        body = json.dumps({"method": method, "arguments": args or {}})
        for _ in range(3):
            c = http.client.HTTPConnection(LO, self.rpc, timeout=10)
            try:
                c.request("POST", "/transmission/rpc", body,
                          {"X-Transmission-Session-Id": self.sid,
                           "Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
            finally:
                c.close()
            if r.status == 409:
                self.sid = r.getheader("X-Transmission-Session-Id", "")
                continue
            if r.status != 200:
                raise HarnessError("transmission rpc %s: HTTP %d" % (method, r.status))
            return json.loads(data)
        raise HarnessError("transmission rpc: no session id")

    def add(self, tfile, ih):
        with open(tfile, "rb") as f:
            meta = base64.b64encode(f.read()).decode()
        r = self.call("torrent-add", {"metainfo": meta, "download-dir": self.dl, "paused": False})
        if r.get("result") != "success":
            self.errors.append("torrent-add: %s" % r.get("result"))
            return "rejected: %s" % r.get("result")
        a = r["arguments"].get("torrent-added") or r["arguments"].get("torrent-duplicate")
        self.tid = a["id"]
        return "added"

    def poll(self):
        if self.tid is None:
            return {"done": False, "fatal": True}
        if self.proc.poll() is not None:
            self.errors.append("daemon exited rc=%s" % self.proc.returncode)
            return {"done": False, "fatal": True}
        r = self.call("torrent-get", {"ids": [self.tid], "fields": [
            "percentDone", "leftUntilDone", "status", "error", "errorString", "files",
            "peersConnected", "sizeWhenDone"]})
        ts = r["arguments"]["torrents"]
        if not ts:
            return {"done": False, "fatal": True}
        t = ts[0]
        if t["error"]:
            msg = "torrent error %d: %s" % (t["error"], t["errorString"])
            if msg not in self.errors:
                self.errors.append(msg)
        self.files = [(f["name"], f["length"], f["bytesCompleted"]) for f in t["files"]]
        return {"done": t["percentDone"] >= 1.0 and t["leftUntilDone"] == 0,
                "progress": round(t["percentDone"], 4), "state": "status=%d peers=%d" % (
                    t["status"], t["peersConnected"]), "fatal": False}

    def stop(self):
        stop_proc(self.proc)
        self.errors += tail_lines(self.log, lambda l: "rror" in l or "ERR" in l)
        self.errors += tail_lines(os.path.join(self.cfg, "stderr.txt"), lambda l: l.strip())


# ---------------------------------------------------------------- aria2

class Aria2Client:
    name = "aria2"

    def __init__(self, cfg, dl, seed_port):
        self.cfg, self.dl = cfg, dl
        self.port = free_port()
        self.proc = None
        self.errors = []
        self.out = os.path.join(cfg, "stdout.txt")
        self.log = os.path.join(cfg, "aria2.log")

    def start(self):
        pass

    def add(self, tfile, ih):
        with open(self.out, "w") as out:
            self.proc = spawn([
                "aria2c", "--no-conf=true", "--dir=" + self.dl, "--interface=" + LO,
                "--disable-ipv6=true", "--enable-dht=false", "--enable-dht6=false",
                "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                "--bt-exclude-tracker=*", "--listen-port=%d" % self.port,
                "--seed-time=0", "--summary-interval=0", "--file-allocation=none",
                "--auto-file-renaming=false", "--allow-overwrite=true",
                "--console-log-level=warn", "--log=" + self.log, "--log-level=info",
                "--bt-stop-timeout=%d" % int(TIMEOUT), tfile],
                stdout=out, stderr=subprocess.STDOUT)
        return "started"

    def poll(self):
        rc = self.proc.poll()
        if rc is None:
            return {"done": False, "progress": None, "state": "running", "fatal": False}
        return {"done": rc == 0, "progress": None, "state": "exited rc=%d" % rc, "fatal": rc != 0}

    def stop(self):
        stop_proc(self.proc)
        rc = self.proc.returncode if self.proc else None
        if rc not in (0, None):
            self.errors.append("aria2c exit code %s" % rc)
        self.errors += tail_lines(self.out, lambda l: any(
            k in l for k in ("ERROR", "Exception", "WARN", "errorCode", "|ERR")))
        self.errors += tail_lines(self.log, lambda l: "[ERROR]" in l or "[WARN]" in l)


# ---------------------------------------------------------------- qBittorrent

class QbittorrentClient:
    name = "qbittorrent"

    def __init__(self, cfg, dl, seed_port):
        self.cfg, self.dl, self.seed_port = cfg, dl, seed_port
        self.port = free_port()
        self.web = free_port()
        self.proc = None
        self.ih = None
        self.errors = []

    def start(self):
        conf_dir = os.path.join(self.cfg, "qBittorrent", "config")
        os.makedirs(conf_dir, exist_ok=True)
        conf = "\n".join([
            "[LegalNotice]", "Accepted=true", "",
            "[BitTorrent]",
            "Session\\DHTEnabled=false", "Session\\LSDEnabled=false", "Session\\PeXEnabled=false",
            "Session\\Port=%d" % self.port, "Session\\UseRandomPort=false",
            "Session\\Interface=lo", "Session\\InterfaceName=lo",
            "Session\\InterfaceAddress=127.0.0.1", "Session\\BTProtocol=TCP",
            "Session\\MultiConnectionsPerIp=true", "Session\\QueueingSystemEnabled=false",
            "Session\\DefaultSavePath=" + self.dl, "Session\\TempPathEnabled=false",
            "Session\\AddTorrentPaused=false", "Session\\TorrentContentLayout=Original",
            "Session\\AddTrackersEnabled=false", "Session\\AnonymousModeEnabled=false",
            "",
            "[Network]", "PortForwardingEnabled=false", "",
            "[Preferences]",
            "Connection\\ResolvePeerCountries=false", "Connection\\ResolvePeerHostNames=false",
            "Connection\\UPnP=false",
            "Bittorrent\\DHT=false", "Bittorrent\\LSD=false", "Bittorrent\\PeX=false",
            "WebUI\\Enabled=true", "WebUI\\Address=127.0.0.1", "WebUI\\Port=%d" % self.web,
            "WebUI\\LocalHostAuth=false", "WebUI\\HostHeaderValidation=false",
            "WebUI\\CSRFProtection=false", "WebUI\\UseUPnP=false",
            "General\\Locale=en", "Search\\SearchEnabled=false", "DynDNS\\Enabled=false", "",
            "[RSS]", "Session\\EnableProcessing=false", "AutoDownloader\\EnableProcessing=false", "",
        ])
        with open(os.path.join(conf_dir, "qBittorrent.conf"), "w") as f:
            f.write(conf)
        with open(os.path.join(self.cfg, "stdout.txt"), "w") as out:
            self.proc = spawn(
                ["qbittorrent-nox", "--profile=" + self.cfg, "--webui-port=%d" % self.web],
                stdout=out, stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < 30:
            try:
                st, _ = self.req("GET", "/api/v2/app/version")
                if st == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise HarnessError("qbittorrent-nox exited rc=%s" % self.proc.returncode)
            time.sleep(0.3)
        raise HarnessError("qbittorrent WebUI did not come up within 30 s")

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(LO, self.web, timeout=10)
        try:
            c.request(method, path, body, headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_form(self, path, fields):
        return self.req("POST", path, urllib.parse.urlencode(fields),
                        {"Content-Type": "application/x-www-form-urlencoded"})

    def add(self, tfile, ih):
        self.ih = ih
        with open(tfile, "rb") as f:
            data = f.read()
        b = uuid.uuid4().hex
        parts = []
        for k, v in (("savepath", self.dl), ("paused", "false"), ("contentLayout", "Original"),
                     ("autoTMM", "false")):
            parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                          % (b, k, v)).encode())
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"torrents\"; "
                      "filename=\"t.torrent\"\r\nContent-Type: application/x-bittorrent\r\n\r\n"
                      % b).encode() + data + b"\r\n")
        parts.append(("--%s--\r\n" % b).encode())
        st, body = self.req("POST", "/api/v2/torrents/add", b"".join(parts),
                            {"Content-Type": "multipart/form-data; boundary=" + b})
        text = body.decode(errors="replace").strip()
        if st != 200 or text != "Ok.":
            self.errors.append("torrents/add: HTTP %d %s" % (st, text))
            return "rejected: HTTP %d %s" % (st, text)
        return "added"

    def info(self):
        st, body = self.req("GET", "/api/v2/torrents/info?hashes=" + self.ih)
        lst = json.loads(body) if st == 200 else []
        return lst[0] if lst else None

    def poll(self):
        if self.proc.poll() is not None:
            self.errors.append("qbittorrent-nox exited rc=%s" % self.proc.returncode)
            return {"done": False, "fatal": True}
        t = self.info()
        if t is None:
            return {"done": False, "progress": None, "state": "not listed", "fatal": False}
        self.post_form("/api/v2/torrents/addPeers", {"hashes": self.ih,
                                                      "peers": "%s:%d" % (LO, self.seed_port)})
        done = t["progress"] >= 1.0 and t["amount_left"] == 0 and t["state"] in (
            "uploading", "stalledUP", "pausedUP", "queuedUP", "forcedUP", "checkingUP")
        return {"done": done, "progress": round(t["progress"], 4), "state": t["state"],
                "fatal": t["state"] in ("error", "missingFiles")}

    def stop(self):
        try:
            t = self.info() if self.ih else None
            if t is not None:
                self.state_final = t["state"]
                st, body = self.req("GET", "/api/v2/torrents/files?hash=" + self.ih)
                if st == 200:
                    self.files = [(f["name"], f["size"], f["progress"]) for f in json.loads(body)]
            st, body = self.req("GET", "/api/v2/log/main?normal=false&info=false"
                                       "&warning=true&critical=true")
            if st == 200:
                self.errors += [m["message"] for m in json.loads(body)]
            self.post_form("/api/v2/app/shutdown", {})
            self.proc.wait(15)
        except Exception:  # noqa: BLE001
            pass
        stop_proc(self.proc)


CLIENT_CLASSES = {c.name: c for c in (LibtorrentClient, TransmissionClient, Aria2Client,
                                      QbittorrentClient)}


# ---------------------------------------------------------------- one download

def run_one(seed, cls, key, tfile, ih):
    spec = TORRENTS[key]
    tag = "%s-%s" % (cls.name, key)
    # The download directory is x/y/dl inside a sandbox of its own, so that a
    # link target climbing out of it (../../etc/passwd) lands in the sandbox.
    sandbox = os.path.join(BASE, "dl", tag)
    dl = os.path.join(sandbox, "x", "y", "dl")
    cfg = os.path.join(BASE, "cfg", tag)
    os.makedirs(dl)
    os.makedirs(cfg)
    passwd_before = passwd_fingerprint()
    rec = {"kind": "result", "client": cls.name, "torrent": key, "name": spec["name"],
           "infohash": ih}
    c = cls(cfg, dl, seed.port)
    t0 = time.time()
    st = {"done": False}
    try:
        c.start()
        rec["add"] = c.add(tfile, ih)
        if not rec["add"].startswith("rejected"):
            while time.time() - t0 < TIMEOUT:
                seed.dial(key, c.port)
                st = c.poll()
                if st.get("done") or st.get("fatal"):
                    break
                time.sleep(1)
            if st.get("done"):
                time.sleep(2)   # let the client finish renaming/flushing
            st = c.poll()
    finally:
        rec["seconds"] = round(time.time() - t0, 1)
        c.stop()
    rec["completed"] = bool(st.get("done"))
    rec["final_state"] = {k: v for k, v in st.items() if k not in ("done", "fatal")}
    if getattr(c, "state_final", None):
        rec["final_state"]["state"] = c.state_final
    if getattr(c, "files", None):
        rec["client_file_list"] = c.files
    rec["errors"] = list(dict.fromkeys(c.errors))
    root = os.path.join(dl, spec["name"])
    rec["entries"] = {path: observe_entry(root, dl, path, kind, data)
                      for path, kind, data in spec["entries"]}
    rec["dl_tree"] = walk(dl)
    rec["created_outside_dl"] = {k: v for k, v in walk(sandbox).items()
                                 if k not in ("x", "x/y", "x/y/dl")
                                 and not k.startswith("x/y/dl/")}
    rec["etc_passwd_changed"] = passwd_fingerprint() != passwd_before
    return rec


def summary_line(r):
    ents = "; ".join("%s=%s" % (p, (
        "symlink->%s" % o["target"] if o["kind"] == "symlink" else
        "file(%d)" % o["size"] if o["kind"] == "file" else o["kind"]))
        for p, o in r["entries"].items())
    return "%-12s %-5s completed=%-5s %5.1fs  %s%s%s" % (
        r["client"], r["torrent"], r["completed"], r["seconds"], ents,
        "  OUTSIDE=%s" % r["created_outside_dl"] if r["created_outside_dl"] else "",
        "  errors=%s" % r["errors"] if r["errors"] else "")


# ---------------------------------------------------------------- main

def main():
    global BASE, CHILD_ENV
    if len(sys.argv) != 2:
        raise HarnessError("usage: %s WORKDIR" % sys.argv[0])
    BASE = os.path.abspath(sys.argv[1])
    os.makedirs(BASE, exist_ok=True)
    if os.listdir(BASE):
        raise HarnessError("work directory %s is not empty" % BASE)
    unknown = [c for c in CLIENTS if c not in CLIENT_CLASSES]
    if unknown:
        raise HarnessError("unknown client(s) %s; known: %s" % (unknown, sorted(CLIENT_CLASSES)))
    home = os.path.join(BASE, "home")
    os.makedirs(home)
    CHILD_ENV = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                     XDG_DATA_HOME=os.path.join(home, ".local", "share"),
                     XDG_CACHE_HOME=os.path.join(home, ".cache"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        CHILD_ENV.pop(var, None)

    print(json.dumps({
        "kind": "env",
        "versions": {
            "libtorrent": lt.__version__,
            "transmission-daemon": version_of(["transmission-daemon", "--version"]),
            "aria2c": version_of(["aria2c", "--version"]),
            "qbittorrent-nox": version_of(["qbittorrent-nox", "--version"]),
            "python": sys.version.split()[0],
        },
        "clients": CLIENTS,
        "timeout_s": TIMEOUT,
    }), flush=True)

    tfiles = {}
    seed_root = os.path.join(BASE, "seed")
    os.makedirs(seed_root)
    for key, spec in TORRENTS.items():
        data, ih = build_torrent(spec)
        p = os.path.join(BASE, spec["name"] + ".torrent")
        with open(p, "wb") as f:
            f.write(data)
        tfiles[key] = (p, ih)
        build_payload(seed_root, spec)

    seed = Seed(seed_root)
    try:
        for key in TORRENTS:
            rec = seed.add(key, *tfiles[key])
            print(json.dumps(rec), flush=True)
            if not rec["seeding"]:
                raise HarnessError("libtorrent cannot seed %s: %s %s" % (
                    key, rec["error"], rec["alerts"]))
        summary = []
        for cname in CLIENTS:
            for key in TORRENTS:
                rec = run_one(seed, CLIENT_CLASSES[cname], key, *tfiles[key])
                print(json.dumps(rec), flush=True)
                summary.append(rec)
    finally:
        seed.close()
    for r in summary:
        print(summary_line(r), file=sys.stderr)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(DEADLINE)
    status = 2
    try:
        status = main()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 2
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        status = 2
    finally:
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        cleanup()
    sys.exit(status)
