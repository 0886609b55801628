"""Paper figures declared as data; ``heavytail reproduce NAME`` runs one (``--list`` shows them all)."""

from __future__ import annotations

from heavytail.options import ConfigError, import_object
from heavytail.presets import (
    cnn_barcoded,
    cnn_barcoded_only,
    cnn_optimizers,
    continuous_time,
    gpt2_wikitext,
    grad_hessian_adam,
    grad_hessian_gd,
    linear,
    linear_inputs,
    linear_large_step,
    linear_long,
    linear_optimizers,
    ptb_last_layer,
    ptb_one_layer,
    ptb_one_layer_optimizers,
    ptb_reweighted,
    ptb_two_layer,
    token_stats,
    weighted_quadratic,
)
from heavytail.presets.base import Curve, Preset, Scale, Study

PRESETS: dict[str, Preset | Study] = {  # sweep figures (Preset) and computed ones (Study)
    module.PRESET.name: module.PRESET
    for module in (
        linear,
        linear_optimizers,
        linear_long,
        linear_large_step,
        linear_inputs,
        grad_hessian_gd,
        grad_hessian_adam,
        weighted_quadratic,
        continuous_time,
        token_stats,
        cnn_barcoded,
        cnn_barcoded_only,
        cnn_optimizers,
        gpt2_wikitext,
        ptb_last_layer,
        ptb_one_layer,
        ptb_one_layer_optimizers,
        ptb_two_layer,
        ptb_reweighted,
    )
}


def get_preset(name: str) -> Preset | Study:
    """The preset called ``name``, one of its aliases (``v1-fig3``), or a ``package.module:NAME`` object."""
    if ":" in name:
        preset = import_object(name, "preset")
        if not isinstance(preset, (Preset, Study)):
            raise ConfigError(f"{name!r} is not a heavytail.presets.Preset or Study")
        return preset
    for preset in PRESETS.values():
        if name == preset.name or name in preset.aliases:
            return preset
    choices = ", ".join(sorted(PRESETS))
    raise ConfigError(f"unknown preset {name!r}; choose one of: {choices} (aliases: `heavytail reproduce --list`)")


__all__ = ["PRESETS", "Curve", "Preset", "Scale", "Study", "get_preset"]
