#!/usr/bin/env bash
# Wall time and peak RSS of `metalsync plan` (validation included) on
# generated inventories whose recorded status has 10% of nodes drifted:
# cold (METALSYNC_CACHE=off) and warm (validation cache of a previous run).
# Usage: test/bench/plan.sh [NODES...]   (default: 1000 10000 50000)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 50000)
go build -o bin/metalsync ./cmd/metalsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export METALSYNC_CACHE_DIR="$work/cache"
printf '%-8s %12s %10s %12s %10s  %s\n' nodes cold_wall_s cold_MiB warm_wall_s warm_MiB summary
for n in "${sizes[@]}"; do
  go run ./test/bench/gen -nodes "$n" -status -drift 0.1 -o "$work/inv$n"
  METALSYNC_CACHE=off ./bin/metalsync plan "$work/inv$n" >/dev/null 2>&1 || true # warm the page cache
  METALSYNC_CACHE=off /usr/bin/time -f '%e %M' -o "$work/cold" ./bin/metalsync plan "$work/inv$n" >"$work/out" 2>&1 || true
  ./bin/metalsync plan "$work/inv$n" >/dev/null 2>&1 || true # fill the validation cache
  /usr/bin/time -f '%e %M' -o "$work/warm" ./bin/metalsync plan "$work/inv$n" >/dev/null 2>&1 || true
  read -r cw cr <"$work/cold"
  read -r ww wr <"$work/warm"
  printf '%-8s %12s %10d %12s %10d  %s\n' "$n" "$cw" $((cr / 1024)) "$ww" $((wr / 1024)) "$(tail -1 "$work/out")"
done
