"""Version policy and the availability-preserving switch, as pure functions.

``wanted_versions`` applies the model's version policy to what is on disk;
``plan`` decides what to load and unload from a snapshot of states. No I/O,
no locks: the manager calls these and does the work.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Set, Tuple

from graft.contract import ServableState, VersionPolicy


def wanted_versions(policy: VersionPolicy, on_disk: Iterable[int], num_versions: int = 1,
                    specific: Iterable[int] = ()) -> Set[int]:
    disk = sorted(set(on_disk))
    if policy == VersionPolicy.ALL:
        return set(disk)
    if policy == VersionPolicy.SPECIFIC:
        return set(specific) & set(disk)
    return set(disk[-max(1, num_versions):]) if disk else set()


def with_fallback(policy: VersionPolicy, on_disk: Iterable[int], wanted: Set[int],
                  broken: Set[int]) -> Set[int]:
    """Under the latest-N policy, each wanted version that is broken (failed to load as
    it is on disk) is stood in for by the newest older version that is not, so a
    corrupt newest version on a cold start still leaves a model to serve. A specific
    policy names its versions: nothing stands in for them."""
    if policy != VersionPolicy.LATEST:
        return set(wanted)
    need = len(wanted & broken)
    out = set(wanted)
    for v in sorted(set(on_disk), reverse=True):
        if need == 0:
            break
        if v not in out and v not in broken and v < max(wanted, default=0):
            out.add(v)
            need -= 1
    return out


def plan(wanted: Set[int], states: Dict[int, ServableState], failed: Set[int]
         ) -> Tuple[List[int], List[int]]:
    """(to_load, to_unload), loads first.

    - load every wanted version that is not loaded and has not failed as it is;
    - unload loaded versions that are no longer wanted, but never the last
      AVAILABLE one unless a wanted version is AVAILABLE (or is about to be
      loaded, in which case the unload waits for the next round)."""
    loaded = {v for v, s in states.items() if s == ServableState.AVAILABLE}
    to_load = sorted(v for v in wanted if v not in loaded and v not in failed)
    unwanted = sorted(v for v in loaded if v not in wanted)
    if not unwanted:
        return to_load, []
    wanted_ready = loaded & wanted
    if wanted_ready:
        return to_load, unwanted
    # Nothing wanted is ready yet: keep serving what we have until it is.
    return to_load, []
