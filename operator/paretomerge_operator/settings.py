"""What the operator is configured with: environment variables set by the Helm chart."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorSettings:
    """Attributes:
    runtime_image: image of the controller, merge and profile containers.
    eval_image: image of the evaluation containers (vLLM plus this package).
    image_pull_policy: for both images.
    controller_restarts: times a dying controller pod is replaced before the run fails.
    controller_memory: memory of the controller pod.
    """

    runtime_image: str = "ghcr.io/paretomerge/paretomerge:runtime"
    eval_image: str = "ghcr.io/paretomerge/paretomerge:eval"
    image_pull_policy: str = "IfNotPresent"
    controller_restarts: int = 3
    controller_memory: str = "2Gi"

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        defaults = cls()
        return cls(
            runtime_image=os.environ.get("PARETOMERGE_RUNTIME_IMAGE", defaults.runtime_image),
            eval_image=os.environ.get("PARETOMERGE_EVAL_IMAGE", defaults.eval_image),
            image_pull_policy=os.environ.get("PARETOMERGE_IMAGE_PULL_POLICY", "IfNotPresent"),
            controller_restarts=int(
                os.environ.get("PARETOMERGE_CONTROLLER_RESTARTS", defaults.controller_restarts)
            ),
            controller_memory=os.environ.get(
                "PARETOMERGE_CONTROLLER_MEMORY", defaults.controller_memory
            ),
        )
