"""Security components for course question 2 (« Sécurité temps réel »).

* :mod:`~sim.components.security.limits` — NGINX ``limit_req`` (leaky bucket, ``burst``,
  ``nodelay``, ``delay=``) and ``limit_conn``, with NGINX's own integer arithmetic;
* :mod:`~sim.components.security.waf` — an AWS WAF rate-based rule: a look-back evaluation
  window, checked periodically, enforced after a delay;
* :mod:`~sim.components.security.tokens` — real signed JWTs (PyJWT, HS256 and RS256) checked
  against the simulated clock;
* :mod:`~sim.components.security.replay` — HMAC-signed events with a timestamp tolerance and a
  nonce cache (the replay window);
* :mod:`~sim.components.security.gateway` — the front door of a WebSocket server (NGINX or a
  CDN edge) that applies them to handshakes, through the server's ``admit`` hook.

Every number these components take from a real system is in ``data/security.json`` with its source.
"""
