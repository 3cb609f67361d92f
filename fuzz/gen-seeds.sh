#!/usr/bin/env bash
# Regenerates fuzz/seeds/: small valid inputs for every fuzz target.
#
# Commit torrents come from `xus torrent` on throwaway repositories built here
# with fixed dates, so the output is the same on every machine. Usage:
#   fuzz/gen-seeds.sh            (builds target/debug/xus when missing)
#   XUS=/path/to/xus fuzz/gen-seeds.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
seeds="$here/seeds"
xus="${XUS:-$root/target/debug/xus}"
if [[ ! -x "$xus" ]]; then
    cargo build --quiet --manifest-path "$root/Cargo.toml" --bin xus
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$seeds"
mkdir -p "$seeds"/{bencode_decode,commit_torrent_parse,magnet_parse,tree_parse,push_request,update_payload,dht_values}
mkdir -p "$seeds"/{bridge_messages,webseed_request,krpc_message}
printf 'XUSUPD1\n' >"$seeds/update_payload/magic"
# DHT values: a head with updates and a master URL, a bare head, indexes.
ih=aaaaaaaaaaaaaaaaaaaa commit=cccccccccccccccccccc from=ffffffffffffffffffff
printf 'd6:commit20:%s2:ih20:%se' "$commit" "$ih" >"$seeds/dht_values/head"
printf 'd6:commit20:%s2:ih20:%s2:upll20:%s20:%see3:url17:http://127.0.0.1/e' \
    "$commit" "$ih" "$from" "$ih" >"$seeds/dht_values/head-full"
# KRPC datagrams: libtorrent's 2-byte and a 1-byte transaction id, a BEP 46
# put of a dictionary with a 6-byte id, a get answer whose value is a list.
id=qqqqqqqqqqqqqqqqqqqq target=tttttttttttttttttttt key=kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
sig=ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss
printf 'd1:ad2:id20:%se1:q4:ping1:t2:aa1:y1:qe' "$id" >"$seeds/krpc_message/ping-t2"
printf 'd1:ad2:id20:%s6:target20:%se1:q9:find_node1:t1:x1:y1:qe' "$id" "$target" \
    >"$seeds/krpc_message/find-node-t1"
printf 'd1:ad2:id20:%s1:k32:%s3:seqi5e3:sig64:%s6:target20:%s5:token4:tokn1:vd2:ih20:%see1:q3:put1:t6:abcdef1:y1:qe' \
    "$id" "$key" "$sig" "$target" "$ih" >"$seeds/krpc_message/put-dict"
printf 'd1:rd2:id20:%s1:k32:%s3:seqi5e3:sig64:%s5:token4:tokn1:vli1ei2eee1:t4:abcd1:y1:re' \
    "$id" "$key" "$sig" >"$seeds/krpc_message/get-answer-list"
printf 'd1:bl4:maine1:d4:maine' >"$seeds/dht_values/index"
printf 'd1:bl3:dev4:main9:feature/xe1:d4:main3:url22:http://127.0.0.1:8080/e' \
    >"$seeds/dht_values/index-full"

# Peer wire streams an engine sends the webseed bridge. The info hash picks the
# fuzz layout (see fuzz_targets/bridge_messages.rs): 16 KiB pieces over files of
# 40000, 0, 16384 and 1 bytes.
hs='\x13BitTorrent protocol\x00\x00\x00\x00\x00\x10\x00\x05'
hs+='\x00\x00\x3f\xff\x00\x00\x9c\x40\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x01'
hs+='-qB4630-abcdefghijkl'
interested='\x00\x00\x00\x01\x02'
request0='\x00\x00\x00\x0d\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00'
request2='\x00\x00\x00\x0d\x06\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x40\x00'
printf "$hs"'\x00\x00\x00\x02\x05\xf0'"$interested$request0$request2"'\x00\x00\x00\x0d\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x05\x04\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03\x14\x00\x65\x00\x00\x00\x0c\x07\x00\x00\x00\x01\x00\x00\x00\x10xyz\x00\x00\x00\x01\x03\x00\x00\x00\x0d\x06\x00\x00' \
    >"$seeds/bridge_messages/session"
printf "$hs" >"$seeds/bridge_messages/handshake"
printf "$interested"'\x00\x00\x00\x0d\x06\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0d\x06\x00\x00\x00\x03\x00\x00\x1b\x58\x00\x00\x40\x00' \
    >"$seeds/bridge_messages/no-handshake"
