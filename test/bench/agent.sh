#!/usr/bin/env bash
# The deploy agent's costs: the ISO template build (cold: empty cache,
# packages downloaded; cached: the same inputs again), and writing an image
# with the agent's in-line checksum against dd of the same image on the same
# file system. Per-node media and agent boot are Go benchmarks:
#   go test ./render/mediaserver -run '^$' -bench PublishTemplate -benchmem
#   go test ./cmd/metalsync -run '^$' -bench VMDeploy -benchtime 1x
# Usage: test/bench/agent.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o bin/metalsync ./cmd/metalsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-34s %s\n' what seconds
XDG_CACHE_HOME="$work/cache" /usr/bin/time -f '%e' -o "$work/t" ./bin/metalsync agent-image build >/dev/null
printf '%-34s %s\n' "agent ISO, cold (with downloads)" "$(cat "$work/t")"
XDG_CACHE_HOME="$work/cache" /usr/bin/time -f '%e' -o "$work/t" ./bin/metalsync agent-image build >/dev/null
printf '%-34s %s\n' "agent ISO, cached" "$(cat "$work/t")"
XDG_CACHE_HOME="$work/cache" /usr/bin/time -f '%e' -o "$work/t" ./bin/metalsync agent-image build --no-cache --out "$work/out" >/dev/null
printf '%-34s %s\n' "agent ISO, rebuilt (debs cached)" "$(cat "$work/t")"
# Image write: the agent's writer (sha256 in-line, zero blocks skipped)
# against dd of the same 256 MiB image.
go test ./agent/imagewrite -run '^$' -bench Write256MiB -benchtime 3x | grep -E '^Benchmark'
head -c $((256 << 20)) /dev/urandom >"$work/img"
truncate -s $((256 << 20)) "$work/disk"
/usr/bin/time -f '%e' -o "$work/t" dd if="$work/img" of="$work/disk" bs=4M conv=fsync,notrunc status=none
awk -v s="$(cat "$work/t")" 'BEGIN { printf "%-34s %.1f MiB/s (%s s)\n", "dd bs=4M conv=fsync, 256 MiB", 256 / s, s }'
