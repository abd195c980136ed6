#!/usr/bin/env bash
# Side-by-side parser benchmark (make bench): pkg/sharepoint/manifest vs an encoding/xml
# tokenizer with the same extraction vs Python lxml.etree.iterparse, on
# generated ~25 MB and ~250 MB manifests, each run as its own process under
# /usr/bin/time -v for peak RSS; plus the decrypt rows of
# scripts/bench_decrypt.sh when that script exists; plus the parser stage's Go
# benchmarks (parse-and-publish on an embedded JetStream, the Emit policy against
# the number of a job's URLs), medians and ranges over GO_BENCH_COUNT runs,
# beside the same benchmarks of the code at BASE when it is set; plus the
# inventory's ingest into SQLite and PostgreSQL (scripts/bench_inventory.sh).
# Prints the tables and writes docs/benchmarks.md.
#
# Environment: RUNS (runs per cell, best kept; default 3), SIZES (bytes,
# default "25000000 250000000"), BENCH_DIR (work dir; default a temp dir),
# GO_BENCH_COUNT (runs of each Go benchmark; default 5), BASE (a git ref: the
# code "before", e.g. main; default none).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
GO_BENCH_COUNT=${GO_BENCH_COUNT:-5}
BASE=${BASE:-}
SIZES=${SIZES:-"25000000 250000000"}
PY=/usr/bin/python3 # python3 on PATH may be a pyenv build without lxml
OUT=docs/benchmarks.md

need_apt() {
	if ! dpkg -s "$1" >/dev/null 2>&1; then
		echo "bench: installing $1" >&2
		apt-get update -qq >/dev/null && apt-get install -y -qq "$1" >/dev/null
	fi
}
[ -x /usr/bin/time ] || need_apt time
$PY -c 'import lxml' 2>/dev/null || need_apt python3-lxml

work=${BENCH_DIR:-$(mktemp -d)}
if [ -z "${BENCH_DIR:-}" ]; then trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"
go build -o "$work/amrbench" ./cmd/amrbench

# The tenant-scale section (scripts/bench_scale.sh, half an hour and more) and what follows it
# (the build's measurements, taken by hand) are kept as they were.
scale_section=$work/scale.md
sed -n '/^<!-- scale -->$/,$p' "$OUT" 2>/dev/null >"$scale_section" || true

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=$work/rows.jsonl
: >"$rows"

# measure IMPL INPUT-LABEL FILE CMD...: RUNS runs; appends one JSON line per run.
measure() {
	local impl=$1 label=$2 file=$3
	shift 3
	for ((r = 1; r <= RUNS; r++)); do
		/usr/bin/time -v -o "$work/time.txt" "$@" "$file" >"$work/out.json"
		local rss
		rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
		$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); d.update(impl=sys.argv[2], input=sys.argv[3], rss_kb=int(sys.argv[4])); print(json.dumps(d))' \
			"$work/out.json" "$impl" "$label" "$rss" >>"$rows"
	done
}

max_size=0
for size in $SIZES; do max_size=$((size > max_size ? size : max_size)); done
for size in $SIZES; do
	label="$((size / 1000000)) MB"
	# Small inputs are parsed several times per process (fastest pass kept),
	# so that every process reads as much as the largest input: a 0.1 s
	# measurement alone is at the mercy of a busy moment and of clock ticks.
	repeat=$(((max_size + size - 1) / size))
	file=$work/Manifest-$size.xml
	[ -s "$file" ] || "$work/amrbench" gen -size "$size" -seed 1 -out "$file" >/dev/null
	# One core for every implementation: Python is single-threaded, and the
	# targets are per core. The Go GC then shares that core too.
	measure "pkg/sharepoint/manifest" "$label" "$file" env GOMAXPROCS=1 "$work/amrbench" parse -repeat "$repeat"
	measure "encoding/xml + same extraction" "$label" "$file" env GOMAXPROCS=1 "$work/amrbench" parse-stdxml -repeat "$repeat"
	measure "lxml iterparse (Python)" "$label" "$file" $PY scripts/lxml_bench.py -repeat "$repeat"
