#!/usr/bin/env bash
# Wall time and peak RSS of `metalsync validate` on generated inventories:
# cold (METALSYNC_CACHE=off: every file validated by CUE) and warm (the
# validation cache of a previous run, one node file edited since).
# Usage: test/bench/validate.sh [NODES...]   (default: 1000 10000 50000)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 50000)
go build -o bin/metalsync ./cmd/metalsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export METALSYNC_CACHE_DIR="$work/cache"
printf '%-8s %12s %10s %12s %10s\n' nodes cold_wall_s cold_MiB warm_wall_s warm_MiB
for n in "${sizes[@]}"; do
  go run ./test/bench/gen -nodes "$n" -o "$work/inv$n"
  METALSYNC_CACHE=off ./bin/metalsync validate "$work/inv$n" >/dev/null # warm the page cache
  METALSYNC_CACHE=off /usr/bin/time -f '%e %M' -o "$work/cold" ./bin/metalsync validate "$work/inv$n" >/dev/null
  ./bin/metalsync validate "$work/inv$n" >/dev/null # fill the validation cache
  f=$(ls "$work/inv$n"/nodes/rack0000/*.yaml | head -1)
  echo "# edited" >>"$f"
  /usr/bin/time -f '%e %M' -o "$work/warm" ./bin/metalsync validate "$work/inv$n" >/dev/null
  read -r cw cr <"$work/cold"
  read -r ww wr <"$work/warm"
  printf '%-8s %12s %10d %12s %10d\n' "$n" "$cw" $((cr / 1024)) "$ww" $((wr / 1024))
done
