"""The ``step()`` helper, re-exported from :mod:`agentd.workflow_steps` (shipped in the package)."""

from agentd.workflow_steps import WorkflowRun, step

__all__ = ["WorkflowRun", "step"]
