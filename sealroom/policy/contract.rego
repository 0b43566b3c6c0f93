# Default contract policy: may this pipeline run under this contract?
#
# input.contract   the contract (JSON, as signed)
# input.pipeline   the composed pipeline document
# input.pipeline_digest   its digest (what `sealroom pipeline compose` prints)
# input.now_ns, input.not_before_ns, input.expires_ns   times in Unix nanoseconds
# input.packages   optional {dataset id: package digest} of the packages the room will open
#
# Every rule adds one plain-words message to `deny`; allow means deny is empty.
package sealroom.contract

import rego.v1

# Messages that include a concat() result are built with concat, not sprintf: rego-cpp
# 1.5.2 quotes a concat() result inside sprintf within a rule body, which breaks regopy.

# "5.0" rather than Rego's "5" for whole floats, so messages read like the configs.
show(x) := sprintf("%.1f", [x]) if x == round(x)

show(x) := sprintf("%v", [x]) if x != round(x)

contract_datasets := {d.id: d | some d in input.contract.datasets}

pipeline_datasets := {d.id: d | some d in input.pipeline.datasets}

constraints := input.contract.constraints

# An inference contract (inference terms set) serves a model; nothing trains under it.
deny contains msg if {
	is_object(input.contract.inference)
	msg := sprintf("contract %s is an inference contract: no training run", [input.contract.id])
}

deny contains msg if {
	some id, _ in pipeline_datasets
	not contract_datasets[id]
	msg := sprintf("dataset %s is not named by contract %s", [id, input.contract.id])
}

deny contains msg if {
	some id, digest in input.packages
	contract_datasets[id]
	contract_datasets[id].package_digest != digest
	msg := sprintf(
		"dataset %s: package digest %s is not the digest contract %s names (%s)",
		[id, digest, input.contract.id, contract_datasets[id].package_digest],
	)
}

# A contract may pin the one pipeline it allows (constraints.pipeline_digest).
deny contains msg if {
	pinned := constraints.pipeline_digest
	pinned != null
	input.pipeline_digest != pinned
	msg := sprintf(
		"pipeline digest %s is not the one contract %s pins (%s)",
		[input.pipeline_digest, input.contract.id, pinned],
	)
}

deny contains msg if {
	format := input.pipeline.model.model.format
	not format in constraints.model_formats
	msg := concat("", ["model format ", format, " is not allowed (allowed: ", concat(", ", constraints.model_formats), ")"])
}

deny contains msg if {
	name := input.pipeline.train.optimizer.name
	not name in constraints.optimizers
	msg := concat("", ["optimizer ", name, " is not allowed (allowed: ", concat(", ", constraints.optimizers), ")"])
}

deny contains msg if {
	some key, component in input.pipeline.loss.components
	not component.name in constraints.losses
	msg := concat("", ["loss component ", key, " (", component.name, ") is not allowed (allowed: ", concat(", ", constraints.losses), ")"])
}

# "loss" is the training objective itself, already governed by the allowed losses.
deny contains msg if {
	some metric in input.pipeline.eval.metrics
	metric != "loss"
	not metric in constraints.metrics
	msg := concat("", ["metric ", metric, " is not allowed (allowed: ", concat(", ", constraints.metrics), ")"])
}

deny contains msg if {
	input.pipeline.train.epochs > constraints.max_epochs
	msg := sprintf("epochs %d exceed the contract's limit %d", [input.pipeline.train.epochs, constraints.max_epochs])
}

deny contains msg if {
	input.pipeline.eval.plots
	not "plots" in constraints.released_outputs
	msg := "the pipeline makes plots but the contract does not release plots (set eval.plots: false)"
}

deny contains msg if {
	input.pipeline.eval.samples > 0
	not "samples" in constraints.released_outputs
	msg := "the pipeline writes sample overlays but the contract does not release samples"
}

private_datasets contains id if {
	some id, _ in pipeline_datasets
	contract_datasets[id].privacy != null
}

deny contains msg if {
	constraints.require_privacy
	input.pipeline.privacy == null
	msg := sprintf("contract %s requires differential privacy but the pipeline has no privacy settings", [input.contract.id])
}

deny contains msg if {
	not constraints.require_privacy
	input.pipeline.privacy == null
	some id in private_datasets
	msg := sprintf("dataset %s has privacy terms but the pipeline has no privacy settings", [id])
}

# Under privacy terms the provider, not the consumer, decides which records are held out:
# every dataset the pipeline uses must pin a signed declaration of its splits.
contract_is_private if constraints.require_privacy

contract_is_private if {
	some d in input.contract.datasets
	d.privacy != null
}

deny contains msg if {
	contract_is_private
	some id, _ in pipeline_datasets
	contract_datasets[id]
	object.get(contract_datasets[id], "declaration_digest", null) == null
	msg := sprintf(
		"dataset %s pins no dataset declaration, which contract %s needs for its privacy terms (the provider signs one with `sealroom dataset declare`)",
		[id, input.contract.id],
	)
}

deny contains msg if {
	some id in private_datasets
	limit := contract_datasets[id].privacy.per_run_epsilon
	input.pipeline.privacy.epsilon > limit
	msg := sprintf("epsilon %s exceeds dataset %s's limit %s", [show(input.pipeline.privacy.epsilon), id, show(limit)])
}

# Shuffled batches come from torch.Generator(train.seed), which the consumer knows: no
# amplification by sampling, so the Poisson ε a budget is charged would understate the cost.
deny contains msg if {
	some id in private_datasets
	input.pipeline.privacy.poisson_sampling == false
	msg := sprintf("dataset %s has a privacy budget: poisson_sampling false (shuffled batches from the consumer's seed) is refused; keep poisson_sampling true", [id])
}

deny contains msg if {
	some id in private_datasets
	limit := contract_datasets[id].privacy.per_run_delta
	input.pipeline.privacy.delta > limit
	msg := sprintf("delta %v exceeds dataset %s's limit %v", [input.pipeline.privacy.delta, id, limit])
}

# Under privacy every per-epoch validation (curves, early stopping, the best checkpoint) is a
# noisy release charged to ε: the pipeline must plan one per epoch plus the test release in
# privacy.eval_releases, so nothing is evaluated, let alone released, beyond the plan.
per_epoch_validation contains "train.early_stopping" if input.pipeline.train.early_stopping != null

per_epoch_validation contains "train.checkpoint best" if input.pipeline.train.checkpoint == "best"

per_epoch_validation contains "eval.per_epoch" if input.pipeline.eval.per_epoch == true

deny contains msg if {
	input.pipeline.privacy != null
	count(per_epoch_validation) > 0
	needed := input.pipeline.train.epochs + 1
	input.pipeline.privacy.eval_releases < needed
	detail := sprintf(
		" under privacy validates every epoch as a noisy release charged to epsilon: privacy.eval_releases is %d, it needs %d (%d epochs + the test release)",
		[input.pipeline.privacy.eval_releases, needed, input.pipeline.train.epochs],
	)
	msg := concat("", [concat(", ", sort(per_epoch_validation)), detail])
}

deny contains msg if {
	input.now_ns < input.not_before_ns
	msg := sprintf("contract %s is not in force before %s", [input.contract.id, input.contract.not_before])
}

deny contains msg if {
	input.now_ns >= input.expires_ns
	msg := sprintf("contract %s expired at %s", [input.contract.id, input.contract.expires])
}
