"""The loop's first half end to end, the short variant of `make demo-loop` (the whole loop takes longer than
the suite's budget): the real operator verifies the base ASRModel, the real runtime serves it on the process
node behind the Gateway stand-in's HAProxy, four streamers (Mandarin and English, consented tokens) stream
espeak-ng speech at real time through the gateway with the project's client, the runtime records every
segment to MinIO, and the reviewed-transcripts step relabels them from the streamers' scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.loop import manifests as m
from scripts.loop.domain import held_out, streamers
from scripts.loop.review import HELD_OUT_KEY, LIVE_COPY_PREFIX
from scripts.loop.run import Loop, phase_base, phase_record, phase_stack, stop_operator
from senseops_common.layout import SegmentRecord, iter_segment_records
from tests.controlplane.fixtures import ClusterHandle
from tests.gateway.conftest import GatewayDataplane, gateway_crds, gateway_dataplane  # noqa: F401 - fixtures
from tests.procnode.launcher import ProcessNodeHandle
from tests.servers.minio import MinioServer

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.model]


def test_streamers_through_the_gateway_are_recorded_and_reviewed(
        local_cluster: ClusterHandle, process_node: ProcessNodeHandle, minio_server: MinioServer,
        gateway_dataplane: GatewayDataplane, tmp_path: Path) -> None:  # noqa: F811
    process_node.mirror(minio_server.port)  # pods reach MinIO at the address host processes use
    loop = Loop(local_cluster, {"minio": {"env": minio_server.store_env()}, "prometheus": {"url": ""}},
                state=tmp_path)
    try:
        phase_stack(loop)
        phase_base(loop)
        phase_record(loop)
    finally:
        stop_operator(tmp_path)
    team = streamers()
    reports = loop.facts["record_reports"]
    assert [r.errors for r in reports] == [[] for _ in team]
    assert all(r.partials > 0 and r.finals == len(s.lines) for r, s in zip(reports, team, strict=True)), reports
    store = loop.store()
    for streamer in team:
        records = list(iter_segment_records(store, streamer.anchor_id))
        # every line the streamer said is one recorded segment, labelled with that line, audio stored
        assert sorted(r.text for r in records) == sorted(streamer.lines), streamer.anchor_id
        assert all(r.confidence == 1.0 and r.lang == streamer.lang for r in records)
        assert all(store.stat(r.audio_key).size > 10_000 for r in records)
        assert all(r.model_version == m.BASE_MODEL for r in records)  # which live model heard it
    live = [SegmentRecord.from_json(line) for info in store.list(LIVE_COPY_PREFIX)
            for line in store.get_bytes(info.key).decode().splitlines()]
    assert len(live) == sum(len(s.lines) for s in team)
    # the premise of the review step: the base model gets the domain words wrong
    assert loop.facts["live_base_cer"] > 0.5, loop.facts
    golden = store.get_bytes(HELD_OUT_KEY).decode().splitlines()
    assert [SegmentRecord.from_json(line).text for line in golden] == [s for _, s in held_out()]
    # the quality gate's manifest lists the same clips, keys relative to the bucket
    gate = [json.loads(line) for line in store.get_bytes(m.GOLDEN_MANIFEST).decode().splitlines()]
    assert [(g["language"], g["text"]) for g in gate] == held_out()
    assert all(store.stat(g["key"]).size > 10_000 for g in gate)
    spoken = {line for s in team for line in s.lines}
    assert not spoken & {s for _, s in held_out()}
