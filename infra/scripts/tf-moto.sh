#!/usr/bin/env bash
# Apply terraform/ against a local moto server (AWS emulator).
#
# Usage: infra/scripts/tf-moto.sh [OPTIONS] [PORT]
#        infra/scripts/tf-moto.sh --validate-only [--keep] [--scratch DIR]
#
#   PORT     use a moto server already listening on 127.0.0.1:PORT (it is left
#            running, with the stack in it). Without PORT the script starts
#            `moto_server` on a free port and stops it on exit.
#   --scratch DIR
#            scratch directory (config copy, state, outputs.json) instead of
#            <repo>/.work/tf-moto; relative to the current directory. It must be
#            new, empty or an earlier scratch dir of this script (it is wiped).
#            The log is DIR.log, a started moto server logs to DIR.moto.log.
#   --var-file FILE
#            variable file for apply (repeatable, in order); when given these are
#            used instead of infra/moto/test.tfvars.
#   --var NAME=VALUE
#            passed as -var NAME=VALUE to apply after the var files (repeatable;
#            also for the ephemeral source_tokens).
#   --validate-only
#            only terraform fmt -check, init and validate (production config and
#            with the emulator override): no moto, no apply, no zips needed.
#   --check-rejects
#            after the apply, run `terraform plan` with bad settings (a typo in a
#            job's params, plain http to a public host, a request timeout the
#            collector's timeout has no room for, ...) and require each to fail
#            naming the setting.
#   --examples
#            after the apply (and --check-rejects), apply each
#            terraform/examples/*.tfvars in turn to the same state and server
#            (each an in-place update of the stack before it: they share name and
#            region), with only lambda_zip_dir and force_destroy_bucket=true added
#            (not the --var values); each must succeed. The log has each one's time.
#   --keep   keep the scratch directory after success; it is always kept after
#            a failure.
#
# Environment:
#   LAMBDA_ZIP_DIR   directory with <fn>/bootstrap.zip (default <repo>/target/lambda)
#   TF_PLUGIN_DIR    provider mirror for offline init (default /opt/tf-plugins if present)
#   MOTO_START_TIMEOUT  seconds to wait for a started moto server (default 60)
#
# Steps: terraform fmt -check, copy terraform/*.tf to the scratch dir, init,
# validate (production configuration, then with the emulator override), apply
# with the var files (default infra/moto/test.tfvars), check every output is
# non-empty (and, with test.tfvars, the subscribers' SNS filter policies), the bad
# plans (--check-rejects), the examples (--examples), print a summary. Exit status 0
# only if every step succeeded.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die_usage() { echo "tf-moto: $*" >&2; echo "(see infra/scripts/tf-moto.sh --help)" >&2; exit 2; }

KEEP=0
PORT=""
SCRATCH_ARG=""
VALIDATE_ONLY=0
CHECK_REJECTS=0
EXAMPLES=0
VAR_FILES=()
VARS=()
while [ $# -gt 0 ]; do
  opt="$1"
  val=""
  has_val=0
  case "$opt" in
    --*=*) val="${opt#*=}"; opt="${opt%%=*}"; has_val=1 ;;
  esac
  case "$opt" in
    --scratch | --var-file | --var)
      if [ "$has_val" -eq 0 ]; then
        [ $# -ge 2 ] || die_usage "$opt needs a value"
        val="$2"
        shift
      fi
      [ -n "$val" ] || die_usage "$opt needs a non-empty value"
      ;;
    *) [ "$has_val" -eq 0 ] || die_usage "$opt takes no value" ;;
  esac
  case "$opt" in
    --keep) KEEP=1 ;;
    --validate-only) VALIDATE_ONLY=1 ;;
    --check-rejects) CHECK_REJECTS=1 ;;
    --examples) EXAMPLES=1 ;;
    --scratch) SCRATCH_ARG="$val" ;;
    --var-file)
      [ -f "$val" ] || die_usage "--var-file: no such file: $val"
      VAR_FILES+=("$(cd "$(dirname "$val")" && pwd)/$(basename "$val")")
      ;;
    --var)
      [[ "$val" =~ ^[A-Za-z_][A-Za-z0-9_-]*= ]] || die_usage "--var expects NAME=VALUE, got '${val%%=*}...'"
      VARS+=("$val")
      ;;
    -h | --help) usage; exit 0 ;;
    -*) die_usage "unknown option $opt" ;;
    *)
      if [ -n "$PORT" ] || ! [[ "$opt" =~ ^[0-9]+$ ]] || [ "$opt" -lt 1 ] || [ "$opt" -gt 65535 ]; then
        die_usage "bad argument '$opt' (expected one port number)"
      fi
      PORT="$opt" ;;
  esac
  shift
