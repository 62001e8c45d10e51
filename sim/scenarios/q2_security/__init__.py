"""Question 2 — real-time security: connection floods, data leaks, forged and replayed events,
identity that changes during a session.

« Sécurité temps réel » : DDoS via connexions persistantes, fuite de données temps réel,
injection ou usurpation d'événements (2A) ; importance de la gestion des identités (2B).
Each scenario lives in its own module here; the registry imports them (all of them, or the one
a lookup needs: see :mod:`sim.core.registry`).
"""
