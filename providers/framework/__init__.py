"""What every resource shares: the model base (single source of truth) and the generic provider."""