done
[ "$VALIDATE_ONLY" -eq 0 ] || [ -z "$PORT" ] || die_usage "--validate-only does not use a moto server (drop PORT)"
[ "$VALIDATE_ONLY" -eq 0 ] || [ "$EXAMPLES" -eq 0 ] || die_usage "--examples needs an apply (drop --validate-only)"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$REPO/.work"
if [ -n "$SCRATCH_ARG" ]; then
  case "$SCRATCH_ARG" in
    /*) SCRATCH="$SCRATCH_ARG" ;;
    *) SCRATCH="$PWD/$SCRATCH_ARG" ;;
  esac
  # Normalise: drop trailing slashes and "." components ("dir/", "./dir").
  while [ "${SCRATCH%/}" != "$SCRATCH" ]; do SCRATCH="${SCRATCH%/}"; done
  SCRATCH="$(printf '%s' "$SCRATCH" | sed -e 's#/\./#/#g' -e 's#/\.$##')"
  case "$SCRATCH" in
    "" | */.. | */../*) die_usage "--scratch: give a directory path without '..' (got '$SCRATCH_ARG')" ;;
  esac
  if [ "$SCRATCH" = "$REPO" ] || [ "$SCRATCH" = "$HOME" ]; then
    die_usage "--scratch: refusing to use $SCRATCH"
  fi
else
  SCRATCH="$WORK/tf-moto"
fi
LOG="$SCRATCH.log"
MOTO_LOG="$SCRATCH.moto.log"
MARKER=".tf-moto-scratch"
ZIP_DIR="${LAMBDA_ZIP_DIR:-$REPO/target/lambda}"
PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"
START_TIMEOUT="${MOTO_START_TIMEOUT:-60}"
START=$SECONDS
MOTO_PID=""
SCRATCH_MADE=0

TOOLS=(terraform)
[ "$VALIDATE_ONLY" -eq 1 ] || TOOLS+=(python3)
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null || { echo "tf-moto: $tool not found on PATH" >&2; exit 1; }
done

if [ "$VALIDATE_ONLY" -eq 0 ]; then
  ZIP_DIR="$(cd "$ZIP_DIR" 2>/dev/null && pwd)" || { echo "tf-moto: LAMBDA_ZIP_DIR '${LAMBDA_ZIP_DIR:-$REPO/target/lambda}' does not exist (cargo lambda build --release --output-format zip)" >&2; exit 1; }
  for fn in collector consumer alerter; do
    [ -f "$ZIP_DIR/$fn/bootstrap.zip" ] || { echo "tf-moto: missing $ZIP_DIR/$fn/bootstrap.zip" >&2; exit 1; }
  done
  [ "${#VAR_FILES[@]}" -gt 0 ] || VAR_FILES=("$REPO/infra/moto/test.tfvars")
fi

# The scratch dir is wiped: only reuse one this script made (or the default).
if [ -d "$SCRATCH" ] && [ -n "$(ls -A "$SCRATCH")" ] && [ ! -e "$SCRATCH/$MARKER" ] && [ "$SCRATCH" != "$WORK/tf-moto" ]; then
  die_usage "--scratch: $SCRATCH exists, is not empty and was not made by this script; refusing to wipe it"
fi
[ ! -e "$SCRATCH" ] || [ -d "$SCRATCH" ] || die_usage "--scratch: $SCRATCH exists and is not a directory"

mkdir -p "$(dirname "$SCRATCH")"
: >"$LOG"
echo "tf-moto: scratch $SCRATCH, log $LOG"

# Quiet, offline-friendly terraform.
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
TFRC=""
if [ -z "${TF_CLI_CONFIG_FILE:-}" ] || [ ! -f "$TF_CLI_CONFIG_FILE" ]; then
  TFRC="$(mktemp "${TMPDIR:-/tmp}/tf-moto-rc.XXXXXX")"
  export TF_CLI_CONFIG_FILE="$TFRC"
fi
# Never let a developer's real AWS settings leak into the emulator run.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

cleanup() {
  local rc=$?
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  [ -z "$TFRC" ] || rm -f "$TFRC"
  if [ "$rc" -ne 0 ]; then
    echo "tf-moto: FAILED (exit $rc) after $((SECONDS - START)) s; last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2 || true
    [ "$SCRATCH_MADE" -eq 1 ] && echo "tf-moto: scratch dir kept at $SCRATCH" >&2
  elif [ "$KEEP" -eq 0 ]; then
    rm -rf "$SCRATCH"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "== $*" >>"$LOG"; }
run() { "$@" >>"$LOG" 2>&1; }

# --- moto server --------------------------------------------------------------
if [ "$VALIDATE_ONLY" -eq 1 ]; then
  ENDPOINT="http://127.0.0.1:5000" # placeholder: validate does not connect
elif [ -z "$PORT" ]; then
  command -v moto_server >/dev/null || { echo "tf-moto: moto_server not found (pip install 'moto[server]')" >&2; exit 1; }
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
  step "starting moto_server on 127.0.0.1:$PORT"
  moto_server -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
fi
[ "$VALIDATE_ONLY" -eq 1 ] || ENDPOINT="http://127.0.0.1:$PORT"

if [ "$VALIDATE_ONLY" -eq 0 ] && ! python3 - "$ENDPOINT" "$START_TIMEOUT" "${MOTO_PID:-0}" <<'PY'; then
import os, sys, time, urllib.request, urllib.error
url, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + timeout
while time.time() < deadline:
    if pid and not os.path.exists(f"/proc/{pid}"):
        sys.exit(1)
    try:
        urllib.request.urlopen(url + "/moto-api/", timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # any HTTP answer means the server is up
    except Exception:
        time.sleep(0.3)
sys.exit(1)
PY
  [ -n "$MOTO_PID" ] && tail -n 20 "$MOTO_LOG" >>"$LOG" 2>/dev/null
  echo "tf-moto: no moto server answering at $ENDPOINT" >&2
  exit 1
fi

# --- format, scratch copy, init, validate ----------------------------------------
step "terraform fmt -check -recursive terraform"
(cd "$REPO" && run terraform fmt -check -recursive -no-color terraform) || { echo "tf-moto: terraform fmt -check failed (run: terraform fmt -recursive terraform)" >&2; exit 1; }

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
SCRATCH_MADE=1
: >"$SCRATCH/$MARKER"
cp "$REPO"/terraform/*.tf "$SCRATCH"/
cd "$SCRATCH"

step "terraform init"
if [ -d "$PLUGIN_DIR" ]; then
  run terraform init -no-color -input=false -backend=false -plugin-dir="$PLUGIN_DIR"
else
  run terraform init -no-color -input=false -backend=false
fi

step "terraform validate (production configuration)"
run terraform validate -no-color

sed "s#__ENDPOINT__#$ENDPOINT#g" "$REPO/infra/moto/emulator_override.tf.tmpl" >"$SCRATCH/emulator_override.tf"
step "terraform validate (with emulator override)"
run terraform validate -no-color

if [ "$VALIDATE_ONLY" -eq 1 ]; then
  echo "tf-moto: OK: fmt, init and validate (production and emulator override) passed in $((SECONDS - START)) s (log: $LOG)"
  exit 0
fi

# --- apply ------------------------------------------------------------------------
APPLY_ARGS=()
for f in "${VAR_FILES[@]}"; do APPLY_ARGS+=("-var-file=$f"); done
APPLY_ARGS+=(-var "lambda_zip_dir=$ZIP_DIR")
for v in "${VARS[@]}"; do APPLY_ARGS+=(-var "$v"); done
# Only names are logged: --var values may be secrets (source_tokens).
step "terraform apply (var files: ${VAR_FILES[*]##*/}; vars: lambda_zip_dir$(for v in "${VARS[@]}"; do printf ' %s' "${v%%=*}"; done))"
run terraform apply -no-color -input=false -auto-approve "${APPLY_ARGS[@]}"

