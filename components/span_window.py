"""The window of spans a run trains on, resolved by TFX from ML Metadata.

TFX's SpanRangeStrategy with a rolling range picks every Examples artifact whose
span is among the latest N span numbers. A span ingested twice (its files changed,
so ExampleGen ran again) has two artifacts; only the newest may train, or its
images would count twice. This strategy is SpanRangeStrategy plus that rule.
"""
from __future__ import annotations

from typing import Dict, List

from tfx import types
from tfx.dsl.input_resolution.strategies.span_range_strategy import (
    SpanRangeStrategy, _get_span_custom_property)
from tfx.proto import range_config_pb2

ALL_SPANS = 2 ** 31 - 1


def rolling(num_spans: int) -> range_config_pb2.RangeConfig:
    """The latest ``num_spans`` span numbers; 0 = all of them."""
    return range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(
        num_spans=num_spans if num_spans > 0 else ALL_SPANS))


class LatestPerSpanWindow(SpanRangeStrategy):

    def _resolve(self, input_dict: Dict[str, List[types.Artifact]]):
        result = super()._resolve(input_dict)
        out = {}
        for key, artifacts in result.items():
            newest: Dict[int, types.Artifact] = {}
            for a in artifacts:
                span = _get_span_custom_property(a)
                if span not in newest or a.id > newest[span].id:
                    newest[span] = a
            out[key] = [newest[s] for s in sorted(newest, reverse=True)]
        return out
