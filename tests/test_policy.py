"""Version policy and the availability-preserving switch (serving/policy.py), as pure logic."""
from graft.contract import ServableState as S
from graft.contract import VersionPolicy
from graft.serving import policy


def test_latest_takes_the_newest_n():
    assert policy.wanted_versions(VersionPolicy.LATEST, [3, 1, 2]) == {3}
    assert policy.wanted_versions(VersionPolicy.LATEST, [3, 1, 2], num_versions=2) == {2, 3}
    assert policy.wanted_versions(VersionPolicy.LATEST, [1], num_versions=5) == {1}
    assert policy.wanted_versions(VersionPolicy.LATEST, [4, 5], num_versions=0) == {5}
    assert policy.wanted_versions(VersionPolicy.LATEST, []) == set()


def test_all_and_specific():
    assert policy.wanted_versions(VersionPolicy.ALL, [1, 2, 3]) == {1, 2, 3}
    # A pinned version that is not on disk is simply not wanted (nothing to load).
    assert policy.wanted_versions(VersionPolicy.SPECIFIC, [1, 2, 3], specific=[2, 9]) == {2}


def test_new_version_loads_before_the_old_one_unloads():
    # v2 appeared: load it, keep v1 until v2 is AVAILABLE.
    assert policy.plan({2}, {1: S.AVAILABLE}, failed=set()) == ([2], [])
    assert policy.plan({2}, {1: S.AVAILABLE, 2: S.LOADING}, failed=set()) == ([2], [])
    # v2 ready: now v1 goes.
    assert policy.plan({2}, {1: S.AVAILABLE, 2: S.AVAILABLE}, failed=set()) == ([], [1])


def test_a_failed_version_never_takes_the_last_good_one_down():
    assert policy.plan({2}, {1: S.AVAILABLE, 2: S.END}, failed={2}) == ([], [])


def test_nothing_loaded_yet_loads_everything_wanted():
    assert policy.plan({1, 2}, {}, failed=set()) == ([1, 2], [])
    assert policy.plan({1, 2}, {}, failed={1}) == ([2], [])


def test_states_carry_tf_servings_numbers():
    # tensorflow_serving/apis/get_model_status.proto: ModelVersionStatus.State
    from tensorflow_serving.apis import get_model_status_pb2
    State = get_model_status_pb2.ModelVersionStatus.State
    for s in S:
        assert State.Value(s.name) == int(s)


def test_a_broken_newest_version_is_stood_in_for_by_the_newest_good_one():
    L = VersionPolicy.LATEST
    assert policy.with_fallback(L, [1, 2, 3], {3}, broken={3}) == {2, 3}
    assert policy.with_fallback(L, [1, 2, 3], {3}, broken={2, 3}) == {1, 3}
    assert policy.with_fallback(L, [1, 2, 3, 4], {3, 4}, broken={4}) == {2, 3, 4}
    assert policy.with_fallback(L, [1, 2, 3], {3}, broken=set()) == {3}
    # Nothing older to stand in: nothing added.
    assert policy.with_fallback(L, [3], {3}, broken={3}) == {3}
    # A specific policy names its versions; an old one never stands in for them.
    assert policy.with_fallback(VersionPolicy.SPECIFIC, [1, 2, 3], {3}, broken={3}) == {3}
    # Once the newest loads, the stand-in is unwanted and unloaded by plan().
    assert policy.plan({3}, {2: S.AVAILABLE, 3: S.AVAILABLE}, failed=set()) == ([], [2])