# --- check outputs ------------------------------------------------------------------
step "terraform output -json"
terraform output -no-color -json >"$SCRATCH/outputs.json" 2>>"$LOG"
python3 - "$SCRATCH/outputs.json" >>"$LOG" 2>&1 <<'PY'
import json, sys
expected = ["stream_name", "stream_arn", "prices_table_name", "state_table_name",
            "archive_bucket_name", "alerts_topic_arn", "token_parameter_names",
            "function_names", "dlq_urls", "schedule_group_name", "schedule_names"]
outs = json.load(open(sys.argv[1]))
def empty(v):
    if v is None or v == "" or v == [] or v == {}:
        return True
    if isinstance(v, dict):
        return any(empty(x) for x in v.values())
    if isinstance(v, list):
        return any(empty(x) for x in v)
    return False
bad = [k for k in expected if k not in outs or empty(outs[k]["value"])]
if bad:
    print("empty or missing outputs:", ", ".join(bad))
    sys.exit(1)
for k in sorted(outs):
    if outs[k]["value"] is not None:
        print(f"{k} = {json.dumps(outs[k]['value'])}")
PY

# --- declared subscribers became filtered SNS subscriptions ---------------------
# What SNS holds (asked of the emulator), against the subscribers test.tfvars declares.
if [ "${VAR_FILES[*]}" = "$REPO/infra/moto/test.tfvars" ]; then
  step "subscribers: SNS subscriptions and their filter policies"
  python3 - "$ENDPOINT" "$SCRATCH/outputs.json" >>"$LOG" 2>&1 <<'PY' || { echo "tf-moto: subscriber subscriptions are not as declared (see $LOG)" >&2; exit 1; }
