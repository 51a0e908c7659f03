"""Pure invoicing rules: no gRPC, SQL or protobuf here (tests/unit/test_domain_purity.py)."""
