"""Recordings against a real server and MinIO: two sessions of one anchor in the same second keep both,
and a client that reconnects and replays audio the server already recorded does not record it twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from senseops_common.layout import SegmentRecord, iter_segment_records
from senseops_common.storage import Store, open_store
from senseops_common.storage.config import StoreConfig
from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, MANDARIN, stream, utterance_pcm
from tests.runtime.server import RuntimeServer, wait_until
from tests.servers.minio import MinioServer


def _store(minio_server: MinioServer, bucket: str) -> Store:
    return open_store(f"s3://{bucket}/", StoreConfig.from_env(minio_server.store_env()))


def _landed(store: Store, anchor: str, records: int) -> list[SegmentRecord]:
    """Wait until ``records`` records and as many WAVs are in the store; return the records."""

    def count() -> bool:
        wavs = [o for o in store.list(f"raw/{anchor}/") if o.key.endswith(".wav")]
        return len(wavs) >= records and len(list(iter_segment_records(store, anchor))) >= records

    assert wait_until(count, 30), f"expected {records} recordings of {anchor} in MinIO"
    time.sleep(1.0)  # anything extra (a duplicate) would have landed by now too
    return list(iter_segment_records(store, anchor))


def test_two_sessions_of_one_anchor_in_the_same_second_both_keep_their_recordings(
    runtime_server: RuntimeServer, minio_server: MinioServer, runtime_bucket: str
) -> None:
    anchor = "anchor-twin-" + str(int(time.time() * 1000))
    tokens = [make_token(sub=f"{anchor}-{n}", anchor=anchor, consent=True) for n in range(2)]
    pcm = utterance_pcm(ENGLISH)
    time.sleep(1.05 - time.time() % 1)  # start both just after a second boundary: same {ts}
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda token: stream(runtime_server.ws, pcm, token, realtime=False), tokens))
    assert [o.close_code for o in outcomes] == [1000, 1000], [o.close_reason for o in outcomes]
    assert outcomes[0].stream_id and outcomes[1].stream_id and outcomes[0].stream_id != outcomes[1].stream_id
    records = _landed(_store(minio_server, runtime_bucket), anchor, 2)
    assert len({r.session_ts for r in records}) == 1, "the two sessions should share their start second"
    assert sorted(r.segment_id for r in records) == sorted(o.finals[0][1]["segment_id"] for o in outcomes)


def test_resumed_stream_replaying_recorded_audio_records_it_once(
    runtime_server: RuntimeServer, minio_server: MinioServer, runtime_bucket: str
) -> None:
    anchor = "anchor-resume-" + str(int(time.time() * 1000))
    token = make_token(anchor=anchor, consent=True)
    english = utterance_pcm(ENGLISH)
    first = stream(runtime_server.ws, english, token, realtime=False, options={"itn": False})
    assert first.close_code == 1000 and first.stream_id, first.close_reason
    ((_, final),) = first.finals
    # The connection dropped before the client saw that final: it reconnects and replays from the start,
    # then goes on with new speech.
    second = stream(
        runtime_server.ws,
        english + utterance_pcm(MANDARIN),
        token,
        realtime=False,
        options={"resume": first.stream_id, "start_offset_ms": 0, "itn": False},
    )
    assert second.close_code == 1000, second.close_reason
    assert second.stream_id == first.stream_id
    texts = [m["final"] for _, m in second.finals]
    assert texts[0] == ENGLISH.text and texts[-1] == MANDARIN.text  # the client gets the replayed final again
    replayed = second.finals[0][1]
    assert abs(replayed["start_ms"] - final["start_ms"]) <= 100 and abs(replayed["end_ms"] - final["end_ms"]) <= 100
    records = _landed(_store(minio_server, runtime_bucket), anchor, 2)
    assert [r.text for r in records if r.text == ENGLISH.text] == [ENGLISH.text], f"recorded: {records}"
    assert [r.text for r in records if r.text == MANDARIN.text] == [MANDARIN.text]
    assert len(records) == 2 and {r.session_ts for r in records} == {first.stream_id.split("-")[0]}
