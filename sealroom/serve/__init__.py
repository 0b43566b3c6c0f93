"""Confidential inference: a sealed model served from an attested room to clients who pin it.

Submodules: ``wire`` (HPKE-sealed requests and responses), ``attestation`` (what binds the
room's keys, model and contract to its evidence), ``merkle`` and ``receipts`` (signed,
batched inference receipts). Nothing is imported here: each caller picks what it needs.
"""
