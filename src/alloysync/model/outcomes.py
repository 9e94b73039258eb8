"""Step outcomes other than returning a result or failing, which a task raises to ask for them.

- `StepSleeps(until)`: the step is not done yet; run it again at `until` without holding a worker
  in between (`wait.until`). The worker parks the run and re-sends the same step with a delay
  (worker/sleeps.py, state/parking.py); the step then runs again and decides again.
- `PipelineEnds(result)`: the run is done, successfully, with `result`, and the pipeline's later
  steps do not run (`data.threshold` when the count did not cross). From the last step it is the
  same as returning `result`.

Both are control flow, never errors: they are not retried and never make a run fail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class StepOutcome(Exception):
    """Base of the outcomes a task raises instead of returning."""


class StepSleeps(StepOutcome):
    """Run this step again at `until` (an aware datetime); `reason` is shown on the job record."""

    def __init__(self, until: datetime, reason: str = "") -> None:
        super().__init__(f"sleeps until {until.isoformat()}")
        self.until = until
        self.reason = reason


class PipelineEnds(StepOutcome):
    """End the run here, succeeded, with `result` (JSON); later steps do not run."""

    def __init__(self, result: Any) -> None:
        super().__init__("the pipeline ends here")
        self.result = result
