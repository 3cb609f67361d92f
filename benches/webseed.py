#!/usr/bin/python3
"""Webseed figures, all on 127.0.0.1, in one run:

1. HTTP serving throughput: `xus webseed` (straight from the Git object
   database) against nginx serving the same files from a checkout on disk.
   Each server is read by the same client (curl, 4 files in parallel); the
   ratio is what matters.
2. `xus fetch` of the same commit from the webseed alone, and from a
   webseed plus a `xus seed` peer.

  benches/webseed.py [--size-mib 1024] [--files 8] [--xus target/release/xus]

Needs: git, curl, nginx-light (Debian packages).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from throughput import free_port, git, make_repo, wait_line  # noqa: E402


def start(cmd, env=None):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def curl_all(urls):
    """Downloads every URL, 4 at a time, discarding the bytes; returns seconds."""
    t0 = time.monotonic()
    procs = []
    for url in urls:
        while len([p for p in procs if p.poll() is None]) >= 4:
            time.sleep(0.01)
        procs.append(subprocess.Popen(["curl", "-sSf", "-o", "/dev/null", url]))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("curl failed")
    return time.monotonic() - t0


def nginx(root, port, work):
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 2; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 64; }}
http {{ access_log off; sendfile on; client_body_temp_path {work}/b; proxy_temp_path {work}/p;
  fastcgi_temp_path {work}/f; uwsgi_temp_path {work}/u; scgi_temp_path {work}/s;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", conf, "-p", work])
    time.sleep(0.5)
    return proc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--xus", default=os.path.join(HERE, "..", "target", "release", "xus"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xus-webseed-bench-")
    os.chmod(work, 0o755)
    env = dict(os.environ, XUS_HOME=os.path.join(work, "home"), XUS_LOOPBACK_ONLY="1")
    children = []
    try:
        src, commit = make_repo(work, args.size_mib, args.files)
        files = sorted(f for f in os.listdir(src) if f.endswith(".bin"))
        size = sum(os.path.getsize(os.path.join(src, f)) for f in files)

        # Same bytes from nginx (a checkout on disk) and from xus (Git).
        www = os.path.join(work, "www")
        os.makedirs(os.path.join(www, commit))
        for f in files:
            shutil.copy(os.path.join(src, f), os.path.join(www, commit, f))
        subprocess.run(["chmod", "-R", "a+rX", work], check=True)
        nport = free_port()
        children.append(nginx(www, nport, work))
        ws = start([args.xus, "webseed", "--repo", src, "--listen", "127.0.0.1:0", "HEAD"], env)
        children.append(ws)
        url = wait_line(ws, r"^webseed (\S+)").group(1)

        def urls(base):
            return [f"{base}{commit}/{f}" for f in files]

        curl_all(urls(url))  # warm: inflate the large blobs once, as a running seed would have
        t_xus = curl_all(urls(url))
        t_nginx = curl_all(urls(f"http://127.0.0.1:{nport}/"))
        mib = size / 1048576
        print(f"\nHTTP serving, {mib:.0f} MiB in {len(files)} files, curl x4, one run:")
        print("| server | time | MiB/s |")
        print("| --- | ---: | ---: |")
        print(f"| nginx 1.22 from a checkout | {t_nginx:.2f} s | {mib / t_nginx:.0f} |")
        print(f"| xus webseed from the object database | {t_xus:.2f} s | {mib / t_xus:.0f} |")
        print(f"xus / nginx throughput ratio: {t_nginx / t_xus:.2f}")

        torrent = os.path.join(work, "c.torrent")
        subprocess.run([args.xus, "torrent", "--repo", src, "--webseed", url, "-o", torrent],
                       check=True, capture_output=True, env=env)
        seed = start([args.xus, "seed", "--repo", src, "--listen", "127.0.0.1:0", "--no-dht"], env)
        children.append(seed)
        peer = wait_line(seed, r"^listening (\S+)").group(1)

        def fetch(name, extra):
            dest = os.path.join(work, name)
            t0 = time.monotonic()
            out = subprocess.run([args.xus, "fetch", torrent, "--no-dht", "--repo", dest, *extra],
                                 capture_output=True, text=True, env=env)
            total = time.monotonic() - t0
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            dl = re.search(r"timing: download ([0-9.]+) s, import into Git ([0-9.]+) s", out.stderr)
            http = re.search(r"downloaded (\d+) bytes from webseeds", out.stderr)
            peers = re.search(r"downloaded (\d+) bytes from peers", out.stderr)
            shutil.rmtree(dest, ignore_errors=True)
            return total, float(dl.group(1)), int(http.group(1)) if http else 0, int(peers.group(1))

        rows = [("webseed alone", fetch("alone", [])),
                ("webseed + one xus seed peer", fetch("both", ["--peer", peer]))]
        print(f"\nxus fetch of the {mib:.0f} MiB commit (.torrent with url-list, no DHT), one run each:")
        print("| sources | transfer | whole fetch incl. import | MiB/s (transfer) | bytes over HTTP | bytes from peers |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, (total, dl, http, peers) in rows:
            print(f"| {name} | {dl:.2f} s | {total:.2f} s | {mib / dl:.0f} | {http} | {peers} |")
    finally:
        for c in children:
            c.terminate()  # SIGTERM: a SIGKILLed nginx master leaves its workers behind
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()
                c.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
