"""The CRD is generated from the spec model and kept in ``crds/`` unchanged."""

from __future__ import annotations

from pathlib import Path

from paretomerge.k8s.crd import render_crd, spec_schema

CRD_FILE = Path(__file__).parent.parent / "crds" / "paretomergeruns.paretomerge.io.yaml"


def test_the_crd_file_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == render_crd(), "run: paretomerge crd > " + str(CRD_FILE)


def walk(node: dict, path: str = "spec"):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def test_the_schema_is_structural_and_keeps_the_constraints() -> None:
    nodes = dict(walk(spec_schema()))
    for path, node in nodes.items():
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "anyOf", "oneOf", "allOf", "prefixItems", "title"} & set(node), path
        assert not isinstance(node.get("exclusiveMinimum", True), float), path
    assert nodes["spec.search.strategy"]["enum"][-1] == "bambo"
    assert nodes["spec.search.budget"]["minimum"] == 1
    assert nodes["spec.merge.density"]["exclusiveMinimum"] is True
    assert nodes["spec.models.experts"]["minItems"] == 1
    assert set(nodes["spec"]["required"]) == {"models", "objectives"}
    assert nodes["spec.execution.tolerations[]"]["x-kubernetes-preserve-unknown-fields"]
    assert nodes["spec.execution.nodeSelector"]["additionalProperties"]["maxLength"] == 63
    # kept for the operator to name, not pruned in silence
    assert nodes["spec.search"]["x-kubernetes-preserve-unknown-fields"] is True
