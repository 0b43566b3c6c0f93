# Sourced by by_hand.sh and own_key_service.sh: the start both walks share. Three homes
# (hospital, lab, room), identities exchanged, data and model sealed, the pipeline composed,
# my-contract.yaml written from the template with the two package digests (and, when
# $HOSPITAL_KEY_SERVICE is set, the hospital's own key service for its dataset), the
# contract signed by all three and registered in the room's ledger, the pipeline signed by
# the lab.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mkdir -p "${1:?usage: $0 WORKDIR}" && cd "$1" && pwd)
PYTHON=${PYTHON:-python}
cd "$WORK"
export HOSPITAL=$WORK/hospital LAB=$WORK/lab ROOM=$WORK/room
for h in $HOSPITAL $LAB $ROOM; do sealroom init --home "$h" >/dev/null; done

# Identities: each party creates its own, publishes the public half, imports the others'.
# Private keys are encrypted at rest; this walk gives every party one passphrase through the
# environment (in real life each party keeps its own, e.g. with --passphrase-file).
export SEALROOM_PASSPHRASE=${SEALROOM_PASSPHRASE:-by-hand walk passphrase, not a secret}
SEALROOM_HOME=$HOSPITAL sealroom party create hospital --role provider
SEALROOM_HOME=$LAB      sealroom party create lab --role consumer
SEALROOM_HOME=$ROOM     sealroom party create operator --role operator
SEALROOM_HOME=$HOSPITAL sealroom party export hospital --out hospital.identity.json
SEALROOM_HOME=$LAB      sealroom party export lab --out lab.identity.json
SEALROOM_HOME=$ROOM     sealroom party export operator --out operator.identity.json
for h in $HOSPITAL $LAB $ROOM; do
  for p in hospital lab operator; do SEALROOM_HOME=$h sealroom party import $p.identity.json >/dev/null; done
done

# Provider: prepare and seal the data. Consumer: save and seal the model, compose the pipeline.
(cd "$REPO" && $PYTHON -m scenarios.mnist.prepare "$WORK/hospital-data/mnist")
SEALROOM_HOME=$HOSPITAL sealroom seal hospital-data/mnist --owner hospital --out mnist.sealed --json > mnist.seal.json
(cd "$REPO" && $PYTHON -m scenarios.mnist.save_model --out "$WORK/lab-model/model.onnx")
SEALROOM_HOME=$LAB sealroom seal lab-model --owner lab --out model.sealed --json > model.seal.json
SEALROOM_HOME=$LAB sealroom pipeline compose "$REPO/scenarios/mnist" --out mnist.pipeline.json

# Contract: the digests go into a copy of the template; the bundle travels; all sign.
digest() { $PYTHON -c "import json, sys; print(json.load(open(sys.argv[1]))['digest'])" "$1"; }
sed -e "s/sha256:0\{64\}/$(digest mnist.seal.json)/" -e "s/sha256:1\{64\}/$(digest model.seal.json)/" \
    "$REPO/scenarios/mnist/contract.yaml" > my-contract.yaml
if [ -n "${HOSPITAL_KEY_SERVICE:-}" ]; then
  sed -i "s|    provider: hospital|    provider: hospital\n    key_service: $HOSPITAL_KEY_SERVICE|" my-contract.yaml
fi
# The contract pins the ledger that registers it and records its runs: the room's.
SEALROOM_HOME=$ROOM     sealroom ledger public-key --out ledger.pub >/dev/null
SEALROOM_HOME=$LAB      sealroom contract propose my-contract.yaml --as lab --ledger-key-file ledger.pub
SEALROOM_HOME=$LAB      sealroom contract export mnist-demo --out mnist-demo.contract.json
SEALROOM_HOME=$HOSPITAL sealroom contract import mnist-demo.contract.json
SEALROOM_HOME=$HOSPITAL sealroom contract sign mnist-demo --as hospital
SEALROOM_HOME=$HOSPITAL sealroom contract export mnist-demo --out mnist-demo.contract.json
SEALROOM_HOME=$ROOM     sealroom contract import mnist-demo.contract.json
SEALROOM_HOME=$ROOM     sealroom contract sign mnist-demo --as operator

# Consumer: sign the pipeline for this contract (mnist.pipeline.json.sig, beside it): key
# services release keys to no pipeline the consumer did not sign, so the operator cannot swap it.
SEALROOM_HOME=$LAB      sealroom pipeline sign mnist.pipeline.json --as lab --contract mnist-demo
