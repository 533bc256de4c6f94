"""`newsmon ingest`: placeholder wiring until the ingest flow lands."""
