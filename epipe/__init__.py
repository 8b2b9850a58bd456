"""epipe: metadata change capture and search for a PostgreSQL-backed file system."""
