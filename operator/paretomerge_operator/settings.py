"""What the operator is configured with: environment variables set by the Helm chart."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from paretomerge.kube import (
    EVAL_IMAGE_ENV,
    IMAGE_PULL_POLICY_ENV,
    RUNTIME_IMAGE_ENV,
    image_pull_secrets_from_environment,
    run_defaults_from_environment,
)


@dataclass(frozen=True)
class OperatorSettings:
    """Attributes:
    runtime_image: image of the controller, merge and profile containers.
    eval_image: image of the evaluation containers (vLLM plus this package).
    image_pull_policy: for both images.
    image_pull_secrets: names of the Secrets the controller and candidate pods pull with.
    run_defaults: a partial ``spec.execution`` filling what a run leaves out or empty
        (see :func:`paretomerge.kube.with_run_defaults`); passed on to the controllers.
    controller_restarts: times a dying controller pod is replaced before the run fails.
    controller_memory: memory of the controller pod.
    """

    runtime_image: str = "ghcr.io/paretomerge/paretomerge:runtime"
    eval_image: str = "ghcr.io/paretomerge/paretomerge:eval"
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    run_defaults: dict[str, Any] = field(default_factory=dict)
    controller_restarts: int = 3
    controller_memory: str = "2Gi"

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        defaults = cls()
        return cls(
            runtime_image=os.environ.get(RUNTIME_IMAGE_ENV, defaults.runtime_image),
            eval_image=os.environ.get(EVAL_IMAGE_ENV, defaults.eval_image),
            image_pull_policy=os.environ.get(IMAGE_PULL_POLICY_ENV, defaults.image_pull_policy),
            image_pull_secrets=image_pull_secrets_from_environment(),
            run_defaults=run_defaults_from_environment(),
            controller_restarts=int(
                os.environ.get("PARETOMERGE_CONTROLLER_RESTARTS", defaults.controller_restarts)
            ),
            controller_memory=os.environ.get(
                "PARETOMERGE_CONTROLLER_MEMORY", defaults.controller_memory
            ),
        )
