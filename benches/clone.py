#!/usr/bin/env python3
"""`git clone` of a whole history: through xus against smart HTTP, one run.

Both serve the same bare repository on loopback:
- smart HTTP: lighttpd + `git http-backend` (Debian packages lighttpd, git);
- xus: a topic master (restored from that repository as its backup) on a
  private DHT of `xus dht serve` nodes, which builds the branch's history
  torrent (the update from nothing) before it publishes the head; `git clone
  xus://TOPIC/main` through `git-remote-xus` resolves the signed head and
  downloads that history torrent from the swarm.

Rows (each the median of 3 clones, each by a new reader): smart HTTP; xus
from one seed (the master); then three of those readers run `xus seed` in
their clones and 3 more readers clone from the four seeds, with each seed's
upload during those clones (the master's from its /status, each `xus
seed`'s from the `uploaded` line it prints when stopped) as a share of the
bytes they received. Also the master's start time (restore, history build,
head published).

Reported: wall-clock time of each clone, bytes received (git: the pack it
stored; xus: payload plus metadata, from the helper's report), the ratios
xus / git. The history is generated (text files that grow, binaries
replaced, files moved; --commits N) unless --repo names a repository whose
`main` branch to use.

Usage: cargo build --release && benches/clone.py [--commits 2000] [--repo PATH]
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from master import Lines, env_for, free_port, start  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIGHTTPD = "/usr/sbin/lighttpd"
ROUNDS = 3  # clones per row; times are medians
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def noise(n, seed):
    state = (seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF | 1
    out = bytearray(n)
    for i in range(n):
        state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 7
        state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
        out[i] = (state >> 24) & 0xFF
    return bytes(out)


def generated_history(count):
    """A fast-import stream: each commit edits a growing text file, every
    7th replaces a binary, every 11th adds a file under a new directory."""
    out = bytearray()
    for i in range(count):
        files = [("notes/%d.txt" % (i % 37), (("entry %d\n" % i) * (1 + i % 50)).encode())]
        if i % 7 == 0:
            files.append(("assets/%d.bin" % (i % 5), noise(4096 + 97 * (i % 300), i)))
        if i % 11 == 0:
            files.append(("moved/%d/readme.md" % i, ("moved at %d\n" % i).encode()))
        msg = ("commit %d\n" % i).encode()
        out += b"commit refs/heads/main\n"
        out += b"committer Gen <gen@example.invalid> %d +0000\n" % (1_700_000_000 + i * 60)
        out += b"data %d\n" % len(msg) + msg
        for path, data in files:
            out += b"M 100644 inline %s\ndata %d\n" % (path.encode(), len(data)) + data + b"\n"
        out += b"\n"
    return bytes(out)


def dir_bytes(pattern):
    return sum(os.path.getsize(p) for p in glob.glob(pattern))


def timed(cmd, env, cwd):
    began = time.time()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.time() - began
    if out.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), out.stderr))
    return elapsed, out.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--xus", default=os.path.join(ROOT, "target/release/xus"))
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--repo", help="use this repository's main branch instead of a generated one")
    args = ap.parse_args()
    helper = os.path.join(os.path.dirname(args.xus), "git-remote-xus")
    for tool in (args.xus, helper, LIGHTTPD, HTTP_BACKEND):
        if not os.path.exists(tool):
            sys.exit("%s is missing (cargo build --release; Debian packages lighttpd, git)" % tool)
    xus = args.xus
    work = tempfile.mkdtemp(prefix="xus-clone-bench-")
    children = []
    try:
        source = os.path.join(work, "repos", "world.git")
        os.makedirs(os.path.dirname(source))
        if args.repo:
            subprocess.run(["git", "clone", "-q", "--bare", "--single-branch", "--branch", "main",
                            args.repo, source], check=True)
        else:
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", source], check=True)
            subprocess.run(["git", "-C", source, "fast-import", "--quiet"],
                           input=generated_history(args.commits), check=True)
        subprocess.run(["git", "-C", source, "gc", "-q", "--aggressive"], check=True)
        commits = subprocess.run(["git", "-C", source, "rev-list", "--count", "main"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        stored = dir_bytes(os.path.join(source, "objects", "pack", "*.pack"))

        # Smart HTTP.
        port = free_port()
        conf = os.path.join(work, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write("""server.document-root = "%(root)s"
server.bind = "127.0.0.1"
server.port = %(port)d
server.modules = ("mod_alias", "mod_cgi", "mod_setenv")
server.errorlog = "%(work)s/lighttpd.log"
alias.url = ("/git/" => "%(backend)s/")
$HTTP["url"] =~ "^/git/" {
  cgi.assign = ("" => "")
  setenv.add-environment = ("GIT_PROJECT_ROOT" => "%(root)s", "GIT_HTTP_EXPORT_ALL" => "1")
}
""" % {"root": os.path.dirname(source), "port": port, "work": work, "backend": HTTP_BACKEND})
        children.append(subprocess.Popen([LIGHTTPD, "-D", "-f", conf]))
        time.sleep(1)
        env = env_for(os.path.join(work, "git-home"))
        http_times = []
        for n in range(ROUNDS):
            http_dir = os.path.join(work, "http-clone-%d" % n)
            http_times.append(timed(["git", "clone", "-q",
                                     "http://127.0.0.1:%d/git/world.git" % port, http_dir],
                                    env, work)[0])
        http_time = statistics.median(http_times)
        http_bytes = dir_bytes(os.path.join(http_dir, ".git", "objects", "pack", "*.pack"))

        # xus: a master restored from the same repository.
        dht = start([xus, "dht", "serve", "--bind", "127.0.0.1", "--nodes", "8"],
                    env_for(os.path.join(work, "dht-home")))
        children.append(dht)
        bootstrap = Lines(dht).wait(lambda l: l.startswith("dht "), 120)[0].split()[1]
        owner = os.path.join(work, "owner")
        subprocess.run([xus, "topic", "new", "world"], env=env_for(owner), check=True,
                       capture_output=True)
        topic = subprocess.run([xus, "topic", "list"], env=env_for(owner), check=True,
                               capture_output=True, text=True).stdout.split()[1]
        backup2 = os.path.join(work, "backup2.git")
        subprocess.run(["git", "init", "-q", "--bare", backup2], check=True)
        config = os.path.join(work, "master.toml")
        with open(config, "w") as f:
            f.write("""data_dir = "data"
