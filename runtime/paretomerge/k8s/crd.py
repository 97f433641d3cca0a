"""The ParetoMergeRun CustomResourceDefinition, generated from the one spec model.

Kubernetes wants a *structural* OpenAPI v3.0 schema: every node typed, no ``$ref``, no
``anyOf`` of types, booleans for ``exclusiveMinimum``. :func:`structural_schema` turns
pydantic's JSON Schema of :class:`~paretomerge.spec.RunSpec` into one, keeping the enums,
ranges, patterns, lengths and required fields, so that ``kubectl apply`` itself rejects a
malformed run and names the field. Unknown fields are kept rather than pruned, so that
the operator rejects a misspelt one by name (the cross-field checks are the operator's
too). ``crds/`` holds the rendered file; a test keeps it equal to
:func:`custom_resource_definition`.
"""

from __future__ import annotations

from typing import Any

import yaml

from paretomerge.k8s.constants import (
    API_GROUP,
    CRD_NAME,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from paretomerge.spec import RunSpec

# JSON Schema keywords that mean the same in OpenAPI v3.0 and are kept as they are.
KEPT_KEYWORDS = (
    "type",
    "description",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "format",
)


def structural_schema(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """One JSON Schema node (pydantic's output) as a structural OpenAPI v3.0 node."""
    if "$ref" in schema:
        return structural_schema(definitions[schema["$ref"].split("/")[-1]], definitions)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types structurally")
        merged = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
        return {**structural_schema(merged, definitions), "nullable": True}
    out = {key: schema[key] for key in KEPT_KEYWORDS if key in schema}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if "exclusiveMinimum" in schema:
        out["minimum"], out["exclusiveMinimum"] = schema["exclusiveMinimum"], True
    if "exclusiveMaximum" in schema:
        out["maximum"], out["exclusiveMaximum"] = schema["exclusiveMaximum"], True
    default = schema.get("default")
    if default is not None and not isinstance(default, dict):
        out["default"] = default  # object defaults come from pydantic, with every field
    if out.get("type") == "array":
        items = schema.get("items") or _same_items(schema.get("prefixItems", []))
        out["items"] = structural_schema(items, definitions)
    if out.get("type") == "object":
        if "properties" in schema:
            out["properties"] = {
                name: structural_schema(node, definitions)
                for name, node in schema["properties"].items()
            }
            # Kept, not pruned: a mistyped field would otherwise vanish without a word;
            # kept, the operator fails the run naming it (pydantic forbids extra fields).
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(schema.get("additionalProperties"), dict):
            out["additionalProperties"] = structural_schema(
                schema["additionalProperties"], definitions
            )
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _same_items(prefix_items: list[dict[str, Any]]) -> dict[str, Any]:
    """A fixed-length tuple of one item type as that item type (lengths are kept apart)."""
    if not prefix_items or any(item != prefix_items[0] for item in prefix_items):
        raise ValueError("tuples of mixed item types cannot be expressed structurally")
    return prefix_items[0]


def spec_schema() -> dict[str, Any]:
    schema = RunSpec.model_json_schema(by_alias=True)
    return structural_schema(schema, schema.get("$defs", {}))


def custom_resource_definition() -> dict[str, Any]:
    """The whole CRD object (``apiextensions.k8s.io/v1``)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["paretomerge"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Done", "type": "integer", "jsonPath": ".status.finished"},
                        {"name": "Budget", "type": "integer", "jsonPath": ".spec.search.budget"},
                        {"name": "Pareto", "type": "integer", "jsonPath": ".status.paretoSize"},
                        {
                            "name": "Hypervolume",
                            "type": "number",
                            "jsonPath": ".status.hypervolume",
                        },
                        {
                            "name": "Age",
                            "type": "date",
                            "jsonPath": ".metadata.creationTimestamp",
                        },
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A search for the Pareto set of merges of LLMs.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML file kept in ``crds/``."""
    header = "# Generated from paretomerge.spec by `paretomerge crd`; do not edit by hand.\n"
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False)
