"""The names ParetoMerge uses on a cluster, each written once: the API of the
ParetoMergeRun resource, the labels of the objects made for a run, the mounts of its pods,
and the environment variables through which a cluster owner's settings reach the operator
and the controller."""

from __future__ import annotations

from typing import Final

# --- the ParetoMergeRun API --------------------------------------------------------------
API_GROUP: Final = "paretomerge.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{API_GROUP}/{VERSION}"
KIND: Final = "ParetoMergeRun"
PLURAL: Final = "paretomergeruns"
SINGULAR: Final = "paretomergerun"
SHORT_NAMES: Final = ("pmr",)
CRD_NAME: Final = f"{PLURAL}.{API_GROUP}"
# Phases after which nothing more happens to a run, unless a user asks: a Failed run is
# retried when RETRY_ANNOTATION changes, a Succeeded one goes on when its budget is raised.
FINAL_PHASES: Final = ("Succeeded", "Failed")
RETRY_ANNOTATION: Final = f"{API_GROUP}/retry"

# --- labels of the objects made for a run -------------------------------------------------
APP_NAME: Final = "paretomerge"
NAME_LABEL: Final = "app.kubernetes.io/name"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
RUN_LABEL: Final = "paretomerge.io/run"
TASK_LABEL: Final = "paretomerge.io/task"
ATTEMPT_LABEL: Final = "paretomerge.io/attempt"
# The component of a run's controller Job (and its ServiceAccount, Role, RoleBinding).
CONTROLLER: Final = "controller"
MAX_NAME: Final = 63  # a label value, and so a Job name (its pods carry it as a label)

# --- pods ------------------------------------------------------------------------------------
VOLUME_MOUNT: Final = "/data"  # the run's volume (its PVC)
SCRATCH_MOUNT: Final = "/scratch"
TERMINATION_LOG: Final = "/dev/termination-log"
RUN_AS: Final = 1000  # user, group and fsGroup of every pod

# --- a cluster owner's settings (Helm values), as environment variables -------------------
RUNTIME_IMAGE_ENV: Final = "PARETOMERGE_RUNTIME_IMAGE"
EVAL_IMAGE_ENV: Final = "PARETOMERGE_EVAL_IMAGE"
IMAGE_PULL_POLICY_ENV: Final = "PARETOMERGE_IMAGE_PULL_POLICY"
IMAGE_PULL_SECRETS_ENV: Final = "PARETOMERGE_IMAGE_PULL_SECRETS"  # comma-separated names
RUN_DEFAULTS_ENV: Final = "PARETOMERGE_RUN_DEFAULTS"  # JSON: a partial spec.execution
CONTROLLER_RESTARTS_ENV: Final = "PARETOMERGE_CONTROLLER_RESTARTS"
CONTROLLER_MEMORY_ENV: Final = "PARETOMERGE_CONTROLLER_MEMORY"
