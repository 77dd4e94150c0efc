"""kopf handlers: observe → decide → act → record. No decisions live here (see `decide/`).

Importing this package registers every handler with kopf.
"""

from senseops_operator.handlers import asrmodel, finetunejob, retrainpolicy, rollout, startup

__all__ = ["asrmodel", "finetunejob", "retrainpolicy", "rollout", "startup"]
