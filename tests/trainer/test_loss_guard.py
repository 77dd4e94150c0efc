"""The bad-batch guard: pure verdicts (tables), the skip-limit rule, markers, and the guard installed into the
real FunASR trainer module (its ``math.exp`` and a real forward pass of a torch module)."""

from __future__ import annotations

import math

import pytest

from senseops_trainer.loss_guard import (
    LossGuard,
    LossGuardConfig,
    judge_loss,
    limit_marker,
    parse_injections,
    parse_marker,
    saturating_exp,
    skip_limit_reason,
    skip_marker,
)
from senseops_trainer.progress import status_progress
from senseops_trainer.train import parse_log_line

CFG = LossGuardConfig(max_loss=1e4, spike_factor=10.0, warmup_batches=3, window=5, max_skipped_share=0.1,
                      min_batches_for_limit=10)
WARM = [40.0, 50.0, 60.0]  # median 50

VERDICT_CASES = [
    ("ordinary loss", 55.0, WARM, None),
    ("nan", math.nan, WARM, "non_finite"),
    ("+inf (impossible CTC alignment)", math.inf, WARM, "non_finite"),
    ("-inf", -math.inf, [], "non_finite"),
    ("above the absolute ceiling even in warm-up", 2e4, [], "above_max_loss"),
    ("issue 15's batch: ~1000 against a median of 50", 1000.0, WARM, "spike"),
    ("just under the spike factor", 499.0, WARM, None),
    ("a spike in warm-up is not judged relative yet", 1000.0, [40.0, 50.0], None),
    ("zero median never divides", 5.0, [0.0, 0.0, 0.0], None),
]


@pytest.mark.parametrize(("name", "loss", "recent", "reason"), VERDICT_CASES, ids=[c[0] for c in VERDICT_CASES])
def test_judge_loss(name, loss, recent, reason) -> None:
    verdict = judge_loss(loss, recent, CFG)
    assert verdict.reason == reason
    assert verdict.skip is (reason is not None)


UNIT_CASES = [
    ("a batch of long utterances is not a spike: 150-unit labels, 3.0 per unit", 450.0, 150.0, None),
    ("garbage per unit is: 40 per unit against a median of 2", 400.0, 10.0, "spike"),
]


@pytest.mark.parametrize(("name", "loss", "units", "reason"), UNIT_CASES, ids=[c[0] for c in UNIT_CASES])
def test_spike_rule_is_per_label_unit(name, loss, units, reason) -> None:
    recent_per_unit = [1.5, 2.0, 2.5]  # median 2 per label unit
    verdict = judge_loss(loss, recent_per_unit, CFG, label_units=units)
    assert verdict.reason == reason
    assert verdict.skip is (reason is not None)


def test_guard_does_not_learn_from_skipped_losses() -> None:
    guard = LossGuard(CFG)
    for loss in (40.0, 50.0, 60.0, math.inf, 1000.0, 45.0):
        guard.observe(loss)
    assert (guard.batches, guard.skipped) == (6, 2)
    assert list(guard.recent) == [40.0, 50.0, 60.0, 45.0]
    guard.observe(90.0, label_units=2.0)
    assert guard.recent[-1] == 45.0  # remembered per label unit


LIMIT_CASES = [
    ("nothing skipped", 100, 0, False, None),
    ("under the share", 100, 10, False, None),
    ("over the share", 100, 11, False, "11 of 100 training batches (11.0%)"),
    ("too few batches to judge mid-run", 5, 3, False, None),
    ("a short run is judged at its end", 5, 3, True, "3 of 5 training batches"),
    ("no batches", 0, 0, True, None),
]


@pytest.mark.parametrize(("name", "batches", "skipped", "final", "expected"), LIMIT_CASES,
                         ids=[c[0] for c in LIMIT_CASES])
def test_skip_limit_reason(name, batches, skipped, final, expected) -> None:
    reason = skip_limit_reason(batches, skipped, CFG, final)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason
        assert "train.max_skipped_batch_share" in reason and "filter/report.json" in reason


def test_markers_round_trip_through_the_log_parser() -> None:
    verdict = judge_loss(math.inf, WARM, CFG)
    line = "[2026-03-01 10:00:00][stdout] " + skip_marker(verdict, rank=0, total_step=7, batches=7, skipped=1)
    event = parse_log_line(line)
    assert event is not None
    assert (event["kind"], event["total_step"], event["reason"], event["loss"]) == ("skipped", 7, "non_finite", "inf")
    limit = parse_marker(limit_marker("too many"))
    assert limit == ("limit", {"reason": "too many"})
    assert parse_marker("SENSEOPS_SKIPPED_BATCH {not json") is None
    assert parse_marker("an ordinary line") is None


def test_config_travels_through_the_environment() -> None:
    assert LossGuardConfig.from_env(CFG.to_env()) == CFG
    assert LossGuardConfig.from_env(None) == LossGuardConfig()


@pytest.mark.parametrize(("spec", "expected"), [("", {}), ("1=800, 3=inf", {1: 800.0, 3: math.inf})])
def test_parse_injections(spec, expected) -> None:
    assert parse_injections(spec) == expected


def test_parse_injections_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="BATCH=LOSS"):
        parse_injections("3")


def test_saturating_exp() -> None:
    assert saturating_exp(1.0) == math.exp(1.0)
    assert saturating_exp(1000.0) == math.inf
    with pytest.raises(OverflowError):
        math.exp(1000.0)  # what FunASR's logger does with a loss average above ~709


def test_skipped_batches_reach_the_finetunejob_status() -> None:
    fields = {"epoch": 1, "step": 3, "total_step": 3, "loss": 1.5, "skipped_batches": 2}
    assert status_progress(fields, 0.0)["skippedBatches"] == 2


def test_guard_installed_into_the_real_funasr_trainer() -> None:
    """The real FunASR trainer module gets a saturating exp; a real torch forward pass with an absurd loss
    yields a zero loss without gradients, so the optimizer step leaves the weights alone."""
    torch = pytest.importorskip("torch")
    trainer_module = pytest.importorskip("funasr.train_utils.trainer")
    from senseops_trainer import funasr_guarded

    guard = funasr_guarded.install(CFG, {2: math.inf})
    assert trainer_module.math.exp(1000.0) == math.inf  # the log line can no longer overflow
    assert trainer_module.math.sqrt(4.0) == 2.0

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def forward(self, x, text_lengths):
            loss = (self.w * x).sum()
            return loss, {"loss": loss.detach()}, torch.tensor(1)

    model = Tiny()
    funasr_guarded._guard_forward(model, trainer=object(), guard=guard, injections={2: math.inf})
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        optim.zero_grad(set_to_none=True)
        loss, stats, _ = model(x=torch.ones(3), text_lengths=torch.tensor([3, 5]))
        loss.backward()
        before = model.w.detach().clone()
        optim.step()
    assert float(loss.detach()) == 0.0 and float(stats["loss"]) == 0.0
    assert model.w.grad is None and torch.equal(model.w.detach(), before)  # the skipped batch changed nothing
    assert (guard.batches, guard.skipped) == (2, 1)
