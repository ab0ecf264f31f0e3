"""The face pipeline's errors: a model whose bytes do not load or do not fit their spec, an image that is
not one. A refusal at enrolment is not an error: it is a `quality.Refusal` reason."""

from __future__ import annotations

from models.errors import ModelsError


class FacesError(ModelsError):
    """Base of the face pipeline's errors."""


class ModelLoadError(FacesError):
    """A model's bytes that its runtime refuses, or a model whose inputs do not fit the spec given for it."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"face model {model}: {problem}")


class ImageError(FacesError):
    """Bytes that do not decode to an image, or an array that is not an 8-bit BGR image."""
