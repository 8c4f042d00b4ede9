#!/usr/bin/env bash
# Wall time and peak RSS of `metalsync validate` on generated inventories.
# Usage: test/bench/validate.sh [NODES...]   (default: 1000 10000 50000)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 50000)
go build -o bin/metalsync ./cmd/metalsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-8s %10s %12s\n' nodes wall_s peak_rss_MiB
for n in "${sizes[@]}"; do
  go run ./test/bench/gen -nodes "$n" -o "$work/inv$n"
  ./bin/metalsync validate "$work/inv$n" >/dev/null # warm the page cache
  /usr/bin/time -f '%e %M' -o "$work/time" ./bin/metalsync validate "$work/inv$n" >/dev/null
  read -r wall rss <"$work/time"
  printf '%-8s %10s %12d\n' "$n" "$wall" $((rss / 1024))
done
