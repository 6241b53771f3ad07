"""PostgreSQL + pgvector access: embedded server, connections, migrations and binary COPY."""
