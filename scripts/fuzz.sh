#!/usr/bin/env bash
# make fuzz: runs every fuzz target of the module for FUZZTIME each (default 10m), one after the
# other (each uses every core), and prints a table of what ran. An input that fails is written by
# `go test` into the target's testdata/fuzz/<Target>/ and stays there: commit it, it is then a
# regression test that `make test` runs on every build.
#
# Environment: FUZZTIME (a go test -fuzztime, e.g. 30s, 10m, 100000x), FUZZ (a regexp to pick
# targets by name; default all).
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10m}
FUZZ=${FUZZ:-.}
targets=$(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' --include='*_test.go' pkg services cmd internal |
	while read -r file; do
		for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
			echo "./$(dirname "$file") $name"
		done
	done | sort -u | grep -E " .*${FUZZ}" || true)
[ -n "$targets" ] || { echo "fuzz: no target matches $FUZZ" >&2; exit 2; }

results=()
failed=0
while read -r pkg name; do
	echo "== $name ($pkg) for $FUZZTIME"
	start=$(date +%s)
	log=$(mktemp)
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
		outcome=pass
	else
		outcome=FAIL
		failed=1
		cat "$log"
	fi
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
	results+=("| $name | $pkg | $((($(date +%s) - start))) s | ${execs:-?} | $outcome |")
	rm -f "$log"
done <<<"$targets"

echo
echo "| target | package | ran | executions | outcome |"
echo "|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
exit $failed
