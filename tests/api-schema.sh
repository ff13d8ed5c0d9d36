#!/usr/bin/env bash
# The API against its own OpenAPI document (docs/openapi.json), with
# schemathesis (PyPI): property-based requests to every operation of a
# real kenneld on loopback, with real VEs; every answer must be no server
# error (5xx), of a documented status, content type and schema.
#
#   sudo tests/api-schema.sh          (API_SCHEMA_EXAMPLES=N per operation, default 100)
#
# Builds kennel and kenneld (debug), makes a private state root with the
# busybox template and two VEs (one running), and removes all of it again.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
if ! schemathesis --version 2>/dev/null | grep -q "$version"; then
    pip install -q --root-user-action=ignore "schemathesis==$version"
fi
cargo build -q -p kennel -p kenneld
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/debug
root=$(mktemp -d /var/tmp/kennel-api-schema.XXXXXX)
k() { "$bin/kennel" --root "$root" "$@"; }
pid=
cleanup() {
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    for id in $(k list --all --json -o id 2>/dev/null | jq -r '.[].id'); do k -q destroy --force "$id" || true; done
    k -q storage remove 2>/dev/null || true
    parent=$(python3 -c 'import sys
h=0xcbf29ce484222325
for b in sys.argv[1].encode(): h=((h^b)*0x100000001b3)&0xffffffffffffffff
print("kennel-%08x" % (h & 0xffffffff))' "$root")
    for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -rf "$root"
}
trap cleanup EXIT
k -q template create busybox
k -q create 101 --template busybox --storage dir
k -q create 102 --template busybox --storage dir
k -q start 101
log=$root/kenneld.log
# schemathesis also tries wrong tokens: enough of those would have the
# address refused (429) and leave the operations behind untested.
"$bin/kenneld" --root "$root" --listen 127.0.0.1:0 --socket "$root/kenneld.sock" --auth-failures 1000000 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q 'https://' "$log" && break; sleep 0.1; done
url=$(grep -o 'https://[0-9.:]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; echo "kenneld did not start" >&2; exit 1; }
token=$(k -q api token create --role admin)
echo "==> schemathesis against $url (docs/openapi.json)"
# The WebSocket endpoints are not HTTP request/response operations, and
# the event stream never ends (tests/api: events.rs tests both). The
# storage pool is left alone: a generated `device` must never be given to
# mkfs, not even one the CLI would refuse (tests/api/exec_net.rs tests it).
schemathesis --no-color run docs/openapi.json --url "$url" \
    -H "Authorization: Bearer $token" --tls-verify false \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path-regex '/(console|shell|events|storage)$' \
    --max-examples "${API_SCHEMA_EXAMPLES:-100}" --workers 2 \
    --request-timeout 120
