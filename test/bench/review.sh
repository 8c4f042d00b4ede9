#!/usr/bin/env bash
# Wall time and peak RSS of `metalsync review` on a generated repository
# where one commit changes a deploy template used by a fifth of the nodes
# (2,000 of 10,000): cold (METALSYNC_CACHE=off) and warm (validation cache
# of a previous run).
# Usage: test/bench/review.sh [NODES...]   (default: 10000)
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000)
go build -o bin/metalsync ./cmd/metalsync
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export METALSYNC_CACHE_DIR="$work/cache"
git() { command git -c user.name=bench -c user.email=platform@example.net -c gc.auto=0 "$@"; }
printf '%-8s %12s %10s %12s %10s  %s\n' nodes cold_wall_s cold_MiB warm_wall_s warm_MiB summary
for n in "${sizes[@]}"; do
  inv="$work/inv$n"
  go run ./test/bench/gen -nodes "$n" -status -o "$inv"
  printf 'apiVersion: metalsync.dev/v1alpha1\nkind: Owner\nmetadata: {name: platform}\nspec:\n  admin: true\n  members: [{email: platform@example.net}]\n' >"$inv/owners/platform.yaml"
  # Every fifth node (names ending in 0 or 5: active ones) uses bios-performance.
  find "$inv/nodes" -name '*-n?[05].yaml' -print0 | xargs -0 sed -i 's/deployTemplates: \[raid1-os\]/deployTemplates: [raid1-os, bios-performance]/'
  git -C "$inv" init -q -b main && git -C "$inv" add -A && git -C "$inv" commit -q -m base && git -C "$inv" tag base
  sed -i 's/value: Disabled/value: Enabled/' "$inv/templates/bios-performance.yaml"
  git -C "$inv" commit -q -am "templates/bios-performance: hyperthreading on" && git -C "$inv" tag head
  METALSYNC_CACHE=off /usr/bin/time -f '%e %M' -o "$work/cold" ./bin/metalsync review --base base --head head "$inv" >"$work/out" 2>&1 || true
  ./bin/metalsync review --base base --head head "$inv" >/dev/null 2>&1 || true # fill the validation cache
  /usr/bin/time -f '%e %M' -o "$work/warm" ./bin/metalsync review --base base --head head "$inv" >/dev/null 2>&1 || true
  read -r cw cr <"$work/cold"
  read -r ww wr <"$work/warm"
  printf '%-8s %12s %10d %12s %10d  %s\n' "$n" "$cw" $((cr / 1024)) "$ww" $((wr / 1024)) "$(grep -m1 'bios-performance (modify)' "$work/out" | cut -c1-40)"
done
