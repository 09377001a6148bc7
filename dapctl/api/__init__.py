"""The DAP API client: everything that speaks HTTP to DAP.

Module map: ``wire`` (the request and response models of ``shared/dap-api.md``), ``auth``
(the Identity Service login and token refresh), ``retry`` (the one tenacity policy, and
turning an HTTP answer into an ``ApiError``), ``ratelimit`` (client-side budgets per
endpoint class), ``client`` (``DapClient``: tables, schemas, jobs, URLs, verified
downloads), ``urls`` (pre-signed URLs asked for many parts a request), ``budget`` (rate-limit
budgets kept between processes) and ``session`` (building one client per profile from
resolved credentials, the embedded emulator the wiring hands it, and the injected clocks and
poll settings).
"""
