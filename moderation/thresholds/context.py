"""Context-aware threshold adjustment (SEED-DIGEST §3 step 4); each score scale carries its
rules (``ScaleSpec.context``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["ContextRules", "adjust_for_context"]


@dataclass(frozen=True)
class ContextRules:
    """Step sizes and clamp of the context adjustment on one score scale.

    Defaults are the seed's, on the GME cosine scale (SEED-DIGEST §3 step 4).
    """

    many_candidates: int = 10  # more than this → many_step
    few_candidates: int = 3  # fewer than this → few_step
    many_step: float = 0.02
    few_step: float = -0.01
    high_criticality_step: float = 0.03
    low_criticality_step: float = -0.02
    high_complexity_step: float = 0.01
    clamp: tuple[float, float] = (0.1, 0.5)

    def scaled(self, factor: float, clamp: tuple[float, float]) -> ContextRules:
        """The same rules with every step multiplied by ``factor`` and a new clamp."""
        steps = {
            name: getattr(self, name) * factor
            for name in (
                "many_step",
                "few_step",
                "high_criticality_step",
                "low_criticality_step",
                "high_complexity_step",
            )
        }
        return replace(self, clamp=clamp, **steps)


_LEVELS = ("low", "normal", "high")


def adjust_for_context(
    base: float,
    *,
    candidates: int | None = None,
    criticality: str = "normal",
    image_complexity: str = "normal",
    rules: ContextRules | None = None,
) -> float:
    """Nudge a base threshold for its context, then clamp (seed constants on GME cosine).

    ``candidates``: how many texts/patterns compete (> 10 → stricter, < 3 → looser);
    ``criticality``: cost of a wrong match (high → stricter, low → looser);
    ``image_complexity``: busy images match many texts weakly (high → stricter).
    """
    rules = rules or ContextRules()
    for name, value in (("criticality", criticality), ("image_complexity", image_complexity)):
        if value not in _LEVELS:
            raise ValueError(f"{name} must be one of {_LEVELS}, got {value!r}")
    t = base
    if candidates is not None:
        if candidates > rules.many_candidates:
            t += rules.many_step
        elif candidates < rules.few_candidates:
            t += rules.few_step
    if criticality == "high":
        t += rules.high_criticality_step
    elif criticality == "low":
        t += rules.low_criticality_step
    if image_complexity == "high":
        t += rules.high_complexity_step
    low, high = rules.clamp
    return min(max(t, low), high)
