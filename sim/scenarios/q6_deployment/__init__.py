"""Question 6 — deployment and persistent connections: Kubernetes horizontal pod autoscaling,
sticky sessions and load balancing of long-lived WebSocket connections.

« Déploiement & Connexions persistantes » : load balancing collé (sticky), scalabilité
horizontale (auto-scaling de pods), serveurs WebSocket distribués avec état dans Redis ou NATS.
Each scenario lives in its own module here; the registry imports them (all of them, or the one
a lookup needs: see :mod:`sim.core.registry`).
"""
