"""Use cases: plain async functions of a unit of work and a command."""
