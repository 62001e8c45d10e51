"""Question 2 — real-time security: connection floods, data leaks, forged and replayed events,
identity that changes during a session.

« Sécurité temps réel » : DDoS via connexions persistantes, fuite de données temps réel,
injection ou usurpation d'événements (2A) ; importance de la gestion des identités (2B).
Each scenario lives in its own module here; importing the package registers them all.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
