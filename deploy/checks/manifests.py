"""Sort rendered Helm output for validation: built-in kinds for kubernetes-validate, CRD objects here.

kubernetes-validate carries the schemas of the Kubernetes API only. Given a custom resource such as the
chart's ServiceMonitor (monitoring.coreos.com/v1) it prints a warning and passes it unchecked, so this
script takes those objects out and validates them itself against the prometheus-operator models of
``cloudcoil.models.prometheus_operator`` (generated from the operator's CRD OpenAPI schemas: types,
required fields, patterns), adding the strictness the models lack: any key they do not know is an
error, as under ``kubernetes-validate --strict``. Every other object is written to a file for
kubernetes-validate; deploy/check.sh fails if that tool meets a kind it has no schema for, so no object
goes unchecked.

Usage: python manifests.py RENDERED.yaml [RENDERED.yaml ...]   (writes RENDERED.yaml.builtin beside each)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml


def _service_monitor_model() -> Any:
    from cloudcoil.models.prometheus_operator import v1

    return v1.ServiceMonitor


# apiVersion group -> kind -> the model validating it.
CRD_MODELS: dict[str, dict[str, Callable[[], Any]]] = {
    "monitoring.coreos.com": {"ServiceMonitor": _service_monitor_model},
}


def unknown_keys(given: Any, known: Any, path: str = "") -> Iterator[str]:
    """Paths of keys in ``given`` that the validated model dropped (it ignores what it does not know)."""
    if isinstance(given, dict) and isinstance(known, dict):
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in known:
                yield where
            else:
                yield from unknown_keys(value, known[key], where)
    elif isinstance(given, list) and isinstance(known, list):
        for index, (item, known_item) in enumerate(zip(given, known, strict=True)):
            yield from unknown_keys(item, known_item, f"{path}[{index}]")


def validate_custom(obj: dict[str, Any]) -> list[str]:
    """Problems with one custom resource, or an empty list."""
    group, _, _version = str(obj.get("apiVersion", "")).rpartition("/")
    kind = str(obj.get("kind", ""))
    model_factory = CRD_MODELS[group].get(kind)
    if model_factory is None:
        return [f"{kind} of {group}: no model to validate it with; add one to CRD_MODELS"]
    model = model_factory()
    try:
        parsed = model.model_validate(obj)
    except Exception as exc:  # pydantic's ValidationError lists every problem; show them all
        return [str(exc)]
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"unknown field {path}" for path in unknown_keys(obj, dumped)]


def split(rendered: Path) -> int:
    """Validate the custom resources of one rendering; write the rest to ``RENDERED.builtin``."""
    documents = [doc for doc in yaml.safe_load_all(rendered.read_text()) if doc]
    builtin: list[dict[str, Any]] = []
    failures = 0
    for obj in documents:
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        if group not in CRD_MODELS:
            builtin.append(obj)
            continue
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        problems = validate_custom(obj)
        models = f"cloudcoil.models.prometheus_operator {metadata.version('cloudcoil.models.prometheus_operator')}"
        if problems:
            failures += 1
            print(f"ERROR {rendered}: {name} does not validate against {models}:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"INFO {rendered}: {name} passed against {models} (strict)")
    builtin_out = rendered.with_name(rendered.name + ".builtin")
    builtin_out.write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    print(f"INFO {rendered}: {len(builtin)} built-in objects for kubernetes-validate in {builtin_out}")
    return failures


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    # One process for every rendering: importing the operator's models takes seconds.
    sys.exit(1 if sum(split(Path(arg)) for arg in sys.argv[1:]) else 0)
