"""The ledger's domain: pure Python (no grpc, sqlalchemy or protobuf)."""
