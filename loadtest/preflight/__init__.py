"""`rtload preflight`: catch configuration and migration mistakes before a load test.

Static checks of the configuration (``checks``), a live smoke session with an event timeline
(``smoke``) and a dialect probe; each result is a named :class:`~.findings.Finding`.
"""
