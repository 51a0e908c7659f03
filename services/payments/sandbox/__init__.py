"""The PSP sandbox: a stateful HTTP payment processor the project runs itself (see README.md)."""
