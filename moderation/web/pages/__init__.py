"""Dashboard pages, one module each, exposing ``PAGE`` (its nav entry) and ``router``."""

__all__ = ["PAGE_MODULES"]

# Nav order comes from each PAGE.order: 1 overview, 2 review, 3 thresholds, 4 matcher
# playground, 5 banks, 6 callbacks, 7 appeals.
PAGE_MODULES: tuple[str, ...] = (
    "overview",
    "review",
    "thresholds",
    "matcher",
    "banks",
    "callbacks",
    "appeals",
)
