"""``senseops rollout``: watch a Rollout and drive it by hand without Git drift.

    senseops rollout get NAME [--watch]       # a tree: steps, weights, pods, last measurements, why it paused
    senseops rollout promote NAME [--full]    # skip the current step or pause (--full: every remaining step)
    senseops rollout abort NAME               # weight 0 at once; the candidate scales down later
    senseops rollout retry NAME               # after an abort: start again from step 1
    senseops rollout pause NAME / resume NAME # hold the rollout where it is / clear a manual or inconclusive pause
    senseops rollout status NAME --timeout 30m  # for CI: wait for the outcome

``status`` exit codes: 0 promoted, 1 aborted or degraded, 2 timed out, 3 the Rollout cannot be read (or a
bad ``--timeout``).

Every verb sets a flag in the Rollout's **status** (the operator clears it once acted on); spec is never
touched, so GitOps tools see no drift and ``metadata.generation`` stays the same. Cluster access is the
kubeconfig, as for kubectl (``--kubeconfig``, ``--context``, ``$KUBECONFIG``); also installed as
``kubectl-senseops``, so ``kubectl senseops rollout get NAME`` works.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

GROUP, VERSION, PLURAL = "senseops.dev", "v1alpha1", "rollouts"
CANARY_SUFFIX = "-canary"  # the candidate Deployment the operator owns: <rollout>-canary
Verb = Literal["promote", "promote-full", "abort", "retry", "pause", "resume"]
STATUS_FLAG: dict[Verb, str] = {"promote": "promote", "promote-full": "promoteFull", "abort": "abort",
                                "retry": "retry", "pause": "pause", "resume": "resume"}
EXIT_PROMOTED, EXIT_FAILED, EXIT_TIMEOUT, EXIT_UNREADABLE = 0, 1, 2, 3
Outcome = Literal["promoted", "aborted", "degraded"]


# ---- pure: what the tree shows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pods:
    """Ready and wanted pods of one Deployment (None: the Deployment does not exist)."""

    name: str
    ready: int | None = None
    total: int | None = None

    def text(self) -> str:
        if self.ready is None or self.total is None:
            return f"{self.name} (no Deployment)"
        return f"{self.name} {self.ready}/{self.total} pods ready"


def _step_text(step: dict[str, Any]) -> str:
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}%"
    if "pause" in step:
        duration = (step.get("pause") or {}).get("durationSeconds")
        return "pause until promoted" if duration is None else f"pause {duration}s"
    metrics = (step.get("analysis") or {}).get("metrics") or []
    return "analysis" + (f" ({', '.join(metrics)})" if metrics else " (all metrics)")


def _value(v: Any) -> str:
    return "no value" if v is None else f"{v:g}" if isinstance(v, float | int) else str(v)


def render(rollout: dict[str, Any], stable: Pods, candidate: Pods) -> str:
    """The live tree of one Rollout (pure; `senseops rollout get`)."""
    meta, spec, status = rollout.get("metadata") or {}, rollout.get("spec") or {}, rollout.get("status") or {}
    steps: list[dict[str, Any]] = spec.get("steps") or []
    index = status.get("currentStepIndex") or 0
    phase = status.get("phase") or "Unknown"
    aborted = bool(status.get("abort"))
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    lines = [
        f"Rollout {meta.get('namespace', '')}/{meta.get('name', '')}  phase {phase}"
        + (f"  outcome {status['outcome']}" if status.get("outcome") else "")
        + f"  generation {generation} (observed {observed})",
        f"  weight     desired {status.get('desiredWeight', 0)}%  actual {status.get('actualWeight', 0)}%"
        " (actual = what the traffic router confirms)",
        f"  stable     {status.get('stableModel') or (spec.get('stableModel') or {}).get('name')}  {stable.text()}",
        f"  candidate  {(spec.get('candidateModel') or {}).get('name')}  {candidate.text()}",
    ]
    if status.get("previousStableModel"):
        lines.append(f"  previous   {status['previousStableModel']}")
    lines.append("  steps")
    promoted = status.get("outcome") == "Promoted"
    for i, step in enumerate(steps):
        if i < index:
            mark = "[x]"
        elif i == index and not promoted:
            mark = "[!]" if aborted else "[>]"  # an aborted (rolled back) rollout stopped here
        else:
            mark = "[ ]"
        here = "   <- current" if i == index and not promoted else ""
        lines.append(f"    {mark} {i + 1}. {_step_text(step)}{here}")
    promoting = index >= len(steps) and status.get("outcome") is None and not aborted
    lines.append(f"    {'[>]' if promoting else '[x]' if promoted else '[ ]'} "
                 f"promotion{'   <- current' if promoting else ''}")
    for p in status.get("pauseConditions") or []:
        lines.append(f"  paused     {p.get('reason')}: {p.get('message', '')} (since {p.get('startTime', '?')})")
    if aborted or status.get("abortReason"):
        lines.append(f"  aborted    {status.get('abortReason') or 'abort requested'}")
    if status.get("degraded"):
        lines.append("  degraded   progressDeadlineSeconds passed without progress (see message)")
    last: dict[str, dict[str, Any]] = {}
    for m in status.get("measurements") or []:
        last[str(m.get("metric"))] = m
    if last:
        lines.append("  measurements (latest per metric)")
        for name, m in last.items():
            lines.append(f"    {name}: {m.get('phase')}  value {_value(m.get('value'))}  threshold "
                         f"{m.get('threshold') or '-'}  at {m.get('at', '?')}")
            if m.get("message"):
                lines.append(f"      {m['message']}")
            if m.get("resolvedQuery"):
                lines.append(f"      query: {m['resolvedQuery']}")
    if status.get("message"):
        lines.append(f"  message    {status['message']}")
    return "\n".join(lines) + "\n"


def outcome(rollout: dict[str, Any]) -> Outcome | None:
    """The Rollout's outcome for CI, counted only once the operator has seen the current spec (so a re-applied
    Rollout with a new candidate is not reported done from the previous candidate's status)."""
    meta, spec, status = rollout.get("metadata") or {}, rollout.get("spec") or {}, rollout.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return None
    if status.get("candidateModel") not in (None, (spec.get("candidateModel") or {}).get("name")):
        return None
    if status.get("outcome") == "Promoted":
        return "promoted"
    if status.get("abort") or status.get("phase") == "Aborted":
        return "aborted"
    if status.get("degraded") or status.get("phase") == "Degraded":
        return "degraded"
    return None


