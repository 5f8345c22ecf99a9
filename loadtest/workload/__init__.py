"""The user's own workload in files: session files, scenario files (weighted mixes), run config files.

- :mod:`~loadtest.workload.session_file`: the ``session`` object of the user's ``session.update``
  (``--session-file``), read, checked by preflight's static session checks, and what it implies
  for the session settings (output modalities, audio format).
- :mod:`~loadtest.workload.scenario_file`: scenario TOML files (``--scenario FILE``), the shipped
  built-in ones (``scenarios/*.toml``), and the weighted mix a user's sessions pick from.
- :mod:`~loadtest.workload.run_config`: ``rtload run --config run.toml`` and ``--print-config``.

Every problem with a file is a :class:`~loadtest.workload.errors.WorkloadError`: one line naming
the file, the line or key, and what to fix.
"""
