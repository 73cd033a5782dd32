#!/usr/bin/env bash
# Validates the XSI-Actions documents of a running Bridgehead against BroadWorks' own XSDs
# (not vendored: take them from the public repository spr-plusnet/libxsi, folder xsd/).
#
#   git clone https://github.com/spr-plusnet/libxsi /tmp/libxsi
#   cargo run --release -- serve --data-dir /tmp/bh &       # the demo users
#   examples/check-broadworks-xsd.sh /tmp/libxsi/xsd /tmp/bh
#
# Needs curl and xmllint. Prints one line per document; exits 1 if any does not validate.
#
# Streamed events are checked from files: the call tests keep every event they read when
# XSI_EVENT_DUMP names a directory, and a third argument `--events DIR` validates them:
#
#   mkdir /tmp/events && XSI_EVENT_DUMP=/tmp/events cargo test --test integration calls_
#   examples/check-broadworks-xsd.sh /tmp/libxsi/xsd --events /tmp/events
set -euo pipefail
if [ "${2:-}" = "--events" ]; then
  failed=0
  for file in "${3:?the directory of event documents}"/*.xml; do
    if out=$(xmllint --noout --schema "$1/XSISchema.xsd" "$file" 2>&1); then
      echo "OK   $(basename "$file")"
    else
      echo "FAIL $(basename "$file"): $(printf '%s\n' "$out" | grep -v 'fails to validate' | head -3 | tr '\n' ' ')"
      failed=1
    fi
  done
  exit $failed
fi
xsd_dir=${1:?the libxsi xsd/ folder}
data_dir=${2:?the data directory of the server}
base=${3:-https://localhost:8443/com.broadsoft.xsi-actions/v2.0}
user=alice@localhost
password=$(grep -A1 "id = \"$user\"" "$data_dir/demo-credentials.toml" | sed -n 's/^password = "\(.*\)"$/\1/p')
failed=0
for path in profile profile/Device profile/Fac profile/Registrations services \
    services/DoNotDisturb services/CallForwardingAlways services/CallForwardingBusy \
    services/CallForwardingNoAnswer services/RemoteOffice services/SimultaneousRingPersonal \
    directories/Enterprise directories/Group directories/Personal directories/CallLogs calls \
    calls/HookStatus; do
  body=$(curl -sS --cacert "$data_dir/pki/ca.crt" -u "$user:$password" "$base/user/$user/$path")
  if out=$(printf '%s' "$body" | xmllint --noout --schema "$xsd_dir/XSISchema.xsd" - 2>&1); then
    echo "OK   $path"
  else
    reason=$(printf '%s\n' "$out" | grep -v 'fails to validate' | head -3 | tr '\n' ' ')
    echo "FAIL $path: $reason"
    failed=1
  fi
done
exit $failed
