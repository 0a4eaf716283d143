"""Test doubles and stub servers shipped with agentd, shared by its tests and its users.

- :mod:`agentd.testing.anthropic_stub`: a local Messages API server for the
  real ``anthropic`` client, with scriptable answers and failures.
- :mod:`agentd.testing.browser`: a scripted browser (the agent's ``Browser``
  without Chromium) and an in-memory operation log, to run the agent's rules
  (capture ordering, consent) in unit tests.
"""
