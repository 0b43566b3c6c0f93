"""RFC 6962 Merkle trees (SHA-256; leaf prefix 0x00, node prefix 0x01) for receipt batches.

One signature covers a batch of receipts: the room signs the tree's root, and each response
carries its leaf's audit path (RFC 6962 section 2.1.1), checked as in RFC 9162 section
2.1.3.2. The prefixes keep a leaf from passing for an inner node (second-preimage attacks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleTree:
    """A tree over leaf hashes, built once; every audit path then costs O(log n).

    Built bottom-up, a level's odd last node moves up unpaired: the same tree as RFC 6962's
    split at the largest power of two below n.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        if not leaf_hashes:
            raise ValueError("a Merkle tree needs at least one leaf")
        levels = [list(leaf_hashes)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            levels.append(above)
        self._levels = levels

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index``, leaf level first."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} is not in a tree of {self.size}")
        path = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf *data* (each hashed with the leaf prefix); SHA-256("") when empty."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return MerkleTree([leaf_hash(leaf) for leaf in leaves]).root


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, leaves) of RFC 6962 section 2.1.1, over the leaf data."""
    return MerkleTree([leaf_hash(leaf) for leaf in leaves]).proof(index)


def root_from_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root an audit path leads to (RFC 9162 section 2.1.3.2); None if it cannot fit."""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``leaf_hash`` sits at ``index`` of the size-``size`` tree with this root."""
    computed = root_from_proof(leaf_hash, index, size, proof)
    return computed is not None and computed == root
