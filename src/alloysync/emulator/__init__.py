"""`alloysync emulator`: a faithful local Alloy over real HTTP, for the demo and as the peer of every test.

Modules, one responsibility each:

- `main`: the command: settings check, logging, the HTTP server's life cycle, signals.
- `app`: the aiohttp application: the request gate (faults, auth, rate limits, stats) and route wiring.
- `routes_api`: the Alloy API endpoints (`/api/aqs/query`, `/api/item`).
- `routes_emulator`: the emulator's own endpoints: the admin API under `/_emulator/`, the price feed.
- `state`: the object that ties the parts of one running emulator together.
- `store`: items in memory: ids, signatures, edit dates, create/edit/delete.
- `designs`: attribute value types of known designs (the jobs design) and value checks.
- `aqs`: parsing and evaluating AQS query nodes.
- `limits`: per-token, per-family fixed-window rate limits and their headers.
- `faults`: injected latency, errors and outages.
- `stats`: request counts per family and status.
- `persistence`: the `--state` file: loading, atomic writes, coalesced saving.
- `callouts`: the webhook call-out that imitates an Alloy "Http Request" workflow action.
- `prices`: the CoinDesk-shaped Bitcoin price feed.
- `seed`: the demo job records.
- `errors`, `wire`, `auth`, `clock`, `checks`: Alloy error values, JSON in and out, token checks,
  timestamps, small checks of JSON values.
"""