done

decrypt_rows=""
if [ -f scripts/bench_decrypt.sh ]; then
	decrypt_rows=$(bash scripts/bench_decrypt.sh | grep '^|' | grep -v -e '^| *stage *|' -e '^| *-' || true)
fi

machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version | cut -d' ' -f3), Python $($PY -c 'import platform; print(platform.python_version())') with lxml $($PY -c 'import lxml; print(lxml.__version__)')"

$PY - "$rows" "$OUT" "$machine" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$RUNS" "$decrypt_rows" <<'PYEOF'
import json, statistics, sys
rows_path, out, machine, load0, load1, date, runs, decrypt = sys.argv[1:9]
runs_by = {}
for line in open(rows_path):
    d = json.loads(line)
    runs_by.setdefault((d["impl"], d["input"]), []).append(d)

def best(key, clock):  # the run with the least time on that clock
    return min(runs_by[key], key=lambda d: d[clock])

def peak_rss(key):  # median over the runs of each run's peak RSS (kB)
    return statistics.median(x["rss_kb"] for x in runs_by[key])

order = list(dict.fromkeys(runs_by))
def table(clock):
    lines = ["| stage | implementation | input | MB/s | objects/s | peak RSS MiB |", "|---|---|---|---:|---:|---:|"]
    for key in order:
        d = best(key, clock)
        rss = peak_rss(key) / 1024
        lines.append(f"| parse | {key[0]} | {key[1]} | {d['bytes'] / d[clock] / 1e6:.0f} | {d['records'] / d[clock]:.0f} | {rss:.0f} |")
    return lines

main = table("cpu_seconds") + [l for l in decrypt.splitlines() if l.strip()]
wall = table("seconds")

checks = []
inputs = list(dict.fromkeys(k[1] for k in order))
def mbps(impl, inp, clock="cpu_seconds"):
    d = best((impl, inp), clock)
    return d["bytes"] / d[clock] / 1e6
for inp in inputs:
    ours = mbps("pkg/sharepoint/manifest", inp)
    for other in ("encoding/xml + same extraction", "lxml iterparse (Python)"):
        r = ours / mbps(other, inp)
        checks.append(f"- {inp}: pkg/sharepoint/manifest is {r:.1f}x {other} (target >= 5x): {'met' if r >= 5 else 'NOT met'}")
    checks.append(f"- {inp}: pkg/sharepoint/manifest at {ours:.0f} MB/s per CPU-second (target >= 250): {'met' if ours >= 250 else 'NOT met'}")
    recs = {k[0]: best(k, 'seconds')['records'] for k in order if k[1] == inp}
    if len(set(recs.values())) != 1:
        checks.append(f"- {inp}: record counts differ between implementations: {recs}")
if len(inputs) >= 2:
    for impl in dict.fromkeys(k[0] for k in order):
        small, big = peak_rss((impl, inputs[0])), peak_rss((impl, inputs[-1]))
        verdict = "" if impl != "pkg/sharepoint/manifest" else (" (target <= 1.10: met)" if big <= 1.1 * small else " (target <= 1.10: NOT met)")
        checks.append(f"- peak RSS {inputs[-1]} / {inputs[0]}, {impl}: {big / small:.2f}{verdict}")

doc = f"""# Benchmarks

Written by `make bench` (`scripts/bench.sh`); do not edit by hand: the notes below live in the script.

- Date: {date}
- Machine: {machine}
- Load average before / after: {load0} / {load1} (the machine is shared; see "How to read")
- Runs per cell: {runs} processes, best kept; a process given a smaller input parses it repeatedly
  (as many bytes as the largest input) and reports its fastest pass

## Results

MB/s and objects/s are per CPU-second of the process (user + system time of all its threads, GC
included): input bytes (records) divided by the CPU time spent parsing, best run kept. Peak RSS
is the process maximum from `/usr/bin/time -v`, median over the runs (one run in a busy moment can
see the Go heap overshoot its goal while the GC waits for a CPU). The decrypt rows come from
`scripts/bench_decrypt.sh`, measured its own way (see that script).

{chr(10).join(main)}

Same runs, by wall-clock time:

{chr(10).join(wall)}

## Targets

{chr(10).join(checks)}
"""
open(out, "w").write(doc)
print("\n".join(main))
print()
print("\n".join(checks))
PYEOF