import json, sys, urllib.parse, urllib.request, xml.etree.ElementTree as ET
endpoint, outputs = sys.argv[1], json.load(open(sys.argv[2]))
def call(action, **params):
    body = urllib.parse.urlencode({"Action": action, "Version": "2010-03-31", **params}).encode()
    req = urllib.request.Request(endpoint + "/", body, {"Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=x"})
    return ET.fromstring(urllib.request.urlopen(req).read())
ns = {"s": "http://sns.amazonaws.com/doc/2010-03-31/"}
topic = outputs["alerts_topic_arn"]["value"]
subs = call("ListSubscriptionsByTopic", TopicArn=topic)
policies = {}
for m in subs.iterfind(".//s:Subscriptions/s:member", ns):
    arn, endpoint_ = m.findtext("s:SubscriptionArn", namespaces=ns), m.findtext("s:Endpoint", namespaces=ns)
    attrs = call("GetSubscriptionAttributes", SubscriptionArn=arn)
    for e in attrs.iterfind(".//s:Attributes/s:entry", ns):
        if e.findtext("s:key", namespaces=ns) == "FilterPolicy":
            policies[endpoint_] = json.loads(e.findtext("s:value", namespaces=ns))
want = {
    "+15555550101": {"sms_to": ["ann"], "rule": ["cheap-aeroflot"], "subject": ["LED-KZN"]},
    "ops@example.com": {"email_to": ["ops"]},
}
for endpoint_, policy in want.items():
    got = policies.get(endpoint_)
    print(f"{endpoint_}: filter policy {json.dumps(got)}")
    if got != policy:
        print(f"  expected {json.dumps(policy)}")
        sys.exit(1)
