"""The FineTuneJob's training Job and job file, rendered as pure data (operator/.../decide/training_job.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from senseops_operator.decide import training_job as tj
from senseops_trainer.config import config_from_dict


def owner(**spec_extra: Any) -> dict[str, Any]:
    spec = {
        "baseModel": {"name": "base"},
        "dataset": {"source": "s3://rec/data/", "anchorIds": ["a1", "a2"], "minHours": 2.5,
                    "window": {"start": "2026-03-01T00:00:00Z"},
                    "filters": {"minConfidence": 0.7, "maxCharsPerSecond": 9},
                    "heldOut": {"validationFraction": 0.2, "goldenSetUri": "s3://rec/data/golden/a1.jsonl"}},
        "hyperparameters": {"learningRate": 3e-5, "epochs": 3, "seed": 7},
        "resources": {"gpus": 2, "cpu": "8", "memory": "32Gi"},
        "placement": {"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists"}],
                      "priorityClassName": "training"},
        "runPolicy": {"backoffLimit": 4, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 600,
                      "suspend": True},
        "output": {"modelName": "anchor-v2", "storeUri": "s3://models/"},
        "evaluationGate": {"minImprovement": 0.05},
        "trainerImage": "registry.local/senseops/trainer:0.2",
        **spec_extra,
    }
    return {"metadata": {"name": "ftj-1", "namespace": "ml", "uid": "u-1"}, "spec": spec}


def test_job_file_is_accepted_by_the_trainer() -> None:
    """The contract between operator and trainer: the rendered file loads with the trainer's own parser."""
    cfg = config_from_dict(tj.trainer_job_file("ftj-1", owner()["spec"], "s3://models/models/base/v1/"))
    assert cfg.dataset.anchor_ids == ("a1", "a2")
    assert cfg.dataset.golden_key == "golden/a1.jsonl"
    assert cfg.gate.gate_set == "golden" and cfg.gate.min_cer_improvement == 0.05
    assert (cfg.train.gpus, cfg.train.device, cfg.train.max_epoch, cfg.train.lr) == (2, "cuda", 3, 3e-5)
    assert cfg.output.version == "ftj-1" and cfg.models_uri == "s3://models/"


def test_job_file_without_golden_set_gates_on_validation() -> None:
    spec = owner()["spec"]
    spec["dataset"]["heldOut"] = {}
    spec["resources"] = {"gpus": 0}
    cfg = config_from_dict(tj.trainer_job_file("x", spec, "/m"))
    assert cfg.gate.gate_set == "val" and cfg.train.device == "cpu"


def test_golden_set_outside_the_dataset_store_is_refused() -> None:
    spec = owner()["spec"]
    spec["dataset"]["heldOut"]["goldenSetUri"] = "s3://other/golden.jsonl"
    with pytest.raises(ValueError, match=r"must lie under dataset\.source"):
        tj.trainer_job_file("x", spec, "/m")


def test_job_carries_resources_placement_run_policy_and_failure_policy() -> None:
    cm, job = tj.render(owner(), "s3://models/models/base/v1/", "ftj-trainer", "store-creds")
    assert cm["metadata"]["name"] == "ftj-1-job" and job["metadata"]["name"] == "ftj-1-train"
    for obj in (cm, job):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("FineTuneJob", "u-1", True)
    assert yaml.safe_load(cm["data"]["job.yaml"])["job_name"] == "ftj-1"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"], spec["suspend"]) \
        == (4, 3600, 600, True)
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["priorityClassName"] == "training"
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "ftj-trainer"
    assert container["image"] == "registry.local/senseops/trainer:0.2"
    # Credentials reach the pod only as a mounted Secret, never as text in the ConfigMap.
    assert {"name": "store-credentials", "secret": {"secretName": "store-creds"}} in pod["volumes"]
    assert "store-creds" not in cm["data"]["job.yaml"]
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onExitCodes": {"containerName": "trainer", "operator": "In",
                                                             "values": [3, 64]}}
    assert rules[1]["action"] == "Ignore"


