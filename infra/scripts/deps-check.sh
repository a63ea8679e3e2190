#!/usr/bin/env bash
# Each function crate links only what it calls: fails when a function's dependency tree
# (normal dependencies, as `cargo lambda build` resolves them) holds a crate it must not.
#
#   consumer  no HTTP client for upstreams (reqwest), no rules engine (cel), no SNS, SSM
#             or Kinesis client
#   collector no rules engine, no SNS or SQS client
#   alerter   no HTTP client for upstreams, no limiter (governor), no Kinesis or SSM client
set -euo pipefail
cd "$(dirname "$0")/../.."

forbidden() {
  case "$1" in
    consumer) echo "reqwest cel governor aws-sdk-sns aws-sdk-ssm aws-sdk-kinesis" ;;
    collector) echo "cel aws-sdk-sns aws-sdk-sqs" ;;
    alerter) echo "reqwest governor aws-sdk-kinesis aws-sdk-ssm aws-sdk-sqs" ;;
  esac
}

status=0
for fn in consumer collector alerter; do
  tree="$(cargo tree -p "$fn" -e normal --prefix none --offline 2>/dev/null | awk '{print $1}' | sort -u)"
  if [ -z "$tree" ]; then
    echo "deps-check: cargo tree -p $fn printed nothing" >&2
    exit 1
  fi
  for crate in $(forbidden "$fn"); do
    if grep -qx "$crate" <<<"$tree"; then
      echo "deps-check: $fn depends on $crate (cargo tree -p $fn -i $crate shows why)" >&2
      status=1
    fi
  done
done
[ "$status" -eq 0 ] && echo "deps-check: every function links only what it calls"
exit "$status"