unfiltered = [e for e in ("+15555550100", "alerts@example.com") if e in policies]
if unfiltered:
    print("catch-all subscriptions carry a filter policy:", unfiltered)
    sys.exit(1)
PY
fi

# --- bad settings fail the plan, naming the setting ------------------------------
# Each case: the text the error must contain, then the -var overrides. Terraform wraps
# its messages in a box; the comparison squeezes the box and the line breaks away.
REJECTED=0
reject() {
  local want="$1" out
  shift
  local args=()
  for v in "$@"; do args+=(-var "$v"); done
  if out="$(terraform plan -no-color -input=false -refresh=false -lock=false "${APPLY_ARGS[@]}" "${args[@]}" 2>&1)"; then
    echo "tf-moto: terraform plan accepted a bad setting: $*" >&2
    exit 1
  fi
  if ! printf '%s' "$out" | tr '\n│╷╵' '    ' | tr -s ' ' | grep -qF -- "$want"; then
    printf '%s\n' "$out" >>"$LOG"
    echo "tf-moto: terraform plan failed for $*, but without naming it: expected \"$want\" (output in $LOG)" >&2
    exit 1
  fi
  echo "rejected as expected: $want" >>"$LOG"
  REJECTED=$((REJECTED + 1))
}
if [ "$CHECK_REJECTS" -eq 1 ]; then
  step "terraform plan with bad settings (each must fail naming the setting)"
  reject 'jobs["typo"]: params.destnation is not a parameter of this source' \
    'jobs={typo={source="travelpayouts",schedule="rate(1 hour)",params={origin="LED",destnation="KZN"}}}'
  reject 'params.regions or params.bookmakers is required' \
    'jobs={nba={source="odds",schedule="rate(1 hour)",params={sport="basketball_nba"}}}'
  reject 'params.departure_at = "2026-13" does not match' \
    'jobs={led={source="travelpayouts",schedule="rate(1 hour)",params={origin="LED",destination="KZN",departure_at="2026-13"}}}'
  reject 'source_base_urls values must be https:// URLs' \
    'source_base_urls={travelpayouts="http://api.travelpayouts.com"}'
  reject 'sources[*]: max_body_bytes must be 1024-67108864' \
    'sources={travelpayouts={max_body_bytes=100000000}}'
  reject 'http_timeout_ms leaves no room for requests' \
    'http_timeout_ms=60000'
  reject 'alerter_filter_kinds leaves out the kind of some alert_rules (candle, odds_quote, price)' \
    'alerter_filter_kinds=["flight_price"]'
  reject 'params.interval = "1M" does not match' \
    'jobs={btc={source="binance",schedule="rate(1 hour)",params={symbol="BTCUSDT",interval="1M"}}}'
  reject 'sources[*].options must be options of the entry' \
    'sources={binance={options={weight_budget="lots"}}}'
  reject 'sources[*] of the generic module need a base_url (or a source_base_urls entry) and options path, key and price' \
    'sources={shop={module="generic",base_url="https://shop.example",options={path="/v1/offers"}}}'
  reject 'subscribers[*].rules must name alert_rules: ann: cheap-aeroflt' \
    'subscribers={ann={sms="+15555550101",rules=["cheap-aeroflt"]}}'
  reject 'alert_rules[*].quiet_hours must be HH:MM-HH:MM' \
    'alert_rules=[{name="night",source="travelpayouts",kind="flight_price",when="price < 1",quiet_hours="22-7"}]'
fi