def exit_code(result: Outcome | None) -> int:
    """0 promoted, 1 aborted or degraded, 2 no outcome before the timeout."""
    return {"promoted": EXIT_PROMOTED, "aborted": EXIT_FAILED, "degraded": EXIT_FAILED, None: EXIT_TIMEOUT}[result]


def refusal(verb: Verb, status: dict[str, Any]) -> str | None:
    """Why a verb cannot apply to a Rollout in this state (None: send it)."""
    done = status.get("outcome")
    aborted = bool(status.get("abort"))
    if verb == "retry" and not aborted:
        return "it is not aborted; retry starts an aborted rollout again (use promote or resume otherwise)"
    if verb in ("promote", "promote-full", "pause") and (aborted or done):
        return f"it is {'aborted' if aborted else done}; retry an aborted rollout first"
    if verb == "abort" and done:
        return f"it already finished ({done}); change spec.candidateModel to start a new rollout"
    return None


def verb_patch(verb: Verb) -> dict[str, Any]:
    """The status merge patch for a verb (status only: spec and generation stay unchanged)."""
    return {"status": {STATUS_FLAG[verb]: True}}


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """'30m', '1h30m', '90s' or plain seconds ('45') → seconds."""
    if text.isdigit():
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"cannot read duration {text!r}; write e.g. 90s, 30m or 1h30m")
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


# ---- I/O: the cluster -----------------------------------------------------------------------------------------


class RolloutError(RuntimeError):
    """The Rollout could not be read or changed (a sentence that says what to check)."""


