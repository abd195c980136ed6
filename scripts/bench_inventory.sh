#!/usr/bin/env bash
# The inventory's ingest benchmark (make bench runs it; it also runs alone): BenchmarkIngest of
# pkg/inventory for SQLite and PostgreSQL at the inventory sink's group commit (16,384 records a
# transaction), and BenchmarkSink of pkg/downstream/inventorysink (the sink reading the records
# stream into SQLite), GO_BENCH_COUNT runs of 3 passes each, median and range (min–max). Prints
# the "Inventory ingest" section of docs/benchmarks.md on stdout (scripts/bench.sh appends it).
#
# Environment: GO_BENCH_COUNT (runs; default 5), BASE (a git ref: the code "before", run in turns
# with the working tree; default none), BENCH_DIR (work dir; default a temp dir).
# PostgreSQL comes from the Debian package (make setup installs it), started by pkg/testenv.
set -euo pipefail
cd "$(dirname "$0")/.."

GO_BENCH_COUNT=${GO_BENCH_COUNT:-5}
BASE=${BASE:-}
work=${BENCH_DIR:-$(mktemp -d)}
if [ -z "${BENCH_DIR:-}" ]; then trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"

go build -o "$work/amrbench" ./cmd/amrbench
go test -c -o "$work/inventory-after.test" ./pkg/inventory
sides=(after)
if [ -n "$BASE" ]; then
	base_sha=$(git rev-parse --short "$BASE")
	rm -rf "$work/inventory-base" && mkdir -p "$work/inventory-base"
	git archive "$BASE" | tar -x -C "$work/inventory-base"
	(cd "$work/inventory-base" && go test -c -o "$work/inventory-before.test" ./pkg/inventory)
	sides=(before after)
fi
load0=$(cut -d' ' -f1-3 /proc/loadavg)
date=$(date -u '+%Y-%m-%d %H:%M UTC')
# in_turns PATTERN NAME SIDE...: GO_BENCH_COUNT runs of the inventory benchmarks matching PATTERN
# (3 passes each), one run of each side in turns, so that a busy spell of the shared machine falls
# on both; into $work/NAME-SIDE.txt.
in_turns() {
	local pattern=$1 name=$2
	shift 2
	for side in "$@"; do : >"$work/$name-$side.txt"; done
	for ((r = 1; r <= GO_BENCH_COUNT; r++)); do
		for side in "$@"; do
			(cd pkg/inventory && "$work/inventory-$side.test" -test.run '^$' -test.bench "$pattern" -test.benchtime 3x) >>"$work/$name-$side.txt"
		done
	done
}
in_turns '^BenchmarkIngest$/^(sqlite|postgres)$/^batch=16384$' inv "${sides[@]}"
# Ending a pass that flips 20,000 objects' unique-permissions flags, in turns with the code at
# BASE when that has the benchmark.
end_sides=(after)
if [ -n "$BASE" ] && grep -q BenchmarkEndPermissions "$work/inventory-base/pkg/inventory/bench_test.go"; then
	end_sides=(before after)
fi
in_turns '^BenchmarkEndPermissions$' end "${end_sides[@]}"
# The sink over the records stream, the code as it is (GO_BENCH_COUNT runs of 3 passes).
go test -c -o "$work/sink-after.test" ./pkg/downstream/inventorysink
: >"$work/sink-after.txt"
for ((r = 1; r <= GO_BENCH_COUNT; r++)); do
	(cd pkg/downstream/inventorysink && "$work/sink-after.test" -test.run '^$' -test.bench '^BenchmarkSink$' \
		-test.benchtime 3x) >>"$work/sink-after.txt"
done
# One tenant's inventory growing to a million records (about 70 s a run: one run).
(cd pkg/inventory && "$work/inventory-after.test" -test.run '^$' -test.bench '^BenchmarkIngestGrowing$' \
	-test.benchtime 1x -test.timeout 30m) >"$work/grow-after.txt"
