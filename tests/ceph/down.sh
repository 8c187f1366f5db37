#!/usr/bin/env bash
# Stop the cluster tests/ceph/up.sh started in DIR and remove DIR.
set -uo pipefail
D=$(realpath -m "${1:?usage: down.sh DIR}")
for pid in "$D"/run/*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
done
sleep 1
for pid in "$D"/run/*.pid; do
    [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2>/dev/null
done
rm -rf "$D"
