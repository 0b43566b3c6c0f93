#!/usr/bin/env bash
# The MNIST story by hand: three roles, three homes, only public artefacts cross between them.
# Usage (from the repository root, with the venv's sealroom on PATH):
#   scenarios/mnist/by_hand.sh WORKDIR
set -euo pipefail
unset HOSPITAL_KEY_SERVICE  # the room's key service holds every key in this walk
source "$(dirname "$0")/walk_start.sh" "$@"

# Keys: each owner grants its key to the room's key service from its own home.
SEALROOM_HOME=$ROOM     sealroom kms public-key --out kms.pub.json
SEALROOM_HOME=$HOSPITAL sealroom keys grant mnist.sealed --as hospital --contract mnist-demo \
    --to kms.pub.json --out mnist.grant.json --allow-insecure
SEALROOM_HOME=$LAB      sealroom keys grant model.sealed --as lab --contract mnist-demo \
    --to kms.pub.json --out model.grant.json --allow-insecure
SEALROOM_HOME=$ROOM     sealroom keys import-grant mnist.grant.json
SEALROOM_HOME=$ROOM     sealroom keys import-grant model.grant.json
cp -r mnist.sealed model.sealed "$ROOM/packages/"

# Operator: run the room. Anyone: verify the receipt. Consumer: decrypt the outputs.
SEALROOM_HOME=$ROOM sealroom run --contract mnist-demo --pipeline mnist.pipeline.json
cp -r "$ROOM"/runs/run-* .
sealroom receipt verify run-*/ --key-file ledger.pub
SEALROOM_HOME=$LAB sealroom output decrypt run-*/ --as lab --out lab-results --ledger-key "$(cat ledger.pub)"
