#!/usr/bin/env bash
# The demo behind `make demo`, against a local Leanpay stand-in on 127.0.0.1:
#   1. a plan, then the load, of the sample ERP invoices and credit notes;
#   2. a plan, then the load, of allocations (links) and refunds (paybacks) that name
#      invoices and credit notes by their ERP numbers: the target finds Leanpay's ids
#      (invoices from the listing, credit notes from the receipts of step 1);
#   3. what the stand-in received, the receipts file (also read back as a tap), and
#      the STATE Meltano stored.
# Every step is `meltano run`, with the project's meltano.yml. Everything the demo writes
# stays under output/ (which `make clean` removes), caches included: the stand-in listens
# on a new port each time, and the tenant index named after it would otherwise pile up in
# the store, ~/.local/state/target-leanpay (Meltano's own version check and state go to
# ~/.cache too).
set -euo pipefail
cd "$(dirname "$0")/.."
MELTANO=${MELTANO:-meltano}
mkdir -p output
rm -rf output/dead-letter.jsonl output/receipts.jsonl output/plan-requests.jsonl \
  output/standin-url.txt output/cache output/state
export XDG_CACHE_HOME="$PWD/output/cache" XDG_STATE_HOME="$PWD/output/state"

python -m leanpay_standin --port 0 --api-key demo-key --url-file output/standin-url.txt \
  >output/standin.log 2>&1 &
standin=$!
trap 'kill "$standin" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s output/standin-url.txt ] && break; sleep 0.1; done
url=$(cat output/standin-url.txt)
echo "== Leanpay stand-in listening at $url"

export TARGET_LEANPAY_API_URL="$url" TARGET_LEANPAY_API_KEY=demo-key
for tap in tap-jsonl tap-jsonl-credit-notes tap-jsonl-allocations tap-jsonl-refunds; do
  "$MELTANO" state clear --force "dev:$tap-to-target-leanpay" >/dev/null 2>&1 || true
done

plan_then_load() {
  echo "== Plan: TARGET_LEANPAY_PLAN=true meltano run $*"
  TARGET_LEANPAY_PLAN=true "$MELTANO" run "$@" 2>&1 | grep -E "Plan: " | sed -E 's/.*target-leanpay +//'
  echo "== Load: meltano run $*"
  "$MELTANO" run "$@" 2>&1 | grep -E "Summary|ERROR|Rejected" | sed -E 's/.*target-leanpay +//'
}

plan_then_load tap-jsonl target-leanpay tap-jsonl-credit-notes target-leanpay
plan_then_load tap-jsonl-allocations target-leanpay tap-jsonl-refunds target-leanpay

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
store = requests.get(f"{base}/_control/store", timeout=5).json()
ids = {o["id"]: o["externalId"] for kind in ("invoices", "credit_notes") for o in store[kind]}
for invoice in store["invoices"][:3]:
    print(
        f"  invoice      {invoice['externalId']:<14} amount {invoice['amount']:>9} cents  "
        f"issued {invoice['issueDate'][:10]}  due {invoice['dueDate'][:10]}"
    )
print(f"  ... {len(store['invoices'])} invoices in all")
for note in store["credit_notes"]:
    print(f"  credit note  {note['externalId']:<14} amount {note['amount']:>9} cents  id {note['id']}")
for link in store["links"]:
    print(
        f"  link         {link['externalId']:<14} amount {link['amount']:>9} cents  "
        f"{ids[link['invoiceId']]} <- {ids[link['creditNoteId']]} (by Leanpay id)"
    )
for payback in store["paybacks"]:
    print(
        f"  payback      {payback['externalId']:<14} amount {payback['amount']:>9} cents  "
        f"of {ids[payback['creditNoteId']]}"
    )
PY
echo "== Receipts (output/receipts.jsonl): every item Leanpay acknowledged, with its Leanpay id"
head -n 2 output/receipts.jsonl
echo "... $(wc -l <output/receipts.jsonl) receipts in all"
echo "== The receipts as a tap: meltano invoke tap-jsonl-receipts (a warehouse loader would get these)"
"$MELTANO" --log-level=warning invoke tap-jsonl-receipts 2>/dev/null | python -c '
import json, sys
records = [m["record"] for m in map(json.loads, sys.stdin) if m["type"] == "RECORD"]
for r in records[:2]:
    print("  RECORD", r["resource"], r["externalId"], "->", r["id"])
print(f"  ... {len(records)} records in stream leanpay_receipts")'
echo "== STATE stored by Meltano for dev:tap-jsonl-to-target-leanpay"
"$MELTANO" --log-level=warning --environment=dev state get dev:tap-jsonl-to-target-leanpay
