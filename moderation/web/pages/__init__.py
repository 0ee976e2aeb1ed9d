"""Dashboard pages, one module each, exposing ``PAGE`` (its nav entry) and ``router``."""

__all__ = ["PAGE_MODULES"]

# Nav order comes from each PAGE.order: 1 overview, 2 review, 3 thresholds, 4 matcher playground.
# TODO(#8): the review (2) and matcher playground (4) pages join this list when built.
PAGE_MODULES: tuple[str, ...] = ("overview", "thresholds")