class Cluster:
    """The few API calls the CLI makes, through the kubeconfig like kubectl."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client, config

        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except config.ConfigException as exc:
            raise RolloutError(f"no usable kubeconfig ({exc}); pass --kubeconfig or set KUBECONFIG") from exc
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.default_namespace = "default"
        try:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active) if context else active
            self.default_namespace = (chosen.get("context") or {}).get("namespace") or "default"
        except (config.ConfigException, TypeError):
            pass

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args)
        except ApiException as exc:
            if exc.status == 404:
                raise RolloutError(f"{what} not found") from exc
            raise RolloutError(f"{what}: HTTP {exc.status} {exc.reason}") from exc
        except OSError as exc:
            raise RolloutError(f"{what}: cannot reach the API server ({exc})") from exc

    def rollout(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self._call(f"Rollout {namespace}/{name}", self.custom.get_namespaced_custom_object,
                                         GROUP, VERSION, namespace, PLURAL, name)
        return obj

    def pods(self, namespace: str, deployment: str) -> Pods:
        try:
            d = self._call(f"Deployment {deployment}", self.apps.read_namespaced_deployment, deployment, namespace)
        except RolloutError:
            return Pods(deployment)
        return Pods(deployment, d.status.ready_replicas or 0, d.spec.replicas or 0)

    def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self._call(f"Rollout {namespace}/{name}", self.custom.patch_namespaced_custom_object_status,
                   GROUP, VERSION, namespace, PLURAL, name, body)


def view(cluster: Cluster, namespace: str, name: str) -> str:
    obj = cluster.rollout(namespace, name)
    target = ((obj.get("spec") or {}).get("target") or {}).get("deployment", "")
    return render(obj, cluster.pods(namespace, target), cluster.pods(namespace, f"{name}{CANARY_SUFFIX}"))


# ---- commands -----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="senseops rollout", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="status exit codes: 0 promoted, 1 aborted or degraded, 2 timed out, "
                                       "3 the Rollout cannot be read (or a bad --timeout)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", help="the Rollout")
    common.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    common.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    common.add_argument("--context", help="kubeconfig context to use")
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", parents=[common], help="show the rollout as a tree")
    get.add_argument("-w", "--watch", action="store_true", help="keep showing it as it changes")
    get.add_argument("--interval", type=float, default=2.0, help="seconds between looks with --watch")
    promote = sub.add_parser("promote", parents=[common], help="skip the current step or pause")
    promote.add_argument("--full", action="store_true", help="skip every remaining step and promote")
    for verb, text in (("abort", "send all traffic back to stable"), ("retry", "start an aborted rollout again"),
                       ("pause", "hold the rollout where it is"), ("resume", "clear a manual or inconclusive pause")):
        sub.add_parser(verb, parents=[common], help=text)
    status = sub.add_parser("status", parents=[common], help="wait for the outcome (exit code, for CI)")
    status.add_argument("--timeout", default="30m", help="e.g. 90s, 30m, 1h (default 30m)")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between looks")
    return p


def _watch(cluster: Cluster, namespace: str, name: str, interval: float) -> int:
    previous = ""
    clear = sys.stdout.isatty()
    try:
        while True:
            text = view(cluster, namespace, name)
            if text != previous:
                print(("\x1b[H\x1b[2J" if clear else "\n") + text, end="", flush=True)
                previous = text
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _status(cluster: Cluster, namespace: str, name: str, timeout_s: float, interval: float) -> int:
    deadline = time.monotonic() + timeout_s
    last_message = None
    while True:
        obj = cluster.rollout(namespace, name)
        result = outcome(obj)
        st = obj.get("status") or {}
        message = f"{st.get('phase', 'Unknown')}: {st.get('message', '')}"
        if message != last_message:
            print(message, flush=True)
            last_message = message
        if result is not None:
            reason = st.get("abortReason") if result == "aborted" else None
            print(f"rollout {name} {result}" + (f": {reason}" if reason else ""))
            return exit_code(result)
        if time.monotonic() >= deadline:
            print(f"rollout {name}: no outcome within {timeout_s:g}s (phase {st.get('phase')})", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.1)))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        timeout_s = parse_duration(args.timeout) if args.command == "status" else 0.0
    except ValueError as exc:
        print(f"senseops rollout: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        cluster = Cluster(args.kubeconfig, args.context)
        ns = args.namespace or cluster.default_namespace
        if args.command == "get":
            if args.watch:
                return _watch(cluster, ns, args.name, args.interval)
            print(view(cluster, ns, args.name), end="")
            return 0
        if args.command == "status":
            return _status(cluster, ns, args.name, timeout_s, args.interval)
        verb: Verb = "promote-full" if args.command == "promote" and args.full else args.command
        why_not = refusal(verb, cluster.rollout(ns, args.name).get("status") or {})
        if why_not is not None:
            print(f"senseops rollout {verb} {args.name}: refused, {why_not}", file=sys.stderr)
            return 1
        cluster.patch_status(ns, args.name, verb_patch(verb))
        print(f"rollout {ns}/{args.name}: {verb} requested (status.{STATUS_FLAG[verb]}); the operator acts on it "
              "within a few seconds")
        return 0
    except RolloutError as exc:
        print(f"senseops rollout: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE


def get_main(argv: Sequence[str] | None = None) -> int:
    """``senseops get rollout NAME [--watch]`` (the kubectl word order) = ``senseops rollout get NAME``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("rollout", "rollouts", "ro"):
        print("usage: senseops get rollout NAME [--watch] [-n NAMESPACE]", file=sys.stderr)
        return 2
    return main(["get", *args[1:]])


if __name__ == "__main__":
    sys.exit(main())
