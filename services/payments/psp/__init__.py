"""PSP connectors behind one interface, and the resilience every PSP call goes through."""