cat >>"$OUT" <<'EOF'

## How to read

- The input is `amrbench gen`'s synthetic Manifest.xml (package `pkg/sharepoint/manifest/manifestgen`): SPFolder,
  SPFile and SPListItem objects shaped like AMR output (15–25 attributes per element, file versions,
  property bags, 8 list-item fields, item versions with fields, DeploymentRoleAssignments with 3–12
  assignments), with rare entity references, non-ASCII text, EncodedAttributes, comments and CDATA.
  All three implementations yield the same number of records; the table checks that.
- Every implementation runs on one core: the Go processes with `GOMAXPROCS=1` (their GC shares
  that core and its time is counted), Python is single-threaded.
- "encoding/xml + same extraction" is `pkg/sharepoint/manifest` with `Options.StdlibXML`: the same record
  building on top of `encoding/xml`'s `RawToken` instead of the hand-written scanner.
- The lxml script (`scripts/lxml_bench.py`) builds a dict per record with the same typed fields and
  frees each SPObject after use.
- The build machine is shared by several engineers; wall-clock numbers swing with its load (the
  load average is printed above), CPU-time numbers much less. Compare rows of one run, not runs.

## Where the time goes (pkg/sharepoint/manifest)

Profile: `go test -run X -bench BenchmarkParse -cpuprofile cpu.out ./pkg/sharepoint/manifest`, then
`go tool pprof -top`. With `GOMAXPROCS=1` on a 4 MB manifest, roughly:

- 45 % tokenizing: start tags (attribute names through a byte table, values eight bytes at a time
  for the closing quote, '&', '<', control and non-ASCII bytes), end-tag matching, skipping the
  indentation between tags, and refilling the window (the copy out of the page cache included);
- 25 % turning attributes into strings: one copy of the element's values into a shared 32 KiB
  string chunk, entity and `_xHHHH_` decoding only where the scanner flagged it;
- 15 % building records: the attribute-name switch of each record type, integer and time parsing;
- 15 % allocation and garbage collection of the records themselves.

Hash tables, reflection and per-attribute allocation are not on the path. What stands between this
and much higher numbers is the output: every object becomes a tree of protobuf messages (Record,
body, SPObject header, versions, fields, timestamps: about a dozen heap objects per SPObject) with
Go strings that the caller may keep, so allocation and GC stay a fixed share whatever the tokenizer
does. Fields and timestamps come from slabs and strings from shared chunks to keep that share down;
going further would mean reusing records between calls (the caller could no longer keep one) or
emitting a flat, non-protobuf form.

The absolute figure also depends on the neighbours: on this shared 2-vCPU VM the same 250 MB pass
has taken anywhere from 0.85 s to 1.6 s of CPU within a few minutes (about 290 down to 155 MB/s),
because CPU time grows when the other hyperthread of the core is busy. The ratios between the rows
of one run hold much better than the absolute numbers; the 250 MB/s target is met in quiet
moments (the `BenchmarkParse` figure is 280–320 MB/s then) and missed in busy ones.
EOF
# The parser stage's Go benchmarks. Before and after run in turns (one run of each, GO_BENCH_COUNT
# times), so that a busy spell of the shared machine falls on both.
go test -c -o "$work/parser-after.test" ./pkg/stage/parser
sides=(after)
if [ -n "$BASE" ]; then
	base_sha=$(git rev-parse --short "$BASE")
	rm -rf "$work/base" && mkdir -p "$work/base"
	git archive "$BASE" | tar -x -C "$work/base"
	(cd "$work/base" && go test -c -o "$work/parser-before.test" ./pkg/stage/parser)
	sides=(before after)
