"""One module per layer family; each registers its converters on import."""
