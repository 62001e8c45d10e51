"""Question 7 — client resilience: reconnection with backoff and jitter, an offline buffer with
replay, and the long-polling fallback.

« Stratégies de résilience client » : reconnexion automatique, buffer local des messages non
envoyés (replay après reconnexion), fallback sur HTTP long polling, exponential backoff.
Each scenario lives in its own module here; importing the package registers them all.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
