"""The sample corpus shipped with the package (see SOURCES.md)."""
