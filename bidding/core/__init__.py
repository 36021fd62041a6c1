"""Cross-cutting foundation shared by every domain: database, errors, clock, auth, audit,
storage, background tasks."""
