"""Which optional job attributes the jobs design has: the features that are on for this deployment.

Attributes added after the first release (Overlap, ConcurrencyKey, CancelRequested, RunParams,
Backfill, Notify, NotifyOn, MaxAge, ConsecutiveFailures, LastSucceeded) may be absent from a
design; the feature is then off: the poller does not read the attribute and the reporter never
writes it (Alloy would refuse an edit naming an attribute its design lacks). serve reads the
design when it starts and again every REFRESH_SECONDS, so `alloysync setup --adopt` adding an
attribute turns its feature on without a restart. Until the first read succeeds (Alloy down, a key
that may not read designs) every feature counts as on, which is what a design made by
`alloysync setup` has.
"""

from __future__ import annotations

import asyncio

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.errors import AlloyError
from alloysync.log import get_logger
from alloysync.model.design_report import inspect_design
from alloysync.model.job_options import ALL_FEATURES
from alloysync.settings import Settings

logger = get_logger(__name__)

REFRESH_SECONDS = 600.0
RETRY_SECONDS = 60.0


class DesignFeatures:
    """The optional attributes the design has (`fields`), kept fresh by `watch`."""

    def __init__(self, fields: frozenset[str] = ALL_FEATURES) -> None:
        self.fields = fields

    async def read(self, alloy: AlloyClient, settings: Settings) -> bool:
        """Read the design once; False (and features unchanged) when that failed."""
        try:
            design = await alloy.get_design(settings.jobs_design)
        except AlloyError as error:
            logger.warning(
                "cannot read the jobs design; treating every optional attribute as present",
                design=settings.jobs_design,
                error=str(error),
            )
            return False
        report = inspect_design(design, settings.attributes)
        fields = ALL_FEATURES - report.off_fields
        if fields != self.fields or not report.off_fields:
            for line in report.feature_lines():
                logger.info("feature off", detail=line)
        self.fields = fields
        return True

    async def watch(self, alloy: AlloyClient, settings: Settings) -> None:
        """Read the design now and then until cancelled."""
        while True:
            ok = await self.read(alloy, settings)
            await asyncio.sleep(REFRESH_SECONDS if ok else RETRY_SECONDS)