def test_no_gpu_request_when_gpus_is_zero_and_no_secret_volume_without_secret() -> None:
    _, job = tj.render(owner(resources={"gpus": 0}), "/m", "sa", None)
    pod = job["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert all(v["name"] != "store-credentials" for v in pod["volumes"])


@pytest.mark.parametrize(("name", "suffix", "want"), [
    ("short", "train", "short-train"),
    ("a" * 63, "train", "a" * 57 + "-train"),
    ("x" * 57 + "-yyyy", "job", "x" * 57 + "-y-job"),
])
def test_child_names_are_deterministic_and_fit(name: str, suffix: str, want: str) -> None:
    got = tj.child_name(name, suffix)
    assert got == want and len(got) <= 63 and tj.child_name(name, suffix) == got


def test_failure_policy_exit_codes_are_the_trainers() -> None:
    from senseops_trainer import cli

    assert (tj.EXIT_GATE_FAILED, tj.EXIT_BAD_SETTINGS) == (cli.EXIT_GATE_FAILED, cli.EXIT_USAGE)


def test_job_file_mirrors_state_under_the_output_store_per_job_uid() -> None:
    """A retried pod resumes from the mirror; a re-created FineTuneJob of the same name does not."""
    cfg = config_from_dict(tj.job_file(owner(), "/m"))
    assert cfg.state_uri == "s3://models/runs/ml/ftj-1-u-1/state/"
    other = owner()
    other["metadata"]["uid"] = "u-2"
    assert tj.job_file(other, "/m")["state_uri"] != cfg.state_uri
    cm, _ = tj.render(owner(), "/m", "sa", None)
    assert yaml.safe_load(cm["data"][tj.JOB_FILE_KEY])["state_uri"] == cfg.state_uri


@pytest.mark.parametrize(
    ("settings", "check"),
    [
        pytest.param({"train.num_threads": "2"}, lambda cfg: cfg.train.num_threads == 2, id="a number"),
        pytest.param({"filters.min_confidence": "0.5"}, lambda cfg: cfg.filters.min_confidence == 0.5,
                     id="overrides a rendered value"),
        pytest.param({"train.extra_overrides": "['++train_conf.log_interval=1']"},
                     lambda cfg: cfg.train.extra_overrides == ("++train_conf.log_interval=1",), id="a list"),
    ],
)
def test_trainer_settings_reach_the_trainer(settings: dict[str, str], check: Any) -> None:
    spec_owner = owner(hyperparameters={"trainerSettings": settings, "checkpointEverySteps": 50})
    cfg = config_from_dict(tj.job_file(spec_owner, "/m"))
    assert check(cfg) and cfg.train.save_every_steps == 50


def test_an_unknown_trainer_setting_is_left_for_the_trainer_to_refuse() -> None:
    """The operator does not second-guess the trainer's settings: the trainer refuses them (exit 64)."""
    rendered = tj.job_file(owner(hyperparameters={"trainerSettings": {"train.no_such_knob": "1"}}), "/m")
    assert rendered["train"]["no_such_knob"] == 1
    with pytest.raises(ValueError, match="no_such_knob"):
        config_from_dict(rendered)


# --- resources.nodes > 1: Indexed Job + headless Service + c10d rendezvous ---------------------------------

MULTINODE_CASES = [
    # name, resources, run policy, expected (completions, backoffLimitPerIndex, gpu limit, trainer "nodes")
    ("two cpu pods", {"gpus": 0, "nodes": 2}, {"backoffLimit": 2}, (2, 2, None, 2)),
    ("four pods of 8 gpus, default retries", {"gpus": 8, "nodes": 4}, {}, (4, 2, "8", 4)),
    ("no retries", {"gpus": 1, "nodes": 3}, {"backoffLimit": 0}, (3, 0, "1", 3)),
]


@pytest.mark.parametrize(("name", "resources", "run_policy", "expected"), MULTINODE_CASES,
                         ids=[c[0] for c in MULTINODE_CASES])
def test_multinode_renders_an_indexed_job(name, resources, run_policy, expected) -> None:
    completions, per_index, gpu, trainer_nodes = expected
    body = owner(resources=resources, runPolicy=run_policy)
    cm, job = tj.render(body, "/m", "sa", None)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", completions, completions)
    # Retries per index: one gang failure costs every index one retry (what backoffLimit means for one pod);
    # an index out of retries ends the Job, since training cannot finish without it.
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (per_index, 0)
    assert "backoffLimit" not in spec
    assert spec["podFailurePolicy"] == tj.pod_failure_policy()
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == "ftj-1-workers" and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["resources"]["limits"].get("nvidia.com/gpu") == gpu
    assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} in container["env"]
    assert container["ports"] == [{"name": "rendezvous", "containerPort": 29500, "protocol": "TCP"}]
    train = yaml.safe_load(cm["data"]["job.yaml"])["train"]
    assert (train["nodes"], train["rdzv_endpoint"]) == (trainer_nodes, "ftj-1-train-0.ftj-1-workers:29500")
    # The trainer's own parser takes the distributed settings.
    cfg = config_from_dict(yaml.safe_load(cm["data"]["job.yaml"]))
    assert (cfg.train.nodes, cfg.train.rdzv_endpoint) == (trainer_nodes, "ftj-1-train-0.ftj-1-workers:29500")


def test_multinode_headless_service_selects_the_jobs_pods() -> None:
    body = owner(resources={"gpus": 0, "nodes": 2})
    service = tj.workers_service(body)
    assert service is not None
    _, job = tj.render(body, "/m", "sa", None)
    assert service["metadata"]["name"] == job["spec"]["template"]["spec"]["subdomain"] == "ftj-1-workers"
    (ref,) = service["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("FineTuneJob", "u-1", True)
    spec = service["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True
    assert spec["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    assert spec["ports"] == [{"name": "rendezvous", "port": 29500, "targetPort": 29500, "protocol": "TCP"}]


@pytest.mark.parametrize("resources", [{"gpus": 2}, {"gpus": 0, "nodes": 1}, {}])
def test_single_node_stays_a_plain_job_without_service(resources) -> None:
    body = owner(resources=resources)
    cm, job = tj.render(body, "/m", "sa", None)
    assert tj.workers_service(body) is None
    spec = job["spec"]
    assert "completionMode" not in spec and "backoffLimitPerIndex" not in spec and spec["backoffLimit"] == 4
    assert "subdomain" not in spec["template"]["spec"]
    assert "nodes" not in yaml.safe_load(cm["data"]["job.yaml"])["train"]


def test_rendezvous_host_is_pod_zero_of_the_job_and_fits_a_dns_label() -> None:
    from senseops_operator import constants as c

    name = "n" * c.MAX_MULTINODE_JOB_NAME_LENGTH
    host = tj.rendezvous_endpoint(name).rsplit(":", 1)[0]
    pod, service = host.split(".")
    # The longest name the CRD admits for nodes > 1 still gives the last pod a valid host name.
    assert pod == f"{tj.child_name(name, 'train')}-0"
    assert len(f"{tj.child_name(name, 'train')}-{c.MAX_TRAINING_NODES - 1}") == 63
    assert service == tj.workers_service_name(name) and len(service) <= 63
