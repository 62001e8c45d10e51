"""Components that stand for real systems: servers, clients, and (in later modules) load balancers,
brokers, autoscalers, backoff strategies and CRDT replicas. Each receives the run's context and
its collaborators; none holds global state."""
