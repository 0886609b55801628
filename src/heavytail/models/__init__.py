"""Models: plain ``torch.nn`` modules mapping inputs to class logits."""

from heavytail.models.linear import linear_model

__all__ = ["linear_model"]