fi
load_go0=$(cut -d' ' -f1-3 /proc/loadavg)
date_go=$(date -u '+%Y-%m-%d %H:%M UTC')
for side in "${sides[@]}"; do : >"$work/pp-$side.txt"; done
for ((r = 1; r <= GO_BENCH_COUNT; r++)); do
	for side in "${sides[@]}"; do
		(cd pkg/stage/parser && "$work/parser-$side.test" -test.run '^$' -test.bench '^(BenchmarkParseAndPublish|BenchmarkParseOnly)$' \
			-test.benchtime 3x) >>"$work/pp-$side.txt"
	done
done
(cd pkg/stage/parser && "$work/parser-after.test" -test.run '^$' -test.bench '^(BenchmarkEmission|BenchmarkEncodeRecords)' -test.count "$GO_BENCH_COUNT") >"$work/em-after.txt"
load_go1=$(cut -d' ' -f1-3 /proc/loadavg)
before_flag=()
before_label="(no BASE given: the code as it is)"
if [ -n "$BASE" ]; then
	before_flag=(-before "$work/pp-before.txt")
	before_label="before = \`$BASE\` ($base_sha), after = the working tree"
fi
pp_table=$("$work/amrbench" gotable "${before_flag[@]}" -units 'records/s,records/cpu-s,MB/s' "$work/pp-after.txt")
em_table=$("$work/amrbench" gotable -units 'ms/job,records/job,MB/s,records/s' "$work/em-after.txt")
echo "$pp_table"
echo "$em_table"

cat >>"$OUT" <<EOF

## Parse and publish (pkg/stage/parser)

\`BenchmarkParseAndPublish\` runs the parser stage from \`ManifestReady\` to the last acknowledged
record batch, on an embedded JetStream in the same process, with the topology's storage (records
and job state in file storage, the decrypted manifests' object store in memory: see
docs/pipeline.md). The package files are in the object store before the clock starts; a job is done when all its files are folded into the
job record, which happens only after every batch was acknowledged; three jobs per run. Two inputs:
\`input=spsim\` is the simulator's package for a job on the default tenant's HR library with
versions, permissions and security (what the demo parses: 72 MB in ten files, three of them
manifest parts of 20 to 26 MB; about 45,000 records of files, folders, list items with versions,
role assignments and principals, ~1.6 KB of XML per record); \`input=manifestgen\` is four
8 MiB synthetic \`Manifest.xml\` parts (SPFile, SPListItem and SPFolder objects with more
attributes, ~2.1 KB of XML per record, about 3,950 records per part). \`records/s\` is records
published per wall-clock second on the machine's 2 CPUs, \`records/cpu-s\` per CPU-second of the
whole process (parser, NATS client and embedded server; user + system time).
\`BenchmarkParseOnly\` is the ceiling of the manifestgen input: its four parts parsed two at a
time, records discarded. Median and range (min–max) of
$GO_BENCH_COUNT runs; $before_label; before and after ran in turns.
Measured $date_go; load average before / after: $load_go0 / $load_go1.

$pp_table

\`BenchmarkEmissionURLs\` parses and frames (publishing to nothing) the simulator's export of a job
with 5,000 URLs, one per folder of a library, and of a job with one URL, the library, which yields
the same 5,000 folders and files (\`records/job\`): the time per job must not depend on the number of
URLs. \`BenchmarkEmissionDecide\` isolates the Emit policy's lookup on the 5,000-URL job's records:
the index over the job's roots against the linear scan over them it replaced.
\`BenchmarkEncodeRecords\` isolates what the parser does with each record once parsed: size it and
encode it into its batch, with vtprotobuf's generated encoder (what the parser does) and with
protobuf-go's (what it did before), on the simulator's export of the HR library (same bytes out).

$em_table
EOF
# The inventory's ingest (its own script, which also runs alone).
inv_section=$(BENCH_DIR="$work" GO_BENCH_COUNT="$GO_BENCH_COUNT" BASE="$BASE" bash scripts/bench_inventory.sh)
echo "$inv_section"
echo "$inv_section" >>"$OUT"
if [ -s "$scale_section" ]; then
	printf '\n' >>"$OUT"
	cat "$scale_section" >>"$OUT"
fi
echo
echo "wrote $OUT"
