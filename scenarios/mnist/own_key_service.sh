#!/usr/bin/env bash
# The MNIST story by hand, with the provider keeping its data key in a key service it runs
# itself (`sealroom kms serve` in its own home): the operator's workspace never holds it.
# Usage (from the repository root, with the venv's sealroom on PATH):
#   scenarios/mnist/own_key_service.sh WORKDIR
set -euo pipefail
# The dataset names the hospital's own key service: the room's operator forwards its calls.
PORT=${KMS_PORT:-$(${PYTHON:-python} -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
export HOSPITAL_KEY_SERVICE=http://127.0.0.1:$PORT
source "$(dirname "$0")/walk_start.sh" "$@"

# The hospital keeps its key at home: it takes the registered contract back, trusts the room
# host's (INSECURE, software) attestation key, imports its data key into its own key service
# and serves it on loopback; the operator gets only the client token (not a key).
SEALROOM_HOME=$ROOM     sealroom contract export mnist-demo --out mnist-demo.registered.json
SEALROOM_HOME=$HOSPITAL sealroom contract import mnist-demo.registered.json
SEALROOM_HOME=$ROOM     sealroom attest public-key --out room-attester.pub
SEALROOM_HOME=$HOSPITAL sealroom attest trust room-attester.pub
SEALROOM_HOME=$HOSPITAL sealroom keys import mnist.sealed --as hospital --contract mnist-demo --allow-insecure
SEALROOM_HOME=$HOSPITAL sealroom kms serve --port "$PORT" --token-file hospital-kms.token &
KMS_PID=$!
trap 'kill $KMS_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s hospital-kms.token ] && $PYTHON -c "import httpx, sys; httpx.get(sys.argv[1]).raise_for_status()" \
      "http://127.0.0.1:$PORT/v1/health" 2>/dev/null && break
  sleep 0.2
done
export SEALROOM_KMS_TOKEN_FILE=$WORK/hospital-kms.token

# The lab grants its model key to the room's key service, as in by_hand.sh.
SEALROOM_HOME=$ROOM     sealroom kms public-key --out kms.pub.json
SEALROOM_HOME=$LAB      sealroom keys grant model.sealed --as lab --contract mnist-demo \
    --to kms.pub.json --out model.grant.json --allow-insecure
SEALROOM_HOME=$ROOM     sealroom keys import-grant model.grant.json
cp -r mnist.sealed model.sealed "$ROOM/packages/"

# Operator: run the room. Anyone: verify the receipt. Consumer: decrypt the outputs.
SEALROOM_HOME=$ROOM sealroom run --contract mnist-demo --pipeline mnist.pipeline.json
# The hospital's own ledger recorded the release of its key to the room.
SEALROOM_HOME=$HOSPITAL sealroom ledger show --kind key.released --json > hospital-releases.json
cp -r "$ROOM"/runs/run-* .
sealroom receipt verify run-*/ --key-file ledger.pub
SEALROOM_HOME=$LAB sealroom output decrypt run-*/ --as lab --out lab-results --ledger-key "$(cat ledger.pub)"
