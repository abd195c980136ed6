#!/usr/bin/env bash
# bench_decrypt.sh: AES-256-CBC decryption, openssl vs pkg/crypto/aescbc, on the same file.
#
# Builds a random file (BENCH_DECRYPT_MIB, default 256 MiB), encrypts it with
# `openssl enc -aes-256-cbc`, then decrypts it to /dev/null: openssl (best of 5,
# wall time of the whole process including its start-up) and the Go reader
# (BenchmarkDecryptFile, 5 single runs, best; both the AES-NI path and the
# crypto/cipher path). Prints markdown rows for docs/benchmarks.md:
#   | stage | implementation | input | MB/s | objects/s | peak RSS MiB |
# MB/s is 10^6 bytes of ciphertext per second; peak RSS is the whole process.
set -euo pipefail

cd "$(dirname "$0")/.."
MIB=${BENCH_DECRYPT_MIB:-256}
RUNS=5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key=$(openssl rand -hex 32)
iv=$(openssl rand -hex 16)
head -c "$((MIB << 20))" /dev/urandom >"$work/plain"
openssl enc -aes-256-cbc -K "$key" -iv "$iv" -in "$work/plain" -out "$work/cipher"
size=$(stat -c %s "$work/cipher")
input="${MIB} MiB random file"

# openssl: best wall time of RUNS, and the peak RSS of that process.
best_ns=0 best_rss=0
for _ in $(seq "$RUNS"); do
	start=$(date +%s%N)
	/usr/bin/time -f %M -o "$work/rss" openssl enc -d -aes-256-cbc -K "$key" -iv "$iv" -in "$work/cipher" -out /dev/null
	ns=$(($(date +%s%N) - start))
	if [ "$best_ns" -eq 0 ] || [ "$ns" -lt "$best_ns" ]; then
		best_ns=$ns best_rss=$(cat "$work/rss")
	fi
done
ossl=$(openssl version | awk '{print $1 " " $2}')
awk -v b="$size" -v ns="$best_ns" -v rss="$best_rss" -v impl="$ossl enc -d" -v input="$input" \
	'BEGIN { printf "| decrypt AES-256-CBC | %s | %s | %.0f | - | %.1f |\n", impl, input, b / (ns / 1e9) / 1e6, rss / 1024 }'

# Go: one test binary, each path in its own process so its RSS is its own.
go test -c -o "$work/aescbc.test" ./pkg/crypto/aescbc
for path in aesni stdlib; do
	/usr/bin/time -f %M -o "$work/rss" "$work/aescbc.test" -test.run '^$' \
		-test.bench "^BenchmarkDecryptFile/${path}\$" -test.benchtime 1x -test.count "$RUNS" \
		-aescbc.file "$work/cipher" -aescbc.key "$key" -aescbc.iv "$iv" >"$work/out"
	mbs=$(awk '$NF == "MB/s" { if ($(NF-1) > m) m = $(NF-1) } END { print m + 0 }' "$work/out")
	if [ "$mbs" = 0 ]; then
		continue # this CPU has no AES-NI path
	fi
	case $path in
	aesni) impl="amrpipe aescbc (AES-NI, 8 blocks interleaved)" ;;
	stdlib) impl="amrpipe aescbc (crypto/cipher fallback)" ;;
	esac
	awk -v mbs="$mbs" -v rss="$(cat "$work/rss")" -v impl="$impl" -v input="$input" \
		'BEGIN { printf "| decrypt AES-256-CBC | %s | %s | %.0f | - | %.1f |\n", impl, input, mbs, rss / 1024 }'
done
