#!/usr/bin/env bash
# A throwaway single-host Ceph cluster from Debian's packages, all under one directory:
# one mon, one mgr, one OSD (bluestore on a sparse file), no cephx, pool "rbd".
#   tests/ceph/up.sh DIR      -> DIR/ceph.conf; export CEPH_CONF=DIR/ceph.conf to use it
#   tests/ceph/down.sh DIR
set -euo pipefail
D=$(realpath -m "${1:?usage: up.sh DIR}")
mkdir -p "$D"/{mon.a,osd.0,mgr.x,run,log}
fsid=$(cat /proc/sys/kernel/random/uuid)
port=$(( 20000 + RANDOM % 20000 ))
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port]
mon data avail warn = 1
mon data avail crit = 0
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon warn on insecure global id reclaim allowed = false
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
mon data = $D/\$name
osd data = $D/\$name
mgr data = $D/\$name
keyring = /dev/null
[osd]
osd objectstore = bluestore
bluestore block path = $D/osd.0.block
bluestore block create = true
bluestore block size = 4294967296
bluestore block db create = false
bluestore block wal create = false
osd max object name len = 460
osd max object namespace len = 64
CONF
export CEPH_CONF=$D/ceph.conf
monmaptool --create --clobber --addv a "[v2:127.0.0.1:$port]" --fsid "$fsid" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" >/dev/null
ceph-mon -i a
ceph-mgr -i x
timeout 60 ceph -s >/dev/null
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
id=$(ceph osd create "$osd_uuid")
ceph-osd -i "$id" --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
ceph-osd -i "$id" 2>/dev/null
ceph osd pool create rbd 8 8 >/dev/null 2>&1
for _ in $(seq 120); do
    ceph pg stat 2>/dev/null | grep -qE '^([0-9]+) pgs: \1 active\+clean' && break
    sleep 1
done
rbd pool init rbd
echo "$D/ceph.conf"
