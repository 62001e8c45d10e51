"""Question 7 — client resilience: reconnection with backoff and jitter, an offline buffer with
replay, and the long-polling fallback.

« Stratégies de résilience client » : reconnexion automatique, buffer local des messages non
envoyés (replay après reconnexion), fallback sur HTTP long polling, exponential backoff.
Each scenario lives in its own module here; the registry imports them (all of them, or the one
a lookup needs: see :mod:`sim.core.registry`).
"""
