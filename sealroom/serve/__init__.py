"""Confidential inference: a sealed model served from an attested room."""
