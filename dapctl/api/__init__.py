"""The DAP API client: everything that speaks HTTP to DAP.

Module map: ``wire`` (the request and response models of ``shared/dap-api.md``), ``auth``
(the Identity Service login and token refresh), ``retry`` (the one tenacity policy, and
turning an HTTP answer into an ``ApiError``), ``ratelimit`` (client-side budgets per
endpoint class), ``transport`` (sending one call: the retry policy, a limiter's slot, the
bearer token, reading the answer, error translation), ``client`` (``DapClient``'s
endpoints: tables, schemas, jobs and waiting for them, URLs), ``download`` (verified,
streamed part downloads, retried from where a part began), ``urls`` (pre-signed URLs asked
for many parts a request), ``budget`` (rate-limit budgets kept between processes) and
``session`` (building one client per profile from resolved credentials, the embedded
emulator the wiring hands it, and the injected clocks and poll settings).
"""