load1=$(cut -d' ' -f1-3 /proc/loadavg)
before_flag=()
before_label="(no BASE given: the code as it is)"
if [ -n "$BASE" ]; then
	before_flag=(-before "$work/inv-before.txt")
	before_label="before = \`$BASE\` ($base_sha), after = the working tree; before and after ran in turns"
fi
table=$("$work/amrbench" gotable "${before_flag[@]}" -units 'records/s,records/cpu-s' "$work/inv-after.txt")
end_before=()
end_label="the code as it is"
if [ "${#end_sides[@]}" = 2 ]; then
	end_before=(-before "$work/end-before.txt")
	end_label="before = \`$BASE\`, after = the working tree, in turns"
fi
end_table=$("$work/amrbench" gotable "${end_before[@]}" -units 'sec/op' "$work/end-after.txt")
sink_table=$("$work/amrbench" gotable -units 'records/s,records/cpu-s' "$work/sink-after.txt")
grow_table=$("$work/amrbench" gotable -units 'records/s-empty,records/s-at-1M' "$work/grow-after.txt")

cat <<EOF

## Inventory ingest (pkg/inventory)

\`BenchmarkIngest\` writes a first full pass into an empty inventory: the simulator's export of the
default tenant's HR library and onboarding list (47,928 records: 21.6K files and 25.3K list items
with 89K versions, folders, role assignments, users and groups) parsed by the pipeline's parser, in
transactions of 16,384 records (the inventory sink's group commit) by two callers at once (the sink's two
committers: one converts its group's records while the other's transaction runs), then \`End\` (unique permissions
included) and \`Close\` (SQLite's last checkpoint of its write-ahead log). \`records/s\` is records per wall-clock second; \`records/cpu-s\` per CPU-second of the
test process and of the PostgreSQL server (user + system time), steadier on a shared machine.
SQLite is a file in a temporary directory (16 KiB pages, WAL, \`synchronous=NORMAL\`); PostgreSQL is the Debian
package's server started by \`pkg/testenv\` with its default settings, on loopback. Median and
range (min–max) of $GO_BENCH_COUNT runs of 3 passes each;
$before_label.
Measured $date; load average before / after: $load0 / $load1 (2 CPUs shared with other work).
The target is 100,000 records/s for each backend; docs/inventory.md says where the time goes.

$table

\`BenchmarkEndPermissions\` times \`End\` of a second full pass of 20,000 files: 5,000 gained role
assignments of their own and 15,000 lost theirs, so \`End\` sets or clears the unique-permissions flag
of every file and records 20,000 permission changes (a tenant whose permissions were
reorganised). Median and range of $GO_BENCH_COUNT runs of 3; $end_label.

$end_table

\`BenchmarkSink\` (pkg/downstream/inventorysink) is the inventory sink as the pipeline runs it, on
the same records: parser batches of 256 records already on \`AMR_RECORDS\` (an embedded JetStream in
the test process, file storage), read through the default downstream consumer, decoded and
group-committed into a new SQLite pass until every record is committed, then \`End\` and \`Close\`.
Its \`records/cpu-s\` counts the whole process (the sink, the NATS client and the server delivering
the batches); its wall time includes the last group's wait for more batches (the sink's 250 ms
linger), which a pipeline that keeps publishing does not pay. The code as it is, median and range
of $GO_BENCH_COUNT runs of 3 passes.

$sink_table

\`BenchmarkIngestGrowing\` is one tenant's inventory growing to about a million records: 23 first
passes of new scopes, each the same records under new random object ids (a real tenant's GUIDs
hit the key index at random), ingested as above. \`records/s-empty\` is the first pass's rate,
\`records/s-at-1M\` the last three passes' (into an inventory of 0.96M to 1.05M records); one
run, the code as it is. docs/inventory.md ("Sizing") says what it means for choosing a backend.

$grow_table
EOF
