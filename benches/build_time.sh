#!/usr/bin/env bash
# Time to build the torrent of a large real tree (the Linux source from Debian's
# linux-source package, committed once) with `xus torrent`, against mktorrent and
# transmission-create on a checkout of the same tree, in the same run; then the
# time for xus to build the torrent of a child commit that changes one file
# (the parent's torrent is cached, so unchanged pieces are not re-hashed).
#
#   benches/build_time.sh [XUS_BINARY]
#
# Needs: git, linux-source, mktorrent, transmission-cli (Debian packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
xus=$(realpath "${1:-$here/../target/release/xus}")
tarball=$(ls /usr/src/linux-source-*.tar.xz | sed -n 1p)
work=$(mktemp -d /tmp/xus-build-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=b@x.invalid GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=b@x.invalid

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

echo "extracting $tarball ..."
mkdir "$work/repo"
tar -xJf "$tarball" -C "$work/repo" --strip-components=1
cd "$work/repo"
git init -q -b main
# Debian's linux-source ships a .gitignore that ignores the whole top level.
git add -A -f .
git commit -q -m "linux source"
files=$(git ls-files | wc -l)
bytes=$(git archive HEAD | wc -c)
mkdir "$work/checkout"
git archive HEAD | tar -x -C "$work/checkout"
# Warm the page cache for every contender alike.
cat $(git rev-parse --git-dir)/objects/*/* > /dev/null 2>&1 || true
find "$work/checkout" -type f -exec cat {} + > /dev/null

t0=$(now); "$xus" torrent HEAD -o "$work/xus.torrent" > "$work/xus.out"; t1=$(now)
xus_cold=$(secs "$t0" "$t1")
plen=$(/usr/bin/python3 -c "
import sys
d=open('$work/xus.torrent','rb').read()
i=d.index(b'12:piece lengthi')+16
print(int(d[i:d.index(b'e',i)]))")
plog=$(/usr/bin/python3 -c "import math; print(int(math.log2($plen)))")

t0=$(now); mktorrent -l "$plog" -t "$(nproc)" -o "$work/mk.torrent" "$work/checkout" > /dev/null; t1=$(now)
mk=$(secs "$t0" "$t1")
t0=$(now); transmission-create -s $((plen / 1024)) -o "$work/tr.torrent" "$work/checkout" > /dev/null; t1=$(now)
tr=$(secs "$t0" "$t1")

# One file changes: an append to the first file in walk order (worst case: every
# later piece shifts), an in-place edit of the same size, an append to the last file.
first=$(git ls-files | sed -n 1p)
last=$(git ls-files | tail -n 1)
rebuild() {
    git commit -q -am "$1"
    local t0 t1
    t0=$(now); "$xus" torrent HEAD -o "$work/child.torrent" > /dev/null; t1=$(now)
    secs "$t0" "$t1"
}
echo "/* appended */" >> "$first"; app_first=$(rebuild "append to $first")
/usr/bin/python3 - "$first" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
d[0:4] = b'XXXX' if d[0:4] != b'XXXX' else b'YYYY'
open(p, 'wb').write(d)
PY
inplace=$(rebuild "same-size edit of $first")
echo "/* appended */" >> "$last"; app_last=$(rebuild "append to $last")

mib=$(echo "scale=1; $bytes / 1048576" | bc)
echo
echo "Linux source: $files files, $mib MiB, piece length $plen"
printf '  %-44s %7.2f s\n' "xus torrent (cold, from the object database)" "$xus_cold"
printf '  %-44s %7.2f s   xus/mktorrent x%.2f\n' "mktorrent -t $(nproc) (checkout)" "$mk" "$(echo "$xus_cold / $mk" | bc -l)"
printf '  %-44s %7.2f s   xus/transmission-create x%.2f\n' "transmission-create (checkout)" "$tr" "$(echo "$xus_cold / $tr" | bc -l)"
printf '  %-44s %7.2f s\n' "xus rebuild, append to first file ($first)" "$app_first"
printf '  %-44s %7.2f s\n' "xus rebuild, same-size edit of first file" "$inplace"
printf '  %-44s %7.2f s\n' "xus rebuild, append to last file" "$app_last"
