#!/usr/bin/env bash
# Wall time and peak RSS of `metalsync plan` (validation included) on
# generated inventories whose recorded status has 10% of nodes drifted.
# Usage: test/bench/plan.sh [NODES...]   (default: 1000 10000 50000)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 50000)
go build -o bin/metalsync ./cmd/metalsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-8s %10s %12s  %s\n' nodes wall_s peak_rss_MiB summary
for n in "${sizes[@]}"; do
  go run ./test/bench/gen -nodes "$n" -status -drift 0.1 -o "$work/inv$n"
  ./bin/metalsync plan "$work/inv$n" >/dev/null 2>&1 || true # warm the page cache
  /usr/bin/time -f '%e %M' -o "$work/time" ./bin/metalsync plan "$work/inv$n" >"$work/out" 2>&1 || true
  read -r wall rss <"$work/time"
  printf '%-8s %10s %12d  %s\n' "$n" "$wall" $((rss / 1024)) "$(tail -1 "$work/out")"
done
