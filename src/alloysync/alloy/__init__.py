"""The Alloy API client: everything alloysync knows about talking to Alloy.

Modules, one responsibility each:

- `models`: `Item` and `Attribute` (lenient pydantic models of Alloy's items); the date-time text
  helpers they use are `alloysync.model.times` (re-exported here).
- `designs`: `Design` and `DesignAttribute` (lenient models of Alloy's designs), `NewAttribute`.
- `errors`: `AlloyError`, the one exception of this package, and the lenient error-body parser.
- `ratelimit`: client-side budgets per endpoint family that also obey the server's rate-limit headers.
- `aqs`: builders for AQS query nodes.
- `client`: `AlloyClient`: session, auth, timeouts, retries, paging, conflict-safe edits, designs,
  Alloy's clock (`query_pages`), metrics.

Typical use:

    async with AlloyClient.from_settings(settings) as alloy:
        async for item in alloy.query(aqs.query(settings.jobs_design)):
            ...
        await alloy.update_owned(item.itemId, {status_code: "Running"}, signature=item.signature)
"""

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient, Page
from alloysync.alloy.designs import Design, DesignAttribute, NewAttribute
from alloysync.alloy.errors import AlloyError, error_from_response
from alloysync.alloy.models import Attribute, Item, format_alloy_datetime, parse_alloy_datetime
from alloysync.alloy.ratelimit import RateLimits, TokenBucket

__all__ = [
    "AlloyClient",
    "AlloyError",
    "Attribute",
    "Design",
    "DesignAttribute",
    "Item",
    "NewAttribute",
    "Page",
    "RateLimits",
    "TokenBucket",
    "aqs",
    "error_from_response",
    "format_alloy_datetime",
    "parse_alloy_datetime",
]
