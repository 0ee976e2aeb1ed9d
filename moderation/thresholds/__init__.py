"""Score → decision, in one place: scales, tiers, the resolver of thresholds in force, the
one writer of threshold versions, calibration strategies and report, audit sampling, evidence
and adjusters. See docs/architecture.md.

Pure modules (``scales``, ``tiers``, ``context``, ``presets``, ``strategies``, ``audit``,
``evidence``, ``adjusters``) import no I/O library; this ``__init__`` imports nothing so that
importing one of them stays light.
"""