[listen]
bittorrent = "127.0.0.1:0"
http = "127.0.0.1:%d"
[dht]
bootstrap = ["%s"]
bind = "127.0.0.1"
request_timeout_ms = 300
[[topic]]
name = "world"
secret_file = "%s"
writers = []
backups = ["%s", "%s"]
""" % (free_port(), bootstrap, os.path.join(owner, "topics", "world.secret"), source, backup2))
        began = time.time()
        master = start([xus, "master", "--config", config], env_for(owner),
                       log=os.path.join(work, "master.log"))
        children.append(master)
        http_line = Lines(master).wait(lambda l: l.startswith("master http "), 300)[0]
        master_start = time.time() - began
        status_url = http_line.split()[2].rstrip("/") + "/status"

        def master_uploaded():
            with urllib.request.urlopen(status_url, timeout=10) as answer:
                return json.load(answer)["uploaded_bytes"]

        def reader_env(name):
            home = os.path.join(work, name)
            os.makedirs(home)
            with open(os.path.join(home, "config.toml"), "w") as f:
                f.write('[dht]\nbootstrap = ["%s"]\nbind = "127.0.0.1"\n'
                        'request_timeout_ms = 300\n' % bootstrap)
            env = env_for(home)
            env["PATH"] = os.path.dirname(helper) + os.pathsep + env.get("PATH", "")
            return env

        def clone(name, env):
            target = os.path.join(work, "clone-" + name)
            elapsed, stderr = timed(["git", "clone", "-v", "xus://%s/main" % topic, target],
                                    env, work)
            line = next(l for l in stderr.splitlines() if l.startswith("bytes: "))
            fields = dict(part.split(" ", 1) for part in line[len("bytes: "):].split(", "))
            received = sum(int(v) for v in fields.values())
            same = subprocess.run(["git", "-C", target, "rev-list", "main"], capture_output=True,
                                  text=True).stdout == subprocess.run(
                ["git", "-C", source, "rev-list", "main"], capture_output=True, text=True).stdout
            if not same:
                raise RuntimeError("the xus clone's history differs from the source")
            return target, elapsed, received

        # One seed: the master. Each clone is a new reader.
        readers = []
        for n in range(ROUNDS):
            env = reader_env("reader-%d" % n)
            target, elapsed, received = clone("one-seed-%d" % n, env)
            readers.append((target, env, elapsed, received))
        one_time = statistics.median(r[2] for r in readers)
        one_bytes = readers[0][3]

        # Four seeds: the master and those readers' `xus seed` (the first
        # three).
        seeds = []
        for n, (target, env, _, _) in enumerate(readers[:3]):
            seed = start([xus, "seed", "--repo", target, "--listen", "127.0.0.1:0"], env,
                         log=os.path.join(work, "seed-%d.log" % n))
            children.append(seed)
            lines = Lines(seed)
            lines.wait(lambda l: l.startswith("listening "), 300)
            seeds.append((seed, lines))
        time.sleep(2)  # the seeds' announces reach the DHT
        master_before = master_uploaded()
        four = [clone("four-seeds-%d" % n, reader_env("late-%d" % n)) for n in range(ROUNDS)]
        four_time = statistics.median(c[1] for c in four)
        four_bytes = four[0][2]
        received_by_all = sum(c[2] for c in four)
        shares = [master_uploaded() - master_before]
        for seed, lines in seeds:
            seed.terminate()
            line = lines.wait(lambda l: l.startswith("uploaded "), 60)[0]
            shares.append(int(line.split()[1]))

        print("history: %s commits, stored pack %d bytes; master ready in %.2f s "
              "(restore, history torrent, head)" % (commits, stored, master_start))
        print("| clone | time s | bytes received | time / smart HTTP | bytes / git pack |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print("| smart HTTP (lighttpd + git http-backend) | %.2f | %d | 1.00 | 1.00 |"
              % (http_time, http_bytes))
        for label, elapsed, received in (("xus, one seed (the master)", one_time, one_bytes),
                                         ("xus, four seeds", four_time, four_bytes)):
            print("| %s | %.2f | %d | %.2f | %.2f |" % (label, elapsed, received,
                                                       elapsed / http_time,
                                                       received / http_bytes))
        print("four seeds' uploads during the %d clones from them, as shares of the %d bytes "
              "they received: %s" % (ROUNDS, received_by_all, ", ".join(
                  "%s %.2f" % (name, up / received_by_all) for name, up in
                  zip(("master", "seed 1", "seed 2", "seed 3"), shares))))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
