#!/usr/bin/env bash
# Runs a small ONNX classifier on the Tessera network and checks the answer with onnxruntime.
#   TESSERA_URL (default http://localhost:8080), TESSERA_KEY (default: the coordinator's data/local-api-key)
# Needs a running coordinator with at least one contributor (open http://localhost:8080/ and press Start).
set -euo pipefail
cd "$(dirname "$0")/../.."
url="${TESSERA_URL:-http://localhost:8080}"
key="${TESSERA_KEY:-$(cat data/local-api-key)}"
dir="${1:-$(mktemp -d)}"
auth=(-H "Authorization: Bearer $key")

npx tsx examples/inference/make-model.ts "$dir" "${BATCH:-100}"
job=$(curl -sS --fail-with-body "${auth[@]}" -F type=inference -F model=@"$dir/model.onnx" -F x=@"$dir/x.npy" "$url/api/v1/jobs")
id=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$job")
echo "job $id queued"
while :; do
  status=$(curl -sS --fail-with-body "${auth[@]}" "$url/api/v1/jobs/$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(`${j.status} ${j.progress.verified}/${j.progress.total}`)})')
  echo "  $status"
  case "$status" in completed*) break ;; failed*|cancelled*) exit 1 ;; esac
  sleep 1
done
curl -sS --fail-with-body "${auth[@]}" -o "$dir/probs.npy" "$url/api/v1/jobs/$id/result"
npx tsx examples/inference/check.ts "$dir"
