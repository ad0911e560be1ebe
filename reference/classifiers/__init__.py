"""Reference models of the course (trusted; never staged for a worker)."""