printf "$hs"'\x00\x00\x00\x01\x01\x00\x10\x00\x0e' >"$seeds/bridge_messages/too-long"
printf '\x00\x00\x00\x02\x01\x00' >"$seeds/bridge_messages/bad-length"
# Webseed requests: a request target, then header lines (x-len and x-etag give
# the file's length and entity tag; see fuzz_targets/webseed_request.rs).
c=0123456789abcdef0123456789abcdef01234567
req() { printf '%s' "$2" >"$seeds/webseed_request/$1"; }
req range "/$c/src/main.rs"$'\nrange: bytes=0-99\nx-len: 1000\nx-etag: 5e1f'
req suffix-if-range "/$c/docs/caf%C3%A9%20x.md"$'\nrange: bytes=-100\nif-range: "5e1f"\nx-etag: 5e1f'
req if-none-match "/$c/a/b/c"$'\nif-none-match: "x", W/"5e1f"\nx-etag: 5e1f\nrange: bytes=10-'
req torrent "/$c.torrent"
req traversal "/$c/%2e%2E/etc/passwd"$'\nrange: bytes=0-1,3-4'
req sha256 "/${c}0123456789abcdef0123456789ab/x%2Fy"$'\nrange: BYTES= 5-2 ,\nx-len: 0'
req huge "/$c/f?x=1#frag"$'\nrange: bytes=99999999999999999999999-\nx-len: 18446744073709551615'

export GIT_AUTHOR_NAME=fuzz GIT_AUTHOR_EMAIL=fuzz@example.com
export GIT_COMMITTER_NAME=fuzz GIT_COMMITTER_EMAIL=fuzz@example.com
export GIT_AUTHOR_DATE="2020-01-01T00:00:00Z" GIT_COMMITTER_DATE="2020-01-01T00:00:00Z"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

# repo NAME SETUP: a fresh repository, SETUP run inside it, then one commit.
repo() {
    local name="$1" setup="$2" dir="$work/$1"
    if [[ "$setup" != "$root" ]]; then
        git init --quiet "$dir"
        (cd "$dir" && eval "$setup" && git add -A && git commit --quiet --allow-empty -m "$name")
    else
        dir="$root"
    fi
    "$xus" torrent HEAD --repo "$dir" -o "$work/$name.torrent" >"$work/$name.out"
    local t="$work/$name.torrent" size
    size=$(stat -c %s "$t")
    # A .torrent without webseeds is exactly `d4:info<info dict>e`.
    cp "$t" "$seeds/commit_torrent_parse/$name.torrent"
    tail -c +8 "$t" | head -c $((size - 8)) >"$seeds/commit_torrent_parse/$name.info"
    cp "$t" "$seeds/bencode_decode/$name.torrent"
    grep -o 'magnet:?[^ ]*' "$work/$name.out" | head -n 1 | tr -d '\n' \
        >"$seeds/magnet_parse/$name.magnet"
    # Raw trees and the commit, as Git stores them.
    (cd "$dir" && git cat-file commit HEAD) >"$seeds/tree_parse/$name.commit"
    local i=0 tree
    for tree in $(git -C "$dir" rev-list --objects --no-object-names HEAD |
        git -C "$dir" cat-file --batch-check='%(objecttype) %(objectname)' |
        awk '$1 == "tree" { print $2 }'); do
        (cd "$dir" && git cat-file tree "$tree") >"$seeds/tree_parse/$name.tree$i"
        i=$((i + 1))
    done
}

repo empty ':'
repo empty-files 'touch a b && mkdir d && touch d/c'
repo small 'printf "hello\n" > hello.txt && printf "#!/bin/sh\n" > run.sh && chmod +x run.sh &&
    mkdir -p src/deep/er && printf "x" > src/deep/er/x && ln -s hello.txt link &&
    ln -s ../../hello.txt src/deep/up'
repo odd-names 'printf "a" > "$(printf "caf\xc3\xa9")" && printf "b" > "$(printf "raw\xff")" &&
    printf "c" > "sp ace" && mkdir "d%FF" && printf "d" > "d%FF/f"'
repo big 'head -c 70000 /dev/zero | tr "\0" "z" > big && printf "tail" > small'
# xus's own HEAD: a real, larger commit (its seed changes with every commit).
repo xus "$root"
repo gitlink 'printf "x" > x && git update-index --add --cacheinfo \
    160000,1111111111111111111111111111111111111111,sub'

printf 'magnet:?xt=urn:btih:VOV2XK5LVOV2XK5LVOV2XK5LVOV2XK5L&dn=a+b%%26c&x.pe=127.0.0.1:6881&x.pe=%%5B::1%%5D:1&tr=x' \
    >"$seeds/magnet_parse/base32"
printf 'abababababababababababababababababababab' >"$seeds/magnet_parse/hex"
printf 'd3:agei-5e4:listli1e0:le3:subd1:xdeee' >"$seeds/bencode_decode/mixed"
printf 'i-9223372036854775808e' >"$seeds/bencode_decode/min"

# A signed push request (fixed key): written by a unit test that otherwise checks it.
XUS_PUSH_SEED_OUT="$seeds/push_request/signed" cargo test --quiet --manifest-path "$root/Cargo.toml" \
    --lib push_request::tests::the_fuzz_seed_is_a_current_signed_body >/dev/null
printf 'd3:req3:abc3:sig64:%064de' 0 >"$seeds/push_request/short"

du -sh "$seeds"
