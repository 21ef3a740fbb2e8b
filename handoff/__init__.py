"""Human handoff: tickets, context packets, the queue, agents and the console."""
