"""`senseops rollout` pure parts: the tree (a snapshot and a table of states), the CI outcome and exit codes,
which verbs are refused in which state, the status patches (never spec), durations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from senseops_cli import SUBCOMMANDS
from senseops_cli import rollout as cli

ROLLOUT: dict[str, Any] = {
    "metadata": {"name": "asr-v2", "namespace": "live", "generation": 3},
    "spec": {"target": {"deployment": "asr", "service": "asr"}, "stableModel": {"name": "v1"},
             "candidateModel": {"name": "v2"},
             "steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 50}, {"analysis": {"metrics": ["errors"]}},
                       {"pause": {"durationSeconds": 30}}, {"setWeight": 100}]},
    "status": {
        "observedGeneration": 3, "phase": "Paused", "currentStepIndex": 1, "desiredWeight": 5, "actualWeight": 5,
        "stableModel": "v1", "candidateModel": "v2",
        "pauseConditions": [{"reason": "PausedByStep", "message": "step 2/6 pause until promoted; promote to continue",
                             "startTime": "2026-11-29T07:00:03Z"}],
        "measurements": [
            {"metric": "errors", "phase": "Successful", "value": 0.02, "threshold": "<= 0.05",
             "resolvedQuery": "sum(rate(a[1m]))", "message": "0.02 meets <= 0.05", "at": "2026-11-29T07:00:01Z"},
            {"metric": "errors", "phase": "Successful", "value": 0.01, "threshold": "<= 0.05",
             "resolvedQuery": 'sum(rate(a{v="v2"}[1m]))', "message": "0.01 meets <= 0.05",
             "at": "2026-11-29T07:00:11Z"},
        ],
        "message": "paused at step 2/6 pause until promoted: PausedByStep: promote to continue",
    },
}
STABLE, CANDIDATE = cli.Pods("asr", 4, 4), cli.Pods("asr-v2-canary", 1, 1)

SNAPSHOT = """\
Rollout live/asr-v2  phase Paused  generation 3 (observed 3)
  weight     desired 5%  actual 5% (actual = what the traffic router confirms)
  stable     v1  asr 4/4 pods ready
  candidate  v2  asr-v2-canary 1/1 pods ready
  steps
    [x] 1. setWeight 5%
    [>] 2. pause until promoted   <- current
    [ ] 3. setWeight 50%
    [ ] 4. analysis (errors)
    [ ] 5. pause 30s
    [ ] 6. setWeight 100%
    [ ] promotion
  paused     PausedByStep: step 2/6 pause until promoted; promote to continue (since 2026-11-29T07:00:03Z)
  measurements (latest per metric)
    errors: Successful  value 0.01  threshold <= 0.05  at 2026-11-29T07:00:11Z
      0.01 meets <= 0.05
      query: sum(rate(a{v="v2"}[1m]))
  message    paused at step 2/6 pause until promoted: PausedByStep: promote to continue
