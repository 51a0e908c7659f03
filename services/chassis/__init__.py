"""Shared runtime of every Commerce Mesh service: server, interceptors, db, config, errors."""
