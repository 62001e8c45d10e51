"""Question 6 — deployment and persistent connections: Kubernetes horizontal pod autoscaling,
sticky sessions and load balancing of long-lived WebSocket connections.

« Déploiement & Connexions persistantes » : load balancing collé (sticky), scalabilité
horizontale (auto-scaling de pods), serveurs WebSocket distribués avec état dans Redis ou NATS.
Each scenario lives in its own module here; importing the package registers them all.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
