#!/usr/bin/env bash
# callproof on Garage 2.5, a distributed S3 engine, on loopback: store check and one whole call.
# Run on demand (not part of scripts/test): the first run builds Garage from crates.io (~15 min).
#
#   scripts/garage.sh
#
# Installs Garage 2.5.0 with `cargo install` (niced) under $CARGO_TARGET_DIR/garage-tools
# unless GARAGE_BIN names one; starts a single-node Garage on 127.0.0.1 with a bucket
# and a key; runs `callproof store check` there, which must report the missing
# write-once and nothing else; then runs `callproof serve` with
# CALLPROOF_S3_ACCEPT_OVERWRITE_RISK=true, places a simulated call whose recording is
# large enough to be uploaded in parts, waits for the voice confirmation record,
# and fetches its audio back from Garage, checked against the record's SHA-256.
# Everything lives in a temporary directory (kept with KEEP=1) and stops on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
garage_version=2.5.0
tools="$target_dir/garage-tools"
garage="${GARAGE_BIN:-$tools/bin/garage}"

if [ ! -x "$garage" ]; then
    step "Garage $garage_version from crates.io (cargo install, niced; about 15 minutes)"
    CARGO_TARGET_DIR="$tools/build" nice -n 19 cargo install "garage@$garage_version" --locked --root "$tools"
fi
garage_said=$("$garage" --version)
case "$garage_said" in
    *"$garage_version"*) echo "$garage_said" ;;
    *) fail "$garage is not Garage $garage_version: $garage_said" ;;
esac

step "callproof (cargo build --release)"
cargo build --release --locked
callproof="$target_dir/release/callproof"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 300); do
        (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    fail "nothing listens on port $1"
}

step "a single-node Garage on loopback ($work/garage)"
s3_port=$(free_port); rpc_port=$(free_port); admin_port=$(free_port)
mkdir -p "$work/garage"
cat >"$work/garage/config.toml" <<EOF
metadata_dir = "$work/garage/meta"
data_dir = "$work/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
EOF
g() { "$garage" -c "$work/garage/config.toml" "$@"; }
# Started directly, not through g, so that $! is Garage itself and the exit trap stops it.
RUST_LOG=warn "$garage" -c "$work/garage/config.toml" server >"$work/garage/server.log" 2>&1 &
pids+=($!)
wait_port "$s3_port"
for _ in $(seq 1 60); do g status >/dev/null 2>&1 && break; sleep 1; done
node=$(g node id -q 2>/dev/null || g node id)
node=${node%%@*}
g layout assign -z loopback -c 1G "$node" >/dev/null
g layout apply --version 1 >/dev/null
g bucket create callproof >/dev/null
key_json=$(g json-api CreateKey '{"name": "callproof"}')
key_id=$(printf '%s' "$key_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessKeyId"])')
key_secret=$(printf '%s' "$key_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secretAccessKey"])')
g bucket allow --read --write --owner callproof --key callproof >/dev/null
echo "Garage S3 API at http://127.0.0.1:$s3_port, bucket callproof, key $key_id"

export CALLPROOF_STORE=s3
export CALLPROOF_S3_BUCKET=callproof
export CALLPROOF_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export CALLPROOF_S3_REGION=garage
export CALLPROOF_S3_PATH_STYLE=true
export CALLPROOF_S3_ACCESS_KEY_ID="$key_id"
export CALLPROOF_S3_SECRET_ACCESS_KEY="$key_secret"
# 5 MiB parts from 5 MiB on, so the call's recording below goes up in parts.
export CALLPROOF_S3_MULTIPART_THRESHOLD_BYTES=5242880
export CALLPROOF_S3_PART_SIZE_BYTES=5242880
export CALLPROOF_DATA_DIR="$work/callproof"
mkdir -p "$CALLPROOF_DATA_DIR"

