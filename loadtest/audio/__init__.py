"""Speech fixtures and audio analysis.

Modules: ``g711`` (μ-law / A-law in numpy), ``convert`` (soxr resampling, wire formats),
``fixtures`` (manifest, loading, import, check), ``frames`` (pre-encoded append events),
``analysis`` (streaming AudioAnalyzer), ``heuristics`` (audio too short for its transcript),
``build`` (rebuild the shipped fixtures), ``command`` (``rtload fixtures``).
Import the submodules directly; this package imports nothing heavy.
"""
