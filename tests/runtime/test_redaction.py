"""Personal data in stored transcripts: each rule on Chinese and international formats, validators that
keep ordinary numbers, rule selection, and the recorder masking before the spool with counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from senseops_common.storage import StoreConfig, open_store
from senseops_common.storage.spool import SpoolWriter
from senseops_runtime.recording import SegmentResult, SpoolRecorder
from senseops_runtime.redaction import id_card_valid, luhn_valid, redact, select_rules


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        ("请拨打13912345678找我", "请拨打[PHONE]找我", {"phone": 1}),
        ("call +86 138-1234-5678 now", "call [PHONE] now", {"phone": 1}),
        ("座机 010-12345678", "座机 [PHONE]", {"phone": 1}),
        ("London +44 20 7946 0958.", "London [PHONE].", {"phone": 1}),
        ("US +1 (415) 555-2671", "US [PHONE]", {"phone": 1}),
        ("身份证号11010519491231002X", "身份证号[ID]", {"id_card": 1}),
        ("mail li.lei+asr@example.com.cn ok", "mail [EMAIL] ok", {"email": 1}),
        ("卡号6222020200112233446", "卡号[CARD]", {"bank_card": 1}),
        ("card 4111 1111 1111 1111 thanks", "card [CARD] thanks", {"bank_card": 1}),
        ("two: a@b.io and 13800138000", "two: [EMAIL] and [PHONE]", {"email": 1, "phone": 1}),
        # Ordinary numbers stay: years, amounts, an ID-shaped number with a wrong check digit, a non-Luhn card.
        ("2024年卖了12345件", "2024年卖了12345件", {}),
        ("11010519491231002Y", "11010519491231002Y", {}),
        ("6222020200112233445", "6222020200112233445", {}),
        ("+1 2", "+1 2", {}),
    ],
)
def test_redact(text: str, expected: str, counts: dict[str, int]) -> None:
    assert redact(text) == (expected, counts)


def test_validators() -> None:
    assert id_card_valid("11010519491231002X") and not id_card_valid("110105194912310021")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_rule_selection() -> None:
    assert [r.name for r in select_rules(["phone", "email"])] == ["email", "phone"]
    assert select_rules(["none"]) == ()
    assert redact("13912345678", select_rules(["email"])) == ("13912345678", {})
    with pytest.raises(ValueError, match=r"unknown redaction rule.*phon"):
        select_rules(["phon"])


def test_recorder_masks_the_stored_text_and_reports_counts(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/store", StoreConfig())
    seen: list[dict[str, int]] = []
    recorder = SpoolRecorder(SpoolWriter(store, tmp_path / "spool", name="redact-test"), on_redact=seen.append)
    recording = recorder.open_session("a1", "20260301T100000Z", "conn1", "m", "v1")
    record = recording.record(
        SegmentResult("0123456789ab-00000000000-00000016000", 0, 1000, "我的电话13912345678", "zh", "NEUTRAL",
                      "Speech", 0.9),
        b"RIFF",
    )
    assert record.text == "我的电话[PHONE]" and seen == [{"phone": 1}]
    recorder.spool.start()
    assert recorder.spool.drain(10)
    recorder.spool.close()
    (part,) = [i.key for i in store.list("asr/a1/")]
    assert json.loads(store.get_bytes(part))["text"] == "我的电话[PHONE]"