step "callproof store check (must report the missing write-once and nothing else)"
set +e
"$callproof" store check >"$work/check.json" 2>"$work/check.err"
check_rc=$?
set -e
cat "$work/check.json"
cat "$work/check.err"
[ "$check_rc" = 1 ] || fail "store check exited $check_rc, not 1 (no write-once)"
python3 - "$work/check.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ops = r["operations"]
bad = {k: v for k, v in ops.items() if v["result"] != "yes"}
assert not bad, f"operations Garage refused: {bad}"
assert set(ops) == {"streamed_upload", "multipart_upload", "ranged_read", "list_and_delete"}, ops
assert r["conditional_create"]["result"] == "no", r["conditional_create"]
print("store check: every operation works; write-once is missing:",
      r["conditional_create"]["detail"])
EOF

step "callproof serve with CALLPROOF_S3_ACCEPT_OVERWRITE_RISK=true"
port=$(free_port)
CALLPROOF_LISTEN="127.0.0.1:$port" CALLPROOF_S3_ACCEPT_OVERWRITE_RISK=true \
    "$callproof" serve >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q listening "$work/serve.log" && break; sleep 0.1; done
grep -q listening "$work/serve.log" || { cat "$work/serve.log"; fail "serve did not start"; }
grep -o 'starting anyway.*' "$work/serve.log" | head -1
server="http://127.0.0.1:$port"

step "a recording of 3 minutes, 16 kHz, two channels (11 MiB: uploaded in parts)"
python3 - "$work/call.wav" <<'EOF'
import math, struct, sys, wave
rate, secs = 16000, 180
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(rate)
    for s in range(secs):
        frames = bytearray()
        for i in range(rate):
            t = (s * rate + i) / rate
            frames += struct.pack("<hh", int(8000 * math.sin(2 * math.pi * 440 * t)),
                                  int(8000 * math.sin(2 * math.pi * 660 * t)))
        w.writeframes(bytes(frames))
EOF
ls -l "$work/call.wav"

step "a confirmation request and a simulated call that confirms it"
agent_key=$(sed -n 's/.*"agent:\([^,"]*\).*/\1/p' "$CALLPROOF_DATA_DIR/dev-credentials.toml")
[ -n "$agent_key" ] || fail "no agent key in $CALLPROOF_DATA_DIR/dev-credentials.toml"
created=$(curl -sf -X POST "$server/v1/confirmations" \
    -H "Authorization: Bearer $agent_key" -H 'content-type: application/json' \
    -d '{"account_id":"ACC-1001","kind":"billing",
         "change":[{"field":"card_number","label":"card on file",
                    "before":"4111111111111111","after":"5500005555555559","sensitive":true}],
         "customer":{"name":"Dana Reyes","phone":"+15551230001"},
         "agent_id":"agent-7","locale":"en-US"}')
id=$(printf '%s' "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
transfer=$(printf '%s' "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["transfer_url"])')
echo "confirmation $id"
"$callproof" simulate "$transfer" --answer press:1 --recording "$work/call.wav" --no-input --linger-secs 120

step "the voice confirmation record, stored in Garage"
status=""
for _ in $(seq 1 120); do
    if "$callproof" records --server "$server" show "$id" >"$work/record.json" 2>/dev/null; then
        status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$work/record.json")
        [ "$status" = complete ] && break
    fi
    sleep 1
done
if [ "$status" != complete ]; then
    grep -iE 'error|warn' "$work/serve.log" | tail -20
    fail "no complete record for $id (status: ${status:-none})"
fi
python3 - "$work/record.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("record", r["record_id"], "version", r["version"], "status", r["status"],
      "outcome", r["outcome"]["status"])
for a in r["recording"]["audio"]:
    print(f'  {a["role"]:9} {a["byte_size"]:>10} bytes  sha256 {a["sha256"]}')
EOF
"$callproof" records --server "$server" fetch "$id" -o "$work/archival.wav"
"$callproof" records --server "$server" fetch "$id" --original -o "$work/original.wav"
cmp "$work/original.wav" "$work/call.wav" || fail "the original audio read back from Garage differs from the recording"
g bucket info callproof | grep -iE 'objects|size' || true
if grep -q 'storage failed' "$work/serve.log"; then
    grep 'storage failed' "$work/serve.log" | head -5
    fail "serve logged storage failures"
fi
step "done: on Garage $garage_version the whole call stored its record; only write-once is missing"
