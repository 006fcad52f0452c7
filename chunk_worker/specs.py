"""Reading a spec document (a chunk spec, a finalize spec): JSON text into its contract model, with
every problem named by its field, as an errors.SpecError (exit 2: retrying cannot help)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from chunk_worker.errors import SpecError

Model = TypeVar("Model", bound=BaseModel)


def describe(error: ValidationError) -> str:
    """One part per problem, each naming the field, e.g. `items.0.url: Field required`."""
    return "; ".join(f"{'.'.join(str(part) for part in issue['loc']) or '(top level)'}: {issue['msg']}"
                     for issue in error.errors())


def parse(model: type[Model], text: str, source: str, kind: str) -> Model:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source} is not JSON: {exc}") from exc
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise SpecError(f"invalid {kind} in {source}: {describe(exc)}") from exc


def read(model: type[Model], path: Path, kind: str) -> Model:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {kind} {path}: {exc.strerror}") from exc
    return parse(model, text, str(path), kind)
