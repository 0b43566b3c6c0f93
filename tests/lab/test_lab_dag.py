"""The job graph: cycles found with their path, and the dependency rule."""

from __future__ import annotations

import itertools
from graphlib import CycleError, TopologicalSorter

from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.lab.dag import describe_cycle, find_cycle, settle


def test_an_acyclic_graph_has_no_cycle_and_unknown_names_are_leaves():
    assert find_cycle({}) is None
    assert find_cycle({"a": ["b", "c"], "b": ["c", "job-7"], "c": []}) is None


def test_a_cycle_is_returned_as_its_path():
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    cycle = find_cycle({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]})
    assert cycle == ["a", "b", "c", "a"]
    assert describe_cycle(["a", "b", "a"]) == "job a -> b -> a"


def test_a_long_chain_does_not_hit_the_recursion_limit():
    chain = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    assert find_cycle(chain) is None
    chain["n5000"] = ["n0"]
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 5002


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefgh"), max_size=3))
)
def test_find_cycle_agrees_with_a_topological_sort_and_returns_real_cycles(edges):
    try:
        tuple(TopologicalSorter(edges).static_order())
        acyclic = True
    except CycleError:
        acyclic = False
    cycle = find_cycle(edges)
    assert (cycle is None) == acyclic
    if cycle is not None:
        assert cycle[0] == cycle[-1] and len(set(cycle[:-1])) == len(cycle) - 1
        assert all(b in edges.get(a, []) for a, b in itertools.pairwise(cycle))


def test_the_dependency_rule():
    assert settle(False, {}).action == "ready"
    assert settle(False, {"job-1": "succeeded", "job-2": "running"}).action == "wait"
    assert settle(False, {"job-1": "succeeded", "job-2": "succeeded"}).action == "ready"
    verdict = settle(False, {"job-10": "cancelled", "job-2": "failed", "job-3": "queued"})
    assert (verdict.action, verdict.cause) == ("cancel", "dependency job-2 failed")
    assert settle(True, {"job-1": "failed", "job-2": "running"}).action == "wait"
    assert settle(True, {"job-1": "failed", "job-2": "cancelled"}).action == "ready"
