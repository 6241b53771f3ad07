"""Sub-commands of ``deer-pipeline`` that are not owned by a library package."""