"""


def test_tree_snapshot() -> None:
    assert cli.render(ROLLOUT, STABLE, CANDIDATE) == SNAPSHOT


def _with(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    obj = copy.deepcopy(ROLLOUT)
    obj["status"] = {**obj["status"], **status}
    obj["metadata"].update(meta)
    return obj


ABORTED = {"phase": "Aborted", "abort": True, "desiredWeight": 0, "actualWeight": 0, "pauseConditions": [],
           "abortReason": "QualityGateFailed: candidate CER 0.6200 vs stable CER 0.0400: worse than the margin 0.02",
           "measurements": [{"metric": "quality-gate", "phase": "Failed", "value": 0.62,
                             "threshold": "<= 0.0400 + 0.02 (stable CER + maxDegradation)",
                             "resolvedQuery": "golden set s3://g/set/manifest.jsonl: 4 clips, cer candidate vs stable",
                             "message": "candidate CER 0.6200 vs stable CER 0.0400: worse than the margin 0.02"}]}


@pytest.mark.parametrize(("name", "obj", "candidate", "present", "absent"), [
    ("aborted: reason, failing measurement with value, threshold and query; current step marked [!]",
     _with({**ABORTED, "outcome": "RolledBack"}), CANDIDATE,
     ["phase Aborted", "[!] 2. pause until promoted", "aborted    QualityGateFailed: candidate CER 0.6200",
      "quality-gate: Failed  value 0.62  threshold <= 0.0400 + 0.02", "query: golden set s3://g/set/manifest.jsonl"],
     ["[>]", "  paused     "]),
    ("promoted: every step and promotion done, no current marker",
     _with({"phase": "Healthy", "outcome": "Promoted", "currentStepIndex": 6, "previousStableModel": "v1",
            "stableModel": "v2", "pauseConditions": []}), cli.Pods("asr-v2-canary", 0, 0),
     ["outcome Promoted", "[x] 6. setWeight 100%", "[x] promotion", "previous   v1", "stable     v2",
      "asr-v2-canary 0/0 pods ready"], ["<- current", "[ ]"]),
    ("promoting after the last step", _with({"phase": "Progressing", "currentStepIndex": 6, "pauseConditions": []}),
     CANDIDATE, ["[>] promotion   <- current"], ["  paused     "]),
    ("degraded says so", _with({"phase": "Degraded", "degraded": True, "pauseConditions": []}),
     cli.Pods("asr-v2-canary"),
     ["phase Degraded", "degraded   progressDeadlineSeconds", "asr-v2-canary (no Deployment)"], []),
    ("no status yet", {"metadata": {"name": "r", "namespace": "n", "generation": 1}, "spec": ROLLOUT["spec"]},
     CANDIDATE, ["phase Unknown", "desired 0%", "[>] 1. setWeight 5%   <- current"], ["measurements"]),
])
def test_tree_states(name: str, obj: dict[str, Any], candidate: cli.Pods, present: list[str],
                     absent: list[str]) -> None:
    text = cli.render(obj, STABLE, candidate)
    for part in present:
        assert part in text, f"{part!r} missing in\n{text}"
    for part in absent:
        assert part not in text, f"{part!r} unexpected in\n{text}"


@pytest.mark.parametrize(("name", "obj", "result", "code"), [
    ("paused: no outcome yet", ROLLOUT, None, 2),
    ("promoted", _with({"outcome": "Promoted", "phase": "Healthy"}), "promoted", 0),
    ("aborted", _with(ABORTED), "aborted", 1),
    ("rolled back is aborted", _with({**ABORTED, "outcome": "RolledBack"}), "aborted", 1),
    ("degraded", _with({"phase": "Degraded", "degraded": True}), "degraded", 1),
    ("promoted but the operator has not seen the new spec yet", _with({"outcome": "Promoted"}, generation=4), None, 2),
    ("promoted for an older candidate", _with({"outcome": "Promoted", "candidateModel": "v0"}), None, 2),
])
def test_outcome_and_exit_code(name: str, obj: dict[str, Any], result: str | None, code: int) -> None:
    assert cli.outcome(obj) == result
    assert cli.exit_code(cli.outcome(obj)) == code


@pytest.mark.parametrize(("verb", "status", "refused"), [
    ("promote", {"phase": "Paused"}, None),
    ("promote-full", {"phase": "Progressing"}, None),
    ("pause", {"phase": "Progressing"}, None),
    ("resume", {"phase": "Paused"}, None),
    ("abort", {"phase": "Progressing"}, None),
    ("retry", {"phase": "Aborted", "abort": True}, None),
    ("retry", {"phase": "Progressing"}, "not aborted"),
    ("promote", {"phase": "Aborted", "abort": True}, "retry an aborted rollout first"),
    ("pause", {"outcome": "Promoted"}, "it is Promoted"),
    ("abort", {"outcome": "Promoted"}, "already finished (Promoted)"),
])
def test_refusal(verb: cli.Verb, status: dict[str, Any], refused: str | None) -> None:
    why = cli.refusal(verb, status)
    assert (why is None) if refused is None else (why is not None and refused in why), why


@pytest.mark.parametrize("verb", list(cli.STATUS_FLAG))
def test_verbs_patch_status_only(verb: cli.Verb) -> None:
    patch = cli.verb_patch(verb)
    assert list(patch) == ["status"] and list(patch["status"].values()) == [True]


@pytest.mark.parametrize(("text", "seconds"), [("45", 45), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2h", 7200)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert cli.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "-5m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 90s"):
        cli.parse_duration(text)


def test_rollout_is_a_senseops_subcommand() -> None:
    assert SUBCOMMANDS["rollout"].load() is cli.main


def test_bad_timeout_and_unreachable_cluster_exit_3(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "r", "--timeout", "soon"]) == cli.EXIT_UNREADABLE
    assert "write e.g. 90s" in capsys.readouterr().err
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    assert cli.main(["get", "r", "--kubeconfig", str(kubeconfig)]) == cli.EXIT_UNREADABLE
    assert "kubeconfig" in capsys.readouterr().err


def test_get_rollout_in_kubectl_word_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert SUBCOMMANDS["get"].load() is cli.get_main
    assert cli.get_main(["asrmodel", "x"]) == 2 and "senseops get rollout NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the same argument parser as `rollout get`
        cli.get_main(["rollout", "--help"])
    assert "--watch" in capsys.readouterr().out
