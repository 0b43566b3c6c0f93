"""Identities, signatures, HPKE key wrapping and sealed packages."""
