"""The data stages: collect → filter → normalize → split. I/O around the pure rules in filters/split."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import soundfile

from senseops_common.progress import Progress
from senseops_common.text import normalize_text, scoring_units
from senseops_trainer.audio_checks import audio_stats, frame_levels_db
from senseops_trainer.context import RunContext, StageFailed, StageOutcome, read_segments, write_segments
from senseops_trainer.dedup import DUPLICATE_RULES, AudioItem, envelope, find_duplicates, pcm_sha256
from senseops_trainer.filters import AUDIO_STATS_KEY, apply_filters
from senseops_trainer.recordings import parse_time, read_golden, read_selection
from senseops_trainer.segments import Segment
from senseops_trainer.split import split_segments

SEGMENTS = "collect/segments.jsonl"
DUPLICATES = "collect/duplicates.json"
GOLDEN = "collect/golden.jsonl"
AUDIO_DIR = "audio"
KEPT = "filter/kept.jsonl"
FILTER_REPORT = "filter/report.json"
NORMALIZED = "normalize/segments.jsonl"
NORMALIZED_GOLDEN = "normalize/golden.jsonl"
TRAIN_LIST = "split/train.jsonl"
VAL_LIST = "split/val.jsonl"
GOLDEN_LIST = "split/golden.jsonl"
SPLIT_SUMMARY = "split/summary.json"
FRAMES_PER_SECOND = 100  # FunASR's source_len unit: 10 ms fbank frames
_LANG_TAGS = {"zh", "en", "yue", "ja", "ko"}
_EMOTIONS = {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED"}


def local_audio(ctx: RunContext, seg: Segment) -> Path:
    """Where a segment's audio is kept in the work directory (mirrors its key below raw/)."""
    return ctx.workdir / AUDIO_DIR / seg.audio_key.removeprefix("raw/")


def _listing_fingerprint(ctx: RunContext) -> list[tuple[str, str | None]]:
    # New or changed transcript files must re-run collect; unchanged ones must not.
    out: list[tuple[str, str | None]] = []
    for anchor in ctx.cfg.dataset.anchor_ids:
        out += [(i.key, i.sha256) for i in ctx.store().list(f"asr/{anchor}/")]
    if ctx.cfg.dataset.golden_key:
        info = ctx.store().stat(ctx.cfg.dataset.golden_key)
        out.append((info.key, info.sha256))
    return out


def collect(ctx: RunContext) -> dict[str, Any]:
    """Select the anchors' segments in the time window, download their audio, count hours."""
    sel = ctx.cfg.dataset
    if not sel.anchor_ids:
        raise StageFailed("collect", "dataset.anchor_ids is empty; name at least one anchor to train on")
    inputs = {"store": ctx.cfg.store_uri, "selection": asdict(sel), "listing": _listing_fingerprint(ctx)}

    def body() -> StageOutcome:
        since = parse_time(sel.since) if sel.since else None
        until = parse_time(sel.until) if sel.until else None
        try:
            segments = read_selection(ctx.store(), sel.anchor_ids, since, until)
            golden = read_golden(ctx.store(), sel.golden_key) if sel.golden_key else []
        except (ValueError, TypeError, KeyError) as exc:  # a malformed line in asr/ or the golden list
            raise StageFailed("collect", f"a transcript record in the store cannot be read: {exc}") from exc
        if not segments:
            raise StageFailed(
                "collect", f"no recorded segments for anchors {list(sel.anchor_ids)} between "
                f"{sel.since or 'the beginning'} and {sel.until or 'now'}; widen the window or check the store",
            )
        wanted = [*segments, *golden]
        with Progress("collect: audio", total=len(wanted), unit="files") as progress:
            for seg in wanted:
                target = local_audio(ctx, seg)
                if not target.exists():  # a rerun after a crash keeps what was already downloaded
                    ctx.store().download(seg.audio_key, target)  # sha256-checked, temp file + rename
                progress.update(1)
        segments, duplicates = examine_audio(ctx, segments)
        write_segments(ctx.path(SEGMENTS), segments)
        write_segments(ctx.path(GOLDEN), golden)
        by_rule = {rule: sum(1 for d in duplicates if d["rule"] == rule) for rule in DUPLICATE_RULES}
        ctx.path(DUPLICATES).write_text(json.dumps({"dropped": len(duplicates), "by_rule": by_rule,
                                                    "duplicates": duplicates}, indent=2), encoding="utf-8")
        hours = sum(s.duration_s for s in segments) / 3600.0
        return StageOutcome(
            [SEGMENTS, GOLDEN, AUDIO_DIR, DUPLICATES],
            {"segments": len(segments), "golden": len(golden), "hours": round(hours, 4),
             "duplicates_dropped": len(duplicates), "duplicates_by_rule": by_rule},
        )

    return ctx.run_stage("collect", inputs, body)


