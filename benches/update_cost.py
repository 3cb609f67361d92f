#!/usr/bin/env python3
"""What a follower downloads when a branch moves, on real release histories
(loopback, private DHT; only the registry downloads leave the machine).

Two histories are built from successive releases taken from the package
registries: a text-heavy one (an npm package's tarballs, default `react-dom`
19.2.0 onwards) and a binary-heavy one (a PyPI package's manylinux x86_64
wheels, default `pydantic-core` 2.50.0 onwards; each wheel unzipped, so its
`*.dist-info/` directory is renamed on every release). Each release is one
commit (fixed author, committer and dates: the same commit ids on every
machine), tagged r0, r1, ... Downloads are cached under /work/bench-cache.

Per step r(k) -> r(k+1), in bytes:
1. git: `git pack-objects --revs --thin` of r(k+1) ^r(k) (what `git fetch`
   sends).
2. full: every file of r(k+1)'s tree (symlinks count their target): what a
   reader holding nothing downloads.
3. update payload: `xus torrent --from r(k) r(k+1)`'s `payload` line.
4. update path: the owner publishes r0, r1, ... in turn under a topic while
   `xus seed --rescan 1` runs; after each head move r(k) -> r(k+1) a reader
   holding r(k) runs `xus fetch xus://TOPIC/main`;
   its bytes are the sum of its `bytes: update U, commit C, webseed W,
   metadata M` report.
5. fallback: a reader holding r(k) fetches r(k+1)'s commit torrent
   (`--no-updates`) from `xus seed`, and again from a stock client
   (libtorrent, seeding `git archive` output) when python3-libtorrent is
   there: local blobs reused, changed files patched from older versions.
6. master: one `xus master` on the last step, the writer pushes r(k), 16
   followers whose main is already r(k) (copied with git fetch) run `xus
   follow`, the writer pushes r(k+1); the master's upload (`GET /status`)
   until all 16 print `updated`, over the update payload.

Goals (summed over the history): update path <= 1.5x git on text, <= 1.2x on
binary; fallback from stock seeds >= 20x less than the full download on text,
>= 8x on binary; master upload <= 2x the update payload. A part that cannot
run (an interface missing from this xus) shows as n/a with the reason; the
exit status is 0 only when every part ran. XUS_BENCH_KEEP=1 keeps the work
directory, with every xus call's output under logs/.

Usage: benches/update_cost.py [--releases 6] [--text-pkg react-dom --text-from 19.2.0]
       [--binary-pkg pydantic-core --binary-from 2.50.0] [--followers 16] [--skip-master]
       [--skip-stock] [--json FILE] [--xus target/release/xus]
"""

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LT_PEER = os.path.join(ROOT, "tests", "drivers", "lt_peer.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-libtorrent imports only there
TIMEOUT_MS = 300
STEP_TIMEOUT = 300
DEFAULT_FROM = {"react-dom": "19.2.0", "pydantic-core": "2.50.0"}
GOALS = {  # kind: (update path / git at most, full / fallback at least)
    "text": (1.5, 20.0),
    "binary": (1.2, 8.0),
}
MASTER_GOAL = 2.0
BYTES_RE = re.compile(r"^bytes: update (\d+), commit (\d+), webseed (\d+), metadata (\d+)\s*$", re.M)


def env_for(home):
    env = dict(os.environ)
    env["XUS_HOME"] = home
    env["XUS_LOOPBACK_ONLY"] = "1"
    for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        env[k] = "bench"
    for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        env[k] = "bench@xus.invalid"
    return env


def git(repo, *args, input=None, env=None, text=True):
    out = subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, input=input,
                         text=text, env=env or env_for(repo))
    return out.stdout.strip() if text else out.stdout


class Lines:
    """A child's stdout lines, read on a thread."""

    def __init__(self, proc):
        self.lines = []
        self.times = []
        self.closed = False
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.times.append(time.time())
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, pred, timeout, after=0):
        """(line, time) of the first line from index `after` matching."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.lines)):
                    if pred(self.lines[i]):
                        return self.lines[i], self.times[i]
                left = deadline - time.time()
                if self.closed:
                    raise RuntimeError("it exited; last lines: %r" % self.lines[-5:])
                if left <= 0:
                    raise RuntimeError("timed out; lines so far: %r" % self.lines[-5:])
                self.cond.wait(left)

    def quiet(self, period, timeout):
        """Returns once no line came for `period` seconds (or after `timeout`)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.cond:
                last = self.times[-1] if self.times else 0
            if time.time() - last >= period:
                return
            time.sleep(0.2)

    def __len__(self):
        with self.cond:
            return len(self.lines)


class Children:
    """Every process this script started, killed (by its own handle) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, env, log=None):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=open(log, "w") if log else subprocess.DEVNULL,
                                text=True, env=env)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def stop_all(self):
        for proc in self.procs:
            self.stop(proc)


class NA(Exception):
    """A part that could not run; the message says which call failed and why."""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=30) as r:
        return json.load(r)


def first_error(text):
    """The line of a failed command's stderr that says what went wrong."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for line in lines:
        if "error" in line.lower():
            return line[:300]
    return (lines[-1] if lines else "no output")[:300]


