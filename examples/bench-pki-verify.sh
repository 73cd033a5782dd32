#!/usr/bin/env bash
# Measures the process time (user + system CPU) of `bridgehead pki verify` on a 3-certificate
# chain (leaf + intermediate in the file, root in the trust bundle), over repeated runs.
#
#   cargo build --release && examples/bench-pki-verify.sh [RUNS]
#
# Prints the mean CPU time and wall time per run. The figures go in docs/performance.md.
set -euo pipefail
runs=${1:-200}
bin=$(realpath "${BRIDGEHEAD_BIN:-$(dirname "$0")/../target/release/bridgehead}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" pki issue ca --cn "Bench Root" --out root >/dev/null
"$bin" pki issue ca --cn "Bench Intermediate" --issuer-cert root.crt --issuer-key root.key --out int >/dev/null
"$bin" pki issue server --name xmpp.example.com --name host1.example.com \
  --issuer-cert int-chain.pem --issuer-key int.key --out server >/dev/null
args=(pki verify --cert server-chain.pem --key server.key --trust root.crt
  --profile xmpp-server --xmpp-domain xmpp.example.com --fqdn host1.example.com)
"$bin" "${args[@]}" >/dev/null   # warm the page cache

measure() {
  local label=$1; shift
  local start end
  start=$(date +%s%N)
  TIMEFORMAT='%U %S'
  local cpu
  cpu=$( { time (for _ in $(seq "$runs"); do "$bin" "$@" >/dev/null || [ $? -le 2 ]; done) ; } 2>&1 )
  end=$(date +%s%N)
  awk -v label="$label" -v runs="$runs" -v cpu="$cpu" -v wall=$(( (end - start) / 1000 )) 'BEGIN {
    split(cpu, t, " ");
    printf "%-34s %4d runs: %.2f ms CPU (user+sys) and %.2f ms wall per run\n",
      label, runs, (t[1] + t[2]) * 1000 / runs, wall / 1000 / runs }'
}

measure "verify, 3-cert chain, --trust file" "${args[@]}"
measure "verify, same, --json" "${args[@]}" --json
measure "verify, system roots as trust" pki verify --cert server-chain.pem --key server.key
measure "bridgehead --version (baseline)" --version