def examine_audio(ctx: RunContext, segments: list[Segment]) -> tuple[list[Segment], list[dict[str, str]]]:
    """Read each segment's audio once: store its statistics on the segment (for the audio filter rule)
    and drop recordings of the same speech (exact, overlapping or fingerprint duplicates)."""
    items: list[AudioItem] = []
    examined: list[Segment] = []
    for seg in segments:
        samples, rate = soundfile.read(local_audio(ctx, seg), dtype="float32", always_2d=False)
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        stats = audio_stats(samples, rate)
        examined.append(replace(seg, extra={**seg.extra, AUDIO_STATS_KEY: stats.to_json()}))
        items.append(AudioItem(seg.segment_id, seg.anchor_id, seg.session_ts, seg.start_ms, seg.end_ms,
                               pcm_sha256(samples), envelope(frame_levels_db(samples, rate))))
    duplicates = find_duplicates(items)
    dropped = {d.segment_id for d in duplicates}
    kept = [s for s in examined if s.segment_id not in dropped]
    return kept, [{"segment_id": d.segment_id, "kept_id": d.kept_id, "rule": d.rule} for d in duplicates]


def filter_stage(ctx: RunContext, redecode: Any = None) -> dict[str, Any]:
    """Apply the quality rules; report per-rule removal counts. ``redecode(path) -> text`` feeds the
    optional stability rule (the base model decoding every segment again)."""
    inputs = {"collect": ctx.manifest.outputs_digest("collect"), "filters": asdict(ctx.cfg.filters),
              "min_hours": ctx.cfg.dataset.min_hours}

    def body() -> StageOutcome:
        segments = read_segments(ctx.workdir / SEGMENTS)
        if ctx.cfg.filters.stability_check:
            if redecode is None:
                raise StageFailed("filter", "filters.stability_check needs a base model to decode with")
            segments = [
                Segment.from_json({**s.to_json(), "redecoded_text": redecode(local_audio(ctx, s))})
                for s in segments
            ]
        result = apply_filters(segments, ctx.cfg.filters)
        write_segments(ctx.path(KEPT), result.kept)
        report = {
            "input": len(segments),
            "kept": len(result.kept),
            "removed": sum(result.counts.values()),
            "removed_by_rule": result.counts,
            "removed_ids": result.removed,
            "kept_hours": round(result.kept_hours, 4),
        }
        ctx.path(FILTER_REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        if result.kept_hours < ctx.cfg.dataset.min_hours:
            raise StageFailed(
                "filter", f"only {result.kept_hours:.3f} h of audio passed the filters; dataset.min_hours is "
                f"{ctx.cfg.dataset.min_hours} — wait for more recordings or relax the filters",
            )
        return StageOutcome([KEPT, FILTER_REPORT], {k: v for k, v in report.items() if k != "removed_ids"})

    return ctx.run_stage("filter", inputs, body)


def normalize(ctx: RunContext) -> dict[str, Any]:
    """Normalise every kept (and golden) transcript with the shared normaliser."""
    inputs = {"filter": ctx.manifest.outputs_digest("filter"), "collect": ctx.manifest.outputs_digest("collect")}

    def body() -> StageOutcome:
        kept = [s.with_text(normalize_text(s.text)) for s in read_segments(ctx.workdir / KEPT)]
        golden = [s.with_text(normalize_text(s.text)) for s in read_segments(ctx.workdir / GOLDEN)]
        empty = [s.segment_id for s in kept if not scoring_units(s.text)]
        kept = [s for s in kept if scoring_units(s.text)]
        write_segments(ctx.path(NORMALIZED), kept)
        write_segments(ctx.path(NORMALIZED_GOLDEN), golden)
        return StageOutcome([NORMALIZED, NORMALIZED_GOLDEN], {"segments": len(kept), "dropped_empty": len(empty)})

    return ctx.run_stage("normalize", inputs, body)


def funasr_row(ctx: RunContext, seg: Segment) -> dict[str, Any]:
    """One line of FunASR's SenseVoice training list for a segment."""
    lang = seg.lang.strip("<|>")
    emotion = seg.emotion.strip("<|>").upper()
    return {
        "key": seg.segment_id,
        "source": str(local_audio(ctx, seg).resolve()),
        "source_len": max(1, round(seg.duration_s * FRAMES_PER_SECOND)),
        "target": seg.text,
        "target_len": len(scoring_units(seg.text)),
        "text_language": f"<|{lang if lang in _LANG_TAGS else 'zh'}|>",
        "emo_target": f"<|{emotion if emotion in _EMOTIONS else 'NEUTRAL'}|>",
        "event_target": "<|Speech|>",
        "with_or_wo_itn": "<|woitn|>",  # targets are normalised: no punctuation, no ITN
    }


def _write_list(ctx: RunContext, relative: str, segments: list[Segment]) -> None:
    with open(ctx.path(relative), "w", encoding="utf-8") as handle:
        for seg in segments:
            handle.write(json.dumps(funasr_row(ctx, seg), ensure_ascii=False) + "\n")


def split(ctx: RunContext) -> dict[str, Any]:
    """Train/validation lists in FunASR's format; the golden set stays out of both."""
    inputs = {"normalize": ctx.manifest.outputs_digest("normalize"), "val_fraction": ctx.cfg.dataset.val_fraction}

    def body() -> StageOutcome:
        result = split_segments(
            read_segments(ctx.workdir / NORMALIZED), ctx.cfg.dataset.val_fraction,
            read_segments(ctx.workdir / NORMALIZED_GOLDEN),
        )
        if not result.train:
            raise StageFailed("split", "no training segments are left after filtering and the golden hold-out")
        _write_list(ctx, TRAIN_LIST, result.train)
        _write_list(ctx, VAL_LIST, result.val or result.train[:1])
        _write_list(ctx, GOLDEN_LIST, result.golden)
        summary = {
            "train": len(result.train),
            "val": len(result.val),
            "golden": len(result.golden),
            "dropped_golden_text_leaks": len(result.leaked_golden_text),
            "train_hours": round(sum(s.duration_s for s in result.train) / 3600.0, 4),
            # Validation holds whole sentence groups: no normalised sentence is on both sides.
            "split_by": "normalised sentence group",
            "sentence_groups": result.sentence_groups,
            "val_sentence_groups": result.val_groups,
            "distinct_sentences": result.distinct_sentences,
            "near_duplicate_sentences_grouped": result.near_duplicate_sentences,
            "segments_with_repeated_sentence": result.repeated_segments,
            "largest_sentence_group_segments": result.largest_group_segments,
            "train_val_shared_sentences": len({normalize_text(s.text) for s in result.train}
                                              & {normalize_text(s.text) for s in result.val}),
        }
        ctx.path(SPLIT_SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return StageOutcome([TRAIN_LIST, VAL_LIST, GOLDEN_LIST, SPLIT_SUMMARY], summary)

    return ctx.run_stage("split", inputs, body)
