# Key release policy: may this attested room receive this package's data key?
#
# input.policy     the ReleasePolicy the key owner imported the key under
# input.room       the contract's room policy (measurements, allow_insecure, tee_types)
# input.claims     normalised attestation claims (tee_type, measurement, insecure, debug)
# input.contract_id, input.now_ns, input.policy_expires_ns (null when the policy never expires)
package sealroom.release

import rego.v1

# Messages that include a concat() result are built with concat, not sprintf: rego-cpp
# 1.5.2 quotes a concat() result inside sprintf within a rule body, which breaks regopy.

claims := input.claims

deny contains msg if {
	input.policy.contract_id != input.contract_id
	msg := sprintf("the key is released only under contract %s, not %s", [input.policy.contract_id, input.contract_id])
}

deny contains msg if {
	claims.insecure
	not input.policy.allow_insecure
	msg := "insecure evidence (software attester, no TEE) is not allowed by the key's release policy"
}

deny contains msg if {
	claims.insecure
	not input.room.allow_insecure
	msg := sprintf("insecure evidence (software attester, no TEE) is not allowed by contract %s", [input.contract_id])
}

# Insecure (software) evidence is judged by the allow_insecure rules above alone.
deny contains msg if {
	not claims.insecure
	not claims.tee_type in input.policy.tee_types
	msg := concat("", ["TEE type ", claims.tee_type, " is not allowed by the key's release policy (allowed: ", concat(", ", input.policy.tee_types), ")"])
}

deny contains msg if {
	count(input.room.tee_types) > 0
	not claims.tee_type in input.room.tee_types
	msg := concat("", ["TEE type ", claims.tee_type, " is not allowed by contract ", input.contract_id, " (allowed: ", concat(", ", input.room.tee_types), ")"])
}

deny contains msg if {
	not claims.measurement in input.policy.measurements
	msg := sprintf("measurement %s is not one the key's release policy allows", [claims.measurement])
}

deny contains msg if {
	count(input.room.measurements) > 0
	not claims.measurement in input.room.measurements
	msg := sprintf("measurement %s is not one contract %s allows", [claims.measurement, input.contract_id])
}

deny contains msg if {
	claims.debug
	msg := "the TEE runs in debug mode, so its memory is readable by the host"
}

deny contains msg if {
	input.policy_expires_ns != null
	input.now_ns >= input.policy_expires_ns
	msg := sprintf("the key's release policy expired at %s", [input.policy.expires])
}
