"""The shared kernel every package uses: the store (DuckDB file, schema,
fair lock, staged writes), the workspace, user-facing errors, and the job
system train and eval jobs share. It imports no other project package."""
