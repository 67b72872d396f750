"""Production: `make deploy` / `make destroy` and the least-privilege policies they write."""