# --- the functions accept the configuration Terraform gave them ---------------------
# moto stores functions but never starts them, so a setting only the function can judge
# (a rule that does not compile, a field a rule reads that records lack) would pass every
# apply. Each release binary is started with its applied environment (read back from the
# emulator) and no Runtime API: a binary that accepted its configuration gets as far as
# the Lambda runtime, which stops it for want of AWS_LAMBDA_FUNCTION_NAME; one that did
# not stops earlier with a ConfigError naming the variable.
BIN_DIR="$SCRATCH/bin"
check_function_configs() {
  local what="$1"
  step "functions start with the configuration of $what"
  python3 - "$ENDPOINT" "$ZIP_DIR" "$BIN_DIR" "$what" >>"$LOG" 2>&1 <<'PY' || { echo "tf-moto: a function rejects the configuration of $what (see $LOG)" >&2; exit 1; }
import json, os, subprocess, sys, urllib.request, zipfile
endpoint, zips, bins, what = sys.argv[1:5]
out = json.loads(subprocess.run(["terraform", "output", "-no-color", "-json", "function_names"],
                                capture_output=True, text=True, check=True).stdout)
failed = []
for role, name in sorted(out.items()):
    exe = os.path.join(bins, role, "bootstrap")
    if not os.path.exists(exe):
        zipfile.ZipFile(os.path.join(zips, role, "bootstrap.zip")).extractall(os.path.dirname(exe))
        os.chmod(exe, 0o755)
    req = urllib.request.Request(f"{endpoint}/2015-03-31/functions/{name}/configuration", headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=x"})
    variables = json.load(urllib.request.urlopen(req)).get("Environment", {}).get("Variables", {})
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
           **variables}
    p = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60)
    said = (p.stdout + p.stderr).strip()
    if "Missing AWS_LAMBDA_FUNCTION_NAME" in said and "ConfigError" not in said:
        print(f"{what}: {role} accepts its configuration ({', '.join(sorted(variables))})")
    else:
        failed.append(role)
        print(f"{what}: {role} stopped before the runtime (exit {p.returncode}):\n{said[-2000:]}")
sys.exit(1 if failed else 0)
PY
}
check_function_configs "${VAR_FILES[*]##*/}"

# What the main apply made (the examples below replace it).
COUNT="$(terraform state list 2>>"$LOG" | grep -vc '^data\.' || true)"

# --- every example configuration applies ------------------------------------------
# Each is applied over the stack before it (same name and region: an update, not a
# rebuild) with only what the emulator run needs added; none gets the --var values.
EXAMPLES_SAID=""
if [ "$EXAMPLES" -eq 1 ]; then
  EXAMPLE_FILES=()
  for f in "$REPO"/terraform/examples/*.tfvars; do [ -f "$f" ] && EXAMPLE_FILES+=("$f"); done
  [ "${#EXAMPLE_FILES[@]}" -gt 0 ] || { echo "tf-moto: --examples: no terraform/examples/*.tfvars" >&2; exit 1; }
  APPLIED=0
  EXAMPLES_START=$SECONDS
  for f in "${EXAMPLE_FILES[@]}"; do
    t0=$SECONDS
    step "terraform apply example ${f#"$REPO"/} (vars: lambda_zip_dir force_destroy_bucket)"
    if ! run terraform apply -no-color -input=false -auto-approve "-var-file=$f" \
      -var "lambda_zip_dir=$ZIP_DIR" -var force_destroy_bucket=true; then
      echo "tf-moto: example ${f#"$REPO"/} failed to apply (see $LOG)" >&2
      exit 1
    fi
    check_function_configs "${f##*/}"
    APPLIED=$((APPLIED + 1))
    step "example ${f##*/} applied in $((SECONDS - t0)) s ($(terraform state list 2>>"$LOG" | grep -vc '^data\.' || true) resources)"
  done
  EXAMPLES_SAID=", $APPLIED examples applied ($((SECONDS - EXAMPLES_START)) s)"
fi

REJECTS_SAID=""
[ "$CHECK_REJECTS" -eq 0 ] || REJECTS_SAID=", $REJECTED bad settings rejected by plan"
echo "tf-moto: OK: $COUNT resources created against moto at $ENDPOINT$REJECTS_SAID$EXAMPLES_SAID in $((SECONDS - START)) s (log: $LOG)"
