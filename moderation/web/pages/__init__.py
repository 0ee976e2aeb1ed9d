"""Dashboard pages, one module each, exposing ``PAGE`` (its nav entry) and ``router``."""

__all__ = ["PAGE_MODULES"]

# Nav order comes from each PAGE.order: 1 overview, 2 review, 3 thresholds, 4 matcher playground.
# TODO(#8): the review page (2) joins this list when built.
PAGE_MODULES: tuple[str, ...] = ("overview", "thresholds", "matcher")
