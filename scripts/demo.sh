#!/usr/bin/env bash
# The demo behind `make demo`: the sample ERP invoices go through
# `meltano run tap-jsonl target-leanpay` into a local Leanpay stand-in on 127.0.0.1;
# then it shows what the stand-in received and the STATE Meltano stored.
set -euo pipefail
cd "$(dirname "$0")/.."
MELTANO=${MELTANO:-meltano}
STATE_ID=dev:tap-jsonl-to-target-leanpay
mkdir -p output
rm -f output/dead-letter.jsonl output/standin-url.txt

python -m leanpay_standin --port 0 --api-key demo-key --url-file output/standin-url.txt \
  >output/standin.log 2>&1 &
standin=$!
trap 'kill "$standin" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s output/standin-url.txt ] && break; sleep 0.1; done
url=$(cat output/standin-url.txt)
echo "== Leanpay stand-in listening at $url"

export TARGET_LEANPAY_API_URL="$url" TARGET_LEANPAY_API_KEY=demo-key
"$MELTANO" state clear --force "$STATE_ID" >/dev/null 2>&1 || true
echo "== meltano run tap-jsonl target-leanpay"
"$MELTANO" run tap-jsonl target-leanpay

echo "== What the stand-in received"
python - "$url" <<'PY'
import sys
import requests

base = sys.argv[1].split("/v1/public")[0]
calls = requests.get(f"{base}/_control/requests", timeout=5).json()
posts = [c for c in calls if c["method"] == "POST"]
items = sum(c["items"] or 0 for c in posts)


def count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


print(f"{count(len(calls), 'request')} ({count(len(posts), 'batch POST')} with {count(items, 'item')})")
for invoice in requests.get(f"{base}/_control/store", timeout=5).json()["invoices"]:
    print(
        f"  {invoice['externalId']:<15} client {invoice['clientId'][:8]}…  "
        f"amount {invoice['amount']:>9} cents  issued {invoice['issueDate'][:10]}  "
        f"due {invoice['dueDate'][:10]}"
    )
PY
echo "== STATE stored by Meltano for $STATE_ID"
"$MELTANO" --log-level=warning state get "$STATE_ID"
