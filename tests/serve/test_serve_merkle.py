"""RFC 6962 Merkle trees: the CT reference vectors, the recursive definition, and forgeries."""

from __future__ import annotations

import hashlib

import pytest

from sealroom.serve.merkle import (
    MerkleTree,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_inclusion,
)

H = bytes.fromhex
# certificate-transparency's reference test data (leaves and MTH of the first n leaves).
CT_LEAVES = [
    b"",
    H("00"),
    H("10"),
    H("2021"),
    H("3031"),
    H("40414243"),
    H("5051525354555657"),
    H("606162636465666768696a6b6c6d6e6f"),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PROOFS = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def _mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 verbatim: split at the largest power of two below n."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(_mth(hashes[:k]), _mth(hashes[k:]))


def _path(m: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n]) verbatim."""
    if len(hashes) == 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, hashes[:k]), _mth(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _mth(hashes[:k])]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_ct_reference_vectors(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(CT_PROOFS))
def test_proofs_match_the_ct_reference_vectors(index: int, size: int) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == CT_PROOFS[(index, size)]
    root = H(CT_ROOTS[size])
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, proof, root)


def test_tree_matches_the_recursive_definition_for_every_size_and_index() -> None:
    for size in range(1, 41):
        hashes = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(size)]
        tree = MerkleTree(hashes)
        assert tree.root == _mth(hashes), size
        for index in range(size):
            proof = tree.proof(index)
            assert proof == _path(index, hashes), (size, index)
            assert verify_inclusion(hashes[index], index, size, proof, tree.root)


def _tree32() -> tuple[list[bytes], MerkleTree]:
    hashes = [leaf_hash(b"receipt %d" % i) for i in range(32)]
    return hashes, MerkleTree(hashes)


@pytest.mark.parametrize("sibling", range(5))
def test_flipped_sibling_is_refused(sibling: int) -> None:
    hashes, tree = _tree32()
    proof = tree.proof(13)
    proof[sibling] = bytes([proof[sibling][0] ^ 1]) + proof[sibling][1:]
    assert not verify_inclusion(hashes[13], 13, 32, proof, tree.root)


def test_wrong_index_is_refused() -> None:
    hashes, tree = _tree32()
    proof = tree.proof(13)
    assert verify_inclusion(hashes[13], 13, 32, proof, tree.root)
    for index in (12, 14, 29, 45, -1):
        assert not verify_inclusion(hashes[13], index, 32, proof, tree.root)


def test_wrong_size_is_refused() -> None:
    hashes = [leaf_hash(b"r %d" % i) for i in range(7)]
    tree = MerkleTree(hashes)
    proof = tree.proof(6)  # the last leaf's path is short: a bigger size must not fit it
    assert verify_inclusion(hashes[6], 6, 7, proof, tree.root)
    for size in (6, 8, 9, 16):
        assert not verify_inclusion(hashes[6], 6, size, proof, tree.root)


def test_truncated_extended_or_malformed_proofs_are_refused() -> None:
    hashes, tree = _tree32()
    proof = tree.proof(7)
    assert not verify_inclusion(hashes[7], 7, 32, proof[:-1], tree.root)
    assert not verify_inclusion(hashes[7], 7, 32, [*proof, proof[0]], tree.root)
    assert not verify_inclusion(hashes[7], 7, 32, [*proof[:-1], proof[-1][:31]], tree.root)


def test_inner_node_data_does_not_pass_for_a_leaf() -> None:
    """Second preimage: the two children of an inner node, offered as one leaf's data."""
    hashes, tree = _tree32()
    proof = tree.proof(0)[1:]
    # an inner node's hash fits a smaller tree (why a verifier hashes the leaf data itself
    # and the signed batch pins the size)...
    assert verify_inclusion(node_hash(hashes[0], hashes[1]), 0, 16, proof, tree.root)
    # ...but its children, hashed as leaf data, get the leaf prefix and miss the root.
    assert not verify_inclusion(leaf_hash(hashes[0] + hashes[1]), 0, 16, proof, tree.root)


def test_other_leaf_or_other_root_is_refused() -> None:
    hashes, tree = _tree32()
    proof = tree.proof(3)
    assert not verify_inclusion(hashes[4], 3, 32, proof, tree.root)
    assert not verify_inclusion(hashes[3], 3, 32, proof, bytes(32))


def test_empty_tree_and_bad_index() -> None:
    with pytest.raises(ValueError, match="at least one leaf"):
        MerkleTree([])
    with pytest.raises(IndexError):
        MerkleTree([leaf_hash(b"x")]).proof(1)
    assert verify_inclusion(leaf_hash(b"x"), 0, 1, [], leaf_hash(b"x"))
