#!/usr/bin/env bash
# The Fashion-MNIST walk (README.md): a shop publishes a sealed package with a signed data
# card (t10k held out as the test split); a lab reads the card, develops its pipeline on mock
# data drawn from it, then trains in the room. Three homes; only public artefacts cross.
# Usage (from the repository root, with the venv's sealroom on PATH):
#   scenarios/fashion/walk.sh WORKDIR [TRAIN_RECORDS TEST_RECORDS]
# The optional counts keep only the first records of each file (a quick walk; the test uses
# them). Needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mkdir -p "${1:?usage: $0 WORKDIR [TRAIN_RECORDS TEST_RECORDS]}" && cd "$1" && pwd)
LIMITS=()
if [ $# -ge 3 ]; then LIMITS=(--train "$2" --test "$3"); fi
PYTHON=${PYTHON:-python}
cd "$WORK"
export SHOP=$WORK/shop LAB=$WORK/lab ROOM=$WORK/room
export SEALROOM_PASSPHRASE=${SEALROOM_PASSPHRASE:-fashion walk passphrase, not a secret}
for h in $SHOP $LAB $ROOM; do sealroom init --home "$h" >/dev/null; done
SEALROOM_HOME=$SHOP sealroom party create shop --role provider
SEALROOM_HOME=$LAB  sealroom party create lab --role consumer
SEALROOM_HOME=$ROOM sealroom party create operator --role operator
SEALROOM_HOME=$SHOP sealroom party export shop --out shop.identity.json
SEALROOM_HOME=$LAB  sealroom party export lab --out lab.identity.json
SEALROOM_HOME=$ROOM sealroom party export operator --out operator.identity.json
for h in $SHOP $LAB $ROOM; do
  for p in shop lab operator; do SEALROOM_HOME=$h sealroom party import $p.identity.json >/dev/null; done
done

# --- The shop (provider): seal the data, declare the splits, publish a signed card.
(cd "$REPO" && $PYTHON -m scenarios.fashion.prepare "$WORK/shop-data/fashion" "${LIMITS[@]}")
SEALROOM_HOME=$SHOP sealroom seal shop-data/fashion --owner shop --out fashion.sealed --format idx \
    --json > fashion.seal.json
SEALROOM_HOME=$SHOP sealroom dataset declare "$REPO/scenarios/fashion/declaration.yaml" --as shop \
    --package fashion.sealed --out fashion.declaration.json --json > fashion.declare.json
SEALROOM_HOME=$SHOP sealroom package card shop-data/fashion --package fashion.sealed \
    --draft "$REPO/scenarios/fashion/card.yaml" --declaration fashion.declaration.json --as shop

# --- The lab (consumer): read the card, develop on mock data, compose against the package.
SEALROOM_HOME=$LAB sealroom package show fashion.sealed
(cd "$REPO" && $PYTHON -m scenarios.fashion.cnn --out "$WORK/lab-model/model.onnx")
SEALROOM_HOME=$LAB sealroom train --local "$REPO/scenarios/fashion" --mock --data fashion=fashion.sealed \
    --model-dir lab-model --epochs 1 --out mock-run
SEALROOM_HOME=$LAB sealroom seal lab-model --owner lab --out model.sealed --json > model.seal.json
SEALROOM_HOME=$LAB sealroom pipeline compose "$REPO/scenarios/fashion" --out fashion.pipeline.json \
    --package fashion=fashion.sealed

# --- The contract: the package, model and declaration digests go into a copy of the template.
field() { $PYTHON -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
sed -e "s/sha256:0\{64\}/$(field fashion.seal.json digest)/" \
    -e "s/sha256:1\{64\}/$(field model.seal.json digest)/" \
    -e "s/sha256:d\{64\}/$(field fashion.declare.json digest)/" \
    "$REPO/scenarios/fashion/contract.yaml" > fashion-contract.yaml
SEALROOM_HOME=$ROOM sealroom ledger public-key --out ledger.pub >/dev/null
SEALROOM_HOME=$LAB  sealroom contract propose fashion-contract.yaml --as lab --ledger-key-file ledger.pub
SEALROOM_HOME=$LAB  sealroom contract export fashion-walk --out fashion-walk.contract.json
SEALROOM_HOME=$SHOP sealroom contract import fashion-walk.contract.json
SEALROOM_HOME=$SHOP sealroom contract sign fashion-walk --as shop
SEALROOM_HOME=$SHOP sealroom contract export fashion-walk --out fashion-walk.contract.json
SEALROOM_HOME=$ROOM sealroom contract import fashion-walk.contract.json
SEALROOM_HOME=$ROOM sealroom contract sign fashion-walk --as operator
SEALROOM_HOME=$LAB  sealroom pipeline sign fashion.pipeline.json --as lab --contract fashion-walk

# --- Keys to the room's key service, the packages to the room; run with the declaration.
SEALROOM_HOME=$ROOM sealroom kms public-key --out kms.pub.json
SEALROOM_HOME=$SHOP sealroom keys grant fashion.sealed --as shop --contract fashion-walk \
    --to kms.pub.json --out fashion.grant.json --allow-insecure
SEALROOM_HOME=$LAB  sealroom keys grant model.sealed --as lab --contract fashion-walk \
    --to kms.pub.json --out model.grant.json --allow-insecure
SEALROOM_HOME=$ROOM sealroom keys import-grant fashion.grant.json
SEALROOM_HOME=$ROOM sealroom keys import-grant model.grant.json
cp -r fashion.sealed model.sealed "$ROOM/packages/"
SEALROOM_HOME=$ROOM sealroom run --contract fashion-walk --pipeline fashion.pipeline.json \
    --declaration fashion.declaration.json
cp -r "$ROOM"/runs/run-* .
sealroom receipt verify run-*/ --key-file ledger.pub
SEALROOM_HOME=$LAB sealroom output decrypt run-*/ --as lab --out lab-results --ledger-key "$(cat ledger.pub)"