LOGS = []  # [directory, count]: every run_xus call's output is kept there (XUS_BENCH_KEEP=1 keeps it)


def run_xus(xus, args, home, what, timeout=STEP_TIMEOUT):
    """Runs `xus ARGS`; raises NA naming the call when it fails."""
    try:
        out = subprocess.run([xus, *args], capture_output=True, text=True, env=env_for(home), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NA("`%s` timed out after %d s" % (what, timeout))
    if LOGS:
        LOGS[1] += 1
        with open(os.path.join(LOGS[0], "%03d-%s-%s.log" % (LOGS[1], args[0], os.path.basename(home))), "w") as f:
            f.write("$ xus %s\n# %s\n--- stdout\n%s--- stderr\n%s" % (" ".join(args), what, out.stdout, out.stderr))
    if out.returncode != 0:
        raise NA("`%s` failed: %s" % (what, first_error(out.stderr)))
    return out


# ---------------------------------------------------------------- registries

def http_get(url, accept=None):
    headers = {"User-Agent": "xus-bench/1"}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(url, headers=headers)
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                return r.read()
        except OSError:
            if attempt == 2:
                raise
            time.sleep(2)


def cached_json(path, url, accept=None, refresh=False):
    if refresh or not os.path.exists(path):
        data = http_get(url, accept)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    with open(path) as f:
        return json.load(f)


def download(url, path, algorithm, digest):
    if os.path.exists(path):
        return path
    data = http_get(url)
    got = hashlib.new(algorithm, data).hexdigest()
    if got != digest:
        raise RuntimeError("%s: %s %s, the registry says %s" % (url, algorithm, got, digest))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return path


def version_key(version):
    return tuple(int(x) for x in version.split("."))


STABLE = re.compile(r"^\d+(\.\d+)*$")


def successive(versions, start, count, pkg):
    """`count` stable versions in version order from `start` (default: the newest `count`)."""
    ordered = sorted((v for v in versions if STABLE.match(v)), key=version_key)
    if start is None:
        chosen = ordered[-count:]
    elif start not in ordered:
        raise SystemExit("%s has no stable release %s (have: %s)" % (pkg, start, ", ".join(ordered[-20:])))
    else:
        chosen = ordered[ordered.index(start):][:count]
    if len(chosen) < count:
        raise SystemExit("%s: only %d releases from %s, %d asked" % (pkg, len(chosen), start, count))
    return chosen


def npm_releases(cache, pkg, start, count, refresh):
    meta = cached_json(os.path.join(cache, "npm", pkg, "index.json"),
                       "https://registry.npmjs.org/%s" % pkg.replace("/", "%2F"),
                       "application/vnd.npm.install-v1+json", refresh)
    versions = successive(meta["versions"], start, count, pkg)
    out = []
    for v in versions:
        dist = meta["versions"][v]["dist"]
        path = os.path.join(cache, "npm", pkg, os.path.basename(dist["tarball"]))
        out.append((v, download(dist["tarball"], path, "sha1", dist["shasum"])))
    return out


def pick_wheel(files, python_tag):
    wheels = [f for f in files if f["filename"].endswith(".whl") and "x86_64" in f["filename"]
              and "manylinux" in f["filename"] and "musllinux" not in f["filename"] and not f.get("yanked")]
    for tag in ("-%s-%s-" % (python_tag, python_tag), "-abi3-", "-py3-none-"):
        chosen = sorted((f for f in wheels if tag in f["filename"]), key=lambda f: f["filename"])
        if chosen:
            return chosen[0]
    return None


def pypi_releases(cache, pkg, start, count, python_tag, refresh):
    index_url = "https://pypi.org/pypi/%s/json" % pkg
    meta = cached_json(os.path.join(cache, "pypi", pkg, "index.json"), index_url, refresh=refresh)
    wheels = {v: pick_wheel(files, python_tag) for v, files in meta["releases"].items()}
    versions = successive([v for v, w in wheels.items() if w], start, count, pkg)
    out = []
    for v in versions:
        w = wheels[v]
        path = os.path.join(cache, "pypi", pkg, w["filename"])
        url = urllib.parse.urljoin(index_url, w["url"])  # some mirrors give relative URLs
        out.append((v, download(url, path, "sha256", w["digests"]["sha256"])))
    return out


def unpack(archive, dest):
    """The release's files in `dest` (made once; npm's leading `package/` dropped)."""
    if os.path.exists(dest):
        return dest
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.is_dir() or ".." in info.filename.split("/"):
                    continue
                path = os.path.join(tmp, info.filename)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with z.open(info) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if (info.external_attr >> 16) & 0o111:
                    os.chmod(path, 0o755)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                parts = m.name.split("/", 1)
                if len(parts) < 2 or not parts[1] or ".." in parts[1].split("/"):
                    continue
                path = os.path.join(tmp, parts[1])
                if m.isfile():
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with t.extractfile(m) as src, open(path, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    os.chmod(path, 0o755 if m.mode & 0o100 else 0o644)
                elif m.issym():
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    os.symlink(m.linkname, path)
    os.replace(tmp, dest)
    return dest


# ---------------------------------------------------------------- histories

def commit_env(repo, k):
    env = env_for(repo)
    date = "%d +0000" % (1767225600 + k * 86400)  # 2026-01-01, one day per release
    env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return env


def build_history(repo, releases, pkg, cache_trees):
    """One commit per release, tagged r0, r1, ...; blobs written with no filter,
    no ignore rule and no attribute applied (the tree is exactly the release)."""
    git(os.path.dirname(repo), "init", "-q", "-b", "main", repo)
    parent = None
    commits = []
    index = os.path.join(repo, ".git", "bench-index")
    for k, (version, archive) in enumerate(releases):
        tree_dir = unpack(archive, os.path.join(cache_trees, version))
        files, links = [], []
        for d, dirs, names in os.walk(tree_dir):
            dirs.sort()
            for name in sorted(names + [x for x in dirs if os.path.islink(os.path.join(d, x))]):
                path = os.path.join(d, name)
                rel = os.path.relpath(path, tree_dir)
                if os.path.islink(path):
                    links.append((rel, os.readlink(path)))
                elif os.path.isfile(path):
                    files.append((rel, "100755" if os.stat(path).st_mode & stat.S_IXUSR else "100644"))
        ids = git(repo, "hash-object", "-w", "--no-filters", "--stdin-paths",
                  input="".join(os.path.join(tree_dir, rel) + "\n" for rel, _ in files)).split()
        entries = [(mode, oid, rel) for (rel, mode), oid in zip(files, ids)]
        for rel, target in links:
            entries.append(("120000", git(repo, "hash-object", "-w", "--stdin", input=target), rel))
        env = dict(env_for(repo), GIT_INDEX_FILE=index)
        if os.path.exists(index):
            os.remove(index)
        git(repo, "update-index", "-z", "--index-info", env=env,
            input="".join("%s %s\t%s\0" % e for e in entries))
        tree = git(repo, "write-tree", env=env)
        commit = git(repo, "commit-tree", tree, *(["-p", parent] if parent else []),
                     "-m", "%s %s" % (pkg, version), env=commit_env(repo, k))
        git(repo, "tag", "r%d" % k, commit)
        commits.append(commit)
        parent = commit
    git(repo, "update-ref", "refs/heads/main", parent)
    return commits


def thin_pack_bytes(repo, k):
    out = subprocess.run(["git", "-C", repo, "pack-objects", "--revs", "--thin", "--stdout", "-q"],
                         input=("r%d\n^r%d\n" % (k + 1, k)).encode(), capture_output=True, check=True)
    return len(out.stdout)


def full_bytes(repo, rev):
    total = 0
    for line in git(repo, "ls-tree", "-r", "-l", "-z", rev).split("\0"):
        if line:
            mode, kind, _, size = line.split("\t")[0].split()
            if kind == "blob":
                total += int(size)
    return total


def follower_at(work, name, history, k):
    """A bare repository whose main is r(k), with the history before it."""
    repo = os.path.join(work, name)
    git(work, "init", "-q", "--bare", "-b", "main", repo)
    git(repo, "fetch", "-q", "--no-tags", history, "refs/tags/r%d:refs/heads/main" % k)
    return repo


def info_dict_length(torrent_file):
    """Length of the info dictionary in a .torrent (what BEP 9 sends)."""
    with open(torrent_file, "rb") as f:
        data = f.read()

    def skip(i):
        c = data[i:i + 1]
        if c == b"i":
            return data.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while data[i:i + 1] != b"e":
                i = skip(i)
            return i + 1
        colon = data.index(b":", i)
        return colon + 1 + int(data[i:colon])

    i = 1
    while data[i:i + 1] != b"e":
        key_end = skip(i)
        key = data[data.index(b":", i) + 1:key_end]
        end = skip(key_end)
        if key == b"info":
            return end - key_end
        i = end
    raise RuntimeError("%s has no info dictionary" % torrent_file)


def fetch_bytes(stderr, legacy_metadata=None):
    """Follower download bytes from xus fetch's report: (total, parts, how)."""
    m = BYTES_RE.search(stderr)
    if m:
        parts = dict(zip(("update", "commit", "webseed", "metadata"), map(int, m.groups())))
        return sum(parts.values()), parts, "bytes line"
    if legacy_metadata is None:
        return None, None, None
    peers = [int(x) for x in re.findall(r"^downloaded (\d+) bytes from peers", stderr, re.M)]
    if not peers:
        return None, None, None
    web = sum(int(x) for x in re.findall(r"^downloaded (\d+) bytes from webseeds", stderr, re.M))
    parts = {"update": 0, "commit": sum(peers), "webseed": web, "metadata": legacy_metadata}
    how = "no bytes line: peers + webseeds from the report, metadata = info dictionary size"
    return sum(parts.values()), parts, how


def fetched_commit(stdout):
    for line in stdout.splitlines():
        if line.startswith("fetched "):
            return line.split()[1]
    return None


# ---------------------------------------------------------------- one package

class Package:
    def __init__(self, kind, pkg, releases):
        self.kind, self.pkg, self.releases = kind, pkg, releases
        self.steps = []
        self.master = None


def measure_package(p, args, work, dht_flags, children, fetch_help):
    xus = args.xus
    hist = os.path.join(work, "history-" + p.kind)
    trees = os.path.join(args.cache, "trees", "npm" if p.kind == "text" else "pypi", p.pkg)
    t0 = time.time()
    commits = build_history(hist, p.releases, p.pkg, trees)
    print("%s: %s %s, history of %d commits built in %.1f s" % (
        p.kind, p.pkg, " ".join(v for v, _ in p.releases), len(commits), time.time() - t0), flush=True)
    no_updates = ["--no-updates"] if "--no-updates" in fetch_help else []
    steps = range(len(commits) - 1)
    for k in steps:
        p.steps.append({"step": "r%d->r%d" % (k, k + 1),
                        "versions": [p.releases[k][0], p.releases[k + 1][0]],
                        "from": commits[k], "to": commits[k + 1],
                        "git_thin_pack": thin_pack_bytes(hist, k),
                        "full": full_bytes(hist, "r%d" % (k + 1)),
                        "na": {}})
    home = os.path.join(work, "home-" + p.kind)

    # The commit torrents (for the stock seed, and the metadata size).
    for k, s in zip(steps, p.steps):
        path = os.path.join(work, "%s-r%d.torrent" % (p.kind, k + 1))
        out = run_xus(xus, ["torrent", "--repo", hist, "--output", path, "r%d" % (k + 1)], home,
                      "xus torrent r%d" % (k + 1))
        s["commit_torrent"] = path
        s["commit_magnet"] = re.search(r"^magnet (\S+)", out.stdout, re.M).group(1)
        s["commit_infohash"] = re.search(r"^infohash (\S+)", out.stdout, re.M).group(1)
        s["commit_metadata"] = info_dict_length(path)

    # 3. The update torrents.
    for k, s in zip(steps, p.steps):
        path = os.path.join(work, "%s-r%d-r%d.update.torrent" % (p.kind, k, k + 1))
        what = "xus torrent --repo HISTORY --from r(k) --output FILE r(k+1)"
        try:
            out = run_xus(xus, ["torrent", "--repo", hist, "--from", "r%d" % k, "--output", path, "r%d" % (k + 1)],
                          home, what).stdout
            m = re.search(r"^payload (\d+)\s*$", out, re.M)
            if not m:
                raise NA("`%s` printed no `payload <bytes>` line: %r" % (what, out[:200]))
            u = re.search(r"^update (\S+) (\S+)\s*$", out, re.M)
            if not u or (u.group(1), u.group(2)) != (s["from"], s["to"]):
                raise NA("`%s` printed no `update <r(k) commit> <r(k+1) commit>` line" % what)
            s["update_payload"] = int(m.group(1))
            ih = re.search(r"^infohash (\S+)", out, re.M)
            s["update_infohash"] = ih.group(1) if ih else None
        except NA as e:
            s["na"]["update_payload"] = str(e)

    # 5. Fallback: the commit torrent from `xus seed`, then from libtorrent.
    seed = children.start([xus, "seed", "--repo", hist, "--listen", "127.0.0.1:0", "--no-dht",
                           *["r%d" % (k + 1) for k in steps]], env_for(home),
                          log=os.path.join(work, "seed-%s.log" % p.kind))
    try:
        addr = Lines(seed).wait(lambda l: l.startswith("listening "), 300)[0].split()[1]
        for k, s in zip(steps, p.steps):
            try:
                s["fallback"] = fallback_fetch(xus, work, hist, p.kind, k, s, addr, "xus", no_updates)
            except NA as e:
                s["na"]["fallback"] = str(e)
    finally:
        children.stop(seed)
    if not args.skip_stock:
        for k, s in zip(steps, p.steps):
            try:
                s["fallback_stock"] = stock_fallback(xus, work, hist, p.kind, k, s, children, no_updates)
            except NA as e:
                s["na"]["fallback_stock"] = str(e)

    # 4. The update path: topic heads, the owner's seed, a reader at r(k).
    try:
        update_path(p, xus, work, hist, dht_flags, children)
    except NA as e:
        for s in p.steps:
            s["na"].setdefault("update_path", str(e))

    # 6. Master fan-out on the last step.
    if not args.skip_master and args.followers > 0:
        try:
            p.master = master_fanout(p, xus, work, hist, commits, dht_flags, children, args.followers,
                                       args.master_upload_kib)
        except NA as e:
            p.master = {"na": str(e)}


def fallback_fetch(xus, work, hist, kind, k, s, addr, label, no_updates):
    repo = follower_at(work, "%s-fallback-%s-r%d" % (kind, label, k), hist, k)
    home = os.path.join(work, "home-%s-fallback-%s-r%d" % (kind, label, k))
    fetch = ["fetch", s["commit_magnet"], "--repo", repo, "--peer", addr, "--no-dht", "--branch", "main",
             "--listen", "127.0.0.1:0"]
    what = "xus fetch <commit magnet> --peer SEED --no-dht --branch main"
    try:
        out = run_xus(xus, fetch + no_updates, home, what + " --no-updates" if no_updates else what)
    except NA as e:
        if not no_updates or "no-updates" not in str(e):
            raise
        # A commit magnet never uses updates: measure without the flag, and say so.
        out = run_xus(xus, fetch, home, what)
        s.setdefault("notes", []).append("%s; measured without --no-updates" % e)
    if fetched_commit(out.stdout) != s["to"] or git(repo, "rev-parse", "main") != s["to"]:
        raise NA("`%s` did not move main to r(k+1)" % what)
    total, parts, how = fetch_bytes(out.stderr, s["commit_metadata"])
    if total is None:
        raise NA("`%s` reported no byte counts" % what)
    return {"bytes": total, "parts": parts, "how": how}


def stock_fallback(xus, work, hist, kind, k, s, children, no_updates):
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import libtorrent"], capture_output=True)
    if check.returncode != 0 or not os.path.exists(LT_PEER):
        raise NA("no stock client: %s cannot import libtorrent (python3-libtorrent)" % SYSTEM_PYTHON)
    save = os.path.join(work, "%s-lt-seed-r%d" % (kind, k + 1))
    files = os.path.join(save, s["to"])
    os.makedirs(files)
    archive = git(hist, "archive", "--format=tar", "r%d" % (k + 1), text=False)
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        if hasattr(tarfile, "fully_trusted_filter"):  # our own `git archive`: symlinks as they are
            t.extractall(files, filter="fully_trusted")
        else:
            t.extractall(files)
    lt = children.start([SYSTEM_PYTHON, LT_PEER, "seed", "--save", save, "--torrent", s["commit_torrent"],
                         "--timeout", "900"], dict(os.environ),
                        log=os.path.join(work, "%s-lt-seed-r%d.log" % (kind, k + 1)))
    try:
        lines = Lines(lt)
        try:
            port = lines.wait(lambda l: l.startswith("listening "), 120)[0].split()[1]
            lines.wait(lambda l: l.startswith("seeding "), 300)
        except RuntimeError as e:
            raise NA("libtorrent seed (tests/drivers/lt_peer.py) did not start: %s" % e)
        return fallback_fetch(xus, work, hist, kind, k, s, "127.0.0.1:%s" % port, "stock", no_updates)
    finally:
        children.stop(lt)
        shutil.rmtree(save, ignore_errors=True)


def make_topic(xus, home, name):
    run_xus(xus, ["topic", "new", name], home, "xus topic new %s" % name)
    out = run_xus(xus, ["topic", "list"], home, "xus topic list").stdout
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == name:
            return words[1]
    raise NA("`xus topic list` does not list topic %s: %r" % (name, out))


def update_path(p, xus, work, hist, dht_flags, children):
    owner = os.path.join(work, "owner-" + p.kind)
    topic = make_topic(xus, owner, "bench")
    url = "xus://%s/main" % topic
    seed = children.start([xus, "seed", "--repo", hist, "--listen", "127.0.0.1:0", "--rescan", "1", "r0",
                           *dht_flags], env_for(owner), log=os.path.join(work, "owner-seed-%s.log" % p.kind))
    try:
        seed_lines = Lines(seed)
        try:
            addr = seed_lines.wait(lambda l: l.startswith("listening "), 300)[0].split()[1]
        except RuntimeError as e:
            raise NA("`xus seed --rescan 1 r0` (the owner's seed) did not start: %s" % e)
        publish = ["publish", "--repo", hist, "--topic", "bench", "--branch", "main"]
        run_xus(xus, [*publish, "r0", *dht_flags], owner, "xus publish --topic bench --branch main r0")
        for k, s in enumerate(p.steps):
            seen = len(seed_lines)
            what = "xus publish --topic bench --branch main r(k+1)"
            try:
                run_xus(xus, [*publish, "r%d" % (k + 1), *dht_flags], owner, what)
                try:
                    seed_lines.wait(lambda l: s["to"] in l, 60, after=seen)
                except RuntimeError:
                    raise NA("`xus seed --rescan 1` never printed a line naming the newly published head")
                seed_lines.quiet(2, 20)  # whatever else it serves for the new head (its update) is ready
                repo = follower_at(work, "%s-update-r%d" % (p.kind, k), hist, k)
                what = "xus fetch xus://TOPIC/main --peer SEED --branch main"  # reader holding r(k)
                out = run_xus(xus, ["fetch", url, "--repo", repo, "--peer", addr, "--branch", "main",
                                    "--listen", "127.0.0.1:0", *dht_flags],
                              os.path.join(work, "home-%s-update-r%d" % (p.kind, k)), what)
                if git(repo, "rev-parse", "main") != s["to"]:
                    raise NA("`%s` did not move main to r(k+1)" % what)
                total, parts, _ = fetch_bytes(out.stderr)
                if total is None:
                    raise NA("`%s` printed no `bytes: update U, commit C, webseed W, metadata M` line on stderr"
                             % what)
                if parts["update"] == 0:
                    raise NA("`%s` downloaded no update torrent (its bytes line says update 0)" % what)
                s["update_path"] = {"bytes": total, "parts": parts}
            except NA as e:
                s["na"]["update_path"] = str(e)
    finally:
        children.stop(seed)


def master_fanout(p, xus, work, hist, commits, dht_flags, children, followers, upload_kib):
    k = len(commits) - 2  # the last step
    s = p.steps[k]
    base = os.path.join(work, "master-" + p.kind)
    os.makedirs(base)
    owner = os.path.join(base, "owner")
    topic = make_topic(xus, owner, "bench")
    writer_home = os.path.join(base, "writer")
    key = run_xus(xus, ["writer", "new"], writer_home, "xus writer new").stdout.strip()
    http_port = free_port()
    config = os.path.join(base, "master.toml")
    with open(config, "w") as f:
        f.write("""data_dir = "data"
[listen]
bittorrent = "127.0.0.1:0"
http = "127.0.0.1:%d"
[dht]
bootstrap = ["%s"]
bind = "127.0.0.1"
request_timeout_ms = %d
[limits]
max_upload_kib = %d
[[topic]]
name = "bench"
secret_file = "%s"
writers = ["%s"]
backups = ["%s", "%s"]
""" % (http_port, dht_flags[1], TIMEOUT_MS, upload_kib, os.path.join(owner, "topics", "bench.secret"), key,
       os.path.join(base, "backup-a.git"), os.path.join(base, "backup-b.git")))
    master = children.start([xus, "master", "--config", config, "--init"], env_for(owner),
                            log=os.path.join(base, "master.log"))
    try:
        Lines(master).wait(lambda l: l.startswith("master http "), 120)
    except RuntimeError as e:
        with open(os.path.join(base, "master.log")) as f:
            raise NA("`xus master --config FILE --init` did not start (%s): %s" % (e, first_error(f.read())))
    push = ["push", "--master", "http://127.0.0.1:%d/" % http_port, "--branch", "main", "--listen", "127.0.0.1:0",
            "--repo", hist]
    run_xus(xus, [*push, "r%d" % k], writer_home, "xus push r%d" % k, timeout=900)
    procs = []
    for i in range(followers):
        repo = follower_at(base, "follower%d" % i, hist, k)
        proc = children.start([xus, "follow", url_of(topic), "--repo", repo, "--interval", "1",
                               "--listen", "127.0.0.1:0", *dht_flags],
                              env_for(os.path.join(base, "follower-home%d" % i)),
                              log=os.path.join(base, "follower%d.log" % i))
        procs.append((proc, Lines(proc)))
    try:
        for proc, lines in procs:
            try:
                lines.wait(lambda l: l.startswith("updated ") and s["from"] in l, 300)
            except RuntimeError as e:
                raise NA("`xus follow` never printed `updated main %s` (the follower's own r%d): %s"
                         % (s["from"], k, e))
        before = status(http_port)["uploaded_bytes"]
        t0 = time.time()
        marks = [len(lines) for _, lines in procs]
        run_xus(xus, [*push, "r%d" % (k + 1)], writer_home, "xus push r%d" % (k + 1), timeout=900)
        for (proc, lines), mark in zip(procs, marks):
            try:
                lines.wait(lambda l: l.startswith("updated ") and s["to"] in l, 600, after=mark)
            except RuntimeError as e:
                raise NA("a follower never printed `updated main %s`: %s" % (s["to"], e))
        elapsed = time.time() - t0
        uploaded = status(http_port)["uploaded_bytes"] - before
    finally:
        for proc, _ in procs:
            children.stop(proc)
        children.stop(master)
    follower_bytes, how = [], "bytes line"
    for i in range(followers):
        with open(os.path.join(base, "follower%d.log" % i)) as f:
            log = f.read()
        found = BYTES_RE.findall(log)
        if found:
            follower_bytes.append(sum(map(int, found[-1])))
        else:  # no bytes line: peer bytes of the last download only
            how = "no bytes line: the last `downloaded N bytes from peers` of each follower"
            found = re.findall(r"^downloaded (\d+) bytes from peers", log, re.M)
            if found:
                follower_bytes.append(int(found[-1]))
    return {"step": s["step"], "followers": followers, "master_upload": uploaded, "seconds": elapsed,
            "update_payload": s.get("update_payload"), "full": s["full"],
            "follower_bytes": follower_bytes if len(follower_bytes) == followers else None,
            "follower_bytes_how": how}


def url_of(topic):
    return "xus://%s/main" % topic


# ---------------------------------------------------------------- report

def fmt(n):
    return "{:,}".format(n) if isinstance(n, int) else n


def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else None


def report(packages, notes):
    """Prints the tables; returns (goals, every part ran)."""
    all_ran = True
    goals = []
    for p in packages:
        print("\n%s-heavy: %s %s -> %s (%d releases)" % (
            p.kind, p.pkg, p.releases[0][0], p.releases[-1][0], len(p.releases)))
        print("| step | git thin pack | update payload | follower, update path | / git | follower, fallback (xus seed)"
              " | follower, fallback (libtorrent seed) | full payload | full / fallback |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        sums = {"git": 0, "payload": 0, "update": 0, "fallback": 0, "stock": 0, "full": 0}
        have = dict.fromkeys(sums, True)

        def cell(s, key, value):
            if key in s["na"]:
                nonlocal all_ran
                all_ran = False
                reason = s["na"][key]
                if reason not in notes:
                    notes.append(reason)
                return "n/a [%d]" % (notes.index(reason) + 1)
            return fmt(value)

        for s in p.steps:
            upd = s.get("update_path", {}).get("bytes")
            fb = s.get("fallback", {}).get("bytes")
            st = s.get("fallback_stock", {}).get("bytes")
            best_fb = st if st is not None else fb
            for key, value in (("git", s["git_thin_pack"]), ("payload", s.get("update_payload")), ("update", upd),
                               ("fallback", fb), ("stock", st), ("full", s["full"])):
                if value is None:
                    have[key] = False
                else:
                    sums[key] += value
            print("| %s (%s -> %s) | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                s["step"], s["versions"][0], s["versions"][1], fmt(s["git_thin_pack"]),
                cell(s, "update_payload", s.get("update_payload")), cell(s, "update_path", upd),
                ratio(upd, s["git_thin_pack"]) or "-", cell(s, "fallback", fb),
                cell(s, "fallback_stock", st) if "fallback_stock" in s or "fallback_stock" in s["na"] else "skipped",
                fmt(s["full"]), ratio(s["full"], best_fb) or "-"))
        best = "stock" if have["stock"] else "fallback"
        print("| **sum** | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            fmt(sums["git"]), fmt(sums["payload"]) if have["payload"] else "n/a",
            fmt(sums["update"]) if have["update"] else "n/a",
            ratio(sums["update"], sums["git"]) if have["update"] else "-",
            fmt(sums["fallback"]) if have["fallback"] else "n/a",
            fmt(sums["stock"]) if have["stock"] else "n/a", fmt(sums["full"]),
            ratio(sums["full"], sums[best]) if have[best] else "-"))
        p.sums = {k: (v if have[k] else None) for k, v in sums.items()}
        up_goal, fb_goal = GOALS[p.kind]
        r = sums["update"] / sums["git"] if have["update"] and sums["git"] else None
        goals.append({"package": p.pkg,
                      "goal": "%s: follower bytes (update path) <= %.1fx git thin pack" % (p.kind, up_goal),
                      "value": r, "pass": None if r is None else r <= up_goal})
        r = sums["full"] / sums[best] if have[best] and sums[best] else None
        goals.append({"package": p.pkg, "goal": "%s: full download / fallback bytes (%s) >= %.0fx" % (
            p.kind, "libtorrent seed" if best == "stock" else "xus seed; no stock seed measured", fb_goal),
            "value": r, "pass": None if r is None else r >= fb_goal})
        m = p.master
        if m is not None:
            if "na" in m:
                all_ran = False
                goals.append({"package": p.pkg,
                              "goal": "%s: master upload, 16 followers at once, <= %.0fx update payload"
                              % (p.kind, MASTER_GOAL), "value": None, "pass": None, "na": m["na"]})
            else:
                r = m["master_upload"] / m["update_payload"] if m["update_payload"] else None
                goals.append({"package": p.pkg,
                              "goal": "%s: master upload, %d followers at once, <= %.0fx update payload"
                              % (p.kind, m["followers"], MASTER_GOAL), "value": r,
                              "pass": None if r is None else r <= MASTER_GOAL,
                              **({} if r is not None else {"na": "no update payload size for %s" % m["step"]})})
    print("\nGoals (summed over each history):")
    print("| package | goal | measured | result |")
    print("| --- | --- | ---: | --- |")
    for g in goals:
        value = "%.2f" % g["value"] if g["value"] is not None else "n/a"
        result = "n/a" if g["pass"] is None else ("PASS" if g["pass"] else "FAIL")
        print("| %s | %s | %s | %s |" % (g["package"], g["goal"], value, result))
    for p in packages:
        m = p.master
        if m is None:
            continue
        print("\nMaster upload, %s (%s), step %s:" % (p.kind, p.pkg, m.get("step", "last")))
        if "na" in m:
            print("  n/a: %s" % m["na"])
            continue
        print("| measure | value |")
        print("| --- | ---: |")
        print("| followers updating at once | %d |" % m["followers"])
        print("| master upload, push to all `updated` | %s |" % fmt(m["master_upload"]))
        print("| update payload | %s |" % (fmt(m["update_payload"]) if m["update_payload"] else "n/a"))
        print("| master upload / update payload | %s |" % (ratio(m["master_upload"], m["update_payload"]) or "n/a"))
        print("| master upload / full payload | %s |" % ratio(m["master_upload"], m["full"]))
        if m["follower_bytes"]:
            print("| followers' downloads, sum%s | %s |" % (
                "" if m["follower_bytes_how"] == "bytes line" else " (peer bytes only: no `bytes:` line)",
                fmt(sum(m["follower_bytes"]))))
            print("| share of the followers' downloads sent by the master | %s |"
                  % ratio(m["master_upload"], sum(m["follower_bytes"])))
        print("| wall clock, push to all updated | %.1f s |" % m["seconds"])
    return goals, all_ran


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_xus = os.path.join(ROOT, "target/release/xus")
    if not os.path.exists(default_xus):
        default_xus = os.path.join(ROOT, "target/debug/xus")
    ap.add_argument("--xus", default=default_xus)
    ap.add_argument("--cache", default="/work/bench-cache", help="where downloads and unpacked releases are kept")
    ap.add_argument("--text-pkg", default="react-dom", help="npm package")
    ap.add_argument("--text-from", help="first release (default: 19.2.0 for react-dom, else the newest N)")
    ap.add_argument("--binary-pkg", default="pydantic-core", help="PyPI package with manylinux x86_64 wheels")
    ap.add_argument("--binary-from", help="first release (default: 2.50.0 for pydantic-core, else the newest N)")
    ap.add_argument("--python-tag", default="cp312", help="wheel tag preferred (then abi3, then py3-none)")
    ap.add_argument("--releases", type=int, default=6, help="releases per package (N, so N-1 steps)")
    ap.add_argument("--only", choices=["text", "binary"], help="measure one history only")
    ap.add_argument("--followers", type=int, default=16)
    ap.add_argument("--master-upload-kib", type=int, default=1024,
                    help="the master's upload cap (KiB/s): a small uplink, as a master on an office or home line has; "
                         "on uncapped loopback the master serves everyone before followers find each other")
    ap.add_argument("--skip-master", action="store_true")
    ap.add_argument("--skip-stock", action="store_true", help="no libtorrent seed for the fallback")
    ap.add_argument("--nodes", type=int, default=16, help="loopback DHT nodes")
    ap.add_argument("--refresh", action="store_true", help="read the registries' release lists again")
    ap.add_argument("--json", help="write the raw numbers here")
    args = ap.parse_args()
    if args.releases < 2:
        sys.exit("--releases must be at least 2")
    args.xus = os.path.abspath(args.xus)
    if not os.path.exists(args.xus):
        sys.exit("%s is missing: run cargo build --release first" % args.xus)
    started = time.time()

    packages = []
    if args.only != "binary":
        packages.append(Package("text", args.text_pkg, npm_releases(
            args.cache, args.text_pkg, args.text_from or DEFAULT_FROM.get(args.text_pkg), args.releases, args.refresh)))
    if args.only != "text":
        packages.append(Package("binary", args.binary_pkg, pypi_releases(
            args.cache, args.binary_pkg, args.binary_from or DEFAULT_FROM.get(args.binary_pkg), args.releases,
            args.python_tag, args.refresh)))
    fetch_help = subprocess.run([args.xus, "fetch", "--help"], capture_output=True, text=True).stdout
    torrent_help = subprocess.run([args.xus, "torrent", "--help"], capture_output=True, text=True).stdout
    print("xus %s; releases cached in %s" % (args.xus, args.cache))
    missing = [flag for flag, text in (("xus torrent --from", torrent_help), ("xus fetch --no-updates", fetch_help))
               if flag.split()[-1] not in text]
    if missing:
        print("not in this xus's --help: %s (the parts using them will show n/a)" % ", ".join(missing))

    work = tempfile.mkdtemp(prefix="xus-update-cost-")
    LOGS[:] = [os.path.join(work, "logs"), 0]
    os.makedirs(LOGS[0])
    children = Children()
    notes = []
    try:
        dht = children.start([args.xus, "dht", "serve", "--bind", "127.0.0.1", "--nodes", str(args.nodes)],
                             env_for(os.path.join(work, "dht-home")))
        first = Lines(dht).wait(lambda l: l.startswith("dht "), 120)[0].split()[1]
        dht_flags = ["--bootstrap", first, "--dht-bind", "127.0.0.1", "--dht-timeout-ms", str(TIMEOUT_MS)]
        for p in packages:
            measure_package(p, args, work, dht_flags, children, fetch_help)
        goals, all_ran = report(packages, notes)
        if "--no-updates" not in fetch_help:
            print("\nnote: this xus fetch has no --no-updates; the fallback fetches ran without it (a commit magnet)")
        for p in packages:
            for s in p.steps:
                for key in ("fallback", "fallback_stock"):
                    how = s.get(key, {}).get("how")
                    if how and how != "bytes line" and how not in notes:
                        notes.append(how)
                for note in s.get("notes", []):
                    if note not in notes:
                        notes.append(note)
        if notes:
            print("\nNotes:")
            for i, n in enumerate(notes):
                print("[%d] %s" % (i + 1, n))
        elapsed = time.time() - started
        print("\nran in %.0f s; every part ran: %s" % (elapsed, "yes" if all_ran else "no"))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"xus": args.xus, "seconds": elapsed, "all_ran": all_ran, "goals": goals,
                           "packages": [{"kind": p.kind, "package": p.pkg,
                                         "releases": [v for v, _ in p.releases],
                                         "steps": p.steps, "sums": getattr(p, "sums", None),
                                         "master": p.master} for p in packages]}, f, indent=1)
        sys.exit(0 if all_ran else 1)
    except Exception:
        for name in sorted(os.listdir(work)):
            if name.endswith(".log"):
                with open(os.path.join(work, name)) as f:
                    print("--- %s (last lines)\n%s" % (name, "".join(f.readlines()[-10:])), file=sys.stderr)
        raise
    finally:
        children.stop_all()
        if os.environ.get("XUS_BENCH_KEEP"):
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
