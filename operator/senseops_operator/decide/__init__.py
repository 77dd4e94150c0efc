"""Pure decisions: `decide(spec, status, observation, now) -> Decision` per kind.

Nothing here performs I/O or imports kopf or a Kubernetes client (an import-linter contract enforces
it). Handlers observe the world, call a decision, then act on it and record the new status.
"""
