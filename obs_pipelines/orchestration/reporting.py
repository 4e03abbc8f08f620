"""Per-partition reporting: after a run over a range of partitions, each partition's latest
materialization carries that partition's own figures and preview, and a partition the run refused is
reported as failed with its reasons, while the other partitions of the range still count as done.

Dagster gives a range run's outputs one materialization per partition; metadata added with
``add_asset_metadata(partition_key=...)`` lands on that partition's event only. When some partitions are
refused, the outputs cannot be yielded (they would mark every partition of the range materialized), so the
good partitions get one ``AssetMaterialization`` each and the step then fails, naming the refused ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from obs_pipelines.orchestration.metadata import readable

MAX_LISTED = 50  # refused partitions listed in the failure's description


@dataclass
class PartitionReport:
    """What one step did to each partition of its window."""

    # asset key -> metadata shared by all its partitions (e.g. the price table version)
    common: dict[str, dict[str, Any]] = field(default_factory=dict)
    # asset key -> partition key -> that partition's own metadata
    by_partition: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # partition key -> why the step refused it
    refused: dict[str, list[str]] = field(default_factory=dict)

    def add(self, asset: str, partition: str, metadata: Mapping[str, Any]) -> None:
        self.by_partition.setdefault(asset, {})[partition] = dict(metadata)

    def refuse(self, partition: str, reasons: list[str]) -> None:
        self.refused[partition] = reasons


def _merged(own: Mapping[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
    """The partition's own figures first (they win), then the shared ones."""
    return {**own, **{k: v for k, v in common.items() if k not in own}}


def emit(context: dg.AssetExecutionContext, report: PartitionReport, assets: list[str]) -> Iterator[Any]:
    """Yield the step's results for ``assets``; raises ``dg.Failure`` after the good partitions' events when
    some partitions were refused."""
    if not report.refused:
        run_keys = set(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else set()
        for asset in assets:
            own = report.by_partition.get(asset, {})
            common = report.common.get(asset, {})
            # the shared figures go into each partition's own metadata, after its figures (readable), unless
            # some partition of the run has none of its own (then they are the run's output metadata)
            inline = bool(common) and bool(run_keys) and run_keys <= set(own)
            for key, metadata in own.items():
                context.add_asset_metadata(readable(_merged(metadata, common if inline else {})),
                                           asset_key=asset, partition_key=key)
            yield dg.MaterializeResult(asset_key=asset, metadata={} if inline else common)
        return
    for asset in assets:
        for key, metadata in report.by_partition.get(asset, {}).items():
            yield dg.AssetMaterialization(asset_key=asset, partition=key,
                                          metadata=readable(_merged(metadata, report.common.get(asset, {}))))
    refused = sorted(report.refused)
    listed = "\n".join(f"- {key}: {'; '.join(report.refused[key])}" for key in refused[:MAX_LISTED])
    more = f"\n(and {len(refused) - MAX_LISTED} more)" if len(refused) > MAX_LISTED else ""
    done = len({key for parts in report.by_partition.values() for key in parts})
    raise dg.Failure(
        description=f"{len(refused)} partition(s) refused, {done} done:\n{listed}{more}",
        metadata={
            "refused_partitions": dg.MetadataValue.json(refused),
            "reasons": dg.MetadataValue.json(json.loads(json.dumps(report.refused, default=str))),
            "done_partitions": done,
        },
        allow_retries=False,  # the data is wrong, not the run: retrying gives the same answer
    )


def check_evaluation(asset: dg.AssetKey, check_name: str, partition: str, passed: bool,
                     severity: dg.AssetCheckSeverity, metadata: Mapping[str, Any]) -> dg.AssetCheckEvaluation:
    """One partition's result of a check, so the UI shows which hours broke which check even when one run
    covered many hours."""
    return dg.AssetCheckEvaluation(asset_key=asset, check_name=check_name, passed=passed, severity=severity,
                                   metadata=dict(metadata), partition=partition)
