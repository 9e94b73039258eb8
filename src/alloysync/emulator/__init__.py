"""`alloysync emulator`: a faithful local Alloy over real HTTP, for the demo and as the peer of every test.

"Faithful" means the shapes of the recorded real responses: items without `lastEditDate` or
`createdDate` (unless `--item-dates`), with `title`/`subtitle` rendered from their design's
templates, `start`/`end`, `geometry`; designs with generated codes and signatures; items checked
against their design; Alloy's error bodies and categories; the rate limits and their headers.

Modules, one responsibility each:

- `main`: the command: settings check, logging, the HTTP server's life cycle, signals.
- `app`: the aiohttp application: the request gate (faults, auth, rate limits, stats) and route wiring.
- `routes_api`: the Alloy API's item endpoints (`/api/aqs/query`, `/api/item`).
- `routes_design`: the Alloy API's design endpoints (`/api/design`, `/api/design/{code}/attribute`).
- `routes_emulator`: the emulator's own endpoints: the admin API under `/_emulator/`, the price feed.
- `state`: the object that ties the parts of one running emulator together.
- `store`: items in memory: ids, signatures, edit dates, create/edit/delete, and the item JSON.
- `design_store`: designs in memory: create, add attributes, signatures, generated codes.
- `designs`: a design and its attributes, the items interface, title templates, the design JSON.
- `attribute_options`: attribute types and their typed options: parsing, JSON, value checks.
- `item_values`: an item's values against its design (attributes, types, limits, links, ...).
- `design_requests`: reading the design and attribute create requests (Alloy's request models).
- `codes`: item ids, signatures, and design and attribute codes made from names.
- `aqs`: parsing AQS query nodes, holding them against the designs, and evaluating them.
- `limits`: per-token, per-family fixed-window rate limits and their headers.
- `faults`: injected latency, errors, outages, and the status of stale-signature errors.
- `stats`: request counts per family and status.
- `persistence`: the `--state` file (designs and items): loading, atomic writes, coalesced saving.
- `callouts`: the webhook call-out that imitates an Alloy "Http Request" workflow action.
- `prices`: the CoinDesk-shaped Bitcoin price feed.
- `seed`: the seeds: the jobs design and the demo job records.
- `errors`, `wire`, `auth`, `clock`, `checks`: Alloy error values and categories, JSON and query
  parameters in and out, token checks, timestamps, small checks of JSON values.
"""
